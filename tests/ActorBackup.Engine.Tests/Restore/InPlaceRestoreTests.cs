using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests;

/// <summary>A forced restore over a live tree: what was there is replaced whole or kept, and only what was asked for changes.</summary>
public class InPlaceRestoreTests
{
    private static string[] Staged(string target) =>
        Directory.EnumerateFiles(target, ".abk-restore-*", SearchOption.AllDirectories).ToArray();

    [Fact]
    public void A_file_a_forced_restore_cannot_restore_keeps_what_was_there_and_one_it_can_is_replaced_whole()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        var live = Directory.CreateDirectory(Path.Combine(target, "d")).FullName;
        File.WriteAllText(Path.Combine(live, "db.dat"), "the live database");
        File.WriteAllText(Path.Combine(target, "motd"), "old");

        // db.dat's only chunk is in no library: its restore fails (before, the live file was already gone by then,
        // a file of its size in its place).
        var lost = f.File("db.dat", "never stored");
        lost.Chunks = ByteString.CopyFrom(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var result = f.Restore(target, f.Folder("d", lost), f.File("motd", "fresh"));

        Assert.Equal(1, result.NotRestored);
        var error = Assert.Single(result.Errors);
        Assert.Contains("the file that was there is left as it was", error.Reason);
        Assert.Equal("the live database", File.ReadAllText(Path.Combine(live, "db.dat")));
        Assert.Equal("fresh", File.ReadAllText(Path.Combine(target, "motd")));
        Assert.Empty(Staged(target));
    }

    [Fact]
    public void A_file_restored_in_place_leaves_the_folders_on_its_way_as_they_were()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        var etc = Directory.CreateDirectory(Path.Combine(target, "etc")).FullName;
        File.SetUnixFileMode(etc, (UnixFileMode)0b111_101_000); // 0750, where the snapshot's /etc is 0755
        File.WriteAllText(Path.Combine(etc, "fstab"), "damaged");
        File.WriteAllText(Path.Combine(etc, "hosts"), "kept");

        var fstab = f.File("fstab", "/dev/sda1 / ext4 defaults 0 1");
        var result = f.Restore(target, new RestoreOptions { Force = true, Include = ["/etc/fstab"] },
            f.Folder("etc", fstab, f.File("hosts", "from the snapshot")));

        Assert.Equal(0, result.NotRestored);
        Assert.Equal("/dev/sda1 / ext4 defaults 0 1", File.ReadAllText(Path.Combine(etc, "fstab")));
        Assert.Equal("kept", File.ReadAllText(Path.Combine(etc, "hosts")));
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(etc));
        Assert.Empty(Staged(target));

        // Asked for itself, the folder gets the snapshot's mode.
        f.Restore(target, new RestoreOptions { Force = true, Include = ["/etc"] }, f.Folder("etc", fstab));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(etc));
        // Into a new folder, the folders on the way are made, with the snapshot's metadata, as before.
        var fresh = Path.Combine(f.Dir.Path, "fresh");
        f.Restore(fresh, new RestoreOptions { Include = ["/etc/fstab"] }, f.Folder("etc", fstab));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(Path.Combine(fresh, "etc")));
    }

    [Fact]
    public void A_path_asked_for_that_matches_nothing_beside_others_that_do_is_an_error_of_the_restore()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = Path.Combine(f.Dir.Path, "target");
        // Also below a folder restored whole (/etc), and a glob matching what a path matched too: found, not errors.
        var result = f.Restore(target, new RestoreOptions { Include = ["/etc", "/etc/fstab", "/etc/pasword", "/e*/hosts", "/var/*.log"] },
            f.Folder("etc", f.File("fstab", "x"), f.File("hosts", "y")), f.Folder("var", f.File("mail", "z")));

        Assert.Equal(2, result.Files);
        Assert.Equal(["/etc/pasword", "/var/*.log"], result.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.All(result.Errors, e => Assert.Contains("nothing in snapshot crafted matches it", e.Reason));
    }

    [Theory]
    [InlineData(true)]  // O_TMPFILE: no name until it is whole
    [InlineData(false)] // a name from the start (a file closed and opened again by its name: a tape's restore)
    public void A_staged_copy_replaces_the_file_there_in_one_rename_and_one_discarded_leaves_it(bool unnamed)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "live"), "old");
        using var root = new Posix.RootedDirectory(dir.Path);
        string Names() => string.Join(",", Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using (var handle = root.CreateFile("live", 3, out var staged, out var isUnnamed, unnamed: unnamed))
        {
            Assert.NotNull(staged);
            Assert.Equal(unnamed, isUnnamed);
            RandomAccess.Write(handle, "new"u8, 0);
            Assert.Equal("old", File.ReadAllText(Path.Combine(dir.Path, "live"))); // untouched while the copy fills
            Assert.Equal(unnamed ? "live" : Path.GetFileName(staged) + ",live", Names());
            if (unnamed) root.NameStaged(handle, staged!);
            root.Replace(staged!, "live");
        }
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir.Path, "live")));
        Assert.Equal("live", Names());

        using (root.CreateFile("live", 3, out var again, out _, unnamed: false)) root.Discard(again!);
        Assert.Equal("new", File.ReadAllText(Path.Combine(dir.Path, "live")));
        Assert.Equal("live", Names());
    }

    [Fact]
    public void A_retried_restore_leaves_the_folders_its_first_attempt_found_and_finishes_those_it_made()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        var etc = Directory.CreateDirectory(Path.Combine(target, "etc")).FullName;
        File.SetUnixFileMode(etc, (UnixFileMode)0b111_101_000); // 0750, the snapshot's is 0755
        var snapshot = new[] { f.Folder("etc", f.File("fstab", "x")), f.Folder("srv", f.Folder("app", f.File("conf", "y"))) };
        string[] asked = ["/etc/fstab", "/srv/app/conf"];

        var found = new System.Collections.Concurrent.ConcurrentBag<string>();
        f.Restore(target, new RestoreOptions { Force = true, Include = asked, FoundOnTheWay = found.Add }, snapshot);
        Assert.Equal(["etc"], found); // srv and srv/app were made by it
        // As if that attempt had died before the folders' metadata: the folders it made are still 0700.
        File.SetUnixFileMode(Path.Combine(target, "srv"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var again = new System.Collections.Concurrent.ConcurrentBag<string>();
        f.Restore(target, new RestoreOptions { Force = true, Include = asked, Resumes = false, FoundBefore = found.ToHashSet(), FoundOnTheWay = again.Add }, snapshot);
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(etc)); // found by the first attempt: left
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(Path.Combine(target, "srv"))); // made by it: finished
        Assert.Equal(["etc"], again);
    }
}
