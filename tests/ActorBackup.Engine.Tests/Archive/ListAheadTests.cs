using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests.Archive;

/// <summary>
/// The walk lists and stats a folder's next subfolders ahead of itself (Archiver.AheadFolders), without their parent's
/// trees, which it attaches when it comes to them: what each entry is compared with, and whose extended attributes are
/// read again, must come out as when each folder is listed in its turn.
/// </summary>
public class ListAheadTests
{
    private static SnapshotManifest Run(Repository.Repository repo, int ahead, BackupSet set, Level level, SnapshotManifest? parent,
        Action<string>? beforeListing = null, ulong aheadBytes = 1 << 20, TimeSpan? maxAge = null, Action<string>? beforeXattrs = null)
    {
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library)
            {
                AheadFolders = ahead, AheadFolderBytes = aheadBytes, AheadMaxAge = maxAge ?? TimeSpan.FromSeconds(2),
                BeforeListing = beforeListing, BeforeXattrs = beforeXattrs,
            }
            .Run(set, new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = level, Library = repo.Library.Id }, parent);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        return snap;
    }

    [Theory]
    [InlineData(1, 1 << 20)]
    [InlineData(2, 1 << 20)]
    [InlineData(8, 1 << 20)]
    [InlineData(8, 0)] // no folder small enough to be listed ahead: only their trees are read ahead
    public void Folders_listed_ahead_are_compared_with_their_parents_entries_and_changes_in_them_are_seen(int ahead, ulong aheadBytes)
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        // Six folders side by side (each but the first listed ahead), one of more names than a block of the walk's
        // stats (1,024), one with a folder of its own, and files with extended attributes.
        for (var d = 0; d < 6; d++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(src, $"d{d}")).FullName;
            var files = d == 3 ? 1100 : 20;
            for (var f = 0; f < files; f++) File.WriteAllText(Path.Combine(folder, $"f{f:D4}"), $"folder {d} file {f}");
            TreeCompare.SetXattr(Path.Combine(folder, "f0001"), "user.note", "kept"u8);
            File.WriteAllText(Path.Combine(folder, "scratch.tmp"), "left out");
        }
        Directory.CreateDirectory(Path.Combine(src, "d2", "sub"));
        File.WriteAllText(Path.Combine(src, "d2", "sub", "deep"), "deep");
        var files0 = 5 * 20 + 1100 + 1 - 1; // d4/f0002 left out by its path
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src], ["*.tmp", Path.Combine(src, "d4", "f0002")]);
        var full = Run(repo, ahead, set, Level.Full, null, aheadBytes: aheadBytes);
        Assert.Empty(full.Errors);
        Assert.Equal((ulong)files0, full.Stats.Files);

        // A changed extended attribute (d1), a file changed in the second block of the big folder and an attribute given
        // to one in its first (d3), a new file (d4), a deleted one (d5), a file changed in a folder below (d2/sub).
        TreeCompare.SetXattr(Path.Combine(src, "d1", "f0001"), "user.note", "changed"u8);
        File.AppendAllText(Path.Combine(src, "d3", "f1050"), " and more");
        TreeCompare.SetXattr(Path.Combine(src, "d3", "f0005"), "user.added", "new"u8);
        File.WriteAllText(Path.Combine(src, "d4", "new"), "new");
        File.Delete(Path.Combine(src, "d5", "f0007"));
        File.WriteAllText(Path.Combine(src, "d2", "sub", "deep"), "deeper");
        // The next backup begins after these changes by the file system's clock too (its time stamps them): one whose
        // start the system clock put before them (a clock stepped back on a loaded VM) reads them again in the one after,
        // as it should; this test is about listing ahead, not about clocks (Archiver.Settled has tests of its own).
        AfterChanges(Path.Combine(src, "d1", "f0001"), Path.Combine(src, "d3", "f1050"), Path.Combine(src, "d3", "f0005"), Path.Combine(src, "d4", "new"),
            Path.Combine(src, "d5"), Path.Combine(src, "d2", "sub", "deep"));
        var incr = Run(repo, ahead, set, Level.Incremental, full, aheadBytes: aheadBytes);
        Assert.Empty(incr.Errors);
        Assert.Equal((ulong)files0, incr.Stats.Files); // one new, one deleted
        Assert.Equal((ulong)(files0 - 5), incr.Stats.FilesUnchanged); // all but the five changed or new

        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(incr.Id, target).Errors);
        var expected = TreeCompare.Describe(src);
        foreach (var left in expected.Keys.Where(k => k.EndsWith(".tmp", StringComparison.Ordinal) || k == "d4/f0002").ToList()) expected.Remove(left);
        Assert.Contains("xattr user.note=", expected["d1/f0001"]);
        TreeCompare.AssertSame(expected, target + src);

        // Nothing changed since: every file the parent's, none read; but for a changed file whose change time is not
        // before the parent's start by the clock the snapshot recorded (a clock stepped back while the parent ran: its
        // start is taken as the earlier of the wall clock's and the monotonic one's), which Archiver.Settled reads again.
        var noop = Run(repo, ahead, set, Level.Incremental, incr, aheadBytes: aheadBytes);
        var racy = new[] { "d1/f0001", "d3/f1050", "d3/f0005", "d4/new", "d2/sub/deep" }.Select(p => Posix.Posix.LStat(Path.Combine(src, p))!.Value)
            .Count(st => st.CtimeSec * 1_000_000_000L + st.CtimeNsec >= (incr.StartedUnixMs + 1) * 1_000_000L);
        Assert.Equal((ulong)(files0 - racy), noop.Stats.FilesUnchanged);
        if (racy == 0) Assert.Equal(0ul, noop.Stats.BytesRead);
    }

    /// <summary>Waits (5 s at most) until the system clock is past the newest change time of <paramref name="paths"/>.</summary>
    private static void AfterChanges(params string[] paths)
    {
        var newest = paths.Select(p => Posix.Posix.LStat(p)!.Value).Max(st => st.CtimeSec * 1_000_000_000L + st.CtimeNsec);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100 <= newest + 2_000_000 && DateTime.UtcNow < deadline) Thread.Sleep(1);
    }

    [Fact]
    public void A_folder_listed_ahead_that_was_swapped_for_a_symlink_meanwhile_lists_nothing_through_it()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        for (var d = 0; d < 4; d++)
        {
            Directory.CreateDirectory(Path.Combine(src, $"d{d}"));
            File.WriteAllText(Path.Combine(src, $"d{d}", "mine"), "the user's own");
        }
        var other = dir.Sub("other");
        File.WriteAllText(Path.Combine(other, "secret"), "not in the backup set");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var swapped = Path.Combine(src, "d2");
        // Right before d2 is listed (ahead of the walk, on another thread), it becomes a symlink to a folder outside the set.
        var snap = Run(repo, 8, new BackupSet("s", [src]), Level.Full, null, path =>
        {
            if (path != swapped) return;
            Directory.Move(swapped, swapped + ".old");
            File.CreateSymbolicLink(swapped, other);
        });
        // The symlink is not followed (opened without following its last name): the folder is reported, not listed.
        Assert.Contains(snap.Errors, e => e.Path.EndsWith("/d2", StringComparison.Ordinal) && e.Reason.StartsWith("cannot list directory", StringComparison.Ordinal));
        var target = Path.Combine(dir.Path, "r");
        repo.Restore(snap.Id, target);
        Assert.Empty(Directory.GetFiles(target, "secret", SearchOption.AllDirectories));
        foreach (var d in new[] { "d0", "d1", "d3" }) Assert.True(File.Exists(Path.Combine(target + src, d, "mine")), d);
    }

    [Fact]
    public void A_folder_listed_ahead_long_before_the_walk_comes_is_listed_again()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        for (var d = 0; d < 4; d++)
        {
            Directory.CreateDirectory(Path.Combine(src, $"d{d}"));
            File.WriteAllText(Path.Combine(src, $"d{d}", "file"), $"first {d}");
        }
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var later = Path.Combine(src, "d2", "file");
        using var d2Listed = new ManualResetEventSlim(false);
        // Once d2 is listed ahead, and before the walk comes to it, its file is replaced by a rename (a new inode: an
        // editor's save). Listed again when the walk comes (AheadMaxAge 0), the new file is the one read; on the old
        // listing's stat the reader would refuse it as another file than the walk saw.
        var snap = Run(repo, 8, new BackupSet("s", [src]), Level.Full, null, maxAge: TimeSpan.Zero,
            beforeListing: path =>
            {
                if (path == Path.Combine(src, "d2")) d2Listed.Set();
            },
            beforeXattrs: path =>
            {
                if (path != Path.Combine(src, "d1", "file") || File.Exists(later + ".new")) return;
                Assert.True(d2Listed.Wait(TimeSpan.FromSeconds(30)), "d2 was not listed ahead");
                File.WriteAllText(later + ".new", "second");
                File.Move(later + ".new", later, overwrite: true);
            });
        Assert.Empty(snap.Errors);
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        Assert.Equal("second", File.ReadAllText(target + later));
    }
}
