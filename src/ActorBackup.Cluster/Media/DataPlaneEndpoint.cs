namespace ActorBackup.Cluster.Media;

/// <summary>Where clients on other nodes reach this node's data plane ("tcp:HOST:PORT"), or empty.</summary>
/// <summary>The socket data plane this node's media agents offer to clients of other nodes; Port 0: none.</summary>
public sealed record DataPlaneEndpoint(string Host, int Port);
