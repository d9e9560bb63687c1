using System.Diagnostics;
using System.Text.Json;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Archive;
using ActorBackup.Cluster.Manager;
using System.CommandLine;
using ActorBackup.Protocol.Commands;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Restore;

namespace ActorBackup.Node.Engine;

/// <summary>
/// `actorbackup engine ...`: the backup engine on its own, against a repository folder, without a cell.
/// For benchmarks, offline use and salvage (rebuild a library from its volumes).
/// </summary>
public static class EngineCommand
{
    /// <summary>`actorbackup engine ...`: every engine command, its options and help.</summary>
    public static Command Build()
    {
        var json = SharedOptions.Json();
        var repo = new Option<string>("--repo") { Description = "the repository folder", HelpName = "DIR", Required = true };
        var keyFile = new Option<string?>("--key-file") { Description = "unlock the master key with this key file instead of $ABK_PASSPHRASE", HelpName = "FILE" };
        var engine = new Command("engine", "the backup engine alone, against a repository folder, without a cell. " +
                                           "The master key is unlocked by the passphrase in $ABK_PASSPHRASE, or by --key-file FILE.") { json };

        Command Verb(string name, string description, Func<ParseResult, int> run, params Symbol[] symbols)
        {
            var c = new Command(name, description).With(symbols);
            c.SetAction(run);
            engine.Subcommands.Add(c);
            return c;
        }

        var avg = new Option<int>("--avg-chunk") { Description = "average chunk size in bytes", HelpName = "BYTES", DefaultValueFactory = _ => 1024 * 1024 };
        var compression = new Option<int>("--compression") { Description = "zstd level", HelpName = "LEVEL", DefaultValueFactory = _ => 3 };
        var volumeSize = new Option<long>("--volume-size") { Description = "volume capacity in bytes", HelpName = "BYTES", DefaultValueFactory = _ => 4L * 1024 * 1024 * 1024 };
        var library = new Option<string>("--library") { Description = "the library id", HelpName = "ID", DefaultValueFactory = _ => "lib1" };
        Verb("init", "create a repository", pr =>
        {
            var a = pr.GetValue(avg);
            var config = new RepositoryConfig
            {
                ChunkMin = a / 4, ChunkAvg = a, ChunkMax = a * 4, CompressionLevel = pr.GetValue(compression),
                VolumeCapacity = pr.GetValue(volumeSize), Library = pr.GetValue(library)!,
            };
            using var r = Repository.Init(pr.GetValue(repo)!, KeySourceFrom(pr.GetValue(keyFile)), config);
            Console.WriteLine(pr.GetValue(json) ? JsonSerializer.Serialize(new { repo = pr.GetValue(repo), library = r.Library.Id }) : $"created repository {pr.GetValue(repo)} with library {r.Library.Id}");
            return 0;
        }, repo, keyFile, avg, compression, volumeSize, library);

        var level = SharedOptions.Level();
        var set = new Option<string?>("--set") { Description = "backup set name (default: named after the paths)", HelpName = "NAME" };
        var exclude = SharedOptions.Exclude();
        var ifPresent = SharedOptions.ExcludeIfPresent();
        var caches = SharedOptions.ExcludeCaches();
        var oneFs = SharedOptions.OneFileSystem();
        var atime = SharedOptions.Atime();
        var paths = new Argument<string[]>("PATH") { HelpName = "PATH", Description = "paths to back up", Arity = ArgumentArity.OneOrMore };
        var within = new Option<double>("--reread-changed-within")
        {
            Description = "a file changed within this many seconds before the parent snapshot began is read again, even when its size and times are as recorded (a change in the same clock tick right after the parent read it would leave them so)",
            HelpName = "SECONDS", DefaultValueFactory = _ => BackupOptions.DefaultRereadChangedWithin.TotalSeconds,
        };
        within.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is var v && v is not (>= 0 and <= 366 * 86400)) r.AddError($"--reread-changed-within must be 0 to 31622400 seconds (a year), got {v}");
        });
        Verb("backup", "back PATHs up", pr => Backup(pr.GetValue(repo)!, KeySourceFrom(pr.GetValue(keyFile)),
            new BackupSet(pr.GetValue(set) ?? Repository.DefaultSetName(pr.GetValue(paths)!), pr.GetValue(paths)!, pr.GetValue(exclude) ?? [], pr.GetValue(oneFs), pr.GetValue(atime))
                { ExcludeIfPresent = SharedOptions.Markers(pr.GetValue(ifPresent), pr.GetValue(caches)) },
            ManagerState.ToEngineLevel(pr.GetValue(level)), pr.GetValue(json), TimeSpan.FromSeconds(pr.GetValue(within))), repo, keyFile, level, set, exclude, ifPresent, caches, oneFs, atime, within, paths);

        var snapshot = new Argument<string>("SNAPSHOT") { HelpName = "SNAPSHOT", Description = "a snapshot id, a unique prefix of one, or 'latest'" };
        var include = new Argument<string[]>("PATH") { HelpName = "PATH", Description = "paths or globs inside the snapshot (default: everything)", Arity = ArgumentArity.ZeroOrMore };
        var to = new Option<string>("--to") { Description = "the folder to restore into", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "restore into / or into a folder that is not empty (what is there may be replaced)" };
        var numericOwner = new Option<bool>("--numeric-owner") { Description = "give files their recorded owner ids; default: the ids their owners' names have here" };
        var sparse = SharedOptions.Sparse();
        var restoreExclude = SharedOptions.RestoreExclude();
        var overwrite = SharedOptions.Overwrite();
        var dryRun = SharedOptions.RestoreDryRun();
        Verb("restore", "restore a snapshot (or PATHs of it)", pr =>
            {
                if (pr.GetValue(overwrite) != ActorBackup.Protocol.RestoreOverwrite.OverwriteAlways && !pr.GetValue(force))
                {
                    Console.Error.WriteLine("actorbackup: --overwrite says what becomes of what is already in the target folder, and only --force lets a restore write into one that holds something: give --force too");
                    return 2;
                }
                return Restore(pr.GetValue(repo)!, KeySourceFrom(pr.GetValue(keyFile)), pr.GetValue(snapshot)!, pr.GetValue(to)!, pr.GetValue(include) ?? [], pr.GetValue(json),
                    new RestoreOptions
                    {
                        Force = pr.GetValue(force), NumericOwner = pr.GetValue(numericOwner), Sparse = pr.GetValue(sparse), Excludes = pr.GetValue(restoreExclude) ?? [],
                        Overwrite = (OverwritePolicy)(int)pr.GetValue(overwrite), DryRun = pr.GetValue(dryRun),
                    });
            },
            repo, keyFile, snapshot, include, to, force, numericOwner, sparse, restoreExclude, overwrite, dryRun);

        Verb("snapshots", "list the snapshots", pr => Snapshots(pr.GetValue(repo)!, KeySourceFrom(pr.GetValue(keyFile)), pr.GetValue(json)), repo, keyFile);

        var below = new Argument<string>("PATH") { HelpName = "PATH", Description = "list only below this path", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => "" };
        Verb("ls", "the files of a snapshot, like ls -lR", pr =>
        {
            using var r = Repository.Open(pr.GetValue(repo)!, KeySourceFrom(pr.GetValue(keyFile)));
            var m = r.Snapshot(pr.GetValue(snapshot)!);
            using var trees = new TreeReader(r.Ring.For(m), r.Library);
            var entries = ActorBackup.Cluster.Client.TreeEntries.List(trees, m, pr.GetValue(below) ?? "");
            if (pr.GetValue(json)) // as abk ls --json prints it: one SnapshotTree, every field
                Console.WriteLine(ActorBackup.Protocol.OperatorJson.Format(new ActorBackup.Protocol.SnapshotTree { Snapshot = m.Id, Entries = { entries } }));
            else
                foreach (var entry in entries) Console.WriteLine(entry.ToLine());
            return 0;
        }, repo, keyFile, snapshot, below);

        Verb("verify", "check every volume record and the index (needs no key)", pr => Verify(pr.GetValue(repo)!, pr.GetValue(json)), repo);
        Verb("rebuild", "rebuild the library's index from its volumes alone, and, with the key, the snapshot list from the manifests stored there",
            pr => Rebuild(pr.GetValue(repo)!, pr.GetValue(keyFile), pr.GetValue(json)), repo, keyFile);
        var mib = new Option<int>("--mib") { Description = "MiB of data per stage", HelpName = "N", DefaultValueFactory = _ => 256 };
        Verb("micro", "chunker, hash, zstd and AEAD throughput on one core", pr => Micro.Run(pr.GetValue(mib), pr.GetValue(json)), mib);
        return engine;
    }

    private static int Backup(string repoPath, KeySource key, BackupSet set, Level level, bool json, TimeSpan rereadChangedWithin)
    {
        using var repo = Repository.Open(repoPath, key);
        repo.RereadChangedWithin = rereadChangedWithin;
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
            Console.WriteLine($"  {clock.Elapsed.TotalSeconds:F2} s: walk {s.SecondsWalk:F2}, read {s.SecondsRead:F2}, trees {s.SecondsTrees:F2}, commit {clock.Elapsed.TotalSeconds - s.Seconds:F2}"); // with the manifest
            foreach (var e in m.Errors) Console.WriteLine($"  error: {e.Path}: {e.Reason}");
            if (m.ErrorsOmitted > 0) Console.WriteLine($"  ... and {m.ErrorsOmitted} more errors, not listed");
        }
        return m.ErrorCount > 0 ? 3 : 0;
    }

    private static int Restore(string repoPath, KeySource key, string snapshot, string to, IReadOnlyList<string> include, bool json, RestoreOptions options)
    {
        using var repo = Repository.Open(repoPath, key);
        var clock = Stopwatch.StartNew();
        ActorBackup.Engine.Restore.RestoreResult r;
        using (var progress = new ProgressLine()) r = repo.Restore(snapshot, to, options with { Include = include.ToList() }, progress);
        if (json) Console.WriteLine(JsonSerializer.Serialize(r));
        else
        {
            Console.WriteLine($"{(r.DryRun ? "would restore" : "restored")} {r.Files} files, {r.Directories} dirs, {r.Links} hard links, {r.Other} other, {Mib((ulong)r.Bytes)} into {Path.GetFullPath(to)}" +
                              (r.DryRun ? " (a dry run: nothing was written)" : $" in {clock.Elapsed.TotalSeconds:F2} s") +
                              (r.Kept > 0 ? $"; {r.Kept} entries already there {(r.DryRun ? "would be " : "")}left as they {(r.DryRun ? "are" : "were")}" : "") +
                              (r.NotRestored > 0 ? $"; {r.NotRestored} entries NOT restored (the errors below say why)" : ""));
            foreach (var e in r.Errors) Console.WriteLine($"  error: {e.Path}: {e.Reason}");
            if (r.ErrorCount > r.Errors.Count) Console.WriteLine($"  ... and {r.ErrorCount - r.Errors.Count} more errors");
        }
        return r.ErrorCount > 0 ? 3 : 0;
    }

    private static int Snapshots(string repoPath, KeySource key, bool json)
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

    private static int Verify(string repo, bool json)
    {
        using var lib = DiskLibrary.Open(Path.Combine(repo, "library"));
        var r = lib.Verify();
        // The reference lists too: a prune keeping a snapshot whose list is damaged stops at it.
        var lists = lib.DamagedReferences();
        var ok = r.Ok && lists.Count == 0;
        if (json)
            Console.WriteLine(JsonSerializer.Serialize(new { ok, volumes = r.Volumes, records = r.Records, bytes = r.Bytes, damage = r.Damage.Select(d => d.ToString()), index = r.IndexProblems,
                lists = lists.Select(l => new { snapshot = l.Snapshot, reason = l.Reason }) }));
        else
        {
            Console.WriteLine($"verified {r.Volumes} volumes, {r.Records} records, {Mib((ulong)r.Bytes)}: {(ok ? "no damage" : "DAMAGE FOUND")}");
            foreach (var d in r.Damage) Console.WriteLine($"  damage: {d}");
            foreach (var p in r.IndexProblems) Console.WriteLine($"  index: {p}");
            foreach (var (snapshot, reason) in lists)
                Console.WriteLine($"  reference list of snapshot {snapshot}: {reason} (a prune that keeps the snapshot stops at it)");
        }
        return ok ? 0 : 4;
    }

    private static int Rebuild(string repo, string? keyFile, bool json)
    {
        int chunks, volumes;
        IReadOnlyList<string> problems;
        using (var lib = DiskLibrary.Rebuild(Path.Combine(repo, "library")))
            (chunks, volumes, problems) = (lib.ChunkCount, lib.Volumes.Count, lib.LastOpen.Problems);
        // The snapshot list needs the key (the manifests are encrypted); without one, the index alone is rebuilt.
        (int Found, IReadOnlyList<string> Added, IReadOnlyList<string> Problems)? snapshots = null;
        string? noKey = null;
        if (keyFile is not null || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ABK_PASSPHRASE")))
        {
            using var r = Repository.Open(repo, KeySourceFrom(keyFile));
            snapshots = StoredManifests.Rebuild(r.Ring, r.Library, r.Catalog);
            problems = [.. problems, .. snapshots.Value.Problems];
        }
        else noKey = "the snapshot list was not looked at: give the key (ABK_PASSPHRASE or --key-file) to recreate it from the manifests stored in the library";
        if (json)
            Console.WriteLine(JsonSerializer.Serialize(new { chunks, volumes, problems, snapshots_found = snapshots?.Found, snapshots_added = snapshots?.Added }));
        else
        {
            Console.WriteLine($"rebuilt the library: {chunks} chunks in {volumes} volumes");
            foreach (var p in problems) Console.WriteLine($"  problem: {p}");
            if (snapshots is { } s) Console.WriteLine($"snapshots stored in it: {s.Found}; missing from the list and added back: {s.Added.Count}");
            else Console.WriteLine(noKey);
        }
        return problems.Count > 0 ? 4 : 0;
    }

    private static KeySource KeySourceFrom(string? keyFile)
    {
        if (keyFile is not null) return new KeySource.KeyFile(keyFile);
        var pass = Environment.GetEnvironmentVariable("ABK_PASSPHRASE");
        if (string.IsNullOrEmpty(pass)) throw new UsageException("no key: set ABK_PASSPHRASE to the passphrase, or pass --key-file FILE");
        return new KeySource.Passphrase(pass);
    }

    public static string Mib(ulong bytes) => $"{bytes / 1048576.0:F1} MiB";
}
