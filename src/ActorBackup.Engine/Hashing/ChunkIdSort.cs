using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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

    /// <summary>Where the id of an item is (a struct: the sort is made for each, the call inlined).</summary>
    public interface IKey<T>
    {
        ChunkId Of(in T item);
    }

    private readonly struct Itself : IKey<ChunkId>
    {
        public ChunkId Of(in ChunkId item) => item;
    }

    private static void InsertionSort<T, TKey>(Span<T> items) where TKey : struct, IKey<T>
    {
        var key = default(TKey);
        for (var i = 1; i < items.Length; i++)
        {
            var item = items[i];
            var id = key.Of(item);
            var j = i - 1;
            for (; j >= 0 && key.Of(items[j]).CompareTo(id) > 0; j--) items[j + 1] = items[j];
            items[j + 1] = item;
        }
    }

    private readonly struct ByKey<T, TKey> : IComparer<T> where TKey : struct, IKey<T>
    {
        public int Compare(T? x, T? y) => default(TKey).Of(x!).CompareTo(default(TKey).Of(y!));
    }

    public static void Sort(Span<ChunkId> ids) => Sort<ChunkId, Itself>(ids, 56);

    /// <summary>Items sorted by the ids <typeparamref name="TKey"/> finds in them (an index's entries, say), in place.</summary>
    public static void Sort<T, TKey>(Span<T> items) where TKey : struct, IKey<T> => Sort<T, TKey>(items, 56);

    private static void Sort<T, TKey>(Span<T> ids, int shift) where TKey : struct, IKey<T>
    {
        if (ids.Length < Small || shift < 0)
        {
            // Ids themselves: the runtime's sort made for them (no comparer called through a delegate). Other items: a
            // few by insertion; many (ids that share their first 8 bytes, never from the hash) by the runtime's sort.
            if (typeof(TKey) == typeof(Itself)) MemoryMarshal.CreateSpan(ref Unsafe.As<T, ChunkId>(ref MemoryMarshal.GetReference(ids)), ids.Length).Sort();
            else if (ids.Length < Small) InsertionSort<T, TKey>(ids);
            else ids.Sort(default(ByKey<T, TKey>));
            return;
        }
        var key = default(TKey);
        Span<int> start = stackalloc int[257];
        Span<int> next = stackalloc int[256];
        start.Clear();
        foreach (ref readonly var id in ids) start[(int)(key.Of(id).High >> shift & 0xFF) + 1]++;
        for (var b = 0; b < 256; b++) start[b + 1] += start[b];
        start[..256].CopyTo(next);
        for (var b = 0; b < 256; b++)
            while (next[b] < start[b + 1])
            {
                // The first id not yet placed in bucket b goes where its own bucket is being filled; the one there
                // comes out in its place, until one belongs to b.
                var id = ids[next[b]];
                for (var d = (int)(key.Of(id).High >> shift & 0xFF); d != b; d = (int)(key.Of(id).High >> shift & 0xFF))
                {
                    var at = next[d]++;
                    (id, ids[at]) = (ids[at], id);
                }
                ids[next[b]++] = id;
            }
        for (var b = 0; b < 256; b++)
            if (start[b + 1] - start[b] > 1) Sort<T, TKey>(ids[start[b]..start[b + 1]], shift - 8);
    }
}
