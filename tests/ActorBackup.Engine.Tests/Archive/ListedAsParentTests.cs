using System.Collections.Concurrent;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests.Archive;

/// <summary>
/// A folder whose inode and times are as the parent snapshot recorded them holds the names the parent listed: its names
/// are taken from the parent's tree instead of listed again (Archiver.ListsAsParent). Only when that tree is the
/// folder's whole listing: the same paths and excludes, no error of the parent in it, times well before the parent
/// began. Whatever changed must still be seen, and the restore must be the source.
/// </summary>
public class ListedAsParentTests
{
    /// <summary>A backup; <paramref name="asParent"/> gets the folders whose names came from the parent's tree.</summary>
    private static SnapshotManifest Run(Repository.Repository repo, BackupSet set, SnapshotManifest? parent, ConcurrentBag<string> asParent,
        int ahead = 8, TimeSpan? margin = null, ulong aheadBytes = 1 << 20)
    {
        asParent.Clear();
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library)
            {
                AheadFolders = ahead, AheadFolderBytes = aheadBytes, ListedAsParent = asParent.Add,
            }
            // Tests make folders and back them up at once: their times need only lie before the parent began (nothing
            // changes them meanwhile).
            .Run(set, new BackupOptions { Level = parent is null ? Level.Full : Level.Incremental, Library = repo.Library.Id, RereadChangedWithin = margin ?? TimeSpan.Zero }, parent);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        return snap;
    }

    /// <summary>A source of six folders (one of more names than a block of the walk's stats), one with a folder of its own.</summary>
    private static string[] MakeSource(string src)
    {
        var folders = new List<string> { src };
        for (var d = 0; d < 6; d++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(src, $"d{d}")).FullName;
            folders.Add(folder);
            for (var f = 0; f < (d == 3 ? 1100 : 20); f++) File.WriteAllText(Path.Combine(folder, $"f{f:D4}"), $"folder {d} file {f}");
            File.WriteAllText(Path.Combine(folder, "scratch.tmp"), "left out, or not");
        }
        folders.Add(Directory.CreateDirectory(Path.Combine(src, "d2", "sub")).FullName);
        File.WriteAllText(Path.Combine(src, "d2", "sub", "deep"), "deep");
        return folders.Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>A source (<see cref="MakeSource"/>) and a repository in a folder of their own.</summary>
    private sealed class Fixture : IDisposable
    {
        private readonly TempDir _dir = new();
        public string Src { get; }
        public string[] Folders { get; }
        public Repository.Repository Repo { get; }
        public ConcurrentBag<string> AsParent { get; } = [];

        public Fixture()
        {
            Src = _dir.Sub("src");
            Folders = MakeSource(Src);
            Repo = TestRepo.Create(_dir.Sub("repo"));
        }

        public string Target(string name) => Path.Combine(_dir.Path, name);

        public void Dispose()
        {
            Repo.Dispose();
            _dir.Dispose();
        }
    }

    private static void AssertRestored(Repository.Repository repo, SnapshotManifest snap, string src, string target)
    {
        Assert.Empty(snap.Errors);
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }

    [Fact]
    public void A_manifest_lists_a_bounded_share_of_its_errors_and_one_that_left_some_out_gives_no_folder_its_names()
    {
        // A hundred thousand unreadable files made a manifest larger than the cell's 4 MiB messages: never recorded.
        var errors = Enumerable.Range(0, 50).Select(i => new SnapshotError { Path = $"/data/f{i:D3}", Reason = "permission denied" }).ToList();
        var kept = Archiver.RecordedErrors(errors, 10, 1 << 20, out var omitted);
        Assert.Equal(errors.Take(10), kept);
        Assert.Equal(40ul, omitted);
        kept = Archiver.RecordedErrors(errors, 1000, 100, out omitted); // 27 bytes each: three fit in 100
        Assert.Equal((3, 47ul), (kept.Count, omitted));
        Assert.Empty(Archiver.RecordedErrors([], 10, 100, out omitted));
        Assert.Equal(0ul, omitted);
        Assert.Equal(12, new SnapshotManifest { Errors = { kept }, ErrorsOmitted = 9 }.ErrorCount); // what jobs and listings count
        // What a backup job's end says: the count, the first ones cut short, where the rest are.
        var said = new SnapshotManifest { Id = "s9", Errors = { kept, new SnapshotError { Path = "/" + new string('x', 400), Reason = "r" } }, ErrorsOmitted = 9 }.DescribeErrors(first: 4);
        Assert.StartsWith("13 files or folders could not be read", said);
        Assert.Contains($"{kept[0].Path}: {kept[0].Reason}", said);
        Assert.Contains("x...; ... ('abk snapshot show s9' lists them)", said);
        Assert.Equal("", new SnapshotManifest().DescribeErrors());
        Assert.DoesNotContain("...", new SnapshotManifest { Id = "s1", Errors = { kept[0] } }.DescribeErrors());

        using var f = new Fixture();
        var set = new BackupSet("s", [f.Src]);
        var full = Run(f.Repo, set, null, f.AsParent);
        Run(f.Repo, set, full, f.AsParent);
        Assert.NotEmpty(f.AsParent); // as a parent that listed every error
        var cut = full.Clone();
        cut.ErrorsOmitted = 1; // an error's folder not known: none may be taken as unchanged
        var again = Run(f.Repo, set, cut, f.AsParent);
        Assert.Empty(f.AsParent);
        Assert.Equal(full.Stats.Files, again.Stats.FilesUnchanged);
    }

    [Theory]
    [InlineData(8, 1 << 20)]
    [InlineData(1, 1 << 20)]
    [InlineData(8, 0)] // none listed ahead: each folder's names taken when the walk comes
    public void Folders_unchanged_since_the_parent_are_not_listed_again_and_every_change_is_seen(int ahead, ulong aheadBytes)
    {
        using var f = new Fixture();
        var (src, folders, repo) = (f.Src, f.Folders, f.Repo);
        var set = new BackupSet("s", [src]);
        var asParent = f.AsParent;
        var full = Run(repo, set, null, asParent, ahead, aheadBytes: aheadBytes);
        Assert.Empty(asParent); // no parent: every folder listed

        var same = Run(repo, set, full, asParent, ahead, aheadBytes: aheadBytes);
        Assert.Equal(folders, asParent.Order(StringComparer.Ordinal));
        Assert.Equal(full.Stats.Files, same.Stats.FilesUnchanged); // each name found its parent's entry: no file read
        Assert.Equal(0ul, same.Stats.BytesRead);
        Assert.Equal(ReuseCheckTests.TreeOf(repo, full, src), ReuseCheckTests.TreeOf(repo, same, src)); // the same tree

        // A file added (d4), one deleted (d5), one renamed (d1), one moved from d3 into d2/sub: those folders' times
        // change. A file rewritten and one given an attribute (both in d0) leave d0's times alone: its names are the
        // parent's, the files are seen changed by their own stat.
        File.WriteAllText(Path.Combine(src, "d4", "new"), "new");
        File.Delete(Path.Combine(src, "d5", "f0007"));
        File.Move(Path.Combine(src, "d1", "f0003"), Path.Combine(src, "d1", "renamed"));
        File.Move(Path.Combine(src, "d3", "f1099"), Path.Combine(src, "d2", "sub", "moved"));
        File.WriteAllText(Path.Combine(src, "d0", "f0002"), "rewritten");
        TreeCompare.SetXattr(Path.Combine(src, "d0", "f0004"), "user.added", "new"u8);
        var changed = Run(repo, set, same, asParent, ahead, aheadBytes: aheadBytes);
        string[] listed = [Path.Combine(src, "d1"), Path.Combine(src, "d2", "sub"), Path.Combine(src, "d3"), Path.Combine(src, "d4"), Path.Combine(src, "d5")];
        Assert.Equal(folders.Except(listed), asParent.Order(StringComparer.Ordinal));
        AssertRestored(repo, changed, src, f.Target("r1"));

        // A folder whose times lie too close to when the parent began is listed (a change made after the parent listed it,
        // within one tick of a coarse clock, would leave them as recorded).
        File.WriteAllText(Path.Combine(src, "d0", "another"), "another");
        var close = Run(repo, set, changed, asParent, ahead, TimeSpan.FromHours(1), aheadBytes);
        Assert.Empty(asParent);
        AssertRestored(repo, close, src, f.Target("r2"));
    }

    [Fact]
    public void A_set_whose_paths_are_written_with_escapes_takes_names_from_its_parent_however_the_escapes_are_written()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        TreeCompare.MakeDirectory(src, [.. "caf"u8, 0xe9]); // Latin-1 "café"
        TreeCompare.MakeDirectory(src, [.. "caf"u8, 0xe9, .. "/sub"u8]);
        TreeCompare.WriteFile(src, [.. "caf"u8, 0xe9, .. "/sub/menu"u8], "soup"u8);
        TreeCompare.MakeDirectory(src, @"back\slash"u8.ToArray());
        TreeCompare.WriteFile(src, @"back\slash/f"u8.ToArray(), "x"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var asParent = new ConcurrentBag<string>();
        var full = Run(repo, new BackupSet("s", [src + @"/caf\xe9", src + @"/back\\slash"]), null, asParent);
        Assert.Empty(asParent);
        // The same paths, written otherwise (an upper-case escape, another order, a trailing slash): the same set of
        // folders as the parent's, whose paths the manifest keeps as shown.
        var same = Run(repo, new BackupSet("s", [src + @"/back\\slash/", src + @"/caf\xE9"]), full, asParent);
        string[] folders = [src + "/back\\slash", src + "/caf\udce9", src + "/caf\udce9/sub"];
        Assert.Equal(folders.Order(StringComparer.Ordinal), asParent.Order(StringComparer.Ordinal));
        Assert.Equal(0ul, same.Stats.BytesRead);
        AssertRestored(repo, same, src, Path.Combine(dir.Path, "r"));
    }

    /// <summary>A backup whose folders' tree records hold at most <paramref name="maxTreeBytes"/> (a folder of more is stored in parts).</summary>
    private static SnapshotManifest RunSmallTrees(Repository.Repository repo, BackupSet set, SnapshotManifest? parent, int maxTreeBytes)
    {
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library) { MaxTreeBytes = maxTreeBytes }
            .Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = parent is null ? Level.Full : Level.Incremental, Library = repo.Library.Id }, parent);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        return snap;
    }

    /// <summary>The tree of a folder of the snapshot, its parts put together (TreeReader.Load), and its first record's part ids.</summary>
    private static Tree TreeOf(Repository.Repository repo, SnapshotManifest snap, string folder)
    {
        using var reader = new TreeReader(repo.Keys, repo.Library);
        var tree = reader.Load(snap.RootTree);
        foreach (var name in folder.Split('/', StringSplitOptions.RemoveEmptyEntries))
            tree = reader.Load(tree.Nodes.Single(n => n.FileName() == name).Subtree);
        return tree;
    }

    /// <summary>A source with a folder "crowded" of <paramref name="files"/> small files f000..., and a file beside it.</summary>
    private static (string Src, string Crowded) MakeCrowded(TempDir dir, int files)
    {
        var src = dir.Sub("src");
        var crowded = Directory.CreateDirectory(Path.Combine(src, "crowded")).FullName;
        for (var i = 0; i < files; i++) File.WriteAllText(Path.Combine(crowded, $"f{i:D3}"), $"file {i}");
        File.WriteAllText(Path.Combine(src, "beside"), "beside");
        return (src, crowded);
    }

    [Fact]
    public void A_folder_of_more_entries_than_a_tree_record_holds_is_stored_in_parts_and_comes_back_whole()
    {
        using var dir = new TempDir();
        var (src, crowded) = MakeCrowded(dir, 300);
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(crowded, "zsub")).FullName, "deep"), "a folder in the last part");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        const int small = 8 * 1024;

        var full = RunSmallTrees(repo, set, null, small);
        // A build that reads the first record alone refuses the snapshot (node format 4); one without parts is still 3.
        Assert.Equal(4u, full.NodeFormat);
        Assert.Equal(3u, RunSmallTrees(repo, new BackupSet("beside", [Path.Combine(src, "beside")]), null, small).NodeFormat);
        var tree = TreeOf(repo, full, crowded);
        Assert.Equal(301, tree.Nodes.Count); // every entry, in name order across the records
        Assert.Equal(tree.Nodes.Select(n => n.FileName()).Order(StringComparer.Ordinal), tree.Nodes.Select(n => n.FileName()));
        Assert.InRange(tree.Parts.Count, 2, TreeReader.MaxParts);
        var parts = tree.Parts.Select(p => new Hashing.ChunkId(p.Span)).ToList();
        Assert.All(parts, id => Assert.Contains(id, repo.Library.ReadReferences(full.Id)));
        AssertRestored(repo, full, src, Path.Combine(dir.Path, "r1"));
        var verified = Engine.Verify.SnapshotVerifier.Run(repo.Keys, repo.Library, full);
        Assert.True(verified.Ok);
        Assert.Equal(0, verified.DamagedFileCount);
        using (var reader = new TreeReader(repo.Keys, repo.Library))
        {
            var entries = TreeListing.Entries(reader, full, "").ToList();
            Assert.Equal(301, entries.Count(e => Path.GetDirectoryName(e.Path) == crowded));
            // Every folder's tree (the root's too) and crowded's further records, each read and checked.
            Assert.Equal(1 + entries.Count(e => e.Node.Type == NodeType.Directory) + parts.Count, verified.Trees);
        }

        // Unchanged: the folder's tree is the parent's, its parts referenced by the new snapshot too, which outlives the
        // parent's prune whole.
        var same = RunSmallTrees(repo, set, full, small);
        Assert.Equal(0ul, same.Stats.BytesRead);
        Assert.Equal(4u, same.NodeFormat);
        Assert.Equal(tree.Parts, TreeOf(repo, same, crowded).Parts);
        Assert.All(parts, id => Assert.Contains(id, repo.Library.ReadReferences(same.Id)));
        Assert.Empty(repo.Library.Prune([same.Id]).Problems);
        AssertRestored(repo, same, src, Path.Combine(dir.Path, "r2"));
        Assert.True(Engine.Verify.SnapshotVerifier.Run(repo.Keys, repo.Library, same).Ok);

        // A change in the last part and a new name: only those are read (the others kept from the parent's parts).
        File.WriteAllText(Path.Combine(crowded, "f290"), "changed, longer");
        File.WriteAllText(Path.Combine(crowded, "f300"), "new");
        var changed = RunSmallTrees(repo, set, same, small);
        Assert.Equal((ulong)("changed, longer".Length + "new".Length), changed.Stats.BytesRead);
        Assert.Equal(302, TreeOf(repo, changed, crowded).Nodes.Count);
        AssertRestored(repo, changed, src, Path.Combine(dir.Path, "r3"));
    }

    [Fact]
    public void A_folder_of_more_entries_than_a_tree_and_its_parts_hold_keeps_the_first_that_fit_and_says_so()
    {
        using var dir = new TempDir();
        var (src, crowded) = MakeCrowded(dir, 200);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = RunSmallTrees(repo, new BackupSet("s", [src]), null, 1024);
        var error = Assert.Single(snap.Errors);
        Assert.Equal(crowded, error.Path);
        Assert.Contains("the folder holds 200 entries, more than one folder's tree holds: only the first", error.Reason);
        Assert.Equal(TreeReader.MaxParts, TreeOf(repo, snap, crowded).Parts.Count);
        // What the snapshot holds restores: the first files by name, every one of them whole, and what is beside it.
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        var restored = Directory.GetFiles(target + crowded).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.InRange(restored.Count, 10, 199);
        Assert.Equal(Enumerable.Range(0, restored.Count).Select(i => $"f{i:D3}"), restored);
        Assert.All(restored, f => Assert.Equal(File.ReadAllText(Path.Combine(crowded, f!)), File.ReadAllText(Path.Combine(target + crowded, f!))));
        Assert.Equal("beside", File.ReadAllText(target + src + "/beside"));
    }

    [Fact]
    public void A_parent_tree_with_a_name_that_is_not_a_plain_name_is_not_taken_for_a_folders_names()
    {
        using var f = new Fixture();
        var (src, folders, repo) = (f.Src, f.Folders, f.Repo);
        var set = new BackupSet("s", [src]);
        var full = Run(repo, set, null, f.AsParent);
        // d1's first name made a path into d0 (still ascending: only the plain-name guard stands in the way). Taken as
        // d1's names, it would be stat-ed as d0/f0000 and stored in d1 under that name.
        var d1 = Path.Combine(src, "d1");
        var crafted = TestRepo.WithTreeOf(repo, full, d1, tree => tree.Nodes.Single(n => n.Name == "f0000").Name = "../d0/f0000");
        var next = Run(repo, set, crafted, f.AsParent);
        Assert.Equal(folders.Where(p => p != d1), f.AsParent.Order(StringComparer.Ordinal));
        AssertRestored(repo, next, src, f.Target("r"));
    }

    [Fact]
    public void A_parent_whose_tree_of_a_folder_may_not_be_its_whole_listing_is_not_taken_for_its_names()
    {
        using var f = new Fixture();
        var (src, folders, repo) = (f.Src, f.Folders, f.Repo);
        var asParent = f.AsParent;

        // Other excludes: the parent's trees lack what it left out.
        var excluding = Run(repo, new BackupSet("s", [src], ["*.tmp"]), null, asParent);
        var all = Run(repo, new BackupSet("s", [src]), excluding, asParent);
        Assert.Empty(asParent);
        AssertRestored(repo, all, src, f.Target("r1"));

        // Other paths: a folder on the way to a path of the parent's set holds only that path in the parent's tree.
        var deep = Run(repo, new BackupSet("s", [Path.Combine(src, "d2", "sub")]), null, asParent);
        var whole = Run(repo, new BackupSet("s", [src]), deep, asParent);
        Assert.Empty(asParent);
        AssertRestored(repo, whole, src, f.Target("r2"));

        // An error of the parent in a folder (an entry left out of its tree): that folder is listed, the others are not.
        AssertOnlyListed(f, Path.Combine(src, "d3"), Path.Combine(src, "d3", "f0005"), "r3",
            p => p.Errors.Add(new SnapshotError { Path = Path.Combine(src, "d3", "f0005"), Reason = "could not be read" }));
        // An empty tree of a folder that holds names (left out, as above, with no error to say so): listed.
        AssertOnlyListed(f, Path.Combine(src, "d5"), Path.Combine(src, "d5", "*"), "r4", _ => { });
    }

    /// <summary>
    /// A parent that left <paramref name="leftOut"/> out by an exclude, made to say it had no excludes (and whatever else
    /// <paramref name="forge"/> makes it say): only <paramref name="folder"/> is listed again, and the restore is whole.
    /// </summary>
    private static void AssertOnlyListed(Fixture f, string folder, string leftOut, string target, Action<SnapshotManifest> forge)
    {
        var parent = Run(f.Repo, new BackupSet("s", [f.Src], [leftOut]), null, f.AsParent).Clone();
        parent.Excludes.Clear();
        forge(parent);
        var next = Run(f.Repo, new BackupSet("s", [f.Src]), parent, f.AsParent);
        Assert.Equal(f.Folders.Except([folder]), f.AsParent.Order(StringComparer.Ordinal));
        AssertRestored(f.Repo, next, f.Src, f.Target(target));
    }

    [Fact]
    public void A_parent_made_before_its_trees_were_whole_listings_or_ended_later_by_the_clock_is_not_taken_for_names()
    {
        using var f = new Fixture();
        var (src, folders, repo) = (f.Src, f.Folders, f.Repo);
        var set = new BackupSet("s", [src]);
        var asParent = f.AsParent;
        var full = Run(repo, set, null, asParent);
        Assert.Equal(Archiver.ListingsFormat, full.Listings);

        var older = full.Clone();
        older.Listings = 0; // made before the field: its trees may not be whole listings
        Run(repo, set, older, asParent);
        Assert.Empty(asParent);

        var ahead = full.Clone();
        ahead.FinishedUnixMs = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds(); // the clock went back since it ended
        Run(repo, set, ahead, asParent);
        Assert.Empty(asParent);

        Run(repo, set, full, asParent);
        Assert.Equal(folders, asParent.Order(StringComparer.Ordinal));
    }
}
