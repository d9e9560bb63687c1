using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests;

/// <summary>A library whose disk fills up in the middle of a backup.</summary>
public class DiskFullTests
{
    [SmallDiskFact]
    public void A_full_library_disk_fails_the_backup_with_what_to_do_loses_nothing_committed_and_the_retry_succeeds()
    {
        using var dir = new TempDir();
        using var disk = new SmallDisk(48);
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        for (var i = 0; i < 4; i++) File.WriteAllBytes(Path.Combine(src, $"r{i}.bin"), TestRepo.RandomBytes(8 << 20, i));
        var repoPath = Path.Combine(disk.Path, "repo");
        string first;
        using (var repo = TestRepo.Create(repoPath))
            first = repo.Backup(new BackupSet("one", [Path.Combine(src, "r0.bin")]), Level.Full).Id;

        disk.Fill(leaveBytes: 12 << 20); // room for one more file, not for three
        using (var repo = TestRepo.Open(repoPath))
        {
            var e = Assert.Throws<IOException>(() => repo.Backup(new BackupSet("all", [src]), Level.Full));
            Assert.Contains("out of space", e.Message);
            Assert.Contains("free space there", e.Message);
            // The library object refuses further writes rather than index chunks that may not be on disk.
            Assert.Throws<IOException>(() => repo.Backup(new BackupSet("all", [src]), Level.Full));
        }

        disk.Free();
        using (var repo = TestRepo.Open(repoPath))
        {
            Assert.True(repo.Library.Verify().Ok, "reopening cut the volume back to its last whole record");
            var retry = repo.Backup(new BackupSet("all", [src]), Level.Full);
            var target = Path.Combine(dir.Path, "restored");
            Assert.Empty(repo.Restore(retry.Id, target).Errors);
            for (var i = 0; i < 4; i++)
                Assert.Equal(File.ReadAllBytes(Path.Combine(src, $"r{i}.bin")), File.ReadAllBytes(target + Path.Combine(src, $"r{i}.bin")));
            var before = Path.Combine(dir.Path, "first");
            Assert.Empty(repo.Restore(first, before).Errors);
            Assert.Equal(File.ReadAllBytes(Path.Combine(src, "r0.bin")), File.ReadAllBytes(before + Path.Combine(src, "r0.bin")));
        }
    }

    [SmallDiskFact]
    public void A_buffered_append_that_a_read_finds_no_room_for_breaks_the_library_at_once()
    {
        // A read of a chunk still in the writer's buffer writes the buffer out first. On a full disk that write fails:
        // the library breaks then (its owner opens it again on its committed index), and the failure is not kept in
        // the writer for the next session's append to meet, long after the disk has room again.
        using var disk = new SmallDisk(8);
        using var lib = DiskLibrary.Create(Path.Combine(disk.Path, "lib"), "lib1", 4 << 20);
        var id = new ChunkId(System.Security.Cryptography.SHA256.HashData("buffered"u8));
        var payload = TestRepo.RandomBytes(64 << 10, 7);
        Assert.True(lib.TryReserve(id));
        lib.Append(id, RecordFlags.None, payload); // in the writer's buffer, not in the file yet
        disk.Fill(leaveBytes: 0);
        var buffer = new byte[10];
        var e = Assert.Throws<IOException>(() => lib.ReadPayload(id, ref buffer, out _));
        Assert.Contains("out of space", e.Message);
        Assert.True(lib.Broken is { } broken && broken.Contains("out of space") && broken.Contains("free there now"), lib.Broken ?? "not broken");
    }
}
