using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Library;

/// <summary>
/// A library's reference lists (<c>refs/</c>): what each snapshot references, so that a prune, a copy and a verify
/// need no key. A list of <see cref="WholeBelow"/> ids or more is kept as a delta on a base list
/// (<c>refs/bases/NAME.base</c>, a whole list never changed once written) when it differs from one by at most a
/// quarter of its ids; otherwise its ids become a new base and its list an empty delta on it. A backup of a million
/// files that changed little so costs the changes, not 32 MB again (a library kept 1,040 snapshots of one such tree
/// in 32 GB of whole lists). The base is found by sampling, not by asking the client: every list's smallest
/// <see cref="SketchSize"/> ids are a uniform sample of it (the ids are keyed hashes), and two samples tell how much
/// two lists share (a bottom-k sketch); the base the samples say is closest is then compared whole. So copies, spans
/// and backups from any client share bases without a word in the protocol. A base no list names any more is deleted
/// when a list leaves it and by <see cref="Remove"/>.
/// Writes (<see cref="Add"/>, <see cref="Remove"/>) are serialized by the caller (the library's lock). Reads run
/// beside them: a list read while a commit moves it to another base (and deletes the old one) is read again.
/// </summary>
public sealed class ReferenceStore(string dir)
{
    /// <summary>Lists shorter than this are written whole (128 KiB at most): not worth a base.</summary>
    public const int WholeBelow = 4096;

    /// <summary>How many of a list's smallest ids sample it.</summary>
    internal const int SketchSize = 128;

    /// <summary>The bases' samples (count, smallest ids), read once: a commit compares its list with each.</summary>
    private readonly Dictionary<string, (uint Count, ChunkId[] First)> _sketches = new(StringComparer.Ordinal);

    /// <summary>Bases found damaged: not compared again (the lists on them are reported by whoever reads them).</summary>
    private readonly HashSet<string> _unusable = new(StringComparer.Ordinal);

    /// <summary>A base as read: what a delta names it by, and its ids.</summary>
    private sealed record Base(ReferenceList.BaseList Of, ChunkId[] Ids);

    public string BasesDir => Path.Combine(dir, "bases");
    public string PathOf(string snapshot) => Path.Combine(dir, ReferenceList.FileName(snapshot));
    /// <summary>Beside a list a part could not join: why (the list is incomplete, whatever it reads as).</summary>
    private string IncompletePath(string snapshot) => Path.Combine(dir, snapshot + ".incomplete");
    private string BasePath(string name) => Path.Combine(BasesDir, name + ".base");

    /// <summary>The snapshots with a list here.</summary>
    public IEnumerable<string> Snapshots() =>
        Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*.ref").Select(f => Path.GetFileNameWithoutExtension(f)!) : [];

    /// <summary>
    /// Adds <paramref name="ids"/> (any order, repeats and all; sorted in place) to <paramref name="snapshot"/>'s list,
    /// durably: a list may come in parts, committed one after the other (the manifest's chunk comes last).
    /// InvalidDataException when the list there (or its base) is damaged: it stays as it was.
    /// </summary>
    public void Add(string snapshot, List<ChunkId> ids)
    {
        var span = CollectionsMarshal.AsSpan(ids);
        var part = span[..ReferenceList.SortDistinct(span)];
        Directory.CreateDirectory(dir);
        var path = PathOf(snapshot);
        if (!File.Exists(path))
        {
            Store(snapshot, part);
            return;
        }
        var (whole, delta, _) = ReferenceList.ReadAny(path);
        if (whole is not null)
        {
            Store(snapshot, Union(whole, part));
            return;
        }
        // A delta grows where it is when it can: what the part adds that its base lacks joins the added ids, what it
        // adds that the delta removed is removed no more. Only the base is held, not the list made whole.
        var on = ReadBase(path, delta!.Base);
        var removed = Except(delta.Removed, part);
        var added = Union(delta.Added, part.ToArray().Where(id => Array.BinarySearch(on.Ids, id) < 0).ToArray());
        var grown = new ReferenceList.Delta(delta.Base, removed, added);
        var count = on.Ids.Length - removed.Length + added.Length;
        ChunkId[]? made = null; // the list made whole, once, if it must be
        ChunkId[] Whole() => made ??= Resolve(path, on, grown);
        // A list that came in parts sits on a base its first parts made (named after it): grown whole by now, it may be
        // close to a base others share (yesterday's backup of the same tree), found from its smallest ids alone.
        if (on.Of.Name.StartsWith(snapshot + "_", StringComparison.Ordinal) &&
            Closest(Smallest(on.Ids, grown), count, count / 4, except: on.Of.Name) is { } shared &&
            OnShared(snapshot, Whole(), shared))
        {
            Collect(on.Of.Name);
            return;
        }
        if (removed.Length + added.Length <= count / 4)
        {
            ReferenceList.WriteDelta(path, on.Of, removed, added);
            return;
        }
        if (Store(snapshot, Whole()) != on.Of.Name) Collect(on.Of.Name);
    }

    /// <summary>The smallest <see cref="SketchSize"/> ids of a delta's list (its sample), from its base without the whole list made.</summary>
    private static ChunkId[] Smallest(ChunkId[] baseIds, ReferenceList.Delta delta)
    {
        var sample = new List<ChunkId>(SketchSize);
        int i = 0, a = 0;
        while (sample.Count < SketchSize && (i < baseIds.Length || a < delta.Added.Length))
        {
            if (a == delta.Added.Length || i < baseIds.Length && baseIds[i].CompareTo(delta.Added[a]) < 0)
            {
                var id = baseIds[i++];
                if (Array.BinarySearch(delta.Removed, id) < 0) sample.Add(id);
            }
            else sample.Add(delta.Added[a++]);
        }
        return sample.ToArray();
    }

    /// <summary>Writes the list as a delta on base <paramref name="name"/> if within a quarter of it; whether it did.</summary>
    private bool OnShared(string snapshot, ReadOnlySpan<ChunkId> ids, string name)
    {
        try
        {
            var on = ReadBase(name);
            if (ReferenceList.Diff(on.Ids, ids, ids.Length / 4) is not { } diff) return false;
            ReferenceList.WriteDelta(PathOf(snapshot), on.Of, diff.Removed, diff.Added);
            return true;
        }
        catch (InvalidDataException)
        {
            _unusable.Add(name); // a damaged base
            return false;
        }
        catch (IOException)
        {
            return false; // not readable now
        }
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

    /// <summary>The ids of sorted <paramref name="a"/> that sorted <paramref name="b"/> lacks.</summary>
    private static ChunkId[] Except(ChunkId[] a, ReadOnlySpan<ChunkId> b)
    {
        var result = new List<ChunkId>(a.Length);
        var j = 0;
        foreach (var id in a)
        {
            while (j < b.Length && b[j].CompareTo(id) < 0) j++;
            if (j == b.Length || b[j] != id) result.Add(id);
        }
        return result.ToArray();
    }

    /// <summary>
    /// Writes a list of sorted, distinct ids in the form that costs least (the class's summary). Returns the base it
    /// is on (null: written whole).
    /// </summary>
    private string? Store(string snapshot, ReadOnlySpan<ChunkId> ids)
    {
        var path = PathOf(snapshot);
        if (ids.Length < WholeBelow)
        {
            ReferenceList.WriteSorted(path, ids);
            return null;
        }
        // The closest base if it is close enough, else a base of its own (a damaged or unreadable one is not built on).
        if (Closest(ids, ids.Length / 4) is { } name && OnShared(snapshot, ids, name)) return name;
        if (!Directory.Exists(BasesDir))
        {
            Directory.CreateDirectory(BasesDir);
            Posix.Posix.SyncDirectory(dir);
        }
        string baseName;
        do baseName = snapshot + "_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        while (File.Exists(BasePath(baseName)) || _unusable.Contains(baseName));
        // Durable before any list names it; never over another base (IOException instead).
        var checksum = ReferenceList.WriteSorted(BasePath(baseName), ids, overwrite: false);
        Posix.Posix.SyncDirectory(BasesDir);
        _sketches[baseName] = ((uint)ids.Length, ids[..Math.Min(SketchSize, ids.Length)].ToArray());
        ReferenceList.WriteDelta(path, new ReferenceList.BaseList(baseName, (uint)ids.Length, checksum), [], []);
        return baseName;
    }

    /// <summary>
    /// The base whose sample says it differs least from <paramref name="ids"/>, if by at most twice
    /// <paramref name="limit"/> ids (a sample is an estimate: the whole comparison decides).
    /// </summary>
    private string? Closest(ReadOnlySpan<ChunkId> ids, int limit) => Closest(ids[..Math.Min(SketchSize, ids.Length)], ids.Length, limit, null);

    /// <summary>The same from a list's sample (its smallest ids) and count, <paramref name="except"/> not counted.</summary>
    private string? Closest(ReadOnlySpan<ChunkId> sample, int length, int limit, string? except)
    {
        LoadSketches();
        string? best = null;
        var bestEstimate = 2.0 * limit;
        foreach (var (name, (count, first)) in _sketches)
        {
            if (_unusable.Contains(name) || name == except) continue;
            var estimate = EstimateDifference(sample, length, first, count);
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
            catch (InvalidDataException)
            {
                _unusable.Add(name);
            }
            catch (IOException)
            {
                // not readable now: not compared this time
            }
        }
    }

    /// <summary>A base's ids; InvalidDataException (saying which base) when it is missing or damaged.</summary>
    private Base ReadBase(string name)
    {
        try
        {
            var (ids, _, checksum) = ReferenceList.ReadAny(BasePath(name));
            if (ids is null) throw new InvalidDataException($"{BasePath(name)} is a delta, not a base");
            return new Base(new ReferenceList.BaseList(name, (uint)ids.Length, checksum), ids);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InvalidDataException($"its base list {BasePath(name)} is missing");
        }
    }

    /// <summary>
    /// The base a delta (the list at <paramref name="path"/>) was made on: InvalidDataException, naming the list, when
    /// it is missing, damaged, or another list under that name (its count or checksum differ).
    /// </summary>
    private Base ReadBase(string path, ReferenceList.BaseList of)
    {
        try
        {
            var read = ReadBase(of.Name);
            return read.Of == of ? read : throw new InvalidDataException($"its base list {BasePath(of.Name)} is not the one it was made on (another count or checksum)");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message} (damaged)", e);
        }
    }

    /// <summary>The ids of the delta at <paramref name="path"/> on its base (read); the InvalidDataException names it.</summary>
    private static ChunkId[] Resolve(string path, Base on, ReferenceList.Delta delta)
    {
        try
        {
            return ReferenceList.Apply(on.Ids, delta);
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
        ThrowIfIncomplete(snapshot);
        for (var attempt = 0; ; attempt++)
        {
            var (whole, delta, _) = ReferenceList.ReadAny(path);
            if (whole is not null) return whole;
            try
            {
                return Resolve(path, ReadBase(path, delta!.Base), delta);
            }
            catch (InvalidDataException) when (attempt == 0 && !File.Exists(BasePath(delta!.Base.Name)))
            {
                // Moved to another base by a commit, its old base deleted since: the list is read again.
            }
        }
    }

    /// <summary>
    /// Marks <paramref name="snapshot"/>'s list incomplete, durably: a part of it (<paramref name="why"/>) could not join
    /// it and was dropped, so whatever the list reads as (its damage mended, say, a base put back), it is damaged: a
    /// prune stops at it and a check names it, until the snapshot is deleted. The list's time is renewed, as a part
    /// written would have done (a list not written for prune-orphans-after is an orphan's).
    /// </summary>
    public void MarkIncomplete(string snapshot, string why)
    {
        Posix.Posix.WriteFileDurably(IncompletePath(snapshot), System.Text.Encoding.UTF8.GetBytes(why.Length > 2000 ? why[..2000] : why));
        if (File.Exists(PathOf(snapshot))) File.SetLastWriteTimeUtc(PathOf(snapshot), DateTime.UtcNow);
    }

    /// <summary>InvalidDataException when a part of the list could not join it (<see cref="MarkIncomplete"/>).</summary>
    private void ThrowIfIncomplete(string snapshot)
    {
        if (!File.Exists(IncompletePath(snapshot))) return; // the common case, without an exception per list
        string why;
        try
        {
            // Its first 2 KiB at most, printable: the mark is read from disk, and its words go into reports.
            using var file = new FileStream(IncompletePath(snapshot), FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            var bytes = new byte[Math.Min(file.Length, 2048)];
            file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            why = new string(System.Text.Encoding.UTF8.GetString(bytes).Select(c => char.IsControl(c) ? ' ' : c).ToArray());
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return;
        }
        throw new InvalidDataException($"{PathOf(snapshot)}: incomplete: a part of it could not be added ({why}) (damaged)");
    }

    /// <summary>One list as <see cref="Lists"/> reads it: its ids whole, or a delta on a base read, or why it is damaged.</summary>
    private readonly record struct Listed(string Snapshot, ChunkId[]? Whole, ReferenceList.Delta? Delta, Base? On, string? Damage);

    /// <summary>
    /// The lists of <paramref name="snapshots"/>, each read once: whole ones as they come, then the deltas base by base
    /// (each base read once; one delta held at a time; those on one base come one after the other, with the same
    /// <see cref="Base"/>). A list gone meanwhile (a prune removed it) is left out, or, with
    /// <paramref name="vanishedIsDamage"/> (a prune's mark: a kept list must not count as empty), comes as damaged; one
    /// that cannot be read, is marked incomplete, or whose base cannot be read, or that does not fit its base, comes with
    /// the reason. A list that moved to another base meanwhile, or whose base cannot be read, is read again whole, on
    /// its own. An I/O error other than a missing file ends the enumeration (the caller's job fails, nothing is taken).
    /// </summary>
    private IEnumerable<Listed> Lists(IEnumerable<string> snapshots, bool vanishedIsDamage)
    {
        var onBase = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var snapshot in snapshots)
        {
            Listed? listed = null;
            try
            {
                ThrowIfIncomplete(snapshot);
                if (ReferenceList.BaseOf(PathOf(snapshot)) is { } name)
                {
                    if (!onBase.TryGetValue(name, out var members)) onBase[name] = members = [];
                    members.Add(snapshot);
                }
                else listed = OnBase(snapshot, null, vanishedIsDamage); // whole (or a delta since: read on its own)
            }
            catch (FileNotFoundException)
            {
                if (!vanishedIsDamage) continue;
                listed = Vanished(snapshot);
            }
            catch (InvalidDataException e)
            {
                listed = new Listed(snapshot, null, null, null, e.Message);
            }
            if (listed is { } l) yield return l;
        }
        foreach (var (name, members) in onBase)
        {
            Base? on;
            try
            {
                on = ReadBase(name);
            }
            catch (InvalidDataException)
            {
                on = null;
            }
            foreach (var snapshot in members) yield return OnBase(snapshot, on, vanishedIsDamage);
        }
    }

    /// <summary>A list gone while it was read: damage where it was to be counted (a prune's mark fails closed).</summary>
    private Listed Vanished(string snapshot) =>
        new(snapshot, null, null, null, $"{PathOf(snapshot)}: removed while it was read (run the job again)");

    /// <summary>One list of <see cref="Lists"/> whose base was read (<paramref name="on"/>; null: it could not be).</summary>
    private Listed OnBase(string snapshot, Base? on, bool vanishedIsDamage)
    {
        var path = PathOf(snapshot);
        try
        {
            var (whole, delta, _) = ReferenceList.ReadAny(path);
            if (whole is not null) return new Listed(snapshot, whole, null, null, null);
            if (on is null || delta!.Base != on.Of) return new Listed(snapshot, Read(snapshot), null, null, null);
            Check(on.Ids, delta);
            return new Listed(snapshot, null, delta, on, null);
        }
        catch (FileNotFoundException)
        {
            return vanishedIsDamage ? Vanished(snapshot) : new Listed(snapshot, [], null, null, null); // removed meanwhile: it names nothing
        }
        catch (InvalidDataException e)
        {
            return new Listed(snapshot, null, null, null, e.Message.StartsWith(path, StringComparison.Ordinal) ? e.Message : $"{path}: {e.Message} (damaged)");
        }
    }

    /// <summary>Whether a delta was made from this base: what it removes is there, what it adds is not.</summary>
    private static void Check(ChunkId[] baseIds, ReferenceList.Delta delta)
    {
        foreach (var id in delta.Removed)
            if (Array.BinarySearch(baseIds, id) < 0) throw new InvalidDataException($"it was not made from base {delta.Base.Name} as that list is now");
        foreach (var id in delta.Added)
            if (Array.BinarySearch(baseIds, id) >= 0) throw new InvalidDataException($"it was not made from base {delta.Base.Name} as that list is now");
    }

    /// <summary>
    /// Adds the ids of the lists of <paramref name="snapshots"/> to <paramref name="live"/>; the messages of those
    /// damaged (or whose base is) go to <paramref name="damaged"/>. Lists on one base are taken together: the base's
    /// ids once, less those every one of them removes, and what each adds.
    /// </summary>
    public void AddLive(IEnumerable<string> snapshots, HashSet<ChunkId> live, List<string> damaged)
    {
        Base? current = null;
        ChunkId[] removedByAll = [];
        void BaseDone()
        {
            if (current is null) return;
            var r = 0;
            foreach (var id in current.Ids)
            {
                while (r < removedByAll.Length && removedByAll[r].CompareTo(id) < 0) r++;
                if (r == removedByAll.Length || removedByAll[r] != id) live.Add(id);
            }
            current = null;
        }
        foreach (var listed in Lists(snapshots, vanishedIsDamage: true))
        {
            if (listed.Damage is { } why) damaged.Add(why);
            else if (listed.Whole is { } whole) live.UnionWith(whole);
            else
            {
                if (!ReferenceEquals(listed.On, current))
                {
                    BaseDone();
                    (current, removedByAll) = (listed.On, listed.Delta!.Removed);
                }
                else removedByAll = Intersect(removedByAll, listed.Delta!.Removed);
                live.UnionWith(listed.Delta.Added);
            }
        }
        BaseDone();
    }

    /// <summary>
    /// The snapshots (of <paramref name="snapshots"/>) whose lists name any of <paramref name="wanted"/>; a list that
    /// cannot be read is named with a note that it is damaged.
    /// </summary>
    public List<string> Referencing(IEnumerable<string> snapshots, IReadOnlySet<ChunkId> wanted)
    {
        var found = new List<string>();
        Base? current = null;
        ChunkId[] hits = [];
        foreach (var listed in Lists(snapshots, vanishedIsDamage: false))
        {
            if (listed.Damage is not null) found.Add(listed.Snapshot + " (its reference list is damaged too)");
            else if (listed.Whole is { } whole)
            {
                if (whole.Any(wanted.Contains)) found.Add(listed.Snapshot);
            }
            else
            {
                if (!ReferenceEquals(listed.On, current)) (current, hits) = (listed.On, listed.On!.Ids.Where(wanted.Contains).ToArray());
                var delta = listed.Delta!;
                if (delta.Added.Any(wanted.Contains) || hits.Any(h => Array.BinarySearch(delta.Removed, h) < 0)) found.Add(listed.Snapshot);
            }
        }
        return found;
    }

    /// <summary>Every list here that cannot be read, or whose base cannot, with the reason (a library check reports them).</summary>
    public List<(string Snapshot, string Reason)> Damaged() =>
        Lists(Snapshots(), vanishedIsDamage: false).Where(l => l.Damage is not null).Select(l => (l.Snapshot, l.Damage!)).ToList();

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
    /// be read: what it names is unknown, so every base stays), and what a write cut short left (<c>*.tmp</c>: writes
    /// are serialized with this).
    /// </summary>
    public void Remove(IEnumerable<string> snapshots)
    {
        foreach (var snapshot in snapshots)
            if (ReferenceList.IsValidSnapshotId(snapshot))
            {
                File.Delete(PathOf(snapshot));
                File.Delete(IncompletePath(snapshot));
            }
        if (Directory.Exists(dir))
            foreach (var tmp in Directory.GetFiles(dir, "*.tmp")) File.Delete(tmp);
        if (!Directory.Exists(BasesDir)) return;
        foreach (var tmp in Directory.GetFiles(BasesDir, "*.tmp")) File.Delete(tmp);
        if (Named() is not { } named) return;
        var unnamed = Directory.GetFiles(BasesDir, "*.base").Select(f => Path.GetFileNameWithoutExtension(f)!).Where(n => !named.Contains(n)).ToList();
        if (unnamed.Count == 0) return;
        Posix.Posix.SyncDirectory(dir); // the lists removed stay removed before the bases they were on go
        foreach (var name in unnamed) Delete(name);
    }

    /// <summary>Deletes base <paramref name="name"/> if no list names it (a list left it for another).</summary>
    private void Collect(string name)
    {
        try
        {
            if (Named() is not { } named || named.Contains(name)) return;
            Posix.Posix.SyncDirectory(dir); // the list that left it is durable where it is now before the base goes
            Delete(name);
        }
        catch (IOException)
        {
            // left for the next RemoveReferences: the list is written, the commit must not fail for a base that stays
        }
    }

    /// <summary>The bases the lists here name; null when a list's head cannot be read.</summary>
    private HashSet<string>? Named()
    {
        var named = new HashSet<string>(StringComparer.Ordinal);
        foreach (var snapshot in Snapshots())
        {
            try
            {
                if (ReferenceList.BaseOf(PathOf(snapshot)) is { } name) named.Add(name);
            }
            catch (FileNotFoundException)
            {
                // removed meanwhile: it names nothing
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                return null;
            }
        }
        return named;
    }

    private void Delete(string name)
    {
        File.Delete(BasePath(name));
        _sketches.Remove(name);
        _unusable.Remove(name);
    }
}
