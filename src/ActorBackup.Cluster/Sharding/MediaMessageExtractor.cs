using ActorBackup.Protocol;
using Akka.Cluster.Sharding;

namespace ActorBackup.Cluster.Sharding;

/// <summary>Messages to a media agent carry their library id: entity id and shard id alike.</summary>
public sealed class MediaMessageExtractor : IMessageExtractor
{
    public string? EntityId(object message) => LibraryOf(message);
    public object EntityMessage(object message) => message;
    public string? ShardId(object message) => LibraryOf(message);
    public string ShardId(string entityId, object? messageHint = null) => entityId;

    public static string? LibraryOf(object message) => message switch
    {
        OpenSession m => m.Library,
        CommitSession m => m.Library,
        CloseSession m => m.Library,
        GetLibraryStatus m => m.Library,
        ListVolumes m => m.Library,
        GetInventory m => m.Library,
        ChangeTape m => m.Library,
        CleanDueDrives m => m.Library,
        CatalogCaughtUp m => m.Library,
        PruneLibrary m => m.Library,
        CopySnapshot m => m.Library,
        EndJobSessions m => m.Library,
        ListManifests m => m.Library,
        VerifyLibrary m => m.Library,
        KeepPage m => m.Library,
        _ => null,
    };
}
