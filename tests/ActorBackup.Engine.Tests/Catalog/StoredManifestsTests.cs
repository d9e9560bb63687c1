using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests.Catalog;

/// <summary>The engine's own snapshot list comes back from the library's volumes and the key alone.</summary>
public sealed class StoredManifestsTests
{
    [Fact]
    public void A_lost_snapshot_list_and_index_come_back_from_the_volumes_and_the_key()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "a.bin"), TestRepo.RandomBytes(300_000, 1));
        var root = Path.Combine(dir.Path, "repo");
        string first, second;
        using (var repo = TestRepo.Create(root))
        {
            first = repo.Backup(new BackupSet("s", [src]), Level.Full).Id;
            File.WriteAllText(Path.Combine(src, "b.txt"), "more");
            second = repo.Backup(new BackupSet("s", [src]), Level.Incremental).Id;
        }
        // Lost: the snapshot list and the library's index.
        Directory.Delete(Path.Combine(root, "snapshots"), recursive: true);
        File.Delete(Path.Combine(root, "library", "index.abi"));
        DiskLibrary.Rebuild(Path.Combine(root, "library")).Dispose();
        using (var repo = TestRepo.Open(root))
        {
            Assert.Empty(repo.Catalog.List());
            var (found, added, problems) = StoredManifests.Rebuild(repo.Ring, repo.Library, repo.Catalog);
            Assert.Empty(problems);
            Assert.Equal(2, found);
            Assert.Equal([first, second], added);
            Assert.Empty(StoredManifests.Rebuild(repo.Ring, repo.Library, repo.Catalog).Added); // again: nothing more
            var target = Path.Combine(dir.Path, "restored");
            Assert.Empty(repo.Restore(second, target).Errors);
            Assert.Equal("more", File.ReadAllText(target + Path.Combine(src, "b.txt")));
        }
    }
}
