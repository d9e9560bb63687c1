using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Codec;

/// <summary>Where a restore reads chunks from. Implementations are thread-safe.</summary>
public interface IChunkSource
{
    ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags);

    /// <summary>
    /// Reads several chunks and hands each to <paramref name="handle"/> in order, on the calling thread. A
    /// source behind a network keeps several reads in flight instead of waiting a round trip for each; a
    /// local source just reads them one after another. A read that fails (unknown or damaged chunk) reaches
    /// the handler as its error; an exception the handler throws ends the batch and reaches the caller.
    /// </summary>
    void ReadPayloads(IReadOnlyList<ChunkId> ids, ref byte[] buffer, PayloadHandler handle)
    {
        for (var i = 0; i < ids.Count; i++)
        {
            scoped ReadOnlySpan<byte> payload;
            RecordFlags flags;
            try
            {
                payload = ReadPayload(ids[i], ref buffer, out flags);
            }
            catch (Exception e) when (SourceFault.IsDamage(e)) // a lost connection is the batch's, not this chunk's
            {
                handle(i, default, default, e);
                continue;
            }
            handle(i, payload, flags, null);
        }
    }
}
