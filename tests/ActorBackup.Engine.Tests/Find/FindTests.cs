using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Find;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests.Find;

/// <summary>`abk find` from per-snapshot file indexes: every version of a file, with the snapshots that hold it.</summary>
public sealed class FindTests
{
    [Fact]
    public void Versions_of_matching_files_across_snapshots_come_from_the_indexes()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(Path.Combine(src, "etc", "ssh"));
        Directory.CreateDirectory(Path.Combine(src, "home", "ann"));
        File.WriteAllText(Path.Combine(src, "etc", "hosts"), "127.0.0.1 localhost\n");
        File.WriteAllText(Path.Combine(src, "etc", "ssh", "sshd_config"), "Port 22\n");
        File.WriteAllText(Path.Combine(src, "home", "ann", "notes.txt"), "one");
        File.SetLastWriteTimeUtc(Path.Combine(src, "home", "ann", "notes.txt"), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var set = new BackupSet("s", [src]);
        var first = repo.Backup(set, Level.Full);
        var second = repo.Backup(set, Level.Incremental); // nothing changed: the same versions
        File.WriteAllText(Path.Combine(src, "home", "ann", "notes.txt"), "one and two");
        File.SetLastWriteTimeUtc(Path.Combine(src, "home", "ann", "notes.txt"), new DateTime(2026, 2, 1, 0, 0, 0, DateTimeKind.Utc));
        var third = repo.Backup(set, Level.Incremental);

        var store = new FileIndexStore(Path.Combine(dir.Path, "findex"));
        using (var trees = new TreeReader(repo.Keys, repo.Library))
            foreach (var s in new[] { first, second, third })
                store.Write(s.Id, (file, scratch) => FileIndex.Write(trees, s, file, scratch));
        var searched = new[] { first, second, third }.Select(s => new VersionFinder.Searched(s.Id, s.Client, s.FinishedUnixMs)).ToList();

        var notes = VersionFinder.Find(searched, store, FindPattern.Parse("notes.*"), 100);
        Assert.Equal(2, notes.Versions.Count);
        var (old, @new) = (notes.Versions[0], notes.Versions[1]);
        Assert.EndsWith("/home/ann/notes.txt", old.Path);
        Assert.Equal((3UL, 2, first.Id, second.Id), (old.Size, old.Snapshots, old.FirstSnapshot, old.LastSnapshot));
        Assert.Equal((11UL, 1, third.Id, third.Id), (@new.Size, @new.Snapshots, @new.FirstSnapshot, @new.LastSnapshot));
        Assert.Equal(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds(), old.MtimeSec);
        Assert.Equal(3, notes.Matches);
        Assert.False(notes.Truncated);

        // A name without wildcards is matched whole; a path pattern from the root, '**' crossing directories.
        Assert.Equal('-', Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse("sshd_config"), 100).Versions).Type);
        Assert.Empty(VersionFinder.Find(searched, store, FindPattern.Parse("sshd"), 100).Versions);
        var ssh = Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse("**/etc/ssh"), 100).Versions);
        Assert.Equal(('d', 3), (ssh.Type, ssh.Snapshots));
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse(src.TrimStart('/') + "/etc/*"), 100).Versions, v => v.Path.EndsWith("/hosts"));
        Assert.Empty(VersionFinder.Find(searched, store, FindPattern.Parse("/etc/*"), 100).Versions); // anchored at the root
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse("HOSTS", ignoreCase: true), 100).Versions);
        Assert.Empty(VersionFinder.Find(searched, store, FindPattern.Parse("HOSTS"), 100).Versions);

        // Over the limit: truncated, said so.
        var all = VersionFinder.Find(searched, store, FindPattern.Parse("*"), 2);
        Assert.True(all.Truncated);
        Assert.Equal(2, all.Versions.Count);
        Assert.Equal(3, all.SnapshotsSearched);
        Assert.True(all.EntriesSearched >= 3 * 7);
    }

    /// <summary>A folder with etc/hosts in it, its backup set, and an empty repository beside it.</summary>
    private static (string Src, BackupSet Set, Repository.Repository Repo) HostsTree(TempDir dir)
    {
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(Path.Combine(src, "etc"));
        File.WriteAllText(Path.Combine(src, "etc", "hosts"), "127.0.0.1 localhost\n");
        return (src, new BackupSet("s", [src]), TestRepo.Create(Path.Combine(dir.Path, "repo")));
    }

    [Fact]
    public void An_index_build_that_gives_way_stops_and_leaves_no_index_and_no_temporary_file()
    {
        using var dir = new TempDir();
        var (_, set, repoMade) = HostsTree(dir);
        using var repo = repoMade;
        var snap = repo.Backup(set, Level.Full);
        var store = new FileIndexStore(Path.Combine(dir.Path, "findex"));
        using var cancel = new CancellationTokenSource();
        cancel.Cancel(); // a find came
        using (var trees = new TreeReader(repo.Keys, repo.Library))
            Assert.Throws<OperationCanceledException>(() => store.Write(snap.Id, (f, scratch) => FileIndex.Write(trees, snap, f, scratch, cancel.Token)));
        Assert.False(store.Has(snap.Id));
        Assert.Empty(Directory.GetFiles(Path.Combine(dir.Path, "findex")));
        // Not cancelled, the same build writes the index.
        using (var trees = new TreeReader(repo.Keys, repo.Library)) store.Write(snap.Id, (f, scratch) => FileIndex.Write(trees, snap, f, scratch, CancellationToken.None));
        Assert.True(store.Has(snap.Id));
    }

    [Fact]
    public void Names_that_are_not_UTF8_are_found_as_listings_show_them()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        TreeCompare.WriteFile(src, [.. "caf"u8, 0xe9], "latin-1"u8);
        File.WriteAllText(Path.Combine(src, @"back\slash"), "b");
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var store = new FileIndexStore(Path.Combine(dir.Path, "findex"));
        using (var trees = new TreeReader(repo.Keys, repo.Library)) store.Write(snap.Id, (f, scratch) => FileIndex.Write(trees, snap, f, scratch));
        var searched = new List<VersionFinder.Searched> { new(snap.Id, snap.Client, snap.FinishedUnixMs) };
        Assert.Equal(src + @"/caf\xe9", Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse(@"caf\xe9"), 10).Versions).Path);
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse(@"*\xe9"), 10).Versions);
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse(@"caf\xE9"), 10).Versions); // the escape in either case, as ls and restore take it
        Assert.Empty(VersionFinder.Find(searched, store, FindPattern.Parse(@"caf\\xE9"), 10).Versions); // an escaped backslash and "xE9": another name
        // A byte shown as \xe9 is one character to '?', as a backslash shown as \\ is: one byte of the name each.
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse("caf?"), 10).Versions);
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse("**/caf?"), 10).Versions);
        Assert.Empty(VersionFinder.Find(searched, store, FindPattern.Parse("caf?xe9"), 10).Versions);
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse("back?slash"), 10).Versions);
        Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse(@"caf[\xe8\xe9]"), 10).Versions); // a class of bytes
        Assert.Equal(src + @"/back\\slash", Assert.Single(VersionFinder.Find(searched, store, FindPattern.Parse(@"back\\*"), 10).Versions).Path);
    }

    [Fact]
    public void An_index_read_from_the_trees_bytes_is_the_one_their_parsed_nodes_give()
    {
        // FileIndex.Write(trees, ...) reads each folder's entries without making nodes (ParentTree); the same index,
        // byte for byte, as one written from the parsed trees: odd names, folders, files, a symlink, an empty folder.
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(Path.Combine(src, "a", "b", "empty"));
        File.WriteAllText(Path.Combine(src, "a", "one"), "1");
        File.WriteAllText(Path.Combine(src, "a", "b", "two words"), "22");
        File.WriteAllText(Path.Combine(src, "a", "b", "ünï"), "333");
        File.CreateSymbolicLink(Path.Combine(src, "a", "link"), "one");
        TreeCompare.MakeDirectory(src, [0x62, 0x61, 0x64, 0xFF, 0x0A]); // a folder named bad\xFF\n: not UTF-8, and a newline
        TreeCompare.WriteFile(src, [0x62, 0x61, 0x64, 0xFF, 0x0A, (byte)'/', 0xFE], "in it"u8); // a file named \xFE in it
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        using var trees = new TreeReader(repo.Keys, repo.Library);
        IEnumerable<(string Dir, Tree Tree)> Parsed()
        {
            var pending = new Stack<(string Dir, Google.Protobuf.ByteString Tree)>();
            pending.Push(("", snap.RootTree));
            while (pending.Count > 0)
            {
                var (at, id) = pending.Pop();
                var tree = trees.Load(id);
                yield return (at, tree);
                for (var i = tree.Nodes.Count - 1; i >= 0; i--)
                    if (tree.Nodes[i] is { Type: NodeType.Directory, Subtree.Length: > 0 } sub)
                        pending.Push((at + "/" + Posix.PosixNames.Display(sub.FileName()), sub.Subtree));
            }
        }
        using var scanned = new MemoryStream();
        using var parsed = new MemoryStream();
        var header = FileIndex.Write(trees, snap, scanned);
        FileIndex.Write(snap.Id, snap.Client, snap.FinishedUnixMs, Parsed(), parsed, root: snap.RootTree.Span);
        Assert.Equal(parsed.ToArray(), scanned.ToArray());
        Assert.True(header.Entries >= 8);
        var view = FileIndex.Open(scanned.ToArray());
        Assert.Equal(header.Entries, view.Header.Entries);
    }

    [Fact]
    public void An_unchanged_backup_takes_its_parents_index_under_its_own_header_and_a_changed_one_does_not()
    {
        using var dir = new TempDir();
        var (src, set, repoMade) = HostsTree(dir);
        using var repo = repoMade;
        var first = repo.Backup(set, Level.Full);
        // An unchanged backup of it: the same root tree under its own id, client and time. (A second real backup has
        // another root whenever a folder above the set changed meanwhile: /tmp, under tests that run beside this one.)
        var second = new SnapshotManifest(first) { Id = "0f1e2d3c4b5a6978", Parent = first.Id, FinishedUnixMs = first.FinishedUnixMs + 60_000 };
        var store = new FileIndexStore(Path.Combine(dir.Path, "findex"));
        Assert.False(store.WriteFrom(first.Id, second)); // no index of the parent yet
        using (var trees = new TreeReader(repo.Keys, repo.Library)) store.Write(first.Id, (f, scratch) => FileIndex.Write(trees, first, f, scratch));

        Assert.True(store.WriteFrom(first.Id, second));
        var file = Path.Combine(store.Folder, second.Id + ".fidx");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var header = FileIndex.Check(File.ReadAllBytes(file)); // whole: its own checksum
        Assert.Equal((second.Id, second.Client, second.FinishedUnixMs), (header.Snapshot, header.Client, header.FinishedUnixMs));
        Assert.Equal(second.RootTree.ToByteArray(), header.Root);
        using (var built = new MemoryStream())
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            FileIndex.Write(trees, second, built); // what reading the trees would have written: the same bytes
            Assert.Equal(built.ToArray(), File.ReadAllBytes(file));
        }
        var found = VersionFinder.Find([new(first.Id, first.Client, first.FinishedUnixMs), new(second.Id, second.Client, second.FinishedUnixMs)],
            store, FindPattern.Parse("hosts"), 10);
        Assert.Equal((2, first.Id, second.Id), (found.Versions.Single().Snapshots, found.Versions.Single().FirstSnapshot, found.Versions.Single().LastSnapshot));

        File.AppendAllText(Path.Combine(src, "etc", "hosts"), "::1 localhost\n");
        var third = repo.Backup(set, Level.Incremental);
        Assert.False(store.WriteFrom(second.Id, third)); // another tree: built from the trees
        Assert.False(File.Exists(Path.Combine(store.Folder, third.Id + ".fidx")));
    }

    [Fact]
    public void Background_work_runs_at_the_lowest_priority_on_its_own_thread_only()
    {
        var before = Posix.Posix.NiceOfThisThread();
        int? nice = null;
        var thread = new Thread(() =>
        {
            Assert.True(Posix.Posix.YieldThisThread());
            nice = Posix.Posix.NiceOfThisThread();
        });
        thread.Start();
        thread.Join();
        Assert.Equal(19, nice);
        Assert.Equal(before, Posix.Posix.NiceOfThisThread());
    }

    [Fact]
    public void A_damaged_or_stray_index_is_dropped_and_bad_patterns_are_refused()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "a.txt"), "a");
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var store = new FileIndexStore(Path.Combine(dir.Path, "findex"));
        using (var trees = new TreeReader(repo.Keys, repo.Library)) store.Write(snap.Id, (f, scratch) => FileIndex.Write(trees, snap, f, scratch));
        var file = Path.Combine(store.Folder, snap.Id + ".fidx");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.True(store.Has(snap.Id));

        var bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(file, bytes);
        Assert.False(store.Has(snap.Id)); // checksum: dropped, to be built again
        Assert.False(File.Exists(file));
        File.WriteAllBytes(file, new byte[3]);
        Assert.Throws<InvalidDataException>(() => store.Read(snap.Id, _ => 0, out _));
        Assert.False(File.Exists(file));

        // Sizes that claim more than the file holds are an error, never an allocation or a crash.
        var huge = FileIndex.Magic.ToArray().Concat(new byte[] { 1, (byte)'x', 0, 0, 0 }).Concat(Enumerable.Repeat((byte)0xFF, 40)).ToArray();
        Assert.Throws<InvalidDataException>(() => FileIndex.Open(huge));

        using (var trees = new TreeReader(repo.Keys, repo.Library)) store.Write(snap.Id, (f, scratch) => FileIndex.Write(trees, snap, f, scratch));
        File.WriteAllText(Path.Combine(store.Folder, "gone.fidx"), "x");
        Assert.Equal(1, store.Retain(new HashSet<string> { snap.Id }));
        Assert.True(store.Has(snap.Id));
        Assert.Throws<ArgumentException>(() => store.Has("../x"));

        Assert.Throws<ArgumentException>(() => FindPattern.Parse(" "));
    }

    [Fact]
    public void A_client_forgets_the_indexes_of_its_own_snapshots_the_catalog_no_longer_holds_and_only_those()
    {
        using var dir = new TempDir();
        var store = new FileIndexStore(Path.Combine(dir.Path, "findex"));
        var tree = new Tree();
        tree.Nodes.Add(new Node { Name = "a.txt", Type = NodeType.File, Size = 1, MtimeSec = 1 });
        void Index(string id, string client, long finished) => store.Write(id, (f, _) => FileIndex.Write(id, client, finished, [("", tree)], f));
        Index("kept", "web1", 100);
        Index("deleted", "web1", 200);
        Index("made-since", "web1", 900); // by a backup that ended after the catalog's list was taken: in no list
        Index("other-host", "db1", 200); // built for an operator's find on this node
        File.WriteAllText(Path.Combine(store.Folder, "not-an-index.fidx"), "x");
        Assert.Equal(1, store.RetainOf("web1", new HashSet<string> { "kept" }, asOfUnixMs: 500));
        Assert.Equal(["kept", "made-since", "not-an-index", "other-host"],
            Directory.GetFiles(store.Folder).Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal));
        Assert.True(store.Has("kept") && store.Has("made-since") && store.Has("other-host"));
        Assert.Equal(("other-host", "db1", 200L), FileIndex.Owner(File.ReadAllBytes(Path.Combine(store.Folder, "other-host.fidx"))));
        Assert.Null(FileIndex.Owner("ABKFIDX3"u8.ToArray().Concat(new byte[] { 0xFF, 0xFF }).ToArray())); // a header cut short
    }

    [Fact]
    public void Damaged_index_bytes_give_an_error_never_a_crash()
    {
        var dirs = new List<(string, Tree)>();
        for (var d = 0; d < 5; d++)
        {
            var tree = new Tree();
            for (var f = 0; f < 20; f++) tree.Nodes.Add(new Node { Name = $"a{d}-{f}.txt", Type = f == 0 ? NodeType.Directory : NodeType.File, Size = (ulong)f, MtimeSec = f });
            dirs.Add((d == 0 ? "" : $"/a0-0/d{d}", tree));
        }
        using var stream = new MemoryStream();
        FileIndex.Write("s1", "c", 1, dirs, stream);
        var bytes = stream.ToArray();
        var patterns = new[] { FindPattern.Parse("*"), FindPattern.Parse("a1*"), FindPattern.Parse("/**/a*.txt"), FindPattern.Parse("a2-3.txt") };
        var random = new Random(5);
        var errors = 0;
        for (var i = 0; i < 3000; i++)
        {
            var damaged = bytes.ToArray();
            if (i % 3 == 0) damaged = damaged[..random.Next(damaged.Length)];
            else for (var k = 0; k <= i % 4; k++) damaged[random.Next(damaged.Length)] = (byte)random.Next(256);
            try
            {
                var index = FileIndex.Open(damaged);
                foreach (var p in patterns)
                {
                    var hits = new List<FindPattern.Hit>();
                    p.Search(index, hits, 1000);
                    var starts = index.DirStarts();
                    foreach (var h in hits) index.Dir(starts, index.RowOf(h.Entry).Dir);
                }
            }
            catch (InvalidDataException)
            {
                errors++;
            }
        }
        Assert.True(errors > 1000, $"{errors} damaged indexes refused"); // every truncation at least
        Assert.Throws<InvalidDataException>(() => FileIndex.Check(bytes.Select((b, i) => i == 20 ? (byte)(b ^ 1) : b).ToArray()));
    }
}
