using System.Collections.Concurrent;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests;

/// <summary>
/// What a commit counts on is on disk by name, not only by content, before the commit answers: each folder a file was
/// created or renamed into is synced (a file's fsync does not make its name durable; a power cut could lose it).
/// </summary>
public sealed class DurabilityTests
{
    [Fact]
    public void A_new_repository_and_its_first_backup_sync_every_folder_they_add_names_to()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "a");
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "f.bin"), TestRepo.RandomBytes(300_000, 1));
        var root = Path.Combine(dir.Path, "repo");
        using var synced = new SyncedFolders(dir.Path);
        using var repo = TestRepo.Create(root);
        Assert.Contains(Path.Combine(root, "keys"), synced.Paths); // the master key: without it nothing restores
        Assert.Contains(root, synced.Paths); // repository.json: the chunker's settings
        repo.Backup(new BackupSet("s", [src]), Level.Full);
        Assert.Contains(Path.Combine(repo.Library.Root, "volumes"), synced.Paths); // the volume the chunks went to
        Assert.Contains(repo.Library.Root, synced.Paths); // the index and the volume table
        Assert.Contains(repo.Library.ReferencesDir, synced.Paths); // the snapshot's reference list
        Assert.Contains(Path.Combine(root, "snapshots"), synced.Paths); // the snapshot itself
    }

    [Fact]
    public void A_secret_file_is_replaced_whole_and_durably()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "keys", "client.json");
        using var synced = new SyncedFolders(dir.Path);
        Crypto.KeyStore.WritePrivate(path, "first");
        Crypto.KeyStore.WritePrivate(path, "second");
        Assert.Equal("second", File.ReadAllText(path));
        Assert.Equal(2, synced.Paths.Count(p => p == Path.Combine(dir.Path, "keys")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void A_restore_is_on_the_disk_before_it_says_it_is_done()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "a");
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "f.bin"), TestRepo.RandomBytes(300_000, 2));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var target = Path.Combine(dir.Path, "restored");
        var synced = new ConcurrentQueue<string>();
        void Record(string path)
        {
            if (path == target) synced.Enqueue(path);
        }
        Posix.Posix.FileSystemsSynced += Record;
        try
        {
            Assert.Empty(repo.Restore(snap.Id, target).Errors);
        }
        finally
        {
            Posix.Posix.FileSystemsSynced -= Record;
        }
        Assert.Single(synced); // syncfs of the target's file system, once, after every file was written
    }

    /// <summary>The folders below <paramref name="below"/> synced while it is not disposed (other tests' syncs run beside it).</summary>
    private sealed class SyncedFolders : IDisposable
    {
        private readonly string _below;
        public ConcurrentQueue<string> Paths { get; } = new();

        public SyncedFolders(string below)
        {
            _below = below;
            Posix.Posix.FolderSynced += Record;
        }

        private void Record(string path)
        {
            if (path.StartsWith(_below, StringComparison.Ordinal)) Paths.Enqueue(System.IO.Path.TrimEndingDirectorySeparator(path));
        }

        public void Dispose() => Posix.Posix.FolderSynced -= Record;
    }
}
