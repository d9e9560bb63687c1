using System.Diagnostics;
using System.Text.Json;
using ActorBackup.Engine.Chunks;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Scan;
using ActorBackup.Cluster.Manager;
using ActorBackup.Cluster.Ops;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Node.Engine;

/// <summary>
/// `actorbackup engine ...`: the backup engine on its own, against a repository folder, without a cell.
/// For benchmarks, offline use and salvage (rebuild a library from its volumes).
/// </summary>
public static class EngineCommand
{
    public const string Usage = """
        usage: actorbackup engine COMMAND --repo DIR [options]

          init      [--avg-chunk BYTES] [--compression LEVEL] [--volume-size BYTES] [--library ID]
          backup    [--level full|incremental|differential] [--set NAME] [--exclude GLOB]... [--one-file-system] PATH...
          restore   SNAPSHOT --to DIR [PATH|GLOB]...
          snapshots
          ls        SNAPSHOT [PATH]
          verify                         check every volume record and the index (needs no key)
          rebuild                        rebuild the library's index from its volumes alone
          micro     [--mib N]            chunker, hash, zstd and AEAD throughput on one core

        The master key is unlocked by the passphrase in $ABK_PASSPHRASE, or by --key-file FILE.
        Add --json for machine-readable output.
        """;

    public static int Run(string[] args)
    {
        var a = new Args(args);
        var command = a.Positional.Count > 0 ? a.Positional[0] : "";
        a.Positional.RemoveAt(0);
        var json = a.Flag("json");
        switch (command)
        {
            case "micro":
                return Micro.Run(a.Int("mib", 256), json);
            case "verify":
                return Verify(a.Required("repo"), json);
            case "rebuild":
                return Rebuild(a.Required("repo"), json);
        }
        var repoPath = a.Required("repo");
        var key = KeySourceFrom(a);
        switch (command)
        {
            case "init":
            {
                var avg = a.Int("avg-chunk", 1024 * 1024);
                var config = new RepositoryConfig
                {
                    ChunkMin = avg / 4, ChunkAvg = avg, ChunkMax = avg * 4, CompressionLevel = a.Int("compression", 3),
                    VolumeCapacity = a.Long("volume-size", 4L * 1024 * 1024 * 1024), Library = a.Value("library") ?? "lib1",
                };
                using var repo = Repository.Init(repoPath, key, config);
                Console.WriteLine(json ? JsonSerializer.Serialize(new { repo = repoPath, library = repo.Library.Id }) : $"created repository {repoPath} with library {repo.Library.Id}");
                return 0;
            }
            case "backup":
            {
                if (a.Positional.Count == 0) throw new UsageException("backup needs at least one PATH");
                var level = ManagerState.ToEngineLevel(a.Level("level"));
                var set = new BackupSet(a.Value("set") ?? Repository.DefaultSetName(a.Positional), a.Positional, a.Values("exclude"), a.Flag("one-file-system"));
                using var repo = Repository.Open(repoPath, key);
                var clock = Stopwatch.StartNew();
                SnapshotManifest m;
                using (var progress = new ProgressLine()) m = repo.Backup(set, level, progress);
                var s = m.Stats;
                if (json) Console.WriteLine(Google.Protobuf.JsonFormatter.Default.Format(m));
                else
                {
                    Console.WriteLine($"snapshot {m.Id} ({m.Level.ToString().ToLowerInvariant()}{(m.Parent != "" ? ", parent " + m.Parent : "")}) saved");
                    Console.WriteLine($"  files {s.Files} ({s.FilesUnchanged} unchanged), dirs {s.Directories}, other {s.Other}, {Mib(s.Bytes)} in, {Mib(s.BytesRead)} read");
                    Console.WriteLine($"  new: {s.ChunksNew} chunks, {Mib(s.BytesNew)} -> {Mib(s.BytesStored)} stored; {s.TreesNew} trees");
                    Console.WriteLine($"  {clock.Elapsed.TotalSeconds:F2} s: walk {s.SecondsWalk:F2}, read {s.SecondsRead:F2}, trees {s.SecondsTrees:F2}, commit {s.SecondsCommit:F2}");
                    foreach (var e in m.Errors) Console.WriteLine($"  error: {e.Path}: {e.Reason}");
                }
                return m.Errors.Count > 0 ? 3 : 0;
            }
            case "restore":
            {
                if (a.Positional.Count == 0) throw new UsageException("restore needs a SNAPSHOT (an id, a unique prefix, or 'latest')");
                var to = a.Required("to");
                using var repo = Repository.Open(repoPath, key);
                var clock = Stopwatch.StartNew();
                ActorBackup.Engine.Restore.RestoreResult r;
                using (var progress = new ProgressLine()) r = repo.Restore(a.Positional[0], to, a.Positional.Skip(1).ToList(), progress);
                if (json) Console.WriteLine(JsonSerializer.Serialize(r));
                else
                {
                    Console.WriteLine($"restored {r.Files} files, {r.Directories} dirs, {r.Links} hard links, {r.Other} other, {Mib((ulong)r.Bytes)} into {Path.GetFullPath(to)} in {clock.Elapsed.TotalSeconds:F2} s");
                    foreach (var e in r.Errors) Console.WriteLine($"  error: {e.Path}: {e.Reason}");
                }
                return r.Errors.Count > 0 ? 3 : 0;
            }
            case "snapshots":
            {
                using var repo = Repository.Open(repoPath, key);
                var list = repo.Catalog.List();
                if (json) Console.WriteLine("[" + string.Join(",", list.Select(m => Google.Protobuf.JsonFormatter.Default.Format(m))) + "]");
                else
                {
                    Console.WriteLine($"{"ID",-16}  {"TIME",-19}  {"LEVEL",-12}  {"FILES",8}  {"SIZE",10}  PATHS");
                    foreach (var m in list)
                        Console.WriteLine($"{m.Id,-16}  {DateTimeOffset.FromUnixTimeMilliseconds(m.FinishedUnixMs).LocalDateTime:yyyy-MM-dd HH:mm:ss}  {m.Level.ToString().ToLowerInvariant(),-12}  {m.Stats.Files,8}  {Mib(m.Stats.Bytes),10}  {string.Join(" ", m.Paths)}");
                }
                return 0;
            }
            case "ls":
            {
                if (a.Positional.Count == 0) throw new UsageException("ls needs a SNAPSHOT");
                using var repo = Repository.Open(repoPath, key);
                var m = repo.Catalog.Find(a.Positional[0]);
                using var trees = new TreeReader(repo.Keys, repo.Library);
                foreach (var entry in ActorBackup.Cluster.Client.TreeEntries.List(trees, m, a.Positional.Count > 1 ? a.Positional[1] : ""))
                    Console.WriteLine(entry.ToLine());
                return 0;
            }
            default:
                throw new UsageException($"unknown engine command '{command}'");
        }
    }

    private static int Verify(string repo, bool json)
    {
        using var lib = DiskLibrary.Open(Path.Combine(repo, "library"));
        var r = lib.Verify();
        if (json) Console.WriteLine(JsonSerializer.Serialize(new { ok = r.Ok, volumes = r.Volumes, records = r.Records, bytes = r.Bytes, damage = r.Damage.Select(d => d.ToString()), index = r.IndexProblems }));
        else
        {
            Console.WriteLine($"verified {r.Volumes} volumes, {r.Records} records, {Mib((ulong)r.Bytes)}: {(r.Ok ? "no damage" : "DAMAGE FOUND")}");
            foreach (var d in r.Damage) Console.WriteLine($"  damage: {d}");
            foreach (var p in r.IndexProblems) Console.WriteLine($"  index: {p}");
        }
        return r.Ok ? 0 : 4;
    }

    private static int Rebuild(string repo, bool json)
    {
        using var lib = DiskLibrary.Rebuild(Path.Combine(repo, "library"));
        if (json) Console.WriteLine(JsonSerializer.Serialize(new { chunks = lib.ChunkCount, volumes = lib.Volumes.Count, problems = lib.LastOpen.Problems }));
        else
        {
            Console.WriteLine($"rebuilt library {lib.Id}: {lib.ChunkCount} chunks in {lib.Volumes.Count} volumes");
            foreach (var p in lib.LastOpen.Problems) Console.WriteLine($"  problem: {p}");
        }
        return lib.LastOpen.Problems.Count > 0 ? 4 : 0;
    }

    private static KeySource KeySourceFrom(Args a)
    {
        if (a.Value("key-file") is { } file) return new KeySource.KeyFile(file);
        var pass = Environment.GetEnvironmentVariable("ABK_PASSPHRASE");
        if (string.IsNullOrEmpty(pass)) throw new UsageException("no key: set ABK_PASSPHRASE to the passphrase, or pass --key-file FILE");
        return new KeySource.Passphrase(pass);
    }

    public static string Mib(ulong bytes) => $"{bytes / 1048576.0:F1} MiB";
}
