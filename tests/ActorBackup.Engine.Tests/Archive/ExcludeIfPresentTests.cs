using System.Collections.Concurrent;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests.Archive;

/// <summary>
/// Folders marked to be left out (restic's and borg's --exclude-if-present, --exclude-caches): a folder holding a marker
/// keeps only its markers; a CACHEDIR.TAG counts only with its signature. The same in a backup whose folders' names come
/// from its parent, and a marker taken away brings the folder's contents back.
/// </summary>
public class ExcludeIfPresentTests
{
    private static SnapshotManifest Run(Repository.Repository repo, BackupSet set, SnapshotManifest? parent, ConcurrentBag<string> asParent)
    {
        asParent.Clear();
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library) { ListedAsParent = asParent.Add }
            .Run(set, new BackupOptions { Level = parent is null ? Level.Full : Level.Incremental, Library = repo.Library.Id, RereadChangedWithin = TimeSpan.Zero }, parent);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        return snap;
    }

    /// <summary>The paths below <paramref name="root"/> in a restore of <paramref name="snap"/>, relative and sorted.</summary>
    private static List<string> Restored(Repository.Repository repo, SnapshotManifest snap, string target, string src)
    {
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        var root = target + src;
        return Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(root, p)).Order(StringComparer.Ordinal).ToList();
    }

    [Fact]
    public void A_folder_holding_a_marker_keeps_only_its_markers_and_a_cache_tag_counts_only_with_its_signature()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "kept"), "kept");
        var skip = Directory.CreateDirectory(Path.Combine(src, "skip")).FullName;
        File.WriteAllText(Path.Combine(skip, ".nobackup"), "");
        File.WriteAllText(Path.Combine(skip, "big"), new string('x', 100_000));
        Directory.CreateDirectory(Path.Combine(skip, "sub"));
        File.WriteAllText(Path.Combine(skip, "sub", "deep"), "deep");
        var cache = Directory.CreateDirectory(Path.Combine(src, "cache")).FullName;
        File.WriteAllText(Path.Combine(cache, "CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n");
        File.WriteAllText(Path.Combine(cache, "blob"), "cached");
        var fake = Directory.CreateDirectory(Path.Combine(src, "fake")).FullName;
        File.WriteAllText(Path.Combine(fake, "CACHEDIR.TAG"), "not a tag");
        File.WriteAllText(Path.Combine(fake, "data"), "data");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var asParent = new ConcurrentBag<string>();
        var set = new BackupSet("s", [src]) { ExcludeIfPresent = [".nobackup", BackupSet.CacheDirTag] };

        string[] expected = ["cache", "cache/CACHEDIR.TAG", "fake", "fake/CACHEDIR.TAG", "fake/data", "kept", "skip", "skip/.nobackup"];
        var full = Run(repo, set, null, asParent);
        Assert.Equal([".nobackup", "CACHEDIR.TAG"], full.ExcludeIfPresent);
        Assert.Equal(expected, Restored(repo, full, Path.Combine(dir.Path, "r1"), src));
        // Unchanged: the folders' names come from the parent's trees, and the same is left out.
        var again = Run(repo, set, full, asParent);
        Assert.Contains(src, asParent);
        Assert.DoesNotContain(cache, asParent); // one kept with only its markers is listed again
        Assert.Equal(expected, Restored(repo, again, Path.Combine(dir.Path, "r2"), src));
        // A tag rewritten without its signature (the folder's times as they were): its contents are backed up again.
        var tag = Path.Combine(cache, "CACHEDIR.TAG");
        var times = (Directory.GetLastWriteTimeUtc(cache), File.GetLastWriteTimeUtc(tag));
        File.WriteAllText(tag, "no longer a tag, and longer than a signature is: 0123456789");
        Directory.SetLastWriteTimeUtc(cache, times.Item1);
        var untagged = Run(repo, set, again, asParent);
        Assert.Contains("cache/blob", Restored(repo, untagged, Path.Combine(dir.Path, "r2b"), src));
        File.WriteAllText(tag, "Signature: 8a477f597d28d172789f06886806bc55\n");
        again = Run(repo, set, untagged, asParent);
        // The marker taken away: the folder's contents are backed up again.
        File.Delete(Path.Combine(skip, ".nobackup"));
        var unmarked = Run(repo, set, again, asParent);
        Assert.Equal(["cache", "cache/CACHEDIR.TAG", "fake", "fake/CACHEDIR.TAG", "fake/data", "kept", "skip", "skip/big", "skip/sub", "skip/sub/deep"],
            Restored(repo, unmarked, Path.Combine(dir.Path, "r3"), src));
        // Without markers, a parent that had them gives no folder's names (its trees lack what they left out).
        var plain = Run(repo, new BackupSet("s", [src]), unmarked, asParent);
        Assert.Empty(asParent);
        Assert.Contains("cache/blob", Restored(repo, plain, Path.Combine(dir.Path, "r4"), src));
    }

    [Fact]
    public void A_marker_is_a_name_not_a_path()
    {
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        foreach (var bad in new[] { "a/b", "", "..", "." })
            Assert.Contains("is not a file name", Assert.Throws<ArgumentException>(() => Run(repo, new BackupSet("s", [dir.Sub("src")]) { ExcludeIfPresent = [bad] }, null, [])).Message);
    }
}
