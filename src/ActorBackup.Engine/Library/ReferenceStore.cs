using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Library;

/// <summary>
/// A library's reference lists (<c>refs/</c>): what each snapshot references, so that a prune, a copy and a verify
/// need no key. A list of <see cref="WholeBelow"/> ids or more is kept as a delta against a base list
/// (<c>refs/bases/NAME.base</c>, a whole list never changed once written) when it differs from one by at most a
/// quarter of its ids; otherwise its ids become a new base and its list an empty delta on it. A backup of a million
/// files that changed little so costs the changes, not 32 MB again (a library kept 1,040 snapshots of one such tree
/// in 32 GB of whole lists). The base is found by sampling, not by asking the client: every list's smallest
/// <see cref="SketchSize"/> ids are a uniform sample of it (the ids are keyed hashes), and two samples tell how much
/// two lists share (a bottom-k sketch); the base the samples say is closest is then compared whole. So copies, spans
/// and backups from any client share bases without a word in the protocol. A base no list names any more is deleted
/// by <see cref="Remove"/>. Writes (<see cref="Add"/>, <see cref="Remove"/>) are serialized by the caller (the
/// library's lock); reads run beside them.
/// </summary>
public sealed class ReferenceStore(string dir)
{
    /// <summary>Lists shorter than this are written whole (128 KiB at most): not worth a base.</summary>
    public const int WholeBelow = 4096;

    /// <summary>How many of a list's smallest ids sample it.</summary>
    internal const int SketchSize = 128;

    /// <summary>The bases' samples (count, smallest ids), read once: a commit compares its list with each.</summary>
    private readonly Dictionary<string, (uint Count, ChunkId[] First)> _sketches = new(StringComparer.Ordinal);

    /// <summary>Bases found damaged: never built on again (the lists on them are reported by whoever reads them).</summary>
    private readonly HashSet<string> _unusable = new(StringComparer.Ordinal);

    public string Dir => dir;
    public string BasesDir => Path.Combine(dir, "bases");
    public string PathOf(string snapshot) => Path.Combine(dir, ReferenceList.FileName(snapshot));
    private string BasePath(string name) => Path.Combine(BasesDir, name + ".base");

    /// <summary>The snapshots with a list here.</summary>
    public IEnumerable<string> Snapshots() =>
        Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*.ref").Select(f => Path.GetFileNameWithoutExtension(f)!) : [];

    /// <summary>
    /// Adds <paramref name="ids"/> (any order, repeats and all; sorted in place) to <paramref name="snapshot"/>'s list,
    /// durably: a list may come in parts, committed one after the other (the manifest's chunk comes last).
    /// InvalidDataException when the list there is damaged (it stays as it was).
    /// </summary>
    public void Add(string snapshot, List<ChunkId> ids)
    {
        var span = CollectionsMarshal.AsSpan(ids);
        var sorted = span[..ReferenceList.SortDistinct(span)];
        Directory.CreateDirectory(dir);
        var path = PathOf(snapshot);
        if (!File.Exists(path))
        {
            Store(snapshot, sorted, null);
            return;
        }
        var (whole, delta) = ReferenceList.ReadAny(path);
        if (whole is not null)
        {
            Store(snapshot, Union(whole, sorted), null);
            return;
        }
        // On the base it is on, read once: the list with its new part is likely still close to it.
        var baseIds = ReadBase(path, delta!.Base);
        Store(snapshot, Union(Apply(path, baseIds, delta), sorted), (delta.Base, baseIds));
    }

    private static ChunkId[] Union(ChunkId[] a, ReadOnlySpan<ChunkId> b)
    {
        var result = new ChunkId[a.Length + b.Length];
        int i = 0, j = 0, n = 0;
        while (i < a.Length || j < b.Length)
        {
            var c = i == a.Length ? 1 : j == b.Length ? -1 : a[i].CompareTo(b[j]);
            result[n++] = c <= 0 ? a[i] : b[j];
            if (c <= 0) i++;
            if (c >= 0) j++;
        }
        return n == result.Length ? result : result[..n];
    }

    /// <summary>
    /// Writes a list of sorted, distinct ids in the form that costs least (the class's summary), on
    /// <paramref name="known"/> (a base already read) if it is close enough.
    /// </summary>
    private void Store(string snapshot, ReadOnlySpan<ChunkId> ids, (string Name, ChunkId[] Ids)? known)
    {
        var path = PathOf(snapshot);
        if (ids.Length < WholeBelow)
        {
            ReferenceList.WriteSorted(path, ids);
            return;
        }
        var limit = ids.Length / 4;
        if (known is { } k && ReferenceList.Diff(k.Ids, ids, limit) is { } onKnown)
        {
            ReferenceList.WriteDelta(path, k.Name, onKnown.Removed, onKnown.Added);
            return;
        }
        if (Closest(ids, limit) is { } name && name != known?.Name)
        {
            try
            {
                if (ReferenceList.Diff(ReadBase(name), ids, limit) is { } diff)
                {
                    ReferenceList.WriteDelta(path, name, diff.Removed, diff.Added);
                    return;
                }
            }
            catch (InvalidDataException)
            {
                _unusable.Add(name); // a damaged base: the list gets a base of its own
            }
        }
        var baseName = snapshot + "_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        Directory.CreateDirectory(BasesDir);
        ReferenceList.WriteSorted(BasePath(baseName), ids); // durable before any list names it
        _sketches[baseName] = ((uint)ids.Length, ids[..Math.Min(SketchSize, ids.Length)].ToArray());
        ReferenceList.WriteDelta(path, baseName, [], []);
    }

    /// <summary>
    /// The base whose sample says it differs least from <paramref name="ids"/>, if by at most twice
    /// <paramref name="limit"/> ids (a sample is an estimate: the whole comparison decides).
    /// </summary>
    private string? Closest(ReadOnlySpan<ChunkId> ids, int limit)
    {
        LoadSketches();
        var sample = ids[..Math.Min(SketchSize, ids.Length)];
        string? best = null;
        var bestEstimate = 2.0 * limit;
        foreach (var (name, (count, first)) in _sketches)
        {
            if (_unusable.Contains(name)) continue;
            var estimate = EstimateDifference(sample, ids.Length, first, count);
            if (estimate <= bestEstimate) (best, bestEstimate) = (name, estimate);
        }
        return best;
    }

    /// <summary>
    /// How many ids two lists differ by (removed and added), from their samples: the smallest k ids of their union
    /// are a uniform sample of it, and the share of those in both lists is their Jaccard index J; they share
    /// J(a + b)/(1 + J) ids.
    /// </summary>
    internal static double EstimateDifference(ReadOnlySpan<ChunkId> sampleA, long a, ReadOnlySpan<ChunkId> sampleB, long b)
    {
        int i = 0, j = 0, taken = 0, both = 0;
        while (taken < SketchSize && (i < sampleA.Length || j < sampleB.Length))
        {
            var c = i == sampleA.Length ? 1 : j == sampleB.Length ? -1 : sampleA[i].CompareTo(sampleB[j]);
            if (c == 0) both++;
            if (c <= 0) i++;
            if (c >= 0) j++;
            taken++;
        }
        if (taken == 0) return 0;
        var jaccard = (double)both / taken;
        var shared = jaccard * (a + b) / (1 + jaccard);
        return a + b - 2 * shared;
    }

    /// <summary>The bases' samples, for the bases there now (read once each).</summary>
    private void LoadSketches()
    {
        if (!Directory.Exists(BasesDir))
        {
            _sketches.Clear();
            return;
        }
        var names = Directory.EnumerateFiles(BasesDir, "*.base").Select(f => Path.GetFileNameWithoutExtension(f)!)
            .Where(ReferenceList.IsValidBaseName).ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _sketches.Keys.Where(k => !names.Contains(k)).ToList()) _sketches.Remove(gone);
        foreach (var name in names)
        {
            if (_sketches.ContainsKey(name) || _unusable.Contains(name)) continue;
            try
            {
                var first = ReferenceList.ReadFirst(BasePath(name), SketchSize, out var count);
                _sketches[name] = (count, first);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                _unusable.Add(name);
            }
        }
    }

    /// <summary>A base's ids; InvalidDataException (saying which base) when it is missing or damaged.</summary>
    private ChunkId[] ReadBase(string name)
    {
        try
        {
            return ReferenceList.Read(BasePath(name));
        }
        catch (FileNotFoundException)
        {
            throw new InvalidDataException($"its base list {BasePath(name)} is missing");
        }
    }

    /// <summary>The base of the list at <paramref name="path"/>; the InvalidDataException names the list too.</summary>
    private ChunkId[] ReadBase(string path, string name)
    {
        try
        {
            return ReadBase(name);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message} (damaged)", e);
        }
    }

    /// <summary>The ids of the delta at <paramref name="path"/>; the InvalidDataException names it.</summary>
    private static ChunkId[] Apply(string path, ChunkId[] baseIds, ReferenceList.Delta delta)
    {
        try
        {
            return ReferenceList.Apply(baseIds, delta);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message} (damaged)", e);
        }
    }

    /// <summary>
    /// <paramref name="snapshot"/>'s ids, sorted. FileNotFoundException when it has no list; InvalidDataException
    /// (with the path) when the list or its base is damaged.
    /// </summary>
    public ChunkId[] Read(string snapshot)
    {
        var path = PathOf(snapshot);
        var (whole, delta) = ReferenceList.ReadAny(path);
        return whole ?? Apply(path, ReadBase(path, delta!.Base), delta);
    }

    /// <summary>
    /// Adds the ids of the lists of <paramref name="snapshots"/> to <paramref name="live"/>; the messages of those
    /// damaged (or whose base is) go to <paramref name="damaged"/>. Lists on one base are taken together: the base's
    /// ids once, less those every one of them removes, and what each adds.
    /// </summary>
    public void AddLive(IEnumerable<string> snapshots, HashSet<ChunkId> live, List<string> damaged)
    {
        foreach (var (name, members) in Group(snapshots, (_, whole) => live.UnionWith(whole), (_, e) => damaged.Add(e.Message)))
        {
            ChunkId[] baseIds;
            try
            {
                baseIds = ReadBase(name);
                foreach (var (_, delta) in members) Check(baseIds, delta);
            }
            catch (InvalidDataException e)
            {
                damaged.AddRange(members.Select(m => $"{PathOf(m.Snapshot)}: {e.Message} (damaged)"));
                continue;
            }
            var removedByAll = members[0].Delta.Removed;
            foreach (var (_, delta) in members.Skip(1)) removedByAll = Intersect(removedByAll, delta.Removed);
            var r = 0;
            foreach (var id in baseIds)
            {
                while (r < removedByAll.Length && removedByAll[r].CompareTo(id) < 0) r++;
                if (r == removedByAll.Length || removedByAll[r] != id) live.Add(id);
            }
            foreach (var (_, delta) in members) live.UnionWith(delta.Added);
        }
    }

    /// <summary>
    /// The snapshots (of <paramref name="snapshots"/>) whose lists name any of <paramref name="wanted"/>; a list that
    /// cannot be read is named with a note that it is damaged.
    /// </summary>
    public List<string> Referencing(IEnumerable<string> snapshots, IReadOnlySet<ChunkId> wanted)
    {
        var found = new List<string>();
        const string Damaged = " (its reference list is damaged too)";
        var groups = Group(snapshots, (snapshot, whole) => { if (whole.Any(wanted.Contains)) found.Add(snapshot); }, (snapshot, _) => found.Add(snapshot + Damaged));
        foreach (var (name, members) in groups)
        {
            ChunkId[] hits;
            try
            {
                var baseIds = ReadBase(name);
                foreach (var (_, delta) in members) Check(baseIds, delta);
                hits = baseIds.Where(wanted.Contains).ToArray();
            }
            catch (InvalidDataException)
            {
                found.AddRange(members.Select(m => m.Snapshot + Damaged));
                continue;
            }
            foreach (var (snapshot, delta) in members)
                if (delta.Added.Any(wanted.Contains) || hits.Any(h => Array.BinarySearch(delta.Removed, h) < 0)) found.Add(snapshot);
        }
        return found;
    }

    /// <summary>
    /// Reads the lists of <paramref name="snapshots"/>: a whole one goes to <paramref name="whole"/> at once, the deltas
    /// are grouped by base; one that cannot be read goes to <paramref name="damaged"/>.
    /// </summary>
    private Dictionary<string, List<(string Snapshot, ReferenceList.Delta Delta)>> Group(IEnumerable<string> snapshots,
        Action<string, ChunkId[]> whole, Action<string, InvalidDataException> damaged)
    {
        var groups = new Dictionary<string, List<(string, ReferenceList.Delta)>>(StringComparer.Ordinal);
        foreach (var snapshot in snapshots)
        {
            try
            {
                var (ids, delta) = ReferenceList.ReadAny(PathOf(snapshot));
                if (ids is not null) whole(snapshot, ids);
                else
                {
                    if (!groups.TryGetValue(delta!.Base, out var members)) groups[delta.Base] = members = [];
                    members.Add((snapshot, delta));
                }
            }
            catch (InvalidDataException e)
            {
                damaged(snapshot, e);
            }
        }
        return groups;
    }

    /// <summary>Whether a delta was made from this base: what it removes is there, what it adds is not.</summary>
    private static void Check(ChunkId[] baseIds, ReferenceList.Delta delta)
    {
        foreach (var id in delta.Removed)
            if (Array.BinarySearch(baseIds, id) < 0) throw new InvalidDataException($"it was not made from base {delta.Base} as that list is now");
        foreach (var id in delta.Added)
            if (Array.BinarySearch(baseIds, id) >= 0) throw new InvalidDataException($"it was not made from base {delta.Base} as that list is now");
    }

    private static ChunkId[] Intersect(ChunkId[] a, ChunkId[] b)
    {
        var result = new List<ChunkId>();
        int i = 0, j = 0;
        while (i < a.Length && j < b.Length)
        {
            var c = a[i].CompareTo(b[j]);
            if (c == 0) result.Add(a[i]);
            if (c <= 0) i++;
            if (c >= 0) j++;
        }
        return result.ToArray();
    }

    /// <summary>
    /// Deletes the lists of <paramref name="snapshots"/>, then every base no list names (none when a list's head cannot
    /// be read: what it names is unknown, so every base stays).
    /// </summary>
    public void Remove(IEnumerable<string> snapshots)
    {
        foreach (var snapshot in snapshots)
            if (ReferenceList.IsValidSnapshotId(snapshot)) File.Delete(PathOf(snapshot));
        if (!Directory.Exists(BasesDir)) return;
        var named = new HashSet<string>(StringComparer.Ordinal);
        foreach (var snapshot in Snapshots())
        {
            try
            {
                if (ReferenceList.BaseOf(PathOf(snapshot)) is { } name) named.Add(name);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                return;
            }
        }
        foreach (var file in Directory.EnumerateFiles(BasesDir, "*.base").ToList())
        {
            var name = Path.GetFileNameWithoutExtension(file)!;
            if (named.Contains(name)) continue;
            File.Delete(file);
            _sketches.Remove(name);
            _unusable.Remove(name);
        }
    }
}
