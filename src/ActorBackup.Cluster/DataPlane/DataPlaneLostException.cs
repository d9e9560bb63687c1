namespace ActorBackup.Cluster.DataPlane;

/// <summary>The socket to the other side of a job's data plane broke (its node stopped, or the network failed).</summary>
public sealed class DataPlaneLostException(string reason, Exception? inner = null)
    : IOException($"lost the data plane connection to the media agent ({reason})", inner), Engine.Codec.ISourceFault;
