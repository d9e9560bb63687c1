namespace ActorBackup.Cluster.Hosting;

/// <summary>
/// Stops a persistent actor after the events it is writing are written and their replies sent: the hand-over message
/// of the manager singleton and of the media agents' shards. A PoisonPill is handled before the commands an actor
/// stashes while it persists, and the replies of those events (a commit a backup waits for) were lost with it. Local
/// only: the singleton manager and the shard send it to an actor of their own node.
/// </summary>
public sealed class HandOffStop
{
    public static readonly HandOffStop Instance = new();
    private HandOffStop() { }
}
