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
        var synced = new ConcurrentQueue<string>();
        void Record(string path)
        {
            if (path.StartsWith(dir.Path, StringComparison.Ordinal)) synced.Enqueue(Path.TrimEndingDirectorySeparator(path));
        }
        Posix.Posix.FolderSynced += Record;
        try
        {
            using var repo = TestRepo.Create(root);
            Assert.Contains(Path.Combine(root, "keys"), synced); // the master key: without it nothing restores
            Assert.Contains(root, synced); // repository.json: the chunker's settings
            repo.Backup(new BackupSet("s", [src]), Level.Full);
            Assert.Contains(Path.Combine(repo.Library.Root, "volumes"), synced); // the volume the chunks went to
            Assert.Contains(repo.Library.Root, synced); // the index and the volume table
            Assert.Contains(repo.Library.ReferencesDir, synced); // the snapshot's reference list
            Assert.Contains(Path.Combine(root, "snapshots"), synced); // the snapshot itself
        }
        finally
        {
            Posix.Posix.FolderSynced -= Record;
        }
    }

    [Fact]
    public void A_secret_file_is_replaced_whole_and_durably()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "keys", "client.json");
        var synced = new ConcurrentQueue<string>();
        void Record(string p)
        {
            if (p.StartsWith(dir.Path, StringComparison.Ordinal)) synced.Enqueue(p);
        }
        Posix.Posix.FolderSynced += Record;
        try
        {
            Crypto.KeyStore.WritePrivate(path, "first");
            Crypto.KeyStore.WritePrivate(path, "second");
        }
        finally
        {
            Posix.Posix.FolderSynced -= Record;
        }
        Assert.Equal("second", File.ReadAllText(path));
        Assert.Equal(2, synced.Count(p => p == Path.Combine(dir.Path, "keys")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.False(File.Exists(path + ".tmp"));
    }
}
