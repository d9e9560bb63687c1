using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests;

public class WriterLockTests
{
    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    [Fact]
    public void A_library_has_one_writer_and_one_that_lost_it_commits_nothing()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using (var first = DiskLibrary.Create(root, "lib1"))
        {
            // A second writer (another media agent, the engine CLI, a lingering process) is refused, whatever it opens with.
            var e = Assert.Throws<LibraryLockedException>(() => DiskLibrary.Open(root));
            Assert.Contains("has another writer", e.Message);
            Assert.Throws<LibraryLockedException>(() => DiskLibrary.Rebuild(root));
            Assert.True(first.TryReserve(Id(1)));
            first.Append(Id(1), RecordFlags.None, new byte[100]);
            first.Commit();
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(root, "writer.lock")));
        }
        // Closed: the next writer gets it, with a newer fencing token.
        var second = DiskLibrary.Open(root);
        Assert.True(second.Contains(Id(1)));
        // Its lock file is replaced under it (shared storage, an operator's mistake): the next commit is refused.
        File.Delete(Path.Combine(root, "writer.lock"));
        using (var third = DiskLibrary.Open(root))
        {
            // The writer that holds the lock commits; then the one that lost it tries to.
            Assert.True(third.TryReserve(Id(3)));
            third.Append(Id(3), RecordFlags.None, new byte[100]);
            third.Commit();
            Assert.True(second.TryReserve(Id(2)));
            second.Append(Id(2), RecordFlags.None, new byte[100]);
            var lost = Assert.Throws<LibraryLockedException>(() => second.Commit());
            Assert.Contains("another writer took it", lost.Message);
            Assert.False(third.Contains(Id(2)));
        }
        second.Dispose();
        // Opened again: the refused commit wrote no index or volume table over the lock holder's (its chunk 3 is there).
        // (Chunk 2, a whole record in a volume, may be found again past the last commit, as any such record is.)
        using var after = DiskLibrary.Open(root);
        Assert.True(after.Contains(Id(1)));
        Assert.True(after.Contains(Id(3)));
    }
}

public class OutOfSpaceWordingTests
{
    [Fact]
    public void A_full_disk_is_said_with_its_free_space_and_the_inodes_are_read()
    {
        using var dir = new TempDir();
        var said = DiskLibrary.DescribeWriteFailure("lib1", dir.Path, new IOException("No space left on device", 28));
        Assert.Contains($"library lib1 is out of space (or over its disk quota) at {dir.Path} (", said);
        Assert.Contains("free there now", said); // this test's disk has inodes left
        var inodes = Posix.Posix.Inodes(dir.Path);
        Assert.NotNull(inodes);
        Assert.True(inodes.Value.Free <= inodes.Value.Total);
        // The same figures as stat(1) reads (statvfs f_files, f_ffree): the struct's offsets are right.
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-f", "-c", "%c %d", dir.Path]) { RedirectStandardOutput = true };
        using (var stat = System.Diagnostics.Process.Start(psi)!)
        {
            var statSaid = stat.StandardOutput.ReadToEnd().Split(' ', StringSplitOptions.TrimEntries).Select(ulong.Parse).ToArray();
            stat.WaitForExit();
            Assert.Equal(statSaid[0], inodes.Value.Total);
            Assert.InRange((double)inodes.Value.Free, statSaid[1] - 100_000.0, statSaid[1] + 100_000.0); // other tests make and delete files meanwhile
        }
        Assert.Null(Posix.Posix.Inodes(Path.Combine(dir.Path, "no such folder")));
        Assert.Contains("could not write to", DiskLibrary.DescribeWriteFailure("lib1", dir.Path, new IOException("Input/output error", 5)));
        // A used-up disk quota (a library or a restore target on a share with quotas) is a full disk too.
        Assert.True(Posix.Posix.IsNoSpace(new IOException("Disk quota exceeded", 122)));
        Assert.Contains("out of space (or over its disk quota)", DiskLibrary.DescribeWriteFailure("lib1", dir.Path, new IOException("Disk quota exceeded", 122)));
        Assert.False(Posix.Posix.IsNoSpace(new IOException("Input/output error", 5)));
    }
}
