using ActorBackup.Engine.Chunking;
using CsCheck;

namespace ActorBackup.Engine.Tests;

public class ChunkerTests
{
    private static readonly byte[] Seed = "a per-cell gear seed for tests!!"u8.ToArray();

    private static List<(int Offset, int Length)> Cuts(FastCdc cdc, ReadOnlySpan<byte> data)
    {
        var cuts = new List<(int, int)>();
        var offset = 0;
        while (offset < data.Length)
        {
            var n = cdc.FindBoundary(data[offset..]);
            cuts.Add((offset, n));
            offset += n;
        }
        return cuts;
    }

    private static HashSet<string> ChunkSet(FastCdc cdc, byte[] data) =>
        Cuts(cdc, data).Select(c => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data.AsSpan(c.Offset, c.Length)))).ToHashSet();

    [Theory]
    [InlineData(1024 * 1024)]
    [InlineData(64 * 1024)]
    public void Chunks_cover_the_input_and_respect_the_bounds(int average)
    {
        var options = ChunkerOptions.ForAverage(average);
        var cdc = new FastCdc(GearTable.FromSeed(Seed), options);
        var data = TestRepo.RandomBytes(24 * average, 1);
        var cuts = Cuts(cdc, data);
        Assert.Equal(data.Length, cuts.Sum(c => c.Length));
        foreach (var (_, length) in cuts.SkipLast(1)) Assert.InRange(length, options.MinSize, options.MaxSize);
        // Normalized chunking keeps the mean near the average.
        var mean = cuts.SkipLast(1).Average(c => c.Length);
        Assert.InRange(mean, average * 0.6, average * 1.6);
    }

    [Fact]
    public void Boundaries_are_deterministic_and_depend_on_the_cell_secret()
    {
        var data = TestRepo.RandomBytes(16 * 1024 * 1024, 2);
        var a = Cuts(new FastCdc(GearTable.FromSeed(Seed), ChunkerOptions.ForAverage(64 * 1024)), data);
        var b = Cuts(new FastCdc(GearTable.FromSeed(Seed), ChunkerOptions.ForAverage(64 * 1024)), data);
        var other = Cuts(new FastCdc(GearTable.FromSeed("another cell's secret, not ours!"u8), ChunkerOptions.ForAverage(64 * 1024)), data);
        Assert.Equal(a, b);
        Assert.NotEqual(a, other);
    }

    [Theory]
    [InlineData(1024 * 1024)]
    [InlineData(64 * 1024)]
    public void Three_small_insertions_into_64_MiB_leave_at_least_95_percent_of_chunks_reusable(int average)
    {
        var cdc = new FastCdc(GearTable.FromSeed(Seed), ChunkerOptions.ForAverage(average));
        var original = TestRepo.RandomBytes(64 * 1024 * 1024, 3);
        var before = ChunkSet(cdc, original);
        Gen.Select(Gen.Int[0, original.Length], Gen.Int[0, original.Length], Gen.Int[0, original.Length], Gen.Int[1, 100])
            .Sample((p1, p2, p3, len) =>
            {
                var edited = new List<byte>(original.Length + 300);
                var points = new[] { p1, p2, p3 }.Order().ToArray();
                var last = 0;
                foreach (var p in points)
                {
                    edited.AddRange(original.AsSpan(last, p - last));
                    edited.AddRange(TestRepo.RandomBytes(len, p));
                    last = p;
                }
                edited.AddRange(original.AsSpan(last));
                var after = Cuts(cdc, edited.ToArray().AsSpan()).Count;
                var reused = ChunkSet(cdc, edited.ToArray()).Count(before.Contains);
                return reused >= 0.95 * after;
            }, iter: 4);
    }

    /// <summary>A stream that returns short reads of varying size, as pipes and network file systems do.</summary>
    private sealed class TrickleStream(byte[] data, int seed) : MemoryStream(data)
    {
        private readonly Random _random = new(seed);
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, _random.Next(1, 300_000)));
    }

    [Fact]
    public void Streaming_gives_the_same_chunks_as_the_whole_buffer_whatever_the_read_sizes()
    {
        Gen.Int[0, 12 * 1024 * 1024].Sample(length =>
        {
            var data = TestRepo.RandomBytes(length, length);
            var cdc = new FastCdc(GearTable.FromSeed(Seed), ChunkerOptions.ForAverage(256 * 1024));
            using var chunker = new StreamChunker(cdc);
            chunker.Reset(new TrickleStream(data, length));
            var streamed = new List<(int, int)>();
            var offset = 0;
            while (chunker.TryNext(out var chunk))
            {
                Assert.True(chunk.Span.SequenceEqual(data.AsSpan(offset, chunk.Length)));
                streamed.Add((offset, chunk.Length));
                offset += chunk.Length;
            }
            Assert.Equal(Cuts(cdc, data), streamed);
        }, iter: 12);
    }

    [Theory]
    [InlineData(1000, 5000, 20000)]  // average not a power of two
    [InlineData(4096, 4096, 16384)]  // min not below average
    [InlineData(1024, 4096, 4096)]   // max not above average
    public void Bad_chunk_sizes_are_refused_with_a_reason(int min, int avg, int max)
    {
        var e = Assert.Throws<ArgumentException>(() => new FastCdc(GearTable.FromSeed(Seed), new ChunkerOptions(min, avg, max)));
        Assert.Contains("chunk", e.Message);
    }
}
