using ActorBackup.Engine.Codec;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// One job's bulk-data path between a client and a media agent. Whatever the transport, the engine sees a
/// chunk sink (backup) and a chunk source (restore); Commit asks the media agent to make the appended chunks
/// durable and to journal their index entries.
/// </summary>
public interface IDataPlaneChannel : IChunkSink, IChunkSource, IChunkPlacement, IDisposable
{
    string Ticket { get; }

    /// <summary>A snapshot's reference list on the session's library (a copy reads it from its source).</summary>
    Engine.Hashing.ChunkId[] ReadReferences(string snapshot);
}
