using System.Diagnostics;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup bench-prune [--chunks 1000000]`: a disk library of N chunks (random payloads of 2 to 6 KiB, 4 KiB
/// on average, so that it fits a small disk) in 256 MiB volumes, referenced by two snapshots, every other chunk
/// each — the worst case for compaction: every volume half dead. One snapshot is deleted and the library pruned
/// (the engine's own prune: mark, sweep, compact every volume). Prints the time of each step, the volume bytes
/// rewritten per second, bytes freed and the process's peak memory.
/// </summary>
public static class PruneBench
{
    public static int Run(int chunks, string? dir)
    {
        var root = dir ?? Path.Combine(Directory.Exists("/var/tmp") ? "/var/tmp" : Path.GetTempPath(), "abk-prune-bench." + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            return Measure(root, chunks);
        }
        finally
        {
            if (dir is null && Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static long VolumeBytes(string root) => Directory.GetFiles(Path.Combine(root, "volumes")).Sum(f => new FileInfo(f).Length);

    private static int Measure(string root, int chunks)
    {
        var clock = Stopwatch.StartNew();
        var random = new Random(7);
        var payload = new byte[6 * 1024];
        var id = new byte[ChunkId.Size];
        var keep = new List<ChunkId>(chunks / 2 + 1);
        var gone = new List<ChunkId>(chunks / 2 + 1);
        using (var library = DiskLibrary.Create(root, "bench", 256L * 1024 * 1024))
        {
            for (var i = 0; i < chunks; i++)
            {
                random.NextBytes(id);
                var length = 2048 + random.Next(4097);
                random.NextBytes(payload.AsSpan(0, length));
                var chunk = new ChunkId(id);
                library.Append(chunk, RecordFlags.Encrypted, payload.AsSpan(0, length));
                (i % 2 == 0 ? keep : gone).Add(chunk);
                if (i % 100_000 == 99_999) library.Commit();
            }
            library.AddReferences("keep", keep);
            library.AddReferences("gone", gone);
            library.Commit();
        }
        var fill = clock.Elapsed.TotalSeconds;
        var before = VolumeBytes(root);
        var peakBefore = Process.GetCurrentProcess().PeakWorkingSet64;
        Console.WriteLine($"prune bench: {chunks:N0} chunks, {before / 1e6:F0} MB in {Directory.GetFiles(Path.Combine(root, "volumes")).Length} volumes, " +
                          $"written in {fill:F1} s; {Environment.ProcessorCount} cores");

        clock.Restart();
        using var opened = DiskLibrary.Open(root);
        var open = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var result = opened.Prune(["keep"]);
        var prune = clock.Elapsed.TotalSeconds;
        var after = VolumeBytes(root);
        var rewritten = result.BytesMoved + result.ChunksMoved * VolumeFormat.RecordOverhead;
        Console.WriteLine($"  open (index of {chunks:N0}): {open:F2} s");
        Console.WriteLine($"  prune: {prune:F1} s; {result.ChunksDead:N0} chunks dead ({result.BytesDead / 1e6:F0} MB); {result.VolumesCompacted.Count} volumes compacted, " +
                          $"{rewritten / 1e6:F0} MB of live records rewritten ({rewritten / 1e6 / prune:F0} MB/s of live data rewritten, " +
                          $"{(before - after) / 1e6 / prune:F0} MB/s freed)");
        Console.WriteLine($"  volumes: {before / 1e6:F0} MB -> {after / 1e6:F0} MB ({(before - after) / 1e6:F0} MB freed); " +
                          $"peak memory {peakBefore / 1048576} MiB while filling, {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576} MiB at the end");
        foreach (var p in result.Problems.Take(5)) Console.WriteLine($"  problem: {p}");
        return result.Problems.Count == 0 ? 0 : 1;
    }
}
