using System.Text;

namespace ActorBackup.Engine.Find;

/// <summary>One version of a file: the same client, path, type, size and mtime, and the snapshots that hold it.</summary>
public sealed record FoundVersion(string Client, string Path, char Type, ulong Size, long MtimeSec, int Snapshots,
    string FirstSnapshot, long FirstUnixMs, string LastSnapshot, long LastUnixMs);

/// <param name="Truncated">a snapshot held more matches than the limit: the versions are those of the first matches only</param>
public sealed record FindResult(IReadOnlyList<FoundVersion> Versions, int SnapshotsSearched, long EntriesSearched, long Matches, bool Truncated);

/// <summary>
/// `abk find`: the versions of matching files across snapshots' file indexes. Each index is searched on its own
/// (in parallel, one per core, through a memory map); matches are then merged in the snapshots' order into versions.
/// </summary>
public static class VersionFinder
{
    public sealed record Searched(string Snapshot, string Client, long FinishedUnixMs);

    private readonly record struct Match(string Path, byte Type, ulong Size, long MtimeSec);

    /// <param name="snapshots">the snapshots to search, each with an index in <paramref name="store"/></param>
    /// <param name="limit">at most this many versions; a snapshot with more matches marks the result truncated</param>
    /// <exception cref="InvalidDataException">an index is missing or damaged (a damaged one is deleted: build it again)</exception>
    public static FindResult Find(IReadOnlyList<Searched> snapshots, FileIndexStore store, FindPattern pattern, int limit, CancellationToken cancel = default)
    {
        var perSnapshot = new (List<Match> Matches, long Total, long Entries)[snapshots.Count];
        try
        {
            Search(snapshots, store, pattern, limit, perSnapshot, cancel);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        return Merge(snapshots, perSnapshot, limit);
    }

    private static void Search(IReadOnlyList<Searched> snapshots, FileIndexStore store, FindPattern pattern, int limit,
        (List<Match> Matches, long Total, long Entries)[] perSnapshot, CancellationToken cancel)
    {
        Parallel.For(0, snapshots.Count, new ParallelOptions { CancellationToken = cancel, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            if (!store.Read(snapshots[i].Snapshot, index =>
                {
                    var hits = new List<FindPattern.Hit>();
                    var total = pattern.Search(index, hits, limit + 1);
                    var dirStarts = hits.Count > 0 ? index.DirStarts() : [];
                    var matches = new List<Match>(hits.Count);
                    foreach (var hit in hits)
                    {
                        var row = index.RowOf(hit.Entry);
                        var path = Encoding.UTF8.GetString(index.Dir(dirStarts, row.Dir)) + "/" + Encoding.UTF8.GetString(index.Names.Slice(hit.NameStart, hit.NameLength));
                        matches.Add(new Match(path, row.Type, row.Size, row.MtimeSec));
                    }
                    return (matches, total, index.Header.Entries);
                }, out var found))
                throw new InvalidDataException($"the file index of snapshot {snapshots[i].Snapshot} is gone");
            perSnapshot[i] = found;
        });
    }

    private static FindResult Merge(IReadOnlyList<Searched> snapshots, (List<Match> Matches, long Total, long Entries)[] perSnapshot, int limit)
    {
        var versions = new Dictionary<(string Client, Match File), FoundVersion>();
        long entries = 0, matched = 0;
        var truncated = false;
        foreach (var i in Enumerable.Range(0, snapshots.Count).OrderBy(i => snapshots[i].FinishedUnixMs))
        {
            var s = snapshots[i];
            var (matches, total, count) = perSnapshot[i];
            entries += count;
            matched += total;
            truncated |= total > limit;
            foreach (var m in matches)
            {
                var key = (s.Client, m);
                if (versions.TryGetValue(key, out var v))
                    versions[key] = v with { Snapshots = v.Snapshots + 1, LastSnapshot = s.Snapshot, LastUnixMs = s.FinishedUnixMs };
                else if (versions.Count < limit)
                    versions[key] = new FoundVersion(s.Client, m.Path, (char)m.Type, m.Size, m.MtimeSec, 1, s.Snapshot, s.FinishedUnixMs, s.Snapshot, s.FinishedUnixMs);
                else truncated = true;
            }
        }
        var ordered = versions.Values.OrderBy(v => v.Path, StringComparer.Ordinal).ThenBy(v => v.Client, StringComparer.Ordinal).ThenBy(v => v.MtimeSec)
            .ThenBy(v => v.FirstUnixMs).ToList();
        return new FindResult(ordered, snapshots.Count, entries, matched, truncated);
    }
}
