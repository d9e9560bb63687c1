using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;

namespace ActorBackup.Engine.Library;

/// <summary>
/// What a commit made durable: the index entries since the last commit, packed as the journal keeps them
/// (<see cref="ChunkIndex.Pack"/>: 48 bytes each, one array however many), and the volume table.
/// </summary>
public sealed record CommitBatch(ReadOnlyMemory<byte> Packed, IReadOnlyList<VolumeEntry> Volumes)
{
    public int Count => Packed.Length / ChunkIndex.EntrySize;

    /// <summary>The entries, read from the packed bytes one by one.</summary>
    public IEnumerable<(ChunkId Id, ChunkLocation Location)> Entries
    {
        get
        {
            for (var o = 0; o < Packed.Length; o += ChunkIndex.EntrySize) yield return ChunkIndex.ReadEntry(Packed.Span.Slice(o, ChunkIndex.EntrySize));
        }
    }
}
