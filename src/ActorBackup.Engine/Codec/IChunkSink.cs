using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Codec;

/// <summary>Where a backup puts chunks: a library in this process, or a media agent across the data plane.</summary>
public interface IChunkSink
{
    /// <summary>True when the caller should store the chunk (the sink lacks it and nobody else is storing it).</summary>
    bool TryReserve(ChunkId id);
    void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload);
    /// <summary>
    /// True for a sink behind a network: the encoder then sends the reservation question with
    /// <see cref="StartReserve"/>, seals the chunk meanwhile, and takes the answer with <see cref="FinishReserve"/>
    /// (one question in flight per thread), instead of waiting a round trip in <see cref="TryReserve"/>.
    /// </summary>
    bool DefersReserve => false;
    void StartReserve(ChunkId id) { }
    bool FinishReserve(ChunkId id) => TryReserve(id);
    /// <summary>Gives up a reservation without storing (the read failed).</summary>
    void Release(ChunkId id);
    bool Contains(ChunkId id);
    /// <summary>Which of <paramref name="ids"/> the sink lacks: one question for many chunks.</summary>
    IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids);
    /// <summary>Everything appended so far is durable when this returns.</summary>
    void Commit();
    /// <summary>
    /// The chunk ids snapshot <paramref name="snapshot"/> references (trees and file contents), given before
    /// the <see cref="Commit"/> that makes it durable: a library keeps them (refs/SNAPSHOT.ref) so that a
    /// prune can tell live chunks from dead ones without the key. A sink that keeps none ignores them.
    /// </summary>
    void AddReferences(string snapshot, IReadOnlyList<ChunkId> ids) { }
}

/// <summary>
/// One chunk of a <see cref="IChunkSource.ReadPayloads"/> batch, in the order asked: its stored payload, or why
/// it could not be read (the rest of the batch is still delivered).
/// </summary>
public delegate void PayloadHandler(int index, ReadOnlySpan<byte> payload, RecordFlags flags, Exception? error);
