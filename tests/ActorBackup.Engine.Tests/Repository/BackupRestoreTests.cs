using System.Text;
using ActorBackup.Engine.Posix;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Trees;
using CsCheck;

namespace ActorBackup.Engine.Tests;

public class BackupRestoreTests
{
    private static readonly RepositoryConfig SmallChunks = new() { ChunkMin = 16 * 1024, ChunkAvg = 64 * 1024, ChunkMax = 256 * 1024, VolumeCapacity = 8 * 1024 * 1024 };

    /// <summary>Every entry kind a backup must keep, with awkward names.</summary>
    private static void MakeTree(string src)
    {
        Directory.CreateDirectory(Path.Combine(src, "dir with spaces", "nested"));
        File.WriteAllBytes(Path.Combine(src, "dir with spaces", "nested", "random.bin"), TestRepo.RandomBytes(700_000, 1));
        File.WriteAllText(Path.Combine(src, "dir with spaces", "text.txt"), string.Concat(Enumerable.Repeat("hello backup ", 10_000)));
        File.WriteAllBytes(Path.Combine(src, "empty"), []);
        File.WriteAllText(Path.Combine(src, "new\nline"), "newline in the name");
        File.WriteAllText(Path.Combine(src, "ünïcödé ✓ 日本"), "unicode");
        File.WriteAllText(Path.Combine(src, new string('n', 255)), "a 255-byte name");
        File.WriteAllText(Path.Combine(src, "first-link"), "shared inode");
        Posix.Posix.Link(Path.Combine(src, "first-link"), Path.Combine(src, "dir with spaces", "second-link"));
        File.CreateSymbolicLink(Path.Combine(src, "link-to-text"), "dir with spaces/text.txt");
        File.CreateSymbolicLink(Path.Combine(src, "dangling"), "/nonexistent/target");
        Posix.Posix.MkFifo(Path.Combine(src, "fifo"), 0b110_100_000);
        Posix.Posix.Link(Path.Combine(src, "fifo"), Path.Combine(src, "dir with spaces", "fifo-too")); // one inode of two names, as a file's
        Posix.Posix.Link(Path.Combine(src, "dangling"), Path.Combine(src, "dir with spaces", "dangling-too"));
        Posix.Posix.Chmod(Path.Combine(src, "dir with spaces", "text.txt"), 0b100_000_000);
        Posix.Posix.Chmod(Path.Combine(src, "dir with spaces", "nested"), 0b101_101_000);
        Posix.Posix.SetMtime(Path.Combine(src, "empty"), 1_234_567_890, 123_456_789);
        if (Posix.Posix.IsRoot)
        {
            Posix.Posix.MkNod(Path.Combine(src, "null-device"), FileKind.CharDevice, 0b110_110_110, 1, 3);
            Posix.Posix.LChown(Path.Combine(src, "empty"), 1234, 5678);
        }
    }

    /// <summary>Compares two trees entry by entry: kind, bytes, mode, mtime (ns), owner, link targets, hard links.</summary>
    internal static void AssertSameTree(string expected, string actual, bool owners)
    {
        var expectedEntries = Entries(expected);
        var actualEntries = Entries(actual);
        Assert.Equal(expectedEntries.Keys.Order(StringComparer.Ordinal), actualEntries.Keys.Order(StringComparer.Ordinal));
        var inodes = new Dictionary<ulong, ulong>();
        foreach (var (rel, e) in expectedEntries)
        {
            var a = actualEntries[rel];
            Assert.True(e.Kind == a.Kind, $"{rel}: kind {a.Kind}, expected {e.Kind}");
            Assert.True(e.Mode == a.Mode, $"{rel}: mode {Convert.ToString(a.Mode, 8)}, expected {Convert.ToString(e.Mode, 8)}");
            if (e.Kind != FileKind.Directory)
                Assert.True(e.MtimeSec == a.MtimeSec && e.MtimeNsec == a.MtimeNsec, $"{rel}: mtime {a.MtimeSec}.{a.MtimeNsec}, expected {e.MtimeSec}.{e.MtimeNsec}");
            if (owners) Assert.True(e.Uid == a.Uid && e.Gid == a.Gid, $"{rel}: owner {a.Uid}:{a.Gid}, expected {e.Uid}:{e.Gid}");
            var ep = Path.Combine(expected, rel);
            var ap = Path.Combine(actual, rel);
            // Hard links (of files, symlinks, FIFOs, devices) come back as links: the same inode pattern.
            if (e.Kind != FileKind.Directory)
            {
                if (inodes.TryGetValue(e.Inode, out var seen)) Assert.True(seen == a.Inode, $"{rel}: hard link not restored as a link");
                else inodes[e.Inode] = a.Inode;
            }
            switch (e.Kind)
            {
                case FileKind.Regular:
                    Assert.True(File.ReadAllBytes(ep).AsSpan().SequenceEqual(File.ReadAllBytes(ap)), $"{rel}: content differs");
                    break;
                case FileKind.Symlink:
                    Assert.Equal(Posix.Posix.ReadLink(ep), Posix.Posix.ReadLink(ap));
                    break;
                case FileKind.CharDevice or FileKind.BlockDevice:
                    Assert.Equal((e.RdevMajor, e.RdevMinor), (a.RdevMajor, a.RdevMinor));
                    break;
            }
        }
        // Directory mtimes last: reading children does not change them.
        foreach (var (rel, e) in expectedEntries.Where(x => x.Value.Kind == FileKind.Directory))
            Assert.True(e.MtimeSec == actualEntries[rel].MtimeSec && e.MtimeNsec == actualEntries[rel].MtimeNsec, $"{rel}: directory mtime differs");
    }

    private static Dictionary<string, FileStat> Entries(string root)
    {
        var result = new Dictionary<string, FileStat>(StringComparer.Ordinal);
        void Walk(string dir, string rel)
        {
            foreach (var path in Directory.GetFileSystemEntries(dir))
            {
                var name = Path.GetFileName(path);
                var r = rel == "" ? name : rel + "/" + name;
                var st = Posix.Posix.LStat(path)!.Value;
                result[r] = st;
                if (st.Kind == FileKind.Directory) Walk(path, r);
            }
        }
        Walk(root, "");
        return result;
    }

    [Fact]
    public void A_tree_with_every_entry_kind_round_trips_with_metadata()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        MakeTree(src);
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        Assert.True(snap.Stats.Files >= 8);
        var target = Path.Combine(dir.Path, "restore");
        var result = repo.Restore(snap.Id, target);
        Assert.Empty(result.Errors);
        AssertSameTree(src, target + src, owners: Posix.Posix.IsRoot);
        Assert.True(repo.Library.Verify().Ok);
    }

    [Fact]
    public void Incremental_reads_only_what_changed_and_both_snapshots_restore_their_own_state()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        MakeTree(src);
        var big = Path.Combine(src, "big.bin");
        File.WriteAllBytes(big, TestRepo.RandomBytes(4 * 1024 * 1024, 9));
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        var set = new BackupSet("s", [src]);
        var full = repo.Backup(set, Level.Full);
        var firstState = dir.Sub("first-state");
        TestRepo.Sh($"cp -a '{src}/.' '{firstState}/'");

        // A few bytes in the middle of the big file, a new file, a deleted one, a rename.
        using (var f = new FileStream(big, FileMode.Open)) { f.Position = 2_000_000; f.Write("EDIT"u8); }
        File.WriteAllText(Path.Combine(src, "added.txt"), "added");
        File.Delete(Path.Combine(src, "empty"));
        File.Move(Path.Combine(src, "dir with spaces", "nested", "random.bin"), Path.Combine(src, "renamed.bin"));

        var incr = repo.Backup(set, Level.Incremental);
        Assert.Equal(full.Id, incr.Parent);
        Assert.Empty(incr.Errors);
        // Unchanged files were not read; the edit stored only the chunks around it; the rename stored nothing new.
        Assert.Equal(5ul, incr.Stats.FilesUnchanged); // all but the edited, renamed and added files (the hard link is its first name)
        Assert.True(incr.Stats.BytesNew < 600_000, $"{incr.Stats.BytesNew} new bytes for a 4-byte edit, a rename and a tiny file");

        var r1 = Path.Combine(dir.Path, "r1");
        var r2 = Path.Combine(dir.Path, "r2");
        Assert.Empty(repo.Restore(full.Id, r1).Errors);
        Assert.Empty(repo.Restore(incr.Id, r2).Errors);
        AssertSameTree(firstState, r1 + src, owners: Posix.Posix.IsRoot);
        AssertSameTree(src, r2 + src, owners: Posix.Posix.IsRoot);

        // Nothing changed: nothing read, nothing stored but at most the root listing.
        var noop = repo.Backup(set, Level.Incremental);
        Assert.Equal(0ul, noop.Stats.BytesRead);
        Assert.Equal(0ul, noop.Stats.ChunksNew);
    }

    [Fact]
    public void Differential_compares_with_the_last_full_not_the_last_incremental()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllBytes(Path.Combine(src, "a"), TestRepo.RandomBytes(10_000, 1));
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        var set = new BackupSet("s", [src]);
        var full = repo.Backup(set, Level.Differential);
        Assert.Equal(Level.Full, full.Level); // nothing to compare with yet: promoted to full, as Bacula does
        File.WriteAllBytes(Path.Combine(src, "b"), TestRepo.RandomBytes(10_000, 2));
        var incr = repo.Backup(set, Level.Incremental);
        var diff = repo.Backup(set, Level.Differential);
        Assert.Equal(full.Id, incr.Parent);
        Assert.Equal(full.Id, diff.Parent);
        Assert.Equal(Level.Differential, diff.Level);
        Assert.Equal(1ul, diff.Stats.FilesUnchanged); // a, unchanged since the full; b is read again
        Assert.Equal(10_000ul, diff.Stats.BytesRead);
        Assert.Equal(0ul, diff.Stats.ChunksNew); // but deduplicated
    }

    [Fact]
    public void Excludes_and_missing_paths_are_handled_and_reported()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "cache"));
        File.WriteAllText(Path.Combine(src, "cache", "x"), "x");
        File.WriteAllText(Path.Combine(src, "keep.txt"), "keep");
        File.WriteAllText(Path.Combine(src, "drop.tmp"), "drop");
        TestRepo.Sh($"cd '{src}' && printf bad > \"$(printf 'bad\\377name')\"");
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        var missing = Path.Combine(dir.Path, "does-not-exist");
        var snap = repo.Backup(new BackupSet("s", [src, missing], ["*.tmp", src + "/cache"]), Level.Full);
        Assert.Contains(snap.Errors, e => e.Path == missing && e.Reason.Contains("does not exist"));
        Assert.Single(snap.Errors);
        var target = Path.Combine(dir.Path, "r");
        repo.Restore(snap.Id, target);
        Assert.Contains(@"bad\xffname", TreeCompare.Describe(target + src).Keys); // a name that is not UTF-8 is backed up like any other
        Assert.True(File.Exists(target + src + "/keep.txt"));
        Assert.False(File.Exists(target + src + "/drop.tmp"));
        Assert.False(Directory.Exists(target + src + "/cache"));
    }

    [Fact]
    public void A_backup_of_nothing_that_exists_fails_with_a_clear_message()
    {
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => repo.Backup(new BackupSet("s", [Path.Combine(dir.Path, "nope")]), Level.Full));
        Assert.Contains("none of the backup set's paths exists", e.Message);
        Assert.Empty(repo.Catalog.List());
    }

    [Fact]
    public void Restoring_chosen_paths_and_globs_restores_only_those()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        MakeTree(src);
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var t1 = Path.Combine(dir.Path, "t1");
        repo.Restore(snap.Id, t1, [src + "/dir with spaces/nested"]);
        Assert.True(File.Exists(t1 + src + "/dir with spaces/nested/random.bin"));
        Assert.False(File.Exists(t1 + src + "/dir with spaces/text.txt"));
        var t2 = Path.Combine(dir.Path, "t2");
        repo.Restore(snap.Id, t2, ["**/*.txt"]);
        Assert.True(File.Exists(t2 + src + "/dir with spaces/text.txt"));
        Assert.False(File.Exists(t2 + src + "/empty"));
        // Only the folders on the way to what matched: none that the glob merely looked through.
        Assert.False(Directory.Exists(t2 + src + "/dir with spaces/nested"));
        Assert.Throws<FileNotFoundException>(() => repo.Restore(snap.Id, Path.Combine(dir.Path, "t5"), ["**/*.nothing"]));
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "t5") + src));
        // The second name of a hard link restores with its content when the first is not selected.
        var t3 = Path.Combine(dir.Path, "t3");
        repo.Restore(snap.Id, t3, [src + "/dir with spaces/second-link"]);
        Assert.Equal("shared inode", File.ReadAllText(t3 + src + "/dir with spaces/second-link"));
        Assert.Throws<FileNotFoundException>(() => repo.Restore(snap.Id, Path.Combine(dir.Path, "t4"), ["/no/such/path"]));
    }

    [Fact]
    public async Task A_file_that_changes_while_read_is_recorded_and_the_backup_goes_on()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var growing = Path.Combine(src, "growing.log");
        File.WriteAllBytes(growing, TestRepo.RandomBytes(64 * 1024 * 1024, 1));
        File.WriteAllText(Path.Combine(src, "stable"), "stable");
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        using var stop = new CancellationTokenSource();
        var writing = new TaskCompletionSource();
        var writer = Task.Run(() =>
        {
            using var f = new FileStream(growing, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            while (!stop.IsCancellationRequested)
            {
                f.Write("more\n"u8);
                f.Flush();
                writing.TrySetResult();
                Thread.Sleep(1);
            }
        });
        await writing.Task;
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        stop.Cancel();
        await writer;
        Assert.Contains(snap.Errors, e => e.Path == growing && e.Reason.Contains("changed while it was read"));
        var target = Path.Combine(dir.Path, "r");
        repo.Restore(snap.Id, target);
        Assert.Equal("stable", File.ReadAllText(target + src + "/stable"));
    }
}

public class NameRoundTripTests
{
    private static readonly Gen<string> NameGen =
        Gen.Char['\u0001', '\u2FFF'].Array[1, 120]
            .Select(chars => new string(chars.Where(c => c != '/' && !char.IsSurrogate(c)).ToArray()))
            .Where(n => n.Length > 0 && n != "." && n != ".." && Encoding.UTF8.GetByteCount(n) <= 255);

    [Fact]
    public void Names_are_bytes_and_come_back_byte_for_byte_whether_or_not_they_are_UTF8()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        byte[][] names =
        [
            [0xff], [(byte)'a', 0x80, (byte)'b'], [0xc0, 0xaf], [0xed, 0xb2, 0x80], // a lone byte, a stray continuation, overlong, an encoded surrogate
            "new\nline"u8.ToArray(), @"back\slash\x41"u8.ToArray(), [.. "caf"u8, 0xe9], // Latin-1 "café"
            [.. Enumerable.Repeat((byte)0xfe, 255)], [.. Enumerable.Repeat((byte)'n', 254), 0xff],
            "\U0001F480 \U0001F4C1 \U00020080"u8.ToArray(), // valid UTF-8 whose UTF-16 halves look like escapes (D83D DC80, D840 DC80)
        ];
        foreach (var n in names) TreeCompare.WriteFile(src, n, n);
        TreeCompare.MakeDirectory(src, [(byte)'d', 0xff]);
        TreeCompare.WriteFile(src, [(byte)'d', 0xff, .. "/inside"u8], "x"u8);
        TreeCompare.HardLink(src, [0xff], [(byte)'l', 0xfe]);
        TreeCompare.Symlink(src, "link"u8, [(byte)'t', 0xff, (byte)'/', 0x80]);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("names", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        var expected = TreeCompare.Describe(src);
        Assert.Contains(@"d\xff/inside", expected.Keys);
        TreeCompare.AssertSame(expected, target + src);

        // Listings show each byte that is not UTF-8 as \xHH and a backslash as \\; an unchanged backup finds every name in its parent.
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            var listed = TreeListing.Entries(trees, snap, "").Select(e => e.Path).ToList();
            Assert.Contains(src + @"/d\xff/inside", listed);
            Assert.Contains(src + @"/back\\slash\\x41", listed);
            Assert.Contains(src + @"/new\x0aline", listed);
            Assert.Contains(src + "/\U0001F480 \U0001F4C1 \U00020080", listed); // shown as it is
            Assert.Equal("\U0001F480", PosixNames.Display("\U0001F480"));
            // A C1 control character (CSI, U+009B: a terminal may act on it) as its two UTF-8 bytes, read back the same.
            Assert.Equal(@"a\xc2\x9b2Jb", PosixNames.Display("a\u009b2Jb"));
            Assert.Equal("a\u009b2Jb", PosixNames.Parse(@"a\xc2\x9b2Jb"));
            Assert.False(PosixNames.HasEscapes("\U0001F480\U00020080"));
        }
        var again = repo.Backup(new BackupSet("names", [src]), Level.Incremental);
        Assert.Equal(0ul, again.Stats.BytesRead); // every file found unchanged in its parent (by its bytes)
        var only = Path.Combine(dir.Path, "only");
        Assert.Empty(repo.Restore(again.Id, only, [src + @"/d\xff"]).Errors); // a path as ls shows it
        Assert.Equal(["inside"], TreeCompare.Describe(only + src).Keys.Where(k => k.StartsWith(@"d\xff/", StringComparison.Ordinal)).Select(k => k[6..]));
        // A restore glob written the same way: \xHH a byte, \\ a backslash (a character, never a folder separator).
        var globbed = Path.Combine(dir.Path, "globbed");
        Assert.Empty(repo.Restore(again.Id, globbed, [src + @"/*\xff", src + @"/back\\*"]).Errors);
        string[] matched = [@"\xff", @"back\x5cslash\x5cx41", @"d\xff", @"d\xff/inside", new string('n', 254) + @"\xff"];
        Assert.Equal(matched.Order(StringComparer.Ordinal), TreeCompare.Describe(globbed + src).Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_file_the_target_file_system_did_not_take_at_close_is_reported_and_a_full_one_stops_the_restore()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        foreach (var name in new[] { "a.txt", "b.txt", "c.txt" }) File.WriteAllText(Path.Combine(src, name), "content of " + name);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var target = Path.Combine(dir.Path, "r");
        var full = Path.Combine(dir.Path, "full");
        // A network file system out of quota says so only when b.txt is closed (EIO here); another is out of space.
        Posix.Posix.CloseFails = path => path == target + src + "/b.txt" ? 5 : path.StartsWith(full + "/", StringComparison.Ordinal) ? Posix.Posix.ENOSPC : null;
        try
        {
            var result = repo.Restore(snap.Id, target);
            var error = Assert.Single(result.Errors);
            Assert.Equal(src + "/b.txt", error.Path);
            Assert.Contains("Input/output error: the file system did not take all that was written; restore it again", error.Reason);
            Assert.Equal("content of a.txt", File.ReadAllText(target + src + "/a.txt"));
            Assert.Equal("content of c.txt", File.ReadAllText(target + src + "/c.txt"));
            Assert.Contains("the restore target is full", Assert.ThrowsAny<IOException>(() => repo.Restore(snap.Id, full)).Message);
        }
        finally
        {
            Posix.Posix.CloseFails = null;
        }
    }

    [Fact]
    public void A_set_path_whose_name_is_not_UTF8_is_written_as_ls_shows_it()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        TreeCompare.MakeDirectory(src, [.. "caf"u8, 0xe9]); // Latin-1 "café"
        TreeCompare.WriteFile(src, [.. "caf"u8, 0xe9, .. "/menu"u8], "soup"u8);
        TreeCompare.MakeDirectory(src, @"back\slash"u8.ToArray());
        TreeCompare.WriteFile(src, @"back\slash/f"u8.ToArray(), "x"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // The paths as an operator types them after reading a listing: \xHH a byte, \\ a backslash.
        string[] shown = [src + @"/caf\xe9", src + @"/back\\slash"];
        var snap = repo.Backup(new BackupSet("s", shown), Level.Full);
        Assert.Empty(snap.Errors);
        Assert.Equal(shown.Order(StringComparer.Ordinal), snap.Paths.Order(StringComparer.Ordinal)); // listed as shown, not as raw strings
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            var listed = TreeListing.Entries(trees, snap, "").Select(e => e.Path).ToList();
            Assert.Contains(src + @"/caf\xe9/menu", listed);
            Assert.Contains(src + @"/back\\slash/f", listed);
        }
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        var again = repo.Backup(new BackupSet("s", shown), Level.Incremental);
        Assert.Equal(0ul, again.Stats.BytesRead); // found unchanged in the parent
        // A target folder whose own path is not UTF-8, written the same way, is made by its bytes (not under another name).
        var odd = Path.Combine(dir.Path, @"r\xff", @"deeper\xfe");
        Assert.Empty(repo.Restore(snap.Id, odd).Errors);
        Assert.Equal(["r", "repo", "r\udcff", "src"], Posix.Posix.ListDirectory(dir.Path).Order(StringComparer.Ordinal));
        var menu = Posix.Posix.LStat(PosixNames.Parse(odd) + src + "/caf\udce9/menu");
        Assert.Equal((FileKind.Regular, 4ul), (menu!.Value.Kind, menu.Value.Size));
        // The folder on the way was made as mkdir -p makes one (the umask's mode), not 0700: others may reach what is restored.
        var plain = Directory.CreateDirectory(Path.Combine(dir.Path, "plain")).UnixFileMode;
        Assert.Equal((uint)plain, Posix.Posix.LStat(PosixNames.Parse(Path.Combine(dir.Path, @"r\xff")))!.Value.Mode & 0x1FF);
        // Not empty now: a second restore there needs --force, and says so with the path as shown.
        Assert.Contains(@"r\xff/deeper\xfe exists and is not empty", Assert.Throws<IOException>(() => repo.Restore(snap.Id, odd)).Message);
    }

    [Fact]
    public void Sparse_files_keep_their_holes_which_cost_no_read_and_no_chunk()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        const int MiB = 1024 * 1024;
        // Holes at the start, in the middle and at the end; and one that starts and ends with data.
        var holey = Path.Combine(src, "holey.img");
        using (var f = new FileStream(holey, FileMode.Create))
        {
            f.SetLength(256L * MiB);
            f.Position = 64L * MiB;
            f.Write(TestRepo.RandomBytes(MiB, 1));
            f.Position = 128L * MiB;
            f.Write(TestRepo.RandomBytes(300 * 1024, 2));
        }
        var ends = Path.Combine(src, "ends.img");
        using (var f = new FileStream(ends, FileMode.Create))
        {
            f.Write(TestRepo.RandomBytes(100 * 1024, 3));
            f.Position = 40L * MiB;
            f.Write(TestRepo.RandomBytes(4096, 4));
        }
        // Holes below the end of a file with more blocks allocated past its end (fallocate --keep-size) than its holes
        // take: its block count says nothing of them.
        var preallocated = Path.Combine(src, "preallocated.db");
        TestRepo.WritePreallocated(preallocated, 4L * MiB, 2L * MiB, 6);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("sparse", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        Assert.True(snap.Stats.BytesRead < 4 * MiB, $"read {snap.Stats.BytesRead} bytes: the holes were read"); // 1.4 MiB of data in 296 MiB of files
        Assert.True(snap.Stats.BytesNew < 4 * MiB, $"{snap.Stats.BytesNew} new bytes: the holes were stored");

        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src); // the same bytes, zeros where the holes were
        foreach (var name in new[] { "holey.img", "ends.img", "preallocated.db" })
        {
            var (source, restored) = (TreeCompare.AllocatedBytes(Path.Combine(src, name)), TreeCompare.AllocatedBytes(Path.Combine(target + src, name)));
            Assert.True(restored <= source + 3 * 4096, $"{name}: {restored} bytes allocated after the restore, {source} in the source");
        }
        Assert.True(repo.Library.Verify().Ok);
        var again = repo.Backup(new BackupSet("sparse", [src]), Level.Incremental);
        Assert.Equal(0ul, again.Stats.BytesRead);

        // Asking a file for its extents leaves its handle at the start: a file taken for sparse (fewer blocks than its
        // size, as on a compressing file system) but without a hole is read whole, not from where SEEK_HOLE left it.
        var plain = Path.Combine(dir.Path, "plain.bin");
        File.WriteAllBytes(plain, TestRepo.RandomBytes(MiB, 5));
        using (var handle = File.OpenHandle(plain))
        {
            Assert.Equal([(0L, (long)MiB)], Posix.Posix.DataExtents(handle, MiB));
            using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
            Assert.Equal(MiB, stream.CopyToCount());
        }
    }

    [Fact]
    public void Extended_attributes_ACLs_and_file_capabilities_come_back()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var file = Path.Combine(src, "tool");
        File.WriteAllText(file, "#!/bin/sh\n");
        TreeCompare.SetXattr(file, "user.comment", "kept"u8);
        TreeCompare.SetXattr(file, "user.binary", Enumerable.Range(0, 256).Select(i => (byte)i).ToArray());
        const uint Unset = uint.MaxValue;
        // user::rw-, user 1234 r--, group::r--, mask::r--, other::---
        TreeCompare.SetXattr(file, "system.posix_acl_access", TreeCompare.Acl((0x01, 6, Unset), (0x02, 4, 1234), (0x04, 4, Unset), (0x10, 4, Unset), (0x20, 0, Unset)));
        var folder = Directory.CreateDirectory(Path.Combine(src, "shared")).FullName;
        TreeCompare.SetXattr(folder, "user.folder", "yes"u8);
        TreeCompare.SetXattr(folder, "system.posix_acl_default", TreeCompare.Acl((0x01, 7, Unset), (0x04, 5, Unset), (0x08, 7, 4321), (0x10, 7, Unset), (0x20, 5, Unset)));
        if (Posix.Posix.IsRoot)
        {
            // cap_net_bind_service, effective (VFS_CAP_REVISION_2): kept across the restore's chown, which drops it.
            var capability = new byte[20];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(capability, 0x02000001);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(capability.AsSpan(4), 1u << 10);
            TreeCompare.SetXattr(file, "security.capability", capability);
            TreeCompare.SetXattr(file, "trusted.note", "root's"u8);
            Posix.Posix.LChown(file, 1234, 1234);
            TreeCompare.SetXattr(file, "security.capability", capability);
        }
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        Assert.Contains("xattr system.posix_acl_access=", expected["tool"]);
        if (Posix.Posix.IsRoot) Assert.Contains("xattr security.capability=", expected["tool"]);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
    }

    [Fact]
    public void A_folder_on_the_way_keeps_all_its_flags_a_name_with_brackets_restores_by_its_path_and_ls_takes_any_escape_case()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var inner = Path.Combine(src, "inner");
        var trip = Path.Combine(inner, "[2019] trip");
        Directory.CreateDirectory(trip);
        File.WriteAllText(Path.Combine(trip, "a.jpg"), "a photo");
        Directory.CreateDirectory(Path.Combine(inner, "2 trip")); // what the name read as a glob would match instead
        TreeCompare.WriteFile(inner, [0x63, 0x61, 0x66, 0xE9], "bytes"u8); // caf\xe9: not UTF-8
        TreeCompare.SetFlags(inner, 0x80); // noatime: a flag statx does not tell
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [trip, Path.Combine(inner, "2 trip"), Path.Combine(inner, "caf\uDCE9")]), Level.Full); // inner is a folder on the way
        Assert.Empty(snap.Errors);
        var whole = Path.Combine(dir.Path, "whole");
        Assert.Empty(repo.Restore(snap.Id, whole).Errors);
        Assert.Equal(0x80u, TreeCompare.Flags(whole + inner) & 0x80u);
        var part = Path.Combine(dir.Path, "part");
        Assert.Empty(repo.Restore(snap.Id, part, [trip]).Errors);
        Assert.Equal("a photo", File.ReadAllText(Path.Combine(part + trip, "a.jpg")));
        Assert.False(Directory.Exists(part + inner + "/2 trip"), "the name read as a glob too: another folder came back");
        using var trees = new TreeReader(repo.Keys, repo.Library);
        Assert.Equal(TreeListing.Entries(trees, snap, inner + @"/caf\xe9").Select(e => e.Path), TreeListing.Entries(trees, snap, inner + @"/caf\xE9").Select(e => e.Path));
        Assert.Single(TreeListing.Entries(trees, snap, inner + @"/caf\xE9"));
    }

    [Fact]
    public void A_snapshot_of_the_root_folder_keeps_its_own_metadata_and_a_whole_restore_gives_it_to_the_target()
    {
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // "/" with everything in it excluded: the root folder itself is what is left to record.
        var snap = repo.Backup(new BackupSet("system", ["/"], ["/*"]), Level.Full);
        Assert.NotNull(snap.Root);
        var rootStat = Posix.Posix.LStat("/")!.Value;
        Assert.Equal((rootStat.Mode, rootStat.Uid, rootStat.MtimeSec), (snap.Root.Mode, snap.Root.Uid, snap.Root.MtimeSec));
        var target = Path.Combine(dir.Path, "r"); // made 0700 by the restore, as any target it makes
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        var restored = Posix.Posix.LStat(target)!.Value;
        Assert.Equal((rootStat.Mode & 0xFFF, rootStat.Uid, rootStat.Gid, rootStat.MtimeSec, rootStat.MtimeNsec),
            (restored.Mode & 0xFFF, restored.Uid, restored.Gid, restored.MtimeSec, restored.MtimeNsec));
        // A set without "/" records none.
        var src = dir.Sub("src");
        Assert.Null(repo.Backup(new BackupSet("s", [src]), Level.Full).Root);
    }

    [Fact]
    public void A_restore_under_a_folder_with_file_flags_brings_back_each_entrys_own_flags_and_no_others()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "folder"));
        File.WriteAllText(Path.Combine(src, "folder", "plain"), "no flags");
        File.WriteAllText(Path.Combine(src, "noatime"), "its own flag");
        TreeCompare.SetFlags(Path.Combine(src, "noatime"), 0x80);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        Assert.DoesNotContain("flags", expected["folder/plain"]);
        // The operator's restore area is kept out of dumps (chattr +d): ext4 gives that flag to everything made in it.
        var area = dir.Sub("restores");
        TreeCompare.SetFlags(area, FileFlags.NoDump);
        var target = Path.Combine(area, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
    }

    [Fact]
    public void A_restore_under_a_folder_with_a_default_ACL_brings_back_no_ACL_the_snapshot_does_not_hold()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "plain"), "no ACL");
        Directory.CreateDirectory(Path.Combine(src, "folder"));
        File.WriteAllText(Path.Combine(src, "folder", "inner"), "no ACL either");
        // A FIFO (as a device node would: made by mknod, its mode set through an O_PATH handle) without an ACL.
        Posix.Posix.MkFifo(Path.Combine(src, "folder", "pipe"), 0x1B0);
        var own = Path.Combine(src, "own");
        File.WriteAllText(own, "an ACL of its own");
        const uint Unset = uint.MaxValue;
        TreeCompare.SetXattr(own, "system.posix_acl_access", TreeCompare.Acl((0x01, 6, Unset), (0x02, 4, 1234), (0x04, 4, Unset), (0x10, 4, Unset), (0x20, 0, Unset)));
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        Assert.DoesNotContain("posix_acl", expected["plain"]);
        Assert.DoesNotContain("posix_acl", expected["folder/pipe"]);
        // The operator's restore area hands user 4321 rwx on everything made in it (setfacl -d -m u:4321:rwx).
        var area = dir.Sub("restores");
        TreeCompare.SetXattr(area, "system.posix_acl_default", TreeCompare.Acl((0x01, 7, Unset), (0x02, 7, 4321), (0x04, 5, Unset), (0x10, 7, Unset), (0x20, 5, Unset)));
        var target = Path.Combine(area, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
    }

    [Fact]
    public void A_hard_link_group_comes_back_as_one_inode_when_its_first_name_is_not_restored_or_comes_later()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "a", "sub"));
        Directory.CreateDirectory(Path.Combine(src, "a-b"));
        Directory.CreateDirectory(Path.Combine(src, "c"));
        File.WriteAllText(Path.Combine(src, "a-b", "y"), "one inode, four names");
        TreeCompare.HardLink(src, "a-b/y"u8, "a/sub/x"u8);
        TreeCompare.HardLink(src, "a-b/y"u8, "c/p"u8);
        TreeCompare.HardLink(src, "a-b/y"u8, "c/q"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // The set's paths are walked in their order, "a-b" before "a/sub" ('-' sorts before '/'), so the first name the
        // snapshot records (a-b/y) comes after a/sub/x in its tree, where a restore meets it.
        var snap = repo.Backup(new BackupSet("x", [Path.Combine(src, "c"), Path.Combine(src, "a-b"), Path.Combine(src, "a", "sub")]), Level.Full);
        Assert.Empty(snap.Errors);
        ulong Inode(string root, string name) => Posix.Posix.LStat(root + src + "/" + name)!.Value.Inode;
        var whole = Path.Combine(dir.Path, "whole");
        Assert.Empty(repo.Restore(snap.Id, whole).Errors);
        Assert.Equal(4u, Posix.Posix.LStat(whole + src + "/a/sub/x")!.Value.Nlink);
        Assert.All(new[] { "a-b/y", "c/p", "c/q" }, n => Assert.Equal(Inode(whole, "a/sub/x"), Inode(whole, n)));
        Assert.Equal("one inode, four names", File.ReadAllText(whole + src + "/c/q"));
        // Only c: the first name is not restored; c/p holds the content and c/q is its link, not a copy.
        var part = Path.Combine(dir.Path, "part");
        Assert.Empty(repo.Restore(snap.Id, part, [src + "/c"]).Errors);
        Assert.Equal(Inode(part, "c/p"), Inode(part, "c/q"));
        Assert.Equal("one inode, four names", File.ReadAllText(part + src + "/c/p"));
        Assert.False(Directory.Exists(part + src + "/a"));
    }

    /// <summary>A library that has lost every file chunk (its trees are there).</summary>
    private sealed class LostContents(Codec.IChunkSource inner) : Codec.IChunkSource
    {
        public ReadOnlySpan<byte> ReadPayload(Hashing.ChunkId id, ref byte[] buffer, out Volumes.RecordFlags flags)
        {
            var payload = inner.ReadPayload(id, ref buffer, out flags);
            if ((flags & Volumes.RecordFlags.Tree) == 0) throw new IOException($"chunk {id} lost");
            return payload;
        }
    }

    [Fact]
    public void A_further_name_of_a_file_whose_restore_failed_is_reported_not_linked_to_what_is_left()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "x"), "content the library lost");
        TreeCompare.HardLink(src, "x"u8, "y"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        var target = Path.Combine(dir.Path, "r");
        var result = new Restore.Restorer(repo.Ring.For(snap), new LostContents(repo.Library)).Run(snap, target, new Restore.RestoreOptions());
        Assert.Contains(result.Errors, e => e.Path == Path.Combine(src, "x") && e.Reason.Contains("lost"));
        Assert.Contains(result.Errors, e => e.Path == Path.Combine(src, "y") && e.Reason.Contains("a further name of " + Path.Combine(src, "x")));
        Assert.False(File.Exists(target + src + "/y"));
    }

    [Fact]
    public void A_socket_comes_back_as_a_socket_with_its_mode_owner_and_time()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var path = Path.Combine(src, "listening.sock");
        TreeCompare.MakeNode(path, 0xC000 | 0b110_110_000); // the inode a listening program leaves (mknod makes it as bind does)
        Posix.Posix.Chmod(path, 0b110_110_000);
        if (Posix.Posix.IsRoot) TreeCompare.SetXattr(path, "trusted.label", "kept"u8); // user.* is for files and folders only
        Posix.Posix.SetMtime(path, 1_234_567_890, 5);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        Assert.StartsWith("socket mode 660", expected["listening.sock"]);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
        // Restored again with --force over it: a socket that is there is its program's, left as it is (a live one
        // replaced by a dead inode would lose it its clients).
        Posix.Posix.Chmod(target + path, 0b111_000_000); // as its program left it (inode numbers are reused: the mode tells)
        Assert.Empty(repo.Restore(snap.Id, target, force: true).Errors);
        Assert.Equal(0b111_000_000u, Posix.Posix.LStat(target + path)!.Value.Mode & 0xFFF);
        // A regular file where the snapshot has the socket is no program's socket: --force puts the socket back.
        File.Delete(target + path);
        File.WriteAllText(target + path, "not a socket");
        Assert.Empty(repo.Restore(snap.Id, target, force: true).Errors);
        TreeCompare.AssertSame(expected, target + src);
    }

    [SmallDiskFact]
    public void With_one_file_system_a_mount_point_is_kept_as_an_empty_folder_and_a_path_of_the_set_below_one_is_walked()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "here"), "on the set's file system");
        var mnt = Path.Combine(src, "mnt");
        var mnt2 = Path.Combine(src, "mnt2");
        var mnt3 = Path.Combine(src, "mnt3");
        Directory.CreateDirectory(mnt);
        Directory.CreateDirectory(mnt2);
        Directory.CreateDirectory(mnt3);
        using var disk = new SmallDisk(1, mnt);
        using var disk2 = new SmallDisk(1, mnt2);
        using var disk3 = new SmallDisk(1, mnt3);
        File.WriteAllText(Path.Combine(mnt3, "all"), "a mount point named by the set: walked whole");
        File.WriteAllText(Path.Combine(mnt, "mounted"), "another file system");
        Posix.Posix.Chmod(mnt, 0b111_101_000); // the mounted root's mode: what the folder comes back with
        Directory.CreateDirectory(Path.Combine(mnt2, "keep"));
        File.WriteAllText(Path.Combine(mnt2, "keep", "wanted"), "named by the set");
        File.WriteAllText(Path.Combine(mnt2, "skipped"), "not named");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("x", [src, Path.Combine(mnt2, "keep"), mnt3], OneFileSystem: true);
        foreach (var level in new[] { Level.Full, Level.Incremental })
        {
            var snap = repo.Backup(set, level);
            Assert.Empty(snap.Errors);
            var r = Path.Combine(dir.Path, "r-" + level) + src;
            Assert.Empty(repo.Restore(snap.Id, Path.Combine(dir.Path, "r-" + level)).Errors);
            Assert.Equal("on the set's file system", File.ReadAllText(Path.Combine(r, "here")));
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(r, "mnt")));
            Assert.Equal(0b111_101_000u, Posix.Posix.LStat(Path.Combine(r, "mnt"))!.Value.Mode & 0xFFF);
            Assert.Equal("named by the set", File.ReadAllText(Path.Combine(r, "mnt2", "keep", "wanted")));
            Assert.False(File.Exists(Path.Combine(r, "mnt2", "skipped")));
            Assert.Equal("a mount point named by the set: walked whole", File.ReadAllText(Path.Combine(r, "mnt3", "all")));
        }
    }

    [SmallDiskFact]
    public void A_restore_target_too_small_for_a_file_it_creates_stops_the_restore_saying_it_is_full()
    {
        // tmpfs preallocates: a file of more than the space left is refused as it is created (ENOSPC at the create,
        // not at a write or the close). That is the target being full, as much as a write that fails: the restore stops
        // saying so, not each file after it failing alone and the restore ending as done.
        using var dir = new TempDir();
        var src = dir.Sub("src");
        for (var i = 0; i < 4; i++) File.WriteAllBytes(Path.Combine(src, $"f{i}.bin"), TestRepo.RandomBytes(3 << 20, 40 + i));
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        using var disk = new SmallDisk(8);
        var e = Assert.ThrowsAny<IOException>(() => repo.Restore(snap.Id, Path.Combine(disk.Path, "r")));
        Assert.Contains("the restore target is full", e.Message);
        Assert.Contains("free space there and restore again", e.Message);
    }

    [SmallDiskFact]
    public void A_restore_into_a_folder_that_cannot_be_written_to_fails_at_once_saying_so()
    {
        // An empty folder that is there already, on a read-only mount: every entry below would fail alone, and the
        // restore end as done with nothing restored. It fails before it starts, saying what to do.
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "a.txt"), "a");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        using var readOnly = new SmallDisk(1, readOnly: true);
        var e = Assert.Throws<IOException>(() => repo.Restore(snap.Id, readOnly.Path));
        Assert.Contains($"the folder {readOnly.Path} cannot be written to: Read-only file system", e.Message);
        Assert.Contains("restore into a folder this user may make and write", e.Message);
    }

    [SmallDiskFact]
    public void A_file_of_more_holes_than_a_tree_entry_lists_is_reported_and_the_backup_goes_on()
    {
        using var dir = new TempDir();
        using var disk = new SmallDisk(1);
        File.WriteAllText(Path.Combine(disk.Path, "small"), "kept");
        var huge = Path.Combine(disk.Path, "huge");
        using (var f = new FileStream(huge, FileMode.Create)) f.SetLength(32L << 50); // 32 PiB of hole: 32 Mi entries of 1 GiB
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [disk.Path]), Level.Full);
        var error = Assert.Single(snap.Errors);
        Assert.Equal(huge, error.Path);
        Assert.Contains("more than 16,777,216 chunks and holes", error.Reason); // told by its size, nothing read
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        Assert.Equal("kept", File.ReadAllText(target + disk.Path + "/small"));
        Assert.False(File.Exists(target + huge));
    }

    [Fact]
    public void A_file_of_more_entries_than_a_node_lists_keeps_them_in_chunk_lists_and_comes_back_verified_and_reused()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var big = TestRepo.RandomBytes(9_000_000, 3);
        File.WriteAllBytes(Path.Combine(src, "big.bin"), big);
        using (var f = new FileStream(Path.Combine(src, "sparse.img"), FileMode.Create)) // holes are entries too
        {
            for (var i = 0; i < 5; i++)
            {
                f.Position = (2 * i + 1) << 20;
                f.Write(TestRepo.RandomBytes(8192, 4 + i));
            }
            f.SetLength(12 << 20);
        }
        File.WriteAllText(Path.Combine(src, "small.txt"), "a node lists its one chunk itself");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        SnapshotManifest Backup(SnapshotManifest? parent)
        {
            var snap = new Archiver(repo.Keys, repo.Library, repo.Library) { EntriesPerList = 2 }
                .Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Level = parent is null ? Level.Full : Level.Incremental }, parent);
            Assert.Empty(snap.Errors);
            StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
            repo.Catalog.Save(snap);
            return snap;
        }
        var full = Backup(null);
        Hashing.ChunkId TreeOf(SnapshotManifest snap)
        {
            using var trees = new TreeReader(repo.Keys, repo.Library);
            var id = new Hashing.ChunkId(snap.RootTree.Span);
            foreach (var name in src.Split('/', StringSplitOptions.RemoveEmptyEntries))
                id = trees.Load(id).Nodes.Single(n => n.FileName() == name).SubtreeId();
            return id;
        }
        // The snapshot with one file's node torn: its entries expanded beside its lists (ExpandChunkLists keeps them),
        // its folder's tree and those above stored again, under a manifest of the new root.
        SnapshotManifest Torn(SnapshotManifest snap, string name)
        {
            using var trees = new TreeReader(repo.Keys, repo.Library);
            using var upload = repo.Keys.Trees.Cipher.BeginUpload();
            using var encoder = new Codec.ChunkEncoder(repo.Keys.Trees, upload, 3);
            var parts = src.Split('/', StringSplitOptions.RemoveEmptyEntries);
            Hashing.ChunkId Rewrite(Hashing.ChunkId id, int depth)
            {
                var tree = trees.Load(id);
                if (depth == parts.Length)
                {
                    var node = tree.Nodes.Single(n => n.FileName() == name);
                    trees.ExpandChunkLists(node);
                    Assert.False(node.ChunkLists.IsEmpty || node.Chunks.IsEmpty, "torn: lists and entries");
                }
                else
                {
                    var sub = tree.Nodes.Single(n => n.FileName() == parts[depth]);
                    sub.Subtree = Google.Protobuf.ByteString.CopyFrom(Rewrite(sub.SubtreeId(), depth + 1).ToArray());
                }
                return encoder.Store(Google.Protobuf.MessageExtensions.ToByteArray(tree), Volumes.RecordFlags.Tree, repo.Library).Id;
            }
            var root = Rewrite(new Hashing.ChunkId(snap.RootTree.Span), 0);
            repo.Library.Commit();
            return new SnapshotManifest(snap) { RootTree = Google.Protobuf.ByteString.CopyFrom(root.ToArray()) };
        }
        Node Stored(SnapshotManifest snap, string name)
        {
            using var trees = new TreeReader(repo.Keys, repo.Library);
            return trees.Load(TreeOf(snap)).Nodes.Single(n => n.FileName() == name);
        }
        var bigNode = Stored(full, "big.bin");
        Assert.True(bigNode.Chunks.IsEmpty && bigNode.ChunkSizes.Count == 0, "the entries are in the lists, not the node");
        var lists = bigNode.ChunkListIds().ToList();
        Assert.True(lists.Count >= 2, $"{lists.Count} lists");
        Assert.True(Stored(full, "sparse.img").ChunkListIds().Count() >= 5); // five data extents between holes: 11 entries
        Assert.True(Stored(full, "small.txt").ChunkLists.IsEmpty);
        Assert.All(lists, id => Assert.Contains(id, repo.Library.ReadReferences(full.Id))); // prune keeps them with the snapshot
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            trees.ExpandChunkLists(bigNode);
            Assert.Equal((ulong)big.Length, bigNode.ChunkSizes.Aggregate(0ul, (a, s) => a + s));
            Assert.All(Enumerable.Range(0, bigNode.ChunkCount()), i => Assert.Contains(bigNode.ChunkAt(i), repo.Library.ReadReferences(full.Id)));
        }

        var expected = TreeCompare.Describe(src);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(full.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
        Assert.Equal(big, File.ReadAllBytes(target + src + "/big.bin"));
        var verified = ActorBackup.Engine.Verify.SnapshotVerifier.Run(repo.Keys, repo.Library, full);
        Assert.True(verified.Ok, string.Join("; ", verified.DamagedFiles));
        Assert.True(verified.Trees >= 2 + lists.Count);

        // Unchanged: the nodes as they were, the same tree (the lists the same records), nothing read.
        var again = Backup(full);
        Assert.Equal(3ul, again.Stats.FilesUnchanged);
        Assert.Equal(TreeOf(full), TreeOf(again));
        Assert.All(lists, id => Assert.Contains(id, repo.Library.ReadReferences(again.Id)));
        // A torn parent node (its lists beside entries of its own: no build writes one, damage or a bug could): found when
        // the parent's tree is loaded, the file read again as one whose lists are lost, the other files reused.
        var afterTorn = new Archiver(repo.Keys, repo.Library, repo.Library) { EntriesPerList = 2 }
            .Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Level = Level.Incremental }, Torn(again, "big.bin"));
        Assert.Empty(afterTorn.Errors);
        Assert.Equal(2ul, afterTorn.Stats.FilesUnchanged);
        Assert.True(afterTorn.Stats.BytesRead >= (ulong)big.Length, $"{afterTorn.Stats.BytesRead} bytes read");
        Assert.Equal(TreeOf(again), TreeOf(afterTorn)); // read again: the same entries, lists and tree as before
        // One more byte: the file read again, new lists; the other file's reused through a tree stored anew.
        File.AppendAllText(Path.Combine(src, "small.txt"), "!");
        var changed = Backup(again);
        Assert.Equal(lists, Stored(changed, "big.bin").ChunkListIds().ToList());
        var target2 = Path.Combine(dir.Path, "r2");
        Assert.Empty(repo.Restore(changed.Id, target2).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target2 + src);

        // The big file itself changed: read again without its parent's lists (only an unchanged file's are read).
        var sparseLists = Stored(changed, "sparse.img").ChunkListIds().ToList();
        big[4_500_000] ^= 0xFF;
        File.WriteAllBytes(Path.Combine(src, "big.bin"), big);
        var reads = new ReadsCounted(repo.Library);
        var rewritten = new Archiver(repo.Keys, repo.Library, reads) { EntriesPerList = 2 }
            .Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Level = Level.Incremental }, changed);
        Assert.Empty(rewritten.Errors);
        Assert.Equal(2ul, rewritten.Stats.FilesUnchanged);
        Assert.DoesNotContain(reads.Ids, lists.Contains);
        Assert.Contains(reads.Ids, sparseLists.Contains); // the unchanged image's entries, to reuse
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, rewritten, 3);
        repo.Catalog.Save(rewritten);
        var target5 = Path.Combine(dir.Path, "r5");
        Assert.Empty(repo.Restore(rewritten.Id, target5).Errors);
        Assert.Equal(big, File.ReadAllBytes(target5 + src + "/big.bin"));
        TreeCompare.AssertSame(TreeCompare.Describe(src), target5 + src);

        // A list damaged on disk: the verify fails on it as on a bad chunk (a heal copies such records back), and the
        // restore says which file it cannot bring back.
        void Damage(Hashing.ChunkId record)
        {
            Assert.True(repo.Library.TryGetLocation(record, out var at));
            using var volume = new FileStream(Path.Combine(repo.Library.Root, "volumes", Volumes.VolumeFormat.VolumeFileName(at.Volume)), FileMode.Open);
            volume.Position = at.Offset + Volumes.VolumeFormat.RecordHeaderSize + 40;
            var b = volume.ReadByte();
            volume.Position--;
            volume.WriteByte((byte)(b ^ 0x01));
        }
        Damage(lists[1]);
        var damaged = ActorBackup.Engine.Verify.SnapshotVerifier.Run(repo.Keys, repo.Library, full);
        Assert.False(damaged.Ok);
        Assert.Contains(lists[1], damaged.BadIds);
        Assert.Contains(damaged.DamagedFiles, d => d.Contains("big.bin"));
        var failed = repo.Restore(full.Id, Path.Combine(dir.Path, "r3"));
        Assert.Contains(failed.Errors, e => e.Path.EndsWith("/big.bin") && e.Reason.Contains("the list of its chunks cannot be read"));

        // The list of a file that is still unchanged damaged: the next backup reads the file again instead of failing.
        Assert.Equal(sparseLists, Stored(rewritten, "sparse.img").ChunkListIds().ToList()); // the parent's lists, reused
        Damage(sparseLists[0]);
        var afterDamage = new Archiver(repo.Keys, repo.Library, repo.Library) { EntriesPerList = 2 }
            .Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Level = Level.Incremental }, rewritten);
        // sparse.img read again, and big.bin too if its new lists share the record damaged above; small.txt reused.
        var withDamagedLists = new[] { "big.bin", "sparse.img" }.Count(f => Stored(rewritten, f).ChunkListIds().Any(id => id == lists[1] || id == sparseLists[0]));
        Assert.Equal((ulong)(3 - withDamagedLists), afterDamage.Stats.FilesUnchanged);
        Assert.Empty(afterDamage.Errors);

        // A snapshot of a node format newer than this build reads (a field it would drop, as older builds drop chunk
        // lists): refused whole, not restored or verified with files missing.
        var newer = new SnapshotManifest(again) { NodeFormat = Archiver.NodeFormat + 1 };
        var refused = Assert.Throws<IOException>(() => new ActorBackup.Engine.Restore.Restorer(repo.Ring.For(newer), repo.Library).Run(newer, Path.Combine(dir.Path, "r4"), new()));
        Assert.Contains("newer ActorBackup", refused.Message);
        Assert.Throws<IOException>(() => ActorBackup.Engine.Verify.SnapshotVerifier.Run(repo.Keys, repo.Library, newer));
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "r4")));
        var fromNewer = new Archiver(repo.Keys, repo.Library, repo.Library).Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Level = Level.Incremental }, newer);
        Assert.Equal(0ul, fromNewer.Stats.FilesUnchanged); // none of its nodes taken as they are: every file read
    }

    /// <summary>A source that notes the id of every record read through it.</summary>
    private sealed class ReadsCounted(Codec.IChunkSource inner) : Codec.IChunkSource
    {
        public System.Collections.Concurrent.ConcurrentBag<Hashing.ChunkId> Ids { get; } = [];

        public ReadOnlySpan<byte> ReadPayload(Hashing.ChunkId id, ref byte[] buffer, out Volumes.RecordFlags flags)
        {
            Ids.Add(id);
            return inner.ReadPayload(id, ref buffer, out flags);
        }
    }

    [Fact]
    public void A_folder_whose_files_list_too_many_entries_together_keeps_its_biggest_files_in_lists()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllBytes(Path.Combine(src, "a.img"), TestRepo.RandomBytes(6_000_000, 1));
        File.WriteAllBytes(Path.Combine(src, "b.img"), TestRepo.RandomBytes(9_000_000, 2));
        File.WriteAllBytes(Path.Combine(src, "c.img"), TestRepo.RandomBytes(3_000_000, 3));
        File.WriteAllText(Path.Combine(src, "d.txt"), "one chunk");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // A budget that the three images pass together, not one by one (each well under EntriesPerList).
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library) { TreeEntryBudget = 8, SmallestListed = 2 }
            .Run(new BackupSet("s", [src]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id }, null);
        Assert.Empty(snap.Errors);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            var id = new Hashing.ChunkId(snap.RootTree.Span);
            foreach (var name in src.Split('/', StringSplitOptions.RemoveEmptyEntries)) id = trees.Load(id).Nodes.Single(n => n.FileName() == name).SubtreeId();
            var nodes = trees.Load(id).Nodes.ToDictionary(n => n.FileName());
            long Entries(Node n)
            {
                var copy = new Node(n);
                trees.ExpandChunkLists(copy);
                return copy.ChunkCount();
            }
            // The biggest first, until what the nodes list themselves is within the budget; the one-chunk file never.
            Assert.False(nodes["b.img"].ChunkLists.IsEmpty);
            Assert.True(nodes["d.txt"].ChunkLists.IsEmpty);
            Assert.InRange(nodes.Values.Where(n => n.ChunkLists.IsEmpty).Sum(n => (long)n.ChunkCount()), 0, 8);
            var listed = nodes.Values.Where(n => !n.ChunkLists.IsEmpty).Select(Entries).ToList();
            Assert.All(nodes.Values.Where(n => n.ChunkLists.IsEmpty && n.ChunkCount() >= 2), n => Assert.True(n.ChunkCount() <= listed.Min()));
        }
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }

    [Fact]
    public void An_entry_whose_extended_attributes_could_not_be_read_has_them_read_by_the_next_backup()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var file = Path.Combine(src, "noted");
        File.WriteAllText(file, "content");
        TreeCompare.SetXattr(file, "user.note", "kept"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("x", [src]);
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id };
        SnapshotManifest Keep(SnapshotManifest snap)
        {
            StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
            repo.Catalog.Save(snap);
            return snap;
        }
        var failing = new Archiver(repo.Keys, repo.Library, repo.Library) { BeforeXattrs = p => { if (p == file) throw new IOException("simulated EIO"); } };
        var first = Keep(failing.Run(set, options, null));
        Assert.Contains(first.Errors, e => e.Path == file && e.Reason.Contains("extended attributes are not backed up"));
        // Nothing changed on disk (the same inode and ctime): the next backup reads them all the same.
        var second = Keep(new Archiver(repo.Keys, repo.Library, repo.Library).Run(set, options with { Level = Level.Incremental }, first));
        Assert.Empty(second.Errors);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(second.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }

    [Fact]
    public void A_hard_link_group_leaves_the_archivers_table_once_all_its_names_are_met()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "in"));
        File.WriteAllText(Path.Combine(src, "in", "a"), "three names");
        TreeCompare.HardLink(src, "in/a"u8, "in/b"u8);
        TreeCompare.HardLink(src, "in/a"u8, "in/c"u8);
        File.WriteAllText(Path.Combine(src, "in", "p"), "one name outside the set");
        TreeCompare.HardLink(src, "in/p"u8, "outside"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library);
        var snap = archiver.Run(new BackupSet("x", [Path.Combine(src, "in")]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id }, null);
        Assert.Empty(snap.Errors);
        Assert.Equal(1, archiver.LinkGroupsHeld); // p's: its other name was never met
    }

    [Fact]
    public void A_file_below_a_symlinked_folder_of_the_set_is_read_and_one_swapped_in_on_its_way_is_not_even_opened()
    {
        using var dir = new TempDir();
        var real = dir.Sub("real");
        Directory.CreateDirectory(Path.Combine(real, "x"));
        File.WriteAllText(Path.Combine(real, "x", "a-mine"), "the user's own");
        File.WriteAllText(Path.Combine(real, "x", "later"), "read after the swap");
        var via = Path.Combine(dir.Path, "via");
        File.CreateSymbolicLink(via, real); // the operator's path goes through a symlink (/home -> /data/home)
        var other = dir.Sub("other");
        File.WriteAllText(Path.Combine(other, "later"), "another file: a device, say, whose open acts");
        using var watch = new TreeCompare.OpenWatch(Path.Combine(other, "later"));
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var later = Path.Combine(via, "x", "later");
        // Right before x/later is read (the walk has seen it), x becomes a symlink to another folder.
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library)
        {
            BeforeRead = path =>
            {
                if (path != later) return;
                Directory.Move(Path.Combine(real, "x"), Path.Combine(real, "x.old"));
                File.CreateSymbolicLink(Path.Combine(real, "x"), other);
            },
        };
        // One reader: a-mine is read before later, through the path's symlink, before the swap.
        var snap = archiver.Run(new BackupSet("x", [Path.Combine(via, "x")]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id, Parallelism = 1 }, null);
        var error = Assert.Single(snap.Errors);
        Assert.Equal(later, error.Path);
        Assert.Contains("replaced by another file", error.Reason);
        Assert.False(watch.Opened(), "the file swapped in was opened");
        Assert.Equal((ulong)"the user's own".Length, snap.Stats.BytesRead);
    }

    [Fact]
    public void A_set_path_below_a_symlinked_folder_restores_lists_and_is_reused_below_the_folder_it_leads_to()
    {
        using var dir = new TempDir();
        var real = dir.Sub("real");
        Directory.CreateDirectory(Path.Combine(real, "x", "sub"));
        File.WriteAllText(Path.Combine(real, "x", "a"), "the user's own");
        File.WriteAllText(Path.Combine(real, "x", "sub", "b"), "further down");
        Posix.Posix.Chmod(real, 0x1E8); // 0750: what the folder is recorded with, not the link's 0777
        var via = Path.Combine(dir.Path, "via");
        File.CreateSymbolicLink(via, real); // the operator's path goes through a symlink (/home -> /data/home)
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("x", [Path.Combine(via, "x")]);
        var full = repo.Backup(set, Level.Full);
        Assert.Empty(full.Errors);
        // Restored under the path as the operator named it (via a folder there), listed, and found again by the next backup.
        var expected = TreeCompare.Describe(Path.Combine(real, "x"));
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(full.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + via + "/x");
        Assert.Equal(0x1E8u, Posix.Posix.LStat(target + via)!.Value.Mode & 0xFFF); // recorded as the folder, read through the link
        using (var trees = new TreeReader(repo.Keys, repo.Library))
            Assert.Contains(TreeListing.Entries(trees, full, ""), e => e.Path.EndsWith("/via/x/sub/b", StringComparison.Ordinal));
        Assert.Equal(0UL, repo.Backup(set, Level.Incremental).Stats.BytesRead);

        // A snapshot made before this was mended holds the folder as a symlink node without a target: read as the folder.
        var old = TestRepo.WithTreeOf(repo, full, dir.Path, tree =>
        {
            var link = tree.Nodes.Single(n => n.FileName() == "via");
            link.Type = NodeType.Symlink;
            link.Mode = 0x1FF; // a symlink's lstat: 0777
        });
        old.Id = "made-before";
        ActorBackup.Engine.Catalog.ManifestSeal.Seal(repo.Ring.For(old), old);
        repo.Catalog.Save(old);
        var oldTarget = Path.Combine(dir.Path, "r-old");
        Assert.Empty(repo.Restore(old.Id, oldTarget).Errors);
        TreeCompare.AssertSame(expected, oldTarget + via + "/x");
        Assert.Equal(0x1EDu, Posix.Posix.LStat(oldTarget + via)!.Value.Mode & 0xFFF); // 0755, never the link's 0777
    }

    [Fact]
    public void A_forced_restore_over_folders_that_are_there_leaves_them_no_attribute_the_snapshot_does_not_hold()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var folder = Directory.CreateDirectory(Path.Combine(src, "folder")).FullName;
        File.WriteAllText(Path.Combine(folder, "inner"), "content");
        TreeCompare.SetXattr(folder, "user.note", "as backed up"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        // Since then, on the restored copy: an attribute added, one changed.
        TreeCompare.SetXattr(target + folder, "user.stale", "added later"u8);
        TreeCompare.SetXattr(target + folder, "user.note", "changed later"u8);
        Assert.Empty(repo.Restore(snap.Id, target, force: true).Errors);
        TreeCompare.AssertSame(expected, target + src);
    }

    [Fact]
    public void Further_names_of_a_file_whose_first_name_could_not_be_read_are_each_reported()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "a"));
        Directory.CreateDirectory(Path.Combine(src, "b"));
        var first = Path.Combine(src, "a", "x");
        File.WriteAllText(first, "one inode, three names");
        TreeCompare.HardLink(src, "a/x"u8, "b/y"u8);
        TreeCompare.HardLink(src, "a/x"u8, "b/z"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // The first name goes after the walk saw it and before it is read: the others are still there.
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library) { BeforeRead = path => { if (path == first) File.Delete(first); } };
        var snap = archiver.Run(new BackupSet("x", [src]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id }, null);
        Assert.Contains(snap.Errors, e => e.Path == first);
        foreach (var other in new[] { "y", "z" })
            Assert.Contains(snap.Errors, e => e.Path == Path.Combine(src, "b", other) && e.Reason.Contains("a further name of " + first));
    }

    [Fact]
    public void A_folder_on_the_way_swapped_for_a_symlink_during_the_walk_lists_nothing_through_it()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "x", "sub"));
        File.WriteAllText(Path.Combine(src, "x", "sub", "mine"), "the user's own");
        var other = dir.Sub("other");
        Directory.CreateDirectory(Path.Combine(other, "sub"));
        File.WriteAllText(Path.Combine(other, "sub", "secret"), "not in the backup set");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var sub = Path.Combine(src, "x", "sub");
        // Right before x/sub is listed (the walk has seen it), x becomes a symlink to a folder outside the set.
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library)
        {
            BeforeListing = path =>
            {
                if (path != sub) return;
                Directory.Move(Path.Combine(src, "x"), Path.Combine(src, "x.old"));
                File.CreateSymbolicLink(Path.Combine(src, "x"), other);
            },
        };
        var snap = archiver.Run(new BackupSet("x", [src]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id }, null);
        Assert.Contains(snap.Errors, e => e.Reason.Contains("not the folder the walk saw"));
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        var target = Path.Combine(dir.Path, "r");
        repo.Restore(snap.Id, target);
        Assert.Empty(Directory.GetFiles(target, "secret", SearchOption.AllDirectories));
    }

    [RootFact("mknod of a device needs root")]
    public void A_file_swapped_for_a_device_after_the_walk_is_refused_without_opening_the_device()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var file = Path.Combine(src, "data");
        File.WriteAllText(file, "a regular file when the walk sees it");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        TreeCompare.OpenWatch? watch = null;
        // Right before it is read, the file becomes a character device (1:3, the null device: opening it does nothing
        // but the open is seen; a watchdog's open would arm it).
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library)
        {
            BeforeRead = path =>
            {
                if (path != file) return;
                File.Delete(file);
                TreeCompare.MakeNode(file, 0x2000 | 0b110_000_000, 1, 3);
                watch = new TreeCompare.OpenWatch(file);
            },
        };
        var snap = archiver.Run(new BackupSet("x", [src]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id }, null);
        using (watch)
        {
            var error = Assert.Single(snap.Errors);
            Assert.Equal(file, error.Path);
            Assert.Contains("became a device", error.Reason);
            Assert.False(watch!.Opened(), "the device swapped in was opened");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // as before Linux 6.13, without listxattrat / getxattrat
    public void Extended_attributes_are_read_in_the_walked_folder_not_through_a_folder_swapped_in_on_the_way(bool olderKernel)
    {
        var before = Posix.Posix.NoXattrAt;
        Posix.Posix.NoXattrAt |= olderKernel; // process-wide: a test beside it reads its attributes the same way, with the same result
        try
        {
            SwappedFolderKeepsItsXattrs();
        }
        finally
        {
            Posix.Posix.NoXattrAt = before;
        }
    }

    private static void SwappedFolderKeepsItsXattrs()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var mine = Directory.CreateDirectory(Path.Combine(src, "x", "sub", "d")).FullName;
        TreeCompare.SetXattr(mine, "user.note", "mine"u8);
        var other = dir.Sub("other");
        var theirs = Directory.CreateDirectory(Path.Combine(other, "sub", "d")).FullName;
        TreeCompare.SetXattr(theirs, "user.evil", "theirs"u8); // think security.capability on a binary of the same name
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // Right before d's attributes are read (the walk has stat-ed it in sub), x becomes a symlink to another tree.
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library)
        {
            BeforeXattrs = path =>
            {
                if (path != mine) return;
                Directory.Move(Path.Combine(src, "x"), Path.Combine(src, "x.old"));
                File.CreateSymbolicLink(Path.Combine(src, "x"), other);
            },
        };
        var snap = archiver.Run(new BackupSet("x", [src]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id }, null);
        Assert.Contains(snap.Errors, e => e.Path == mine && e.Reason.Contains("not the folder the walk saw")); // nor listed through it
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        var target = Path.Combine(dir.Path, "r");
        repo.Restore(snap.Id, target);
        var restored = TreeCompare.Describe(target + src)["x/sub/d"];
        Assert.Contains("user.note", restored);
        Assert.DoesNotContain("user.evil", restored);
    }

    [RootFact("Linux takes user.* attributes on files and folders only; trusted.* and security.* need root")]
    public void Symlinks_FIFOs_and_devices_keep_their_extended_attributes()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.CreateSymbolicLink(Path.Combine(src, "link"), "/nowhere");
        TreeCompare.SetXattr(Path.Combine(src, "link"), "trusted.label", "on the link itself"u8);
        Posix.Posix.MkFifo(Path.Combine(src, "fifo"), 0x1A4);
        TreeCompare.SetXattr(Path.Combine(src, "fifo"), "trusted.label", "fifo"u8);
        TreeCompare.MakeNode(Path.Combine(src, "null"), 0x2000 | 0x1B6, 1, 3);
        TreeCompare.SetXattr(Path.Combine(src, "null"), "security.note", "a device"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        Assert.Contains("xattr trusted.label=", expected["link"]);
        Assert.Contains("xattr security.note=", expected["null"]);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
    }

    [RootFact("immutable and append-only need CAP_LINUX_IMMUTABLE")]
    public void File_flags_come_back_set_after_links_times_and_contents()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var locked = Directory.CreateDirectory(Path.Combine(src, "locked")).FullName;
        File.WriteAllText(Path.Combine(locked, "inside"), "in an immutable folder");
        File.WriteAllText(Path.Combine(src, "immutable"), "cannot change");
        Posix.Posix.Link(Path.Combine(src, "immutable"), Path.Combine(src, "second name")); // a link to it is made before it is locked
        File.WriteAllText(Path.Combine(src, "log"), "append only");
        File.WriteAllText(Path.Combine(src, "scratch"), "no dump, no atime");
        TreeCompare.SetFlags(Path.Combine(src, "immutable"), FileFlags.Immutable);
        TreeCompare.SetFlags(Path.Combine(src, "log"), FileFlags.AppendOnly);
        TreeCompare.SetFlags(Path.Combine(src, "scratch"), FileFlags.NoDump | 0x80);
        TreeCompare.SetFlags(locked, FileFlags.Immutable);
        TreeCompare.SetFlags(dir.Path, FileFlags.NoDump); // a folder above the backup's path: its flags from statx
        using var restores = new TempDir(); // not below it: what is made there would inherit nodump
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var expected = TreeCompare.Describe(src);
        Assert.Contains("flags 10", expected["immutable"]);
        Assert.Contains("flags 20", expected["log"]);
        Assert.Contains("flags 10", expected["locked"]);
        var target = Path.Combine(restores.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src);
        Assert.Equal(FileFlags.NoDump, TreeCompare.Flags(target + dir.Path) & TreeCompare.SettableFlags);
        // Only the second name asked for: the file comes back under it, with its flags.
        var only = Path.Combine(restores.Path, "r-second");
        Assert.Empty(repo.Restore(snap.Id, only, [src + "/second name"]).Errors);
        Assert.Equal(FileFlags.Immutable, TreeCompare.Flags(Path.Combine(only + src, "second name")) & TreeCompare.SettableFlags);

        // An unchanged file keeps its flags from the parent; a chattr changes the ctime, so a new flag is read.
        TreeCompare.SetFlags(Path.Combine(src, "log"), 0);
        var again = repo.Backup(new BackupSet("x", [src]), Level.Incremental);
        Assert.Equal(3ul, again.Stats.FilesUnchanged); // immutable, scratch and inside; log's chattr changed its ctime
        var second = Path.Combine(restores.Path, "r2");
        Assert.Empty(repo.Restore(again.Id, second).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), second + src);
    }

    [BtrfsFact]
    public void No_copy_on_write_and_compression_flags_come_back_on_btrfs_which_takes_them_only_on_an_empty_file()
    {
        using var btrfs = new LoopBtrfs();
        var src = Directory.CreateDirectory(Path.Combine(btrfs.Path, "src")).FullName;
        var flagged = new Dictionary<string, uint> { ["vm.raw"] = 0x00800000, ["logs.txt"] = 0x4, ["media.mkv"] = 0x400 };
        foreach (var (name, flag) in flagged)
        {
            var path = Path.Combine(src, name);
            File.WriteAllBytes(path, []);
            TreeCompare.SetFlags(path, flag); // as chattr +C / +c / +m: while it is empty
            File.WriteAllBytes(path, TestRepo.RandomBytes(300_000, name.Length));
            Assert.Equal(flag, TreeCompare.Flags(path) & TreeCompare.SettableFlags);
        }
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var target = Path.Combine(btrfs.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }

    [BtrfsFact]
    public void A_restore_onto_btrfs_mounted_to_compress_writes_compressed_files() => RestoresCompressed((_, _) =>
    {
        var btrfs = new LoopBtrfs("compress=zstd");
        return (btrfs, Path.Combine(btrfs.Path, "r"));
    });

    [BtrfsFact]
    public void A_restore_to_a_folder_with_a_btrfs_mounted_below_it_writes_compressed_files_there() =>
        // The target is not on btrfs; the folder the file is restored into is.
        RestoresCompressed((target, src) => (new LoopBtrfs("compress=zstd", at: Directory.CreateDirectory(target + src).FullName), target));

    /// <summary>
    /// A log that compresses well, restored where <paramref name="mount"/> mounts a btrfs that compresses: given a target
    /// folder (not made yet) and the source folder the restore puts below it, it mounts one and says where to restore to.
    /// </summary>
    private static void RestoresCompressed(Func<string, string, (LoopBtrfs Btrfs, string Target)> mount)
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var text = string.Concat(Enumerable.Range(0, 120_000).Select(i => $"log line {i}: nothing to report\n"));
        File.WriteAllText(Path.Combine(src, "service.log"), text); // 4 MB that compress well
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var (btrfs, target) = mount(Path.Combine(dir.Path, "restored here"), src); // a space: /proc/self/mountinfo writes it \040
        using (btrfs)
        {
            Assert.Empty(repo.Restore(snap.Id, target, force: true).Errors); // forced: the folder mounted on is there already
            Assert.Equal(text, File.ReadAllText(target + src + "/service.log"));
            // Preallocated, btrfs would have written it in place, uncompressed (no extent encoded).
            Assert.True(LoopBtrfs.CompressedExtents(target + src + "/service.log") > 0, "restored uncompressed onto a btrfs mounted to compress");
        }
    }

    [Fact]
    public void A_backup_leaves_access_times_as_they_were_and_records_them_when_asked()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "folder"));
        File.WriteAllBytes(Path.Combine(src, "folder", "data"), TestRepo.RandomBytes(100_000, 7));
        var past = new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastAccessTimeUtc(Path.Combine(src, "folder", "data"), past);
        Directory.SetLastAccessTimeUtc(Path.Combine(src, "folder"), past);
        var before = TreeCompare.Atime(Path.Combine(src, "folder", "data"));
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var plain = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Equal(before, TreeCompare.Atime(Path.Combine(src, "folder", "data"))); // read with O_NOATIME: a week-old atime stays
        Assert.Equal(new DateTimeOffset(past).ToUnixTimeSeconds(), TreeCompare.Atime(Path.Combine(src, "folder")).Sec); // listed with O_NOATIME

        var withAtime = repo.Backup(new BackupSet("x", [src], Atime: true), Level.Full);
        var expected = TreeCompare.Describe(src, atimes: true);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(withAtime.Id, target).Errors);
        TreeCompare.AssertSame(expected, target + src, atimes: true);
        var without = Path.Combine(dir.Path, "r2");
        Assert.Empty(repo.Restore(plain.Id, without).Errors);
        Assert.NotEqual(before, TreeCompare.Atime(Path.Combine(without + src, "folder", "data"))); // not recorded: not set
    }

    [Fact]
    public void Blocks_of_zeros_are_left_as_holes_when_asked()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        const int MiB = 1024 * 1024;
        var content = new byte[8 * MiB];
        TestRepo.RandomBytes(2 * MiB, 8).CopyTo(content, 0);
        TestRepo.RandomBytes(MiB + 100, 9).CopyTo(content, 6 * MiB); // 4 MiB of zeros between, and zeros after
        File.WriteAllBytes(Path.Combine(src, "vm.raw"), content); // written out: no holes in the source
        Assert.True(TreeCompare.AllocatedBytes(Path.Combine(src, "vm.raw")) >= 8L * MiB);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target, new Restore.RestoreOptions { Sparse = true }).Errors);
        var restored = Path.Combine(target + src, "vm.raw");
        Assert.Equal(content, File.ReadAllBytes(restored));
        var allocated = TreeCompare.AllocatedBytes(restored);
        Assert.True(allocated <= 3L * MiB + 200 * 1024, $"{allocated} bytes allocated: the zeros were written");
        var plain = Path.Combine(dir.Path, "r2");
        Assert.Empty(repo.Restore(snap.Id, plain).Errors);
        Assert.True(TreeCompare.AllocatedBytes(Path.Combine(plain + src, "vm.raw")) >= 8L * MiB); // by default written as they are
    }

    [Fact]
    public void A_disk_image_rewritten_in_scattered_blocks_stores_about_the_blocks_that_changed()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        const int Size = 32 * 1024 * 1024, Block = 4096;
        // Half-compressible: each 4 KiB block is half random, half zeros. The same bytes as an image and as a plain file.
        var image = new byte[Size];
        var random = new Random(11);
        for (var at = 0; at < Size; at += Block) random.NextBytes(image.AsSpan(at, Block / 2));
        File.WriteAllBytes(Path.Combine(src, "disk.img"), image);
        File.WriteAllBytes(Path.Combine(src, "disk.bin"), image);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("vm", [src]);
        repo.Backup(set, Level.Full);

        // 1% of the 4 KiB blocks rewritten at random places, the same in both files.
        var blocks = Size / Block;
        foreach (var b in Enumerable.Range(0, blocks / 100).Select(_ => random.Next(blocks)))
            random.NextBytes(image.AsSpan(b * Block, Block / 2));
        var imageNew = Measure("disk.img");
        var plainNew = Measure("disk.bin");
        ulong Measure(string name)
        {
            File.WriteAllBytes(Path.Combine(src, name), image);
            var only = repo.Backup(new BackupSet("vm-" + name, [Path.Combine(src, name)]), Level.Full);
            return only.Stats.BytesNew;
        }
        // The image is cut finer (BlockFiles): about the chunks the changes touch; the plain file, nearly all of it again.
        Assert.True(imageNew < Size / 4, $"the image stored {imageNew} new bytes of {Size} after rewriting 1% of its blocks");
        Assert.True(plainNew > Size / 2, $"the plain file stored {plainNew}: not the policy's chunks?");
        var target = Path.Combine(dir.Path, "r");
        var latest = repo.Backup(set, Level.Incremental);
        Assert.Empty(repo.Restore(latest.Id, target).Errors);
        Assert.Equal(image, File.ReadAllBytes(Path.Combine(target + src, "disk.img")));
        Assert.True(BlockFiles.Are("/var/lib/postgresql/16/main/base/5/16384.1", 1L << 30) && BlockFiles.Are("/x/ibdata1", 1L << 30) && !BlockFiles.Are("/x/movie.mkv", 1L << 30));
    }

    [Fact]
    public void Images_and_databases_whose_names_say_nothing_are_known_by_their_first_bytes()
    {
        static byte[] Head(params (int At, byte[] Bytes)[] parts)
        {
            var head = new byte[BlockFiles.HeadSize];
            new Random(5).NextBytes(head.AsSpan(1100)); // content after the headers looked at
            foreach (var (at, bytes) in parts) bytes.CopyTo(head, at);
            return head;
        }
        var mbr = Head((446, [0x80, 0, 0, 0, 0x83]), (510, [0x55, 0xAA]));
        byte[][] known =
        [
            Head((0, [(byte)'Q', (byte)'F', (byte)'I', 0xFB])), Head((0, "KDMV"u8.ToArray())), Head((0, "vhdxfile"u8.ToArray())), Head((0, "conectix"u8.ToArray())),
            Head((0, "WithoutFreeSpace"u8.ToArray())), Head((0, [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE])), Head((0, "SQLite format 3\0"u8.ToArray())),
            Head((0, "XFSB"u8.ToArray())), Head((64, [0x7F, 0x10, 0xDA, 0xBE])), mbr, Head((510, [0x55, 0xAA]), (512, "EFI PART"u8.ToArray())),
            Head((0, [0xEB, 0x52, 0x90]), (510, [0x55, 0xAA])), Head((1024 + 24, [2, 0, 0, 0]), (1024 + 56, [0x53, 0xEF])),
            Head((512, "LABELONE"u8.ToArray())), Head((4086, "SWAPSPACE2"u8.ToArray())), Head((16, [0xED, 0xDA, 0x0C, 0xED])),
        ];
        Assert.All(known, h => Assert.True(BlockFiles.HeadSays(h), Convert.ToHexString(h.AsSpan(0, 16))));
        byte[][] unknown =
        [
            new byte[BlockFiles.HeadSize], Head(), "#!/bin/sh\necho hello\n"u8.ToArray(), [], Head((0, "SQLite format 2"u8.ToArray())),
            Head((446, [0x42, 0, 0, 0, 0x83]), (510, [0x55, 0xAA])), // 0x55AA by chance: an entry neither active nor inactive
            Head((446, new byte[64]), (510, [0x55, 0xAA])), // no partition used
            Head((1024 + 24, [40, 0, 0, 0]), (1024 + 56, [0x53, 0xEF])), // 0xEF53 by chance: no block size it could be
        ];
        Assert.All(unknown, h => Assert.False(BlockFiles.HeadSays(h), Convert.ToHexString(h.AsSpan(0, Math.Min(16, h.Length)))));
        Assert.False(BlockFiles.Are("/x/vm", (ulong)BlockFiles.MinSize - 1, () => mbr)); // too small to matter: not even looked at
        Assert.True(BlockFiles.Are("/x/vm", (ulong)BlockFiles.MinSize, () => mbr));

        // Through a backup: a disk without an extension is cut as finely as a .img; the same bytes without the header are not.
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var disk = TestRepo.RandomBytes(20 * 1024 * 1024, 12);
        mbr.AsSpan(0, 512).CopyTo(disk);
        File.WriteAllBytes(Path.Combine(src, "vm-disk"), disk);
        disk.AsSpan(0, 512).Clear();
        File.WriteAllBytes(Path.Combine(src, "blob"), disk);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        using var trees = new TreeReader(repo.Keys, repo.Library);
        var chunks = TreeListing.Entries(trees, snap, "").Where(e => e.Node.Type == NodeType.File).ToDictionary(e => Path.GetFileName(e.Path), e => e.Node.ChunkSizes.Count);
        Assert.True(chunks["vm-disk"] > 300, $"vm-disk in {chunks["vm-disk"]} chunks: not cut finer"); // 32 KiB on average: about 640
        Assert.True(chunks["blob"] < 100, $"blob in {chunks["blob"]} chunks"); // 1 MiB on average: about 20
    }

    [Fact]
    public void A_bigger_image_is_cut_less_finely_so_that_it_keeps_about_two_million_entries_at_most()
    {
        const long GiB = 1L << 30;
        int? BandOf(long size) => BlockFiles.Level("/x/vm.qcow2", (ulong)size);
        Assert.Equal([0, 0, 1, 1, 2, 2, 3, 3, null, null, null],
            new[] { BlockFiles.MinSize, 32 * GiB, 32 * GiB + 1, 64 * GiB, 64 * GiB + 1, 256 * GiB, 256 * GiB + 1, 512 * GiB - 1, 512 * GiB, 2048 * GiB, BlockFiles.MinSize - 1 }.Select(BandOf));
        foreach (var (o, end) in BlockFiles.Chunkers.Zip([32 * GiB, 64 * GiB, 256 * GiB, 512 * GiB]))
            Assert.InRange(end / o.AverageSize, 1L << 20, 2L << 20);

        // Through a backup: a 40 GiB image (sparse: 16 MiB of data in it) with 1% of its data's 4 KiB blocks rewritten
        // stores about the 64 KiB chunks they fall in, not every 1 MiB chunk (nearly all of its data again).
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var path = Path.Combine(src, "big.img");
        const int Data = 16 * 1024 * 1024, Block = 4096;
        var random = new Random(21);
        var data = new byte[Data];
        for (var at = 0; at < Data; at += Block) random.NextBytes(data.AsSpan(at, Block / 2));
        void Write()
        {
            using var f = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write);
            f.SetLength(40 * GiB);
            f.Position = 20 * GiB; // the data in the middle: the file's size alone chooses the band
            f.Write(data);
        }
        Write();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("vm", [src]);
        repo.Backup(set, Level.Full);
        foreach (var b in Enumerable.Range(0, Data / Block / 100).Select(_ => random.Next(Data / Block)))
            random.NextBytes(data.AsSpan(b * Block, Block / 2));
        Write();
        var changed = repo.Backup(set, Level.Incremental);
        Assert.True(changed.Stats.BytesNew < Data / 3, $"the 40 GiB image stored {changed.Stats.BytesNew} new bytes after 1% of its data's blocks changed");
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(changed.Id, target).Errors);
        using var restored = File.OpenRead(Path.Combine(target + src, "big.img"));
        Assert.Equal(40 * GiB, restored.Length);
        var back = new byte[Data];
        restored.Position = 20 * GiB;
        restored.ReadExactly(back);
        Assert.Equal(data, back);
    }

    [Fact]
    public void Owners_are_recorded_by_name_too_and_a_restore_maps_names_unless_told_to_keep_numbers()
    {
        uint? Here(string name) => name switch { "alice" => 2001, _ => null };
        Assert.Equal(2001u, OwnerNames.Resolve(1001, "alice", numeric: false, Here)); // another host: alice is 2001 there
        Assert.Equal(1001u, OwnerNames.Resolve(1001, "alice", numeric: true, Here));  // --numeric-owner
        Assert.Equal(1001u, OwnerNames.Resolve(1001, "bob", numeric: false, Here));   // a name the host does not know
        Assert.Equal(1001u, OwnerNames.Resolve(1001, "", numeric: false, Here));      // an id that had no name
        var names = new OwnerNames();
        Assert.Equal(("root", "root", 0u, 0u), (names.User(0), names.Group(0), names.UserId("root")!.Value, names.GroupId("root")!.Value));
        Assert.Equal("", names.User(4_242_424));
        Assert.Null(names.UserId("no-such-user-here"));

        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "mine"), "x");
        if (Posix.Posix.IsRoot)
        {
            File.WriteAllText(Path.Combine(src, "nameless"), "y");
            Posix.Posix.LChown(Path.Combine(src, "nameless"), 4_242_424, 4_242_424);
        }
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("owners", [src]), Level.Full);
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            var entries = TreeListing.Entries(trees, snap, "").ToDictionary(e => e.Path, e => e.Node);
            var mine = entries[src + "/mine"];
            Assert.Equal((names.User(mine.Uid), names.Group(mine.Gid)), (mine.User, mine.Group));
            Assert.NotEqual("", mine.User);
            if (Posix.Posix.IsRoot) Assert.Equal(("", 4_242_424u), (entries[src + "/nameless"].User, entries[src + "/nameless"].Uid));
        }
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src); // on the same host, by name or by number alike
        var numeric = Path.Combine(dir.Path, "n");
        Assert.Empty(repo.Restore(snap.Id, numeric, numericOwner: true).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), numeric + src);
    }

    [Fact]
    public void The_users_and_groups_an_ACL_names_are_recorded_by_name_and_mapped_on_restore_as_the_owner_is()
    {
        const uint Unset = uint.MaxValue;
        var acl = TreeCompare.Acl((0x01, 6, Unset), (0x02, 4, 0), (0x04, 4, Unset), (0x08, 4, 0), (0x10, 4, Unset), (0x20, 0, Unset));
        Assert.Equal([(false, 0u), (true, 0u)], AclIds.Named(acl));
        Assert.Equal([(false, 66u), (true, 77u)], AclIds.Named(AclIds.Map(acl, (group, _) => group ? 77u : 66u, out var none)));
        Assert.Empty(none);
        Assert.Equal([1, 2, 3], AclIds.Map([1, 2, 3], (_, _) => 9, out _)); // not an ACL's shape: left as it is
        // Ids mapped out of order are put back in the kernel's order (by id within users); two that come to one id keep the first.
        var three = TreeCompare.Acl((0x01, 6, Unset), (0x02, 4, 1000), (0x02, 6, 2000), (0x02, 7, 3000), (0x04, 4, Unset), (0x10, 7, Unset), (0x20, 0, Unset));
        var remapped = AclIds.Map(three, (_, id) => id switch { 1000 => 5000, 2000 => 4000, _ => 4000 }, out var merged);
        Assert.Equal([(false, 4000u), (false, 5000u)], AclIds.Named(remapped));
        Assert.Equal([(false, 3000u, 4000u)], merged);
        Assert.Equal(4 + 6 * 8, remapped.Length);
        Assert.Equal([(false, 4000u), (false, 5000u)], AclIds.Named(AclIds.Map(three, (_, id) => id switch { 1000 => 5000, 2000 => 4000, _ => 6000 }, out _))[..2]);

        using var dir = new TempDir();
        var src = dir.Sub("src");
        var shared = Path.Combine(src, "shared");
        File.WriteAllText(shared, "user root and group root may read it");
        TreeCompare.SetXattr(shared, "system.posix_acl_access", acl);
        var two = Path.Combine(src, "two");
        File.WriteAllText(two, "users root and daemon may read it");
        TreeCompare.SetXattr(two, "system.posix_acl_access", TreeCompare.Acl((0x01, 6, Unset), (0x02, 4, 0), (0x02, 6, 1), (0x04, 4, Unset), (0x10, 6, Unset), (0x20, 0, Unset)));
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("x", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            var node = TreeListing.Entries(trees, snap, "").Single(e => e.Path == shared).Node;
            Assert.Equal(("root", "root"), (node.AclUsers.AclName(0), node.AclGroups.AclName(0)));
        }
        List<(bool, uint)> RestoredAcl(string target, string file) =>
            AclIds.Named(Posix.Posix.ReadXattrs(target + file).Single(x => Encoding.UTF8.GetString(x.Name) == "system.posix_acl_access").Value);
        // Restored on a host where root's names have other ids, daemon the same as root (a test's stand-in for another
        // host's user database).
        Restore.Restorer Elsewhere() => new(repo.Ring.For(snap), repo.Library)
            { UserIds = n => n is "root" or "daemon" ? 4321 : null, GroupIds = n => n == "root" ? 4322 : null };
        var mapped = Path.Combine(dir.Path, "mapped");
        var error = Assert.Single(Elsewhere().Run(snap, mapped, new Restore.RestoreOptions()).Errors);
        Assert.Equal(two, error.Path);
        Assert.Contains("has id 4321 here, as another entry of the ACL does", error.Reason);
        Assert.Equal([(false, 4321u), (true, 4322u)], RestoredAcl(mapped, shared));
        Assert.Equal([(false, 4321u)], RestoredAcl(mapped, two)); // the kernel took it: one entry for 4321
        // On a host that knows none of these names: the recorded ids are kept, and one error a name says so and how many
        // entries it took (id 0 may be another user's there), never one an entry.
        var stranger = new Restore.Restorer(repo.Ring.For(snap), repo.Library) { UserIds = _ => null, GroupIds = _ => null }
            .Run(snap, Path.Combine(dir.Path, "stranger"), new Restore.RestoreOptions()).Errors;
        Assert.Equal(["group 'root'", "user 'daemon'", "user 'root'"],
            stranger.Select(e => System.Text.RegularExpressions.Regex.Match(e.Reason, "of ((user|group) '[a-z]+')").Groups[1].Value).Order(StringComparer.Ordinal));
        Assert.Contains(stranger, e => e.Reason.Contains("of user 'root' (id 0 where backed up) kept id 0: this host has no user of that name") && e.Reason.Contains("--numeric-owner"));
        var numeric = Path.Combine(dir.Path, "numeric");
        Assert.Empty(Elsewhere().Run(snap, numeric, new Restore.RestoreOptions { NumericOwner = true }).Errors);
        Assert.Equal([(false, 0u), (true, 0u)], RestoredAcl(numeric, shared));
        Assert.Equal([(false, 0u), (false, 1u)], RestoredAcl(numeric, two));
        // A snapshot of "/" restored whole brings its own user database: owners by number, unasked (a rescue system's
        // names are not the restored system's).
        var system = new SnapshotManifest(snap) { Root = new Node { Mode = 0x1ED } };
        var wholeSystem = Path.Combine(dir.Path, "system");
        Assert.Empty(Elsewhere().Run(system, wholeSystem, new Restore.RestoreOptions()).Errors);
        Assert.Equal([(false, 0u), (true, 0u)], RestoredAcl(wholeSystem, shared));
        if (Posix.Posix.IsRoot) // owners are given back by root only; the file's own owner is mapped as its ACL's users are
        {
            Assert.Equal((4321u, 4322u), (Posix.Posix.LStat(mapped + shared)!.Value.Uid, Posix.Posix.LStat(mapped + shared)!.Value.Gid));
            Assert.Equal((0u, 0u), (Posix.Posix.LStat(numeric + shared)!.Value.Uid, Posix.Posix.LStat(numeric + shared)!.Value.Gid));
        }
    }

    [Fact]
    public void Exclude_globs_see_names_as_listings_show_them()
    {
        var excludes = new ExcludeMatcher(["bad*", @"*\xfe"]);
        Assert.True(excludes.IsExcluded("/s/", "bad\udcffname"));
        Assert.True(excludes.IsExcluded("/s/", "x\udcfe")); // the byte 0xfe, as ls shows it
        Assert.False(excludes.IsExcluded("/s/", "x\udcfd"));
        // A backslash is a character of a Linux name, never a folder separator: '*' crosses it, '/' is not it.
        var backslashes = new ExcludeMatcher(["*.tmp", @"/s/a\\b/keep", "/s/c/*"]);
        Assert.True(backslashes.IsExcluded("/s/", @"x\y.tmp"));
        Assert.True(backslashes.IsExcluded(@"/s/a\b/", "keep"));
        Assert.False(backslashes.IsExcluded("/s/a/b/", "keep"));
        Assert.False(backslashes.IsExcluded("/s/", @"c\d"));
    }

    [Fact]
    public void A_relative_path_pattern_matches_the_paths_end_at_any_depth_as_restic_reads_it()
    {
        var excludes = new ExcludeMatcher([".cache/thumbnails", "home/*/Downloads", "/srv/tmp"], track: true);
        Assert.True(excludes.IsExcluded("/home/a/.cache/", "thumbnails"));
        Assert.True(excludes.IsExcluded("/.cache/", "thumbnails")); // at the root too
        Assert.False(excludes.IsExcluded("/", "home")); // a folder on the way is not it
        Assert.True(excludes.IsExcluded("/home/b/", "Downloads"));
        Assert.True(excludes.IsExcluded("/mnt/old/home/b/", "Downloads"));
        Assert.False(excludes.IsExcluded("/home/a/.cache/", "thumbnails-old"));
        Assert.False(excludes.IsExcluded("/x/srv/", "tmp")); // one beginning with '/' names the whole path
        Assert.True(excludes.IsExcluded("/srv/", "tmp"));
        Assert.Empty(excludes.Unmatched);
        var nothing = new ExcludeMatcher(["etc/fstab"], track: true);
        Assert.False(nothing.IsExcluded("/srv/", "fstab"));
        Assert.Equal(["etc/fstab"], nothing.Unmatched); // said once, however many forms it matches by
    }

    [Fact]
    public void Any_valid_name_round_trips_byte_for_byte()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var names = new HashSet<string>(StringComparer.Ordinal);
        NameGen.Sample(n => { lock (names) names.Add(n); }, iter: 200, threads: 1);
        names.Add(new string('é', 127)); // 254 bytes
        names.Add("tab\tand space and\nnewline");
        foreach (var n in names) File.WriteAllText(Path.Combine(src, n), n);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("names", [src]), Level.Full);
        Assert.Empty(snap.Errors);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        var restored = Directory.GetFiles(target + src).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(names.Order(StringComparer.Ordinal), restored.Order(StringComparer.Ordinal)!);
        foreach (var n in names) Assert.Equal(n, File.ReadAllText(Path.Combine(target + src, n)));
    }
}

public class ReuseCheckTests
{
    /// <summary>A library that has lost one chunk (as after a damaged volume was dropped).</summary>
    private sealed class LosingSink(Library.DiskLibrary inner, Hashing.ChunkId lost) : Codec.IChunkSink
    {
        public bool TryReserve(Hashing.ChunkId id) => inner.TryReserve(id);
        public void Append(Hashing.ChunkId id, Volumes.RecordFlags flags, ReadOnlySpan<byte> payload) => inner.Append(id, flags, payload);
        public void Release(Hashing.ChunkId id) => inner.Release(id);
        public bool Contains(Hashing.ChunkId id) => id != lost && inner.Contains(id);
        public IReadOnlySet<Hashing.ChunkId> Missing(IReadOnlyList<Hashing.ChunkId> ids) => ids.Where(i => !Contains(i)).ToHashSet();
        public void Commit() => inner.Commit();
        /// <summary>Every id the snapshot references (what prune keeps for it).</summary>
        public readonly HashSet<Hashing.ChunkId> Referenced = [];
        public void AddReferences(string snapshot, IReadOnlyList<Hashing.ChunkId> ids)
        {
            lock (Referenced) Referenced.UnionWith(ids);
            ((Codec.IChunkSink)inner).AddReferences(snapshot, ids);
        }
    }

    [Fact]
    public void A_file_that_is_a_path_of_the_set_inside_another_is_listed_once_when_unchanged()
    {
        // The enclosing walk keeps it as the parent's entry (no node made); the path's own walk finds it there.
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "kept"), "kept");
        File.WriteAllText(Path.Combine(src, "other"), "other");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src, Path.Combine(src, "kept")]);
        var full = repo.Backup(set, Level.Full);
        var incr = repo.Backup(set, Level.Incremental);
        Assert.Empty(incr.Errors);
        Assert.Equal(2ul, incr.Stats.FilesUnchanged);
        // Every folder of the set as in the parent (the folders above it, /tmp among them, change as other tests run).
        Assert.Equal(TreeOf(repo, full, src), TreeOf(repo, incr, src));
        using var trees = new TreeReader(repo.Keys, repo.Library);
        Assert.Equal(["kept", "other"], trees.Load(TreeOf(repo, incr, src)).Nodes.Select(n => n.FileName()));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_unchanged_file_whose_chunk_the_library_lost_is_read_again(bool vanishes)
    {
        // Kept as the parent's entry (no node made) until the library said it lost its chunk; then a node of its own,
        // read again: the folder's references come from that node (none when the file is gone), not the parent's bytes.
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "kept"), "kept");
        File.WriteAllText(Path.Combine(src, "lost"), "lost");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var full = repo.Backup(set, Level.Full);
        var lost = repo.Keys.Hasher.Hash("lost"u8);
        var sink = new LosingSink(repo.Library, lost);
        var archiver = new Archiver(repo.Keys, sink, repo.Library) { BeforeRead = path => { if (vanishes && path.EndsWith("/lost")) File.Delete(path); } };
        var incr = archiver.Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Incremental, Library = repo.Library.Id }, full);
        Assert.Equal(1ul, incr.Stats.FilesUnchanged);
        Assert.Equal(vanishes ? 0ul : 4ul, incr.Stats.BytesRead);
        Assert.Equal(vanishes, incr.Errors.Any(e => e.Path.EndsWith("/lost")));
        Assert.Contains(repo.Keys.Hasher.Hash("kept"u8), sink.Referenced);
        Assert.Equal(!vanishes, sink.Referenced.Contains(lost)); // stored again under the same id, or gone with its file
        using var trees = new TreeReader(repo.Keys, repo.Library);
        Assert.Equal(vanishes ? ["kept"] : ["kept", "lost"], trees.Load(TreeOf(repo, incr, src)).Nodes.Select(n => n.FileName()));
    }

    /// <summary>A library as it is, counting the chunks asked to be stored (a reused tree is not).</summary>
    private sealed class CountingSink(Library.DiskLibrary inner, Hashing.ChunkId? lost = null) : Codec.IChunkSink
    {
        public readonly List<Hashing.ChunkId> Reserved = [];
        public bool TryReserve(Hashing.ChunkId id)
        {
            lock (Reserved) Reserved.Add(id);
            return inner.TryReserve(id);
        }
        public void Append(Hashing.ChunkId id, Volumes.RecordFlags flags, ReadOnlySpan<byte> payload) => inner.Append(id, flags, payload);
        public void Release(Hashing.ChunkId id) => inner.Release(id);
        public bool Contains(Hashing.ChunkId id) => id != lost && inner.Contains(id);
        public IReadOnlySet<Hashing.ChunkId> Missing(IReadOnlyList<Hashing.ChunkId> ids) => ids.Where(i => !Contains(i)).ToHashSet();
        public void Commit() => inner.Commit();
    }

    /// <summary>The id of the tree of folder <paramref name="path"/> in a snapshot.</summary>
    internal static Hashing.ChunkId TreeOf(Repository.Repository repo, SnapshotManifest snapshot, string path)
    {
        using var trees = new TreeReader(repo.Keys, repo.Library);
        var id = new Hashing.ChunkId(snapshot.RootTree.Span);
        foreach (var name in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            id = trees.Load(id).Nodes.Single(n => n.FileName() == name).SubtreeId();
        return id;
    }

    [Fact]
    public void A_file_that_says_it_is_empty_but_is_not_is_read_to_its_end()
    {
        // procfs gives its files size 0 and content: the read goes past the size the walk saw, to the real end.
        var status = $"/proc/{Environment.ProcessId}/status";
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        Assert.Equal(0, new FileInfo(status).Length);
        var snap = repo.Backup(new BackupSet("proc", [status]), Level.Full);
        var target = Path.Combine(dir.Path, "r");
        repo.Restore(snap.Id, target);
        var restored = File.ReadAllText(target + status);
        Assert.StartsWith("Name:", restored);
        Assert.Contains("\nPid:", restored);
    }

    [Fact]
    public void An_unchanged_file_keeps_its_parents_node_only_when_every_field_would_be_the_same()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "folder"));
        for (var i = 0; i < 3; i++) File.WriteAllBytes(Path.Combine(src, "folder", $"f{i}"), TestRepo.RandomBytes(1000 + i, i));
        var past = new DateTime(2021, 5, 6, 7, 8, 9, DateTimeKind.Utc);
        foreach (var f in Directory.GetFiles(Path.Combine(src, "folder"))) File.SetLastAccessTimeUtc(f, past);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var plain = repo.Backup(new BackupSet("x", [src]), Level.Full);
        var again = repo.Backup(new BackupSet("x", [src]), Level.Incremental);
        Assert.Equal(3ul, again.Stats.FilesUnchanged);
        Assert.Equal(TreeOf(repo, plain, src + "/folder"), TreeOf(repo, again, src + "/folder")); // every node the parent's

        // Unchanged files, but access times asked for now: the nodes are not the parent's (it recorded none).
        var withAtime = repo.Backup(new BackupSet("x", [src], Atime: true), Level.Incremental);
        Assert.Equal(3ul, withAtime.Stats.FilesUnchanged);
        Assert.NotEqual(TreeOf(repo, again, src + "/folder"), TreeOf(repo, withAtime, src + "/folder"));
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(withAtime.Id, target).Errors);
        foreach (var f in Directory.GetFiles(Path.Combine(target + src, "folder")))
            Assert.Equal(new DateTimeOffset(past).ToUnixTimeSeconds(), TreeCompare.Atime(f).Sec);

        // And no longer asked for: the parent's recorded ones are not kept.
        var without = repo.Backup(new BackupSet("x", [src]), Level.Incremental);
        Assert.Equal(TreeOf(repo, plain, src + "/folder"), TreeOf(repo, without, src + "/folder"));
    }

    [Fact]
    public void An_unchanged_folder_keeps_its_parents_tree_and_a_changed_one_only_its_own_path()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        for (var i = 0; i < 12; i++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(src, $"f{i:D2}", "deeper")).FullName;
            File.WriteAllText(Path.Combine(folder, "a"), $"a{i}");
            File.WriteAllText(Path.Combine(src, $"f{i:D2}", "b"), $"b{i}");
        }
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var full = repo.Backup(set, Level.Full);
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Incremental, Library = repo.Library.Id };
        var ancestors = src.Split('/', StringSplitOptions.RemoveEmptyEntries).Length; // the folders above src, and the root, are always written
        var quiet = new CountingSink(repo.Library);
        var unchanged = new Archiver(repo.Keys, quiet, repo.Library).Run(set, options, full);
        Assert.Equal(24ul, unchanged.Stats.FilesUnchanged);
        Assert.Equal(ancestors, quiet.Reserved.Count); // src and its 24 folders: the parent's trees
        Assert.Equal(TreeOf(repo, full, src), TreeOf(repo, unchanged, src));

        File.WriteAllText(Path.Combine(src, "f07", "deeper", "a"), "changed");
        var busy = new CountingSink(repo.Library);
        var changed = new Archiver(repo.Keys, busy, repo.Library).Run(set, options, unchanged);
        Assert.Equal(ancestors + 3 + 1, busy.Reserved.Count); // src, f07, deeper, and the file's one chunk
        Assert.Equal(TreeOf(repo, full, src + "/f03"), TreeOf(repo, changed, src + "/f03"));
        Assert.NotEqual(TreeOf(repo, full, src + "/f07"), TreeOf(repo, changed, src + "/f07"));
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, changed, 3);
        repo.Catalog.Save(changed);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(changed.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }

    [Fact]
    public void The_walk_streams_folders_are_stored_as_they_are_done_not_at_the_end()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var expected = new List<string>();
        for (var a = 0; a < 10; a++)
            for (var b = 0; b < 20; b++)
            {
                var folder = Directory.CreateDirectory(Path.Combine(src, $"a{a}", $"b{b:D2}")).FullName;
                for (var f = 0; f < 3; f++) File.WriteAllText(Path.Combine(folder, $"f{f}"), $"{a}/{b}/{f}");
            }
        Posix.Posix.Link(Path.Combine(src, "a0", "b00", "f0"), Path.Combine(src, "a9", "b19", "link")); // a name waits for its first
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id, Parallelism = 2 };
        // With room for 4 files in the readers' queue and 16 reused files a batch, at most a few folders are open at
        // once: 211 folders under src, the walk goes on only as folders are done.
        var full = new Archiver(repo.Keys, repo.Library, repo.Library) { QueuedFiles = 4, ReusedPerBatch = 16 };
        var first = full.Run(set, options, null);
        Assert.Equal(600ul, first.Stats.Files - 1); // and the link
        Assert.True(full.PeakOpenFolders < 40, $"{full.PeakOpenFolders} folders open at once");
        var unchanged = new Archiver(repo.Keys, repo.Library, repo.Library) { QueuedFiles = 4, ReusedPerBatch = 16 };
        var second = unchanged.Run(set, options with { Level = Level.Incremental }, first);
        Assert.Equal(600ul, second.Stats.FilesUnchanged);
        Assert.True(unchanged.PeakOpenFolders < 40, $"{unchanged.PeakOpenFolders} folders open at once");
        foreach (var m in new[] { first, second })
        {
            StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, m, 3);
            repo.Catalog.Save(m);
            var target = Path.Combine(dir.Path, "r" + m.Id);
            Assert.Empty(repo.Restore(m.Id, target).Errors);
            TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        }
        // Without bounds the same backup has every folder open at the end of the walk (the old way): the test can tell.
        Assert.True(new Archiver(repo.Keys, repo.Library, repo.Library) { QueuedFiles = 100_000, ReusedPerBatch = 100_000 } is var loose
                    && loose.Run(set, options with { Level = Level.Incremental }, second) is not null && loose.PeakOpenFolders > 200, "an unbounded walk should keep the folders open");
    }

    [Fact]
    public void Paths_inside_other_paths_are_walked_where_the_enclosing_walk_left_them_out()
    {
        using var dir = new TempDir();
        var srv = dir.Sub("srv");
        foreach (var name in new[] { "data/one", "data/sub/two", "data-old/three", "data/cache/tmp", "data/cache/keep/four" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(srv, name))!);
            File.WriteAllText(Path.Combine(srv, name), name);
        }
        using var repo = TestRepo.Create(dir.Sub("repo"));
        // Sorted, "data-old" comes between "data" and "data/sub"; "data/cache" is excluded but a path below it is asked for.
        var set = new BackupSet("s", [Path.Combine(srv, "data/sub"), Path.Combine(srv, "data-old"), Path.Combine(srv, "data"), Path.Combine(srv, "data/cache/keep")],
            Excludes: [Path.Combine(srv, "data/cache")]);
        var archiver = new Archiver(repo.Keys, repo.Library, repo.Library) { QueuedFiles = 1, ReusedPerBatch = 1 };
        var snap = archiver.Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id }, null);
        Assert.Empty(snap.Errors);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        var restored = Directory.GetFiles(target + srv, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(target + srv, f)).Order().ToList();
        Assert.Equal(["data-old/three", "data/cache/keep/four", "data/one", "data/sub/two"], restored);
        var again = new Archiver(repo.Keys, repo.Library, repo.Library) { QueuedFiles = 1, ReusedPerBatch = 1 }.Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Level = Level.Incremental }, snap);
        Assert.Equal(4ul, again.Stats.FilesUnchanged);
        Assert.Equal(TreeOf(repo, snap, srv), TreeOf(repo, again, srv));
    }

    [Fact]
    public void A_file_read_again_in_the_middle_of_the_walk_keeps_its_folders_from_the_parents_trees()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var deep = Directory.CreateDirectory(Path.Combine(src, "a", "b")).FullName;
        var big = TestRepo.RandomBytes(600_000, 11);
        File.WriteAllBytes(Path.Combine(deep, "big"), big);
        for (var i = 0; i < 20; i++) File.WriteAllText(Path.Combine(src, "a", $"z{i:D2}"), $"z{i}"); // walked after b: the batch is asked meanwhile
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var full = repo.Backup(set, Level.Full);
        // The library lost a chunk of big, and the policy's chunks are finer now: read again, big has another chunk list.
        var lost = new Node();
        using (var trees = new TreeReader(repo.Keys, repo.Library))
            lost = trees.Load(TreeOf(repo, full, deep)).Nodes.Single(n => n.FileName() == "big");
        var finer = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Incremental, Library = repo.Library.Id, Chunker = new Chunking.ChunkerOptions(16 * 1024, 64 * 1024, 256 * 1024) };
        var archiver = new Archiver(repo.Keys, new CountingSink(repo.Library, lost.ChunkAt(0)), repo.Library) { ReusedPerBatch = 2 };
        var incr = archiver.Run(set, finer, full);
        foreach (var folder in new[] { deep, Path.Combine(src, "a"), src })
            Assert.NotEqual(TreeOf(repo, full, folder), TreeOf(repo, incr, folder));
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, incr, 3);
        repo.Catalog.Save(incr);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(incr.Id, target).Errors);
        Assert.Equal(big, File.ReadAllBytes(Path.Combine(target + deep, "big")));
    }

    [Fact]
    public void Holes_hidden_by_blocks_allocated_past_the_end_are_found_in_a_big_file_read_in_parts()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        const int MiB = 1 << 20;
        var file = Path.Combine(src, "vm.raw");
        TestRepo.WritePreallocated(file, 16L * MiB, 9L * MiB, 8); // more blocks than its size: read in parts
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Chunker = new Chunking.ChunkerOptions(16 * 1024, 64 * 1024, 256 * 1024), Parallelism = 2 };
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library) { MinPartSize = MiB }.Run(new BackupSet("s", [src]), options, null); // parts of 4 MiB
        Assert.Empty(snap.Errors);
        Assert.True(snap.Stats.BytesRead < MiB, $"read {snap.Stats.BytesRead} bytes of a file of 128 KiB of data: its holes were read");
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        Assert.True(TreeCompare.AllocatedBytes(target + file) <= 256 * 1024, "the restored file's holes were written");
    }

    [Fact]
    public void A_big_file_is_read_in_parts_at_once_and_comes_back_whole()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var content = TestRepo.RandomBytes(20 << 20, 12);
        File.WriteAllBytes(Path.Combine(src, "big.bin"), content);
        File.WriteAllText(Path.Combine(src, "small"), "small");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var chunker = new Chunking.ChunkerOptions(16 * 1024, 64 * 1024, 256 * 1024);
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Library = repo.Library.Id, Chunker = chunker, Parallelism = 2 };
        var full = new Archiver(repo.Keys, repo.Library, repo.Library) { MinPartSize = 1 << 20 }.Run(set, options, null); // parts of 4 MiB (64 chunks)
        Assert.Empty(full.Errors);
        Assert.Equal((ulong)content.Length + 5, full.Stats.BytesRead);
        using (var trees = new TreeReader(repo.Keys, repo.Library))
        {
            var node = trees.Load(TreeOf(repo, full, src)).Nodes.Single(n => n.FileName() == "big.bin");
            long at = 0;
            var boundaries = node.ChunkSizes.Select(size => at += size).ToHashSet();
            foreach (var mib in new[] { 4, 8, 12, 16, 20 }) Assert.Contains((long)mib << 20, boundaries); // where the parts meet
        }
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, full, 3);
        repo.Catalog.Save(full);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(full.Id, target).Errors);
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(target + src, "big.bin")));

        // Read in parts again after a byte changed in the middle: the parts cut at the same places, so only the chunk
        // around the change is new (a part starts its chunks again at its own offset).
        content[10 << 20] ^= 0xff;
        File.WriteAllBytes(Path.Combine(src, "big.bin"), content);
        var again = new Archiver(repo.Keys, repo.Library, repo.Library) { MinPartSize = 1 << 20 }.Run(set, options with { Level = Level.Incremental }, full);
        Assert.True(again.Stats.ChunksNew <= 3, $"{again.Stats.ChunksNew} new chunks for one changed byte");
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, again, 3);
        repo.Catalog.Save(again);
        var second = Path.Combine(dir.Path, "r2");
        Assert.Empty(repo.Restore(again.Id, second).Errors);
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(second + src, "big.bin")));
    }

    [Fact]
    public void A_folder_tree_the_library_lost_is_stored_again_and_a_changed_xattr_is_read()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "sub"));
        File.WriteAllText(Path.Combine(src, "sub", "file"), "content");
        File.WriteAllText(Path.Combine(src, "other"), "other");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var full = repo.Backup(set, Level.Full);
        var lost = TreeOf(repo, full, src + "/sub");
        var sink = new CountingSink(repo.Library, lost);
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Incremental, Library = repo.Library.Id };
        var again = new Archiver(repo.Keys, sink, repo.Library).Run(set, options, full);
        Assert.Contains(lost, sink.Reserved); // written again: the same bytes, the same id
        Assert.DoesNotContain(TreeOf(repo, full, src), sink.Reserved); // src's own tree holds the same id: the parent's

        // An xattr set since (the content as it was) changes the ctime: it is read, not taken from the parent.
        TreeCompare.SetXattr(Path.Combine(src, "other"), "user.note", "new"u8);
        TreeCompare.SetXattr(Path.Combine(src, "sub"), "user.note", "folder"u8);
        var third = repo.Backup(set, Level.Incremental);
        Assert.Equal(1ul, third.Stats.FilesUnchanged); // sub/file; other is read again (its ctime changed)
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(third.Id, target).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }
}

internal static class StreamCounting
{
    /// <summary>How many bytes a stream gives from where it stands to its end.</summary>
    public static long CopyToCount(this Stream stream)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        for (int n; (n = stream.Read(buffer)) > 0;) total += n;
        return total;
    }
}
