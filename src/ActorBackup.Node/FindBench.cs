using System.Diagnostics;
using ActorBackup.Engine.Find;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup bench-find [--versions 10000000] [--source /usr]`: the file indexes of enough snapshots of a real
/// tree (SOURCE as it is, walked once) to hold N file versions in all, each snapshot changing 1% of the files
/// (size and mtime), written as a client node writes them; then `abk find`'s search over all of them for a
/// rare name, a name glob, a path glob and everything, each 3 times (median and first), with the snapshots
/// searched, entries scanned and versions found. The last line is JSON.
/// </summary>
public static class FindBench
{
    public static int Run(long versions, string source, string? dir)
    {
        var root = dir ?? Path.Combine(Directory.Exists("/var/tmp") ? "/var/tmp" : Path.GetTempPath(), "abk-find-bench." + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            return Measure(root, versions, source);
        }
        finally
        {
            if (dir is null && Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static List<(string Dir, Tree Tree)> Walk(string source)
    {
        var dirs = new List<(string, Tree)>();
        var pending = new Stack<string>([source]);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            var tree = new Tree();
            IEnumerable<FileSystemInfo> children;
            try
            {
                children = new DirectoryInfo(dir).EnumerateFileSystemInfos().OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                continue;
            }
            foreach (var f in children)
            {
                var type = f.LinkTarget is not null ? NodeType.Symlink : f is DirectoryInfo ? NodeType.Directory : NodeType.File;
                tree.Nodes.Add(new global::ActorBackup.Engine.Trees.Node
                {
                    Name = f.Name, Type = type, Size = f is FileInfo { LinkTarget: null } file ? (ulong)file.Length : 0,
                    MtimeSec = new DateTimeOffset(f.LastWriteTimeUtc).ToUnixTimeSeconds(),
                });
                if (type == NodeType.Directory) pending.Push(f.FullName);
            }
            dirs.Add((dir == "/" ? "" : dir, tree));
        }
        return dirs;
    }

    private static int Measure(string root, long versions, string source)
    {
        var clock = Stopwatch.StartNew();
        var tree = Walk(Path.GetFullPath(source).TrimEnd('/') is { Length: > 0 } s ? s : "/");
        var perSnapshot = tree.Sum(d => d.Tree.Nodes.Count);
        if (perSnapshot == 0) throw new UsageException($"{source} holds no entries to index");
        var count = (int)Math.Max(1, (versions + perSnapshot - 1) / perSnapshot);
        var store = new FileIndexStore(Path.Combine(root, "file-index"));
        var random = new Random(11);
        var start = DateTimeOffset.UtcNow.AddDays(-count).ToUnixTimeMilliseconds();
        var searched = new List<VersionFinder.Searched>();
        for (var i = 0; i < count; i++)
        {
            // 1% of the files change between two snapshots.
            foreach (var (_, t) in tree)
                foreach (var n in t.Nodes)
                    if (n.Type == NodeType.File && random.Next(100) == 0)
                    {
                        n.Size += (ulong)random.Next(1, 4096);
                        n.MtimeSec += 3600 * 24;
                    }
            var id = $"bench{i:D5}";
            var at = start + i * 86_400_000L;
            store.Write(id, (file, scratch) => FileIndex.Write(id, "host1", at, tree, file, scratch));
            searched.Add(new VersionFinder.Searched(id, "host1", at));
        }
        var bytes = Directory.GetFiles(store.Folder).Sum(f => new FileInfo(f).Length);
        var total = (long)perSnapshot * count;
        Console.WriteLine($"find bench: {count} snapshots of {source} ({perSnapshot:N0} entries each), {total:N0} file versions, " +
                          $"indexes {bytes / 1e6:F0} MB written in {clock.Elapsed.TotalSeconds:F1} s; {Environment.ProcessorCount} cores");

        var rare = tree.SelectMany(d => d.Tree.Nodes).Where(n => n.Type == NodeType.File).Skip(perSnapshot / 3).First().Name;
        var queries = new[] { rare, "*.conf", source.TrimEnd('/') + "/**/*.h", "*" };
        var results = new List<string>();
        foreach (var q in queries)
        {
            var pattern = FindPattern.Parse(q);
            var times = new List<double>();
            FindResult? result = null;
            for (var run = 0; run < 3; run++)
            {
                var watch = Stopwatch.StartNew();
                result = VersionFinder.Find(searched, store, pattern, 1000);
                times.Add(watch.Elapsed.TotalSeconds);
            }
            var median = times.Order().ElementAt(1);
            Console.WriteLine($"  find {q,-28} median {median * 1000,7:F0} ms (first {times[0] * 1000:F0} ms): {result!.SnapshotsSearched} snapshots, " +
                              $"{result.EntriesSearched:N0} entries, {result.Matches:N0} matches, {result.Versions.Count} versions{(result.Truncated ? " (limit 1000)" : "")}");
            results.Add($"\"{q.Replace("\"", "\\\"")}\":{median:F3}");
        }
        Console.WriteLine($"{{\"versions\":{total},\"snapshots\":{count},\"index_bytes\":{bytes},\"median_s\":{{{string.Join(",", results)}}}," +
                          $"\"peak_rss_mib\":{Process.GetCurrentProcess().PeakWorkingSet64 >> 20}}}");
        return 0;
    }
}
