using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests;

public class ManifestSealTests
{
    private static SnapshotManifest Manifest() => new()
    {
        Id = "a1b2c3d4e5f60718", Client = "web1", BackupSet = "/etc", Level = Level.Incremental, Parent = "0011223344556677",
        StartedUnixMs = 1_700_000_000_000, FinishedUnixMs = 1_700_000_060_000, RootTree = ByteString.CopyFrom(new byte[32]), Library = "lib1",
        Paths = { "/etc" },
    };

    [Fact]
    public void A_sealed_manifest_opens_wherever_it_is_kept_and_any_change_to_what_it_holds_is_refused()
    {
        var ring = new KeyRing(MasterKey.Generate());
        var keys = ring.For("web1");
        var m = Manifest();
        ManifestSeal.Seal(keys, m);
        Assert.Equal(ManifestSeal.Size, m.Mac.Length);
        // Where it is kept may change: the manager moves snapshots between libraries.
        var moved = m.Clone();
        moved.Library = "tape1";
        moved.Spans.Add("lib2");
        moved.Volumes.Add(7);
        Assert.Equal(m.Id, ring.Open(moved.ToByteString()).Id);

        var changes = new Action<SnapshotManifest>[]
        {
            x => x.RootTree = ByteString.CopyFrom(Enumerable.Repeat((byte)1, 32).ToArray()), // another tree: other files
            x => x.Client = "db1", // another host's snapshot
            x => x.Id = "ffffffffffffffff", // an old snapshot under a new id
            x => x.FinishedUnixMs += 86_400_000, // made to look newer: "latest", or a rolled-back parent
            x => x.Parent = "",
            x => x.Level = Level.Full,
            x => x.BackupSet = "/",
            x => x.Mac = ByteString.Empty,
        };
        foreach (var change in changes)
        {
            var forged = m.Clone();
            change(forged);
            var e = Assert.Throws<ForgedManifestException>(() => ring.Open(forged.ToByteString()));
            Assert.Contains("seal", e.Message);
        }
        // Sealed by another cell's key: refused too.
        Assert.Throws<ForgedManifestException>(() => ManifestSeal.Check(new KeyRing(MasterKey.Generate()).For("web1"), m));
        // Bytes that are no manifest: refused with a clear error, not a parser exception.
        Assert.Throws<ForgedManifestException>(() => ring.Open(ByteString.CopyFrom(0xFF, 0xFF, 0xFF)));
    }

    [Fact]
    public void A_changed_catalog_file_in_a_repository_is_refused_before_a_restore_writes_anything()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "secret.txt"), "first");
        using (var repo = TestRepo.Create(Path.Combine(dir.Path, "repo")))
        {
            var first = repo.Backup(new BackupSet("s", [src], []), Level.Full);
            File.WriteAllText(Path.Combine(src, "secret.txt"), "second");
            var second = repo.Backup(new BackupSet("s", [src], []), Level.Full);
            // Someone with write access to the catalog but no key points the newest snapshot at the older tree.
            var file = Path.Combine(dir.Path, "repo", "snapshots", second.Id + ".snap");
            var forged = SnapshotManifest.Parser.ParseFrom(File.ReadAllBytes(file));
            forged.RootTree = first.RootTree;
            File.WriteAllBytes(file, forged.ToByteArray());
        }
        using var reopened = TestRepo.Open(Path.Combine(dir.Path, "repo"));
        var target = Path.Combine(dir.Path, "out");
        Assert.Throws<ForgedManifestException>(() => reopened.Restore("latest", target));
        Assert.False(Directory.Exists(target));
        // And a backup refuses it as its parent (it would skip files by a forged tree).
        Assert.Throws<ForgedManifestException>(() => reopened.Backup(new BackupSet("s", [src], []), Level.Incremental));
    }

    [Fact]
    public void A_snapshot_from_before_manifests_were_sealed_is_no_parent_and_is_not_restored()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "a.txt"), "old");
        string old;
        using (var repo = TestRepo.Create(Path.Combine(dir.Path, "repo")))
            old = repo.Backup(new BackupSet("s", [src], []), Level.Full).Id;
        var file = Path.Combine(dir.Path, "repo", "snapshots", old + ".snap");
        var unsealed = SnapshotManifest.Parser.ParseFrom(File.ReadAllBytes(file));
        unsealed.Mac = ByteString.Empty; // as every manifest was before the seal
        File.WriteAllBytes(file, unsealed.ToByteArray());
        using var reopened = TestRepo.Open(Path.Combine(dir.Path, "repo"));
        // The next incremental compares with nothing it cannot trust: it is a full backup, and restores.
        var next = reopened.Backup(new BackupSet("s", [src], []), Level.Incremental);
        Assert.Equal(Level.Full, next.Level);
        Assert.Equal("", next.Parent);
        var target = Path.Combine(dir.Path, "out");
        reopened.Restore(next.Id, target);
        Assert.Equal("old", File.ReadAllText(target + src + "/a.txt"));
        Assert.Throws<ForgedManifestException>(() => reopened.Restore(old, Path.Combine(dir.Path, "out-old")));
    }
}
