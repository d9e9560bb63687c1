using ActorBackup.Engine.Hashing;
using CsCheck;
using Xunit;

namespace ActorBackup.Engine.Tests; // not .Hashing: that would hide Engine.Hashing from the tests that name it so

public class ChunkIdSortTests
{
    private static ChunkId Id(ulong high, ulong low)
    {
        var bytes = new byte[ChunkId.Size];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, high);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(24), low);
        return new ChunkId(bytes);
    }

    private static void SortsAsTheComparisonSort(ChunkId[] ids)
    {
        var expected = (ChunkId[])ids.Clone();
        Array.Sort(expected);
        ChunkIdSort.Sort(ids);
        Assert.Equal(expected, ids);
    }

    [Fact]
    public void Lists_of_hash_ids_with_repeats_come_out_as_the_comparison_sort_sorts_them()
    {
        // Around the size where the buckets start, and far above it; repeats (files with the same chunks) as well.
        var gen = Gen.Select(Gen.Int[ChunkIdSort.Small - 10, 100_000], Gen.Int[1, 100], Gen.Int)
            .Select((n, distinctPercent, seed) =>
            {
                var rnd = new Random(seed);
                var pool = Enumerable.Range(0, Math.Max(1, n * distinctPercent / 100)).Select(_ =>
                {
                    var b = new byte[ChunkId.Size];
                    rnd.NextBytes(b);
                    return new ChunkId(b);
                }).ToArray();
                return Enumerable.Range(0, n).Select(_ => pool[rnd.Next(pool.Length)]).ToArray();
            });
        gen.Sample(SortsAsTheComparisonSort, iter: 40);
    }

    [Fact]
    public void Ids_that_share_their_first_bytes_or_differ_only_in_their_last_come_out_sorted()
    {
        var rnd = new Random(7);
        // Every id in one bucket, differing only after the first 8 bytes.
        SortsAsTheComparisonSort(Enumerable.Range(0, 20_000).Select(_ => Id(42, (ulong)rnd.NextInt64())).ToArray());
        // A few buckets, full of repeats; the extremes of the first 8 bytes.
        SortsAsTheComparisonSort(Enumerable.Range(0, 30_000).Select(i => Id(i % 3 == 0 ? ulong.MaxValue : (ulong)(i % 5) << 60, (ulong)(i % 17))).ToArray());
        // Already sorted, and sorted backwards (a library's staged parts each come sorted).
        var sorted = Enumerable.Range(0, 50_000).Select(_ => Id((ulong)rnd.NextInt64(), 0)).Order().ToArray();
        SortsAsTheComparisonSort((ChunkId[])sorted.Clone());
        SortsAsTheComparisonSort(sorted.Reverse().ToArray());
    }
}
