using System.Text;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests.Archive;

/// <summary>
/// Git's "racy clean": a file changed right after a backup read it, within the same tick of the file system's clock
/// (kernels before 6.13 stamp a change with the tick's time, file servers with their own clock), keeps the size, times
/// and inode the backup recorded. The next backup must not take the recorded content and xattrs for it: an entry whose
/// recorded ctime lies within BackupOptions.RereadChangedWithin of the parent's start, or after it, is read again.
/// </summary>
public class RecentChangeTests
{
    private static SnapshotManifest Run(Repository.Repository repo, BackupSet set, SnapshotManifest? parent, TimeSpan? within = null)
    {
        var options = new BackupOptions { Level = parent is null ? Level.Full : Level.Incremental, Library = repo.Library.Id };
        if (within is { } w) options = options with { RereadChangedWithin = w };
        var snap = new Archiver(repo.Keys, repo.Library, repo.Library).Run(set, options, parent);
        StoredManifests.Store(repo.Ring, repo.Keys, repo.Library, snap, 3);
        repo.Catalog.Save(snap);
        return snap;
    }

    [Theory]
    [InlineData(0, true)] // the change in the parent's own tick (its start after it by less than a millisecond)
    [InlineData(1500, true)] // within the default 2 s
    [InlineData(5000, false)] // well before: the recorded times are trusted
    public void A_file_changed_within_the_margin_of_its_parents_start_is_read_again_though_its_times_are_as_recorded(int parentBeganAfterMs, bool readAgain)
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var plain = Path.Combine(src, "plain");
        var tagged = Path.Combine(src, "tagged");
        File.WriteAllText(plain, "old content");
        File.WriteAllText(tagged, "old content");
        TreeCompare.SetXattr(tagged, "user.note", "old"u8);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var full = Run(repo, set, null);

        // New content of the same size (the same inode) and a new xattr value, with the times the full recorded, as a
        // change in the tick in which the full read them leaves them: the full's tree given the files' times now.
        File.WriteAllText(plain, "new content");
        File.WriteAllText(tagged, "new content");
        TreeCompare.SetXattr(tagged, "user.note", "new"u8);
        long newestCtimeMs = 0;
        var racy = TestRepo.WithTreeOf(repo, full, src, tree =>
        {
            foreach (var node in tree.Nodes)
            {
                var st = Posix.Posix.LStat(Path.Combine(src, node.FileName()))!.Value;
                Assert.Equal(node.Inode, st.Inode);
                Assert.Equal(node.Size, st.Size);
                (node.MtimeSec, node.MtimeNsec, node.CtimeSec, node.CtimeNsec) = (st.MtimeSec, st.MtimeNsec, st.CtimeSec, st.CtimeNsec);
                newestCtimeMs = Math.Max(newestCtimeMs, st.CtimeSec * 1000 + st.CtimeNsec / 1_000_000);
            }
        });
        racy.StartedUnixMs = newestCtimeMs + parentBeganAfterMs;

        var next = Run(repo, set, racy); // the default margin, as a node's client runs it
        var target = Path.Combine(dir.Path, "r");
        Assert.Empty(repo.Restore(next.Id, target).Errors);
        var expected = readAgain ? "new" : "old";
        Assert.Equal($"{expected} content", File.ReadAllText(target + plain));
        Assert.Equal($"{expected} content", File.ReadAllText(target + tagged));
        Assert.Contains($"xattr user.note={Convert.ToHexString(Encoding.UTF8.GetBytes(expected))}", TreeCompare.Describe(target + src)["tagged"]);
        Assert.Equal(readAgain ? 0UL : 2UL, next.Stats.FilesUnchanged);

        // Read again once: the next backup, which began well after the change, takes its record as it is.
        var third = Run(repo, set, next, TimeSpan.Zero);
        Assert.Equal(2UL, third.Stats.FilesUnchanged);
        Assert.Equal(0UL, third.Stats.BytesRead);
    }

    [Fact]
    public void A_negative_margin_is_refused()
    {
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var e = Assert.Throws<ArgumentException>(() => Run(repo, new BackupSet("s", [dir.Sub("src")]), null, TimeSpan.FromSeconds(-1)));
        Assert.Contains("RereadChangedWithin", e.Message);
    }
}
