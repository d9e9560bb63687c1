using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Compression;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Node.Engine;

/// <summary>
/// Single-core throughput of each stage of the data path, in MB/s (10^6 bytes per second), measured on a
/// buffer of real binaries (the .NET runtime folder, compressible like the backup benchmark's data) for zstd,
/// and on random bytes for the chunker, the hashes and AEAD.
/// </summary>
public static class Micro
{
    public static int Run(int mib, bool json)
    {
        var size = mib * 1024 * 1024;
        var random = new byte[size];
        new Random(42).NextBytes(random);
        var real = RealData(size);
        var key = RandomNumberGenerator.GetBytes(32);
        var results = new Dictionary<string, double>();

        var cdc = new FastCdc(GearTable.FromSeed(key), ChunkerOptions.Default);
        results["chunker_1mib"] = Measure(size, () => Chunk(cdc, random));
        var cdc64 = new FastCdc(GearTable.FromSeed(key), ChunkerOptions.ForAverage(64 * 1024));
        results["chunker_64kib"] = Measure(size, () => Chunk(cdc64, random));
        var hasher = new ChunkHasher(key);
        results["hmac_sha256"] = Measure(size, () => EachMiB(random, c => hasher.HashHmacSha256(c)));
        results["blake3_keyed"] = Measure(size, () => EachMiB(random, c => hasher.Hash(c)));
        var gcm = new AesGcm(key, 16);
        var outBuf = new byte[1024 * 1024];
        var tag = new byte[16];
        var nonce = new byte[12];
        results["aes256_gcm"] = Measure(size, () => EachMiB(random, c => gcm.Encrypt(nonce, c, outBuf.AsSpan(0, c.Length), tag)));
        foreach (var level in new[] { 1, 3 })
        {
            using var z = new ChunkCompressor(level);
            var dst = new byte[ChunkCompressor.MaxCompressedLength(1024 * 1024)];
            long compressed = 0;
            results[$"zstd{level}_compress"] = Measure(size, () =>
            {
                compressed = 0;
                EachMiB(real, c => compressed += Math.Max(0, z.TryCompress(c, dst)));
            });
            results[$"zstd{level}_ratio"] = Math.Round((double)size / compressed, 2);
            var frames = new List<byte[]>();
            EachMiB(real, c =>
            {
                var n = z.TryCompress(c, dst);
                if (n > 0) frames.Add(dst.AsSpan(0, n).ToArray());
            });
            var plain = new byte[1024 * 1024];
            var frameBytes = frames.Count * 1024L * 1024;
            results[$"zstd{level}_decompress"] = Measure(frameBytes, () => { foreach (var f in frames) z.Decompress(f, plain); });
        }
        var sw = Stopwatch.StartNew();
        KeyStore.WrapWithPassphrase(MasterKey.Generate(), "benchmark");
        results["argon2id_ms"] = Math.Round(sw.Elapsed.TotalMilliseconds, 1);

        if (json) Console.WriteLine(JsonSerializer.Serialize(results));
        else foreach (var (k, v) in results) Console.WriteLine($"{k,-18} {v,10:F1}{(k.EndsWith("_ms") ? " ms" : k.EndsWith("_ratio") ? " x" : " MB/s")}");
        return 0;
    }

    private static byte[] RealData(int size)
    {
        var data = new byte[size];
        var filled = 0;
        var dir = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        foreach (var file in Directory.EnumerateFiles(dir).Order())
        {
            if (filled == size) break;
            var bytes = File.ReadAllBytes(file);
            var n = Math.Min(bytes.Length, size - filled);
            bytes.AsSpan(0, n).CopyTo(data.AsSpan(filled));
            filled += n;
        }
        for (var i = filled; i < size; i++) data[i] = data[i % Math.Max(1, filled)];
        return data;
    }

    private static void Chunk(FastCdc cdc, byte[] data)
    {
        var span = data.AsSpan();
        while (span.Length > 0) span = span[cdc.FindBoundary(span)..];
    }

    private delegate void SpanAction(ReadOnlySpan<byte> chunk);

    private static void EachMiB(byte[] data, SpanAction action)
    {
        for (var o = 0; o < data.Length; o += 1024 * 1024) action(data.AsSpan(o, Math.Min(1024 * 1024, data.Length - o)));
    }

    /// <summary>Best of three runs after a warm-up, in MB/s.</summary>
    private static double Measure(long bytes, Action action)
    {
        action();
        var best = double.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return Math.Round(bytes / best / 1e6, 1);
    }
}
