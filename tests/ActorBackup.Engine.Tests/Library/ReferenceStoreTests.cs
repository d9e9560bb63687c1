using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.TestSupport;

namespace ActorBackup.Engine.Tests;

public class ReferenceStoreTests
{
    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));
    private static List<ChunkId> Ids(IEnumerable<int> numbers) => numbers.Select(Id).ToList();
    private static ChunkId[] Sorted(IEnumerable<int> numbers) => numbers.Distinct().Select(Id).Order().ToArray();
    private static string[] Bases(ReferenceStore store) =>
        Directory.Exists(store.BasesDir) ? Directory.GetFiles(store.BasesDir, "*.base").Select(f => Path.GetFileNameWithoutExtension(f)!).Order().ToArray() : [];

    /// <summary>A store with day1's list (8,000 ids) and day2's, the same ids <paramref name="shift"/> on: on one base.</summary>
    private static ReferenceStore TwoDays(string path, int shift)
    {
        var store = new ReferenceStore(path);
        store.Add("day1", Ids(Enumerable.Range(0, 8_000)));
        store.Add("day2", Ids(Enumerable.Range(shift, 8_000)));
        return store;
    }

    [Fact]
    public void A_list_like_an_earlier_one_is_kept_as_what_changed_on_the_earlier_ones_base()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        // A million-file backup in small: 10,000 ids, then the next day's with 30 gone and 50 new.
        store.Add("day1", Ids(Enumerable.Range(0, 10_000)));
        var day2 = Enumerable.Range(30, 10_000 - 30).Concat(Enumerable.Range(20_000, 50)).ToArray();
        store.Add("day2", Ids(day2));
        Assert.Single(Bases(store));
        // The base holds the ids once; each list is a delta on it: day1's names nothing, day2's the 80 changes.
        Assert.Equal(8 + 1 + Bases(store)[0].Length + 16 + 4, new FileInfo(store.PathOf("day1")).Length);
        Assert.Equal(8 + 1 + Bases(store)[0].Length + 16 + 80 * ChunkId.Size + 4, new FileInfo(store.PathOf("day2")).Length);
        Assert.Equal(Sorted(Enumerable.Range(0, 10_000)), store.Read("day1"));
        Assert.Equal(Sorted(day2), store.Read("day2"));
        // Another client's backup shares nothing: a base of its own, not a delta as long as itself.
        store.Add("other", Ids(Enumerable.Range(50_000, 5_000)));
        Assert.Equal(2, Bases(store).Length);
        Assert.Equal(Sorted(Enumerable.Range(50_000, 5_000)), store.Read("other"));
        // A quarter changed at most: a list that changed more than that gets its own base.
        store.Add("day3", Ids(Enumerable.Range(3_000, 10_000)));
        Assert.Equal(3, Bases(store).Length);
        store.Add("day4", Ids(Enumerable.Range(3_000, 9_000)));
        Assert.Equal(3, Bases(store).Length); // on day3's base, whose it is closest to
        Assert.Equal(Sorted(Enumerable.Range(3_000, 9_000)), store.Read("day4"));
    }

    [Fact]
    public void A_list_below_the_threshold_is_written_whole_and_a_later_part_keeps_it_exact()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        store.Add("small", Ids(Enumerable.Range(0, ReferenceStore.WholeBelow - 1)));
        Assert.Empty(Bases(store));
        Assert.Equal(Sorted(Enumerable.Range(0, ReferenceStore.WholeBelow - 1)), ReferenceList.Read(store.PathOf("small")));
        // The manifest's chunk comes in a later commit: the list grows past the threshold and goes on a base.
        store.Add("small", [Id(100_000), Id(5)]);
        Assert.Single(Bases(store));
        Assert.Equal(Sorted(Enumerable.Range(0, ReferenceStore.WholeBelow - 1).Append(100_000)), store.Read("small"));
        // A delta's later part: merged into what it names, still on the same base.
        store.Add("big", Ids(Enumerable.Range(1, 5_000)));
        // (0 is in the base, and the delta removed it: the part brings it back.)
        store.Add("big", [Id(200_000), Id(1), Id(0)]);
        Assert.Single(Bases(store));
        Assert.Equal(Sorted(Enumerable.Range(0, 5_001).Append(200_000)), store.Read("big"));
    }

    [Fact]
    public void The_live_set_is_the_union_of_the_lists_whatever_their_form()
    {
        var random = new Random(7);
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        var lists = new Dictionary<string, int[]>();
        var current = Enumerable.Range(0, 6_000).ToHashSet();
        for (var day = 0; day < 12; day++)
        {
            // Each day some ids go and some come; now and then much changes (a new base).
            var churn = day % 5 == 4 ? 3_000 : random.Next(0, 300);
            foreach (var gone in current.OrderBy(_ => random.Next()).Take(churn).ToList()) current.Remove(gone);
            for (var i = 0; i < churn; i++) current.Add(10_000 + day * 5_000 + i);
            lists["d" + day] = current.ToArray();
            store.Add("d" + day, Ids(current));
        }
        lists["tiny"] = [1, 2, 3, 900_000];
        store.Add("tiny", Ids(lists["tiny"]));
        Assert.True(Bases(store).Length is > 1 and < 12, string.Join(",", Bases(store)));
        foreach (var (name, numbers) in lists) Assert.Equal(Sorted(numbers), store.Read(name));
        // Any choice of lists: their live set is exactly the union of their ids (an id every chosen list on a base
        // removed is not live, even though the base has it).
        for (var round = 0; round < 40; round++)
        {
            var chosen = lists.Keys.Where(_ => random.Next(3) == 0).ToList();
            var live = new HashSet<ChunkId>();
            var damaged = new List<string>();
            store.AddLive(chosen, live, damaged);
            Assert.Empty(damaged);
            Assert.Equal(chosen.SelectMany(c => lists[c]).Distinct().Select(Id).Order().ToArray(), live.Order().ToArray());
            // The snapshots that reference some ids: exactly those whose lists hold one.
            var wanted = Enumerable.Range(0, 8).Select(_ => random.Next(0, 70_000)).ToHashSet();
            Assert.Equal(chosen.Where(c => lists[c].Any(wanted.Contains)).Order(StringComparer.Ordinal),
                store.Referencing(chosen, wanted.Select(Id).ToHashSet()).Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public void A_base_stays_while_a_list_is_on_it_and_goes_with_the_last()
    {
        using var dir = new TempDir();
        var store = TwoDays(dir.Path, 10);
        var @base = Assert.Single(Bases(store));
        // A base left by a commit that failed between the base and its list: no list is on it.
        File.Copy(Path.Combine(store.BasesDir, @base + ".base"), Path.Combine(store.BasesDir, "left_0badf00d.base"));
        store.Remove(["day1"]);
        Assert.Equal([@base], Bases(store));
        Assert.Equal(Sorted(Enumerable.Range(10, 8_000)), store.Read("day2"));
        store.Remove(["day2"]);
        Assert.Empty(Bases(store));
        Assert.Empty(store.Snapshots());
    }

    [Fact]
    public void Remove_takes_the_leftovers_of_cut_writes_and_an_incomplete_lists_mark_with_it()
    {
        using var dir = new TempDir();
        var store = TwoDays(dir.Path, 10);
        File.WriteAllBytes(store.PathOf("day3") + ".tmp", [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(store.BasesDir, "day3_00000000.base.tmp"), [1, 2, 3]);
        store.MarkIncomplete("day2", "a test");
        Assert.Contains("incomplete: a part of it could not be added (a test)", Assert.Throws<InvalidDataException>(() => store.Read("day2")).Message);
        Assert.Equal(["day2"], store.Damaged().Select(d => d.Snapshot));
        store.Remove(["day2"]);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        Assert.Empty(Directory.GetFiles(store.BasesDir, "*.tmp"));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.incomplete"));
        Assert.Equal(Sorted(Enumerable.Range(0, 8_000)), store.Read("day1"));
    }

    [Fact]
    public void A_list_whose_head_cannot_be_read_keeps_every_base()
    {
        using var dir = new TempDir();
        var store = TwoDays(dir.Path, 10);
        File.WriteAllBytes(store.PathOf("day2"), [1, 2, 3]);
        store.Remove(["day1"]);
        Assert.Single(Bases(store)); // what day2 named is unknown: its base may be it
    }

    [Fact]
    public void A_damaged_base_is_reported_for_every_list_on_it_and_never_built_on()
    {
        using var dir = new TempDir();
        var store = TwoDays(dir.Path, 5);
        var basePath = Path.Combine(store.BasesDir, Assert.Single(Bases(store)) + ".base");
        var bytes = File.ReadAllBytes(basePath);
        bytes[5_000] ^= 1;
        File.WriteAllBytes(basePath, bytes);
        var e = Assert.Throws<InvalidDataException>(() => store.Read("day2"));
        Assert.Contains(store.PathOf("day2"), e.Message);
        Assert.Contains("checksum", e.Message);
        var live = new HashSet<ChunkId>();
        var damaged = new List<string>();
        store.AddLive(["day1", "day2"], live, damaged);
        Assert.Equal(2, damaged.Count);
        Assert.Contains(damaged, d => d.Contains(store.PathOf("day1")));
        Assert.Equal(["day1 (its reference list is damaged too)", "day2 (its reference list is damaged too)"],
            store.Referencing(["day1", "day2"], new HashSet<ChunkId> { Id(1) }).Order(StringComparer.Ordinal));
        // The next list like them gets a base of its own, and reads back whole.
        store.Add("day3", Ids(Enumerable.Range(7, 8_000)));
        Assert.Equal(2, Bases(store).Length);
        Assert.Equal(Sorted(Enumerable.Range(7, 8_000)), store.Read("day3"));
    }

    [Fact]
    public void A_delta_that_does_not_fit_its_base_is_damage()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        store.Add("day1", Ids(Enumerable.Range(0, 8_000)));
        var of = BaseListOf(store, Assert.Single(Bases(store)));
        // Removes an id the base lacks; adds one it has: neither was made from this base.
        foreach (var (removed, added) in new[] { (new[] { Id(900_000) }, Array.Empty<ChunkId>()), ([], [Id(3)]) })
        {
            ReferenceList.WriteDelta(store.PathOf("odd"), of, removed, added);
            Assert.Throws<InvalidDataException>(() => store.Read("odd"));
            var damaged = new List<string>();
            var live = new HashSet<ChunkId>();
            // day1 on the same base is read whole beside it: one list that does not fit is not its siblings' damage.
            store.AddLive(["odd", "day1"], live, damaged);
            Assert.Contains(store.PathOf("odd"), Assert.Single(damaged));
            Assert.Equal(Sorted(Enumerable.Range(0, 8_000)), live.Order().ToArray());
            Assert.Equal(["day1", "odd (its reference list is damaged too)"], store.Referencing(["odd", "day1"], new HashSet<ChunkId> { Id(5) }).Order(StringComparer.Ordinal));
            Assert.Equal("odd", Assert.Single(store.Damaged()).Snapshot);
        }
    }

    /// <summary>What a delta names base <paramref name="name"/> by (its count and checksum as written).</summary>
    private static ReferenceList.BaseList BaseListOf(ReferenceStore store, string name)
    {
        var read = ReferenceList.ReadAny(Path.Combine(store.BasesDir, name + ".base"));
        return new ReferenceList.BaseList(name, (uint)read.Whole!.Length, read.Checksum);
    }

    [Fact]
    public void Another_list_under_a_bases_name_is_never_taken_for_it()
    {
        using var dir = new TempDir();
        var store = TwoDays(dir.Path, 10);
        var @base = Assert.Single(Bases(store));
        // The base replaced by another whole list of as many ids that fits day2's delta just as well (a file system
        // rolled back, a folder copied over): day1's delta is empty and day2's removes 0-9, adds 8000-8009, all of
        // which would apply. Only the checksum tells.
        ReferenceList.WriteSorted(Path.Combine(store.BasesDir, @base + ".base"), Sorted(Enumerable.Range(0, 7_999).Append(9_999)));
        foreach (var day in new[] { "day1", "day2" })
            Assert.Contains("not the one it was made on", Assert.Throws<InvalidDataException>(() => store.Read(day)).Message);
        var damaged = new List<string>();
        store.AddLive(["day1", "day2"], [], damaged);
        Assert.Equal(2, damaged.Count);
        Assert.Equal(2, store.Damaged().Count);
        // A later part of day2 cannot join it: the list stays as it was.
        var before = File.ReadAllBytes(store.PathOf("day2"));
        Assert.Throws<InvalidDataException>(() => store.Add("day2", [Id(123_456)]));
        Assert.Equal(before, File.ReadAllBytes(store.PathOf("day2")));
    }

    [Fact]
    public void A_list_that_grows_off_its_base_leaves_no_base_behind()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        // A long backup's list written at other jobs' commits, part by part: each time it outgrows its base it moves
        // to a new one, and the one it left goes at once (no other list is on it).
        var all = new List<int>();
        for (var part = 0; part < 12; part++)
        {
            var ids = Enumerable.Range(part * 3_000, 3_000).ToList();
            all.AddRange(ids);
            store.Add("long", Ids(ids));
            Assert.True(Bases(store).Length <= 1, string.Join(",", Bases(store)));
        }
        Assert.Equal(Sorted(all), store.Read("long"));
        // A base another list is on stays when one list leaves it.
        store.Add("a", Ids(Enumerable.Range(100_000, 5_000)));
        store.Add("b", Ids(Enumerable.Range(100_000, 5_000)));
        Assert.Equal(2, Bases(store).Length);
        store.Add("a", Ids(Enumerable.Range(200_000, 5_000)));
        Assert.Equal(3, Bases(store).Length);
        Assert.Equal(Sorted(Enumerable.Range(100_000, 5_000)), store.Read("b"));
        Assert.Equal(Sorted(Enumerable.Range(100_000, 5_000).Concat(Enumerable.Range(200_000, 5_000))), store.Read("a"));
    }

    [Fact]
    public void A_list_that_comes_in_parts_ends_on_the_base_it_is_like_not_on_its_own()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        store.Add("day1", Ids(Enumerable.Range(0, 10_000)));
        var shared = Assert.Single(Bases(store));
        // The next day's unchanged backup, its list in four parts written at four commits (other jobs' commits write
        // what is staged): its first parts are far from day1's, the whole is day1's.
        for (var part = 0; part < 4; part++) store.Add("day2", Ids(Enumerable.Range(part * 2_500, 2_500)));
        Assert.Equal([shared], Bases(store));
        Assert.True(new FileInfo(store.PathOf("day2")).Length < 200, "an empty delta on day1's base");
        Assert.Equal(Sorted(Enumerable.Range(0, 10_000)), store.Read("day2"));
    }

    [Fact]
    public void A_store_opened_again_finds_the_bases_there_by_their_samples()
    {
        using var dir = new TempDir();
        new ReferenceStore(dir.Path).Add("day1", Ids(Enumerable.Range(0, 10_000)));
        var store = new ReferenceStore(dir.Path); // a node started again: nothing in memory
        store.Add("day2", Ids(Enumerable.Range(20, 10_000)));
        Assert.Single(Bases(store));
        Assert.Equal(Sorted(Enumerable.Range(20, 10_000)), store.Read("day2"));
    }

    [Fact]
    public void Whole_lists_of_an_older_build_count_beside_deltas_and_a_later_part_joins_them()
    {
        using var dir = new TempDir();
        var store = TwoDays(dir.Path, 10);
        ReferenceList.Write(store.PathOf("old"), Ids(Enumerable.Range(50_000, 6_000)));
        var live = new HashSet<ChunkId>();
        var damaged = new List<string>();
        store.AddLive(["old", "day1", "day2"], live, damaged);
        Assert.Empty(damaged);
        Assert.Equal(Sorted(Enumerable.Range(0, 8_010).Concat(Enumerable.Range(50_000, 6_000))), live.Order().ToArray());
        store.Add("old", [Id(1)]);
        Assert.Equal(Sorted(Enumerable.Range(50_000, 6_000).Append(1)), store.Read("old"));
    }

    [Fact]
    public void A_list_moved_to_another_base_while_the_lists_are_read_is_read_again_on_its_own()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        store.Add("a", Ids(Enumerable.Range(0, 5_000)));
        store.Add("b", Ids(Enumerable.Range(0, 5_000)));
        var moved = Enumerable.Range(0, 5_000).Concat(Enumerable.Range(100_000, 5_000)).ToArray();
        // The heads are read first (a and b on one base); before the base is read, a commit moves a to a new base.
        IEnumerable<string> Snapshots()
        {
            yield return "a";
            yield return "b";
            store.Add("a", Ids(Enumerable.Range(100_000, 5_000)));
        }
        var live = new HashSet<ChunkId>();
        var damaged = new List<string>();
        store.AddLive(Snapshots(), live, damaged);
        Assert.Empty(damaged);
        Assert.Equal(Sorted(moved), live.Order().ToArray());
        Assert.Equal(2, Bases(store).Length);
    }

    [Fact]
    public void A_base_whose_sample_looks_close_but_is_not_is_compared_whole_and_not_taken()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        // The list's smallest ids are the base's, the rest differ: the samples say "the same", the whole says otherwise.
        var list = Sorted(Enumerable.Range(0, 10_000));
        var decoy = list.Take(ReferenceStore.SketchSize * 2).Concat(Sorted(Enumerable.Range(50_000, 10_000)).Where(id => id.CompareTo(list[ReferenceStore.SketchSize * 2]) > 0)).ToArray();
        store.Add("decoy", decoy.ToList());
        store.Add("list", list.ToList());
        Assert.Equal(2, Bases(store).Length);
        Assert.Equal(list, store.Read("list"));
        Assert.True(new FileInfo(store.PathOf("list")).Length < 200, "the list is an empty delta on a base of its own");
    }

    [Fact]
    public void The_estimate_from_samples_is_near_the_true_difference()
    {
        var a = Sorted(Enumerable.Range(0, 50_000));
        var b = Sorted(Enumerable.Range(10_000, 50_000));
        var estimate = ReferenceStore.EstimateDifference(a.AsSpan(0, ReferenceStore.SketchSize), a.Length, b.AsSpan(0, ReferenceStore.SketchSize), b.Length);
        Assert.InRange(estimate, 12_000, 30_000); // truly 20,000
        Assert.Equal(0, ReferenceStore.EstimateDifference(a.AsSpan(0, ReferenceStore.SketchSize), a.Length, a.AsSpan(0, ReferenceStore.SketchSize), a.Length));
    }
}
