using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Chunks;

/// <summary>Where a backup puts chunks: a library in this process, or a media agent across the data plane.</summary>
public interface IChunkSink
{
    /// <summary>True when the caller should store the chunk (the sink lacks it and nobody else is storing it).</summary>
    bool TryReserve(ChunkId id);
    void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload);
    /// <summary>Gives up a reservation without storing (the read failed).</summary>
    void Release(ChunkId id);
    bool Contains(ChunkId id);
    /// <summary>Which of <paramref name="ids"/> the sink lacks: one question for many chunks.</summary>
    IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids);
    /// <summary>Everything appended so far is durable when this returns.</summary>
    void Commit();
}

/// <summary>Where a restore reads chunks from. Implementations are thread-safe.</summary>
public interface IChunkSource
{
    ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags);
}
