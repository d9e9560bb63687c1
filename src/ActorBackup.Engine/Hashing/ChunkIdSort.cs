using System.Numerics;

namespace ActorBackup.Engine.Hashing;

/// <summary>
/// Sorts chunk ids in their order (<see cref="ChunkId.CompareTo"/>), in place, several times faster than a comparison
/// sort on the long lists a backup and a library sort (a snapshot's references: a million ids for a million files).
/// Ids are uniform keyed hashes, so a list is spread over 256 buckets by the top byte of its first 8 bytes (an
/// American flag sort: counted, then each id swapped straight to its bucket, no second list; 256 places filled at
/// once stay in the cache), each bucket again by the next byte, and so on until a bucket is small enough for a
/// comparison sort. Ids that share their first bytes (never from the hash) still come out sorted: after the 8th byte
/// the comparison sort takes the rest.
/// </summary>
public static class ChunkIdSort
{
    /// <summary>Below this many ids a comparison sort is as quick.</summary>
    internal const int Small = 64;

    public static void Sort(Span<ChunkId> ids) => Sort(ids, 56);

    private static void Sort(Span<ChunkId> ids, int shift)
    {
        if (ids.Length < Small || shift < 0)
        {
            ids.Sort();
            return;
        }
        Span<int> start = stackalloc int[257];
        Span<int> next = stackalloc int[256];
        start.Clear();
        foreach (ref readonly var id in ids) start[(int)(id.High >> shift & 0xFF) + 1]++;
        for (var b = 0; b < 256; b++) start[b + 1] += start[b];
        start[..256].CopyTo(next);
        for (var b = 0; b < 256; b++)
            while (next[b] < start[b + 1])
            {
                // The first id not yet placed in bucket b goes where its own bucket is being filled; the one there
                // comes out in its place, until one belongs to b.
                var id = ids[next[b]];
                for (var d = (int)(id.High >> shift & 0xFF); d != b; d = (int)(id.High >> shift & 0xFF))
                {
                    var at = next[d]++;
                    (id, ids[at]) = (ids[at], id);
                }
                ids[next[b]++] = id;
            }
        for (var b = 0; b < 256; b++)
            if (start[b + 1] - start[b] > 1) Sort(ids[start[b]..start[b + 1]], shift - 8);
    }
}
