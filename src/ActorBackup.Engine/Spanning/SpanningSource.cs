using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Spanning;

/// <summary>
/// Reads a snapshot that spans libraries: each chunk from the first source that has it. Batches go to the
/// first source whole (its reads stay in flight together); what it lacks is read from the others, in order.
/// </summary>
/// <param name="firstFallback">sources from this index on hold whole copies read only for what the others cannot
/// give (damaged, missing): <see cref="FallbackReads"/> counts the chunks they gave</param>
public sealed class SpanningSource(IReadOnlyList<IChunkSource> sources, int firstFallback = int.MaxValue) : IChunkSource, IChunkPlacement
{
    /// <summary>The first library's order (where nearly every chunk of a snapshot is); chunks it lacks come last.</summary>
    public bool Sequential => sources.Count > 0 && sources[0] is IChunkPlacement { Sequential: true };

    public IReadOnlyList<ChunkPlace> Places(IReadOnlyList<ChunkId> ids) =>
        sources.Count > 0 && sources[0] is IChunkPlacement p ? p.Places(ids) : new ChunkPlace[ids.Count];

    private long _fallbackReads;

    /// <summary>Chunks read from a fallback source: damaged or missing where they should have been.</summary>
    public long FallbackReads => Interlocked.Read(ref _fallbackReads);

    private void Served(int index)
    {
        if (index >= firstFallback) Interlocked.Increment(ref _fallbackReads);
    }

    public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
    {
        Exception? first = null, fault = null;
        for (var i = 0; i < sources.Count; i++)
        {
            try
            {
                var payload = sources[i].ReadPayload(id, ref buffer, out flags);
                Served(i);
                return payload;
            }
            catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidDataException)
            {
                if (Unreachable(i, e)) fault ??= e;
                else first ??= e;
            }
        }
        var thrown = fault ?? first!;
        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(thrown).Throw();
        throw thrown; // unreachable
    }

    /// <summary>
    /// Whether source <paramref name="index"/> failed a read because a library of the snapshot itself could not be
    /// reached (ISourceFault): what the read ends with if no other source gives the chunk (the job fails and is retried,
    /// the chunk is not called damaged). A fallback copy that cannot be reached only leaves the damage as it was.
    /// </summary>
    private bool Unreachable(int index, Exception e) => e is ISourceFault && index < firstFallback;

    public void ReadPayloads(IReadOnlyList<ChunkId> ids, ref byte[] buffer, PayloadHandler handle)
    {
        if (sources.Count == 1)
        {
            sources[0].ReadPayloads(ids, ref buffer, handle);
            return;
        }
        var spare = new byte[1 << 16];
        sources[0].ReadPayloads(ids, ref buffer, (i, payload, flags, error) =>
        {
            if (error is null)
            {
                handle(i, payload, flags, null);
                return;
            }
            // Not in the first library (or damaged there): the others, in order, on this thread.
            Exception? fault = null;
            for (var s = 1; s < sources.Count; s++)
            {
                scoped ReadOnlySpan<byte> other;
                RecordFlags otherFlags;
                try
                {
                    other = sources[s].ReadPayload(ids[i], ref spare, out otherFlags);
                }
                catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidDataException)
                {
                    if (Unreachable(s, e)) fault ??= e;
                    continue;
                }
                Served(s);
                handle(i, other, otherFlags, null);
                return;
            }
            if (fault is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(fault).Throw();
            handle(i, default, default, error);
        });
    }
}
