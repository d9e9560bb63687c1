using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;
using ActorBackup.TestSupport;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests;

/// <summary>Per-client keys: one compromised client host can neither read another's listings nor seal a snapshot in its name.</summary>
public class KeyRingTests
{
    private static void MakeSource(string src)
    {
        Directory.CreateDirectory(Path.Combine(src, "secret plans"));
        File.WriteAllBytes(Path.Combine(src, "secret plans", "big.bin"), TestRepo.RandomBytes(300_000, 7));
        File.WriteAllText(Path.Combine(src, "payroll.csv"), "alice,100\nbob,200\n");
    }

    private static KeyRing Keyring(KeyRing master, string client, string dir)
    {
        var path = Path.Combine(dir, client, "client.json");
        master.IssueClientKeyring(client, path);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        return KeyRing.LoadClientKeyring(path);
    }

    [Fact]
    public void A_client_keyring_reads_its_own_snapshots_and_neither_opens_nor_seals_another_clients()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        MakeSource(src);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        var web = repo.Backup(set, Level.Full, client: "web1");
        var db = repo.Backup(set, Level.Full, client: "db1");
        Assert.Equal(KeyScheme.Client, web.Keys);
        // File chunks are under the cell's data keys: the second client's identical files cost nothing (dedup across the cell)...
        Assert.Equal(0ul, db.Stats.BytesNew);
        // ...but trees are per client: the same listing has another id under each client's tree key.
        Assert.NotEqual(web.RootTree, db.RootTree);

        var webRing = Keyring(repo.Ring, "web1", dir.Sub("keys"));
        Assert.False(webRing.HoldsCellKey);
        // Its own snapshot: opened, checked and restored with its keyring alone.
        var opened = webRing.Open(web.ToByteString());
        var target = Path.Combine(dir.Path, "restored");
        var result = new Restorer(webRing.For(opened), repo.Library).Run(opened, target, new RestoreOptions());
        Assert.Empty(result.Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);

        // Another client's snapshot: its keys are not there, and the message says where to read it.
        var e = Assert.Throws<MissingKeyException>(() => webRing.Open(db.ToByteString()));
        Assert.Contains("db1", e.Message);
        Assert.Throws<MissingKeyException>(() => webRing.For("db1"));
        // Its trees do not open under web1's tree key either (a tree id taken from the catalog is of no use).
        using (var trees = new TreeReader(webRing.For("web1"), repo.Library))
            Assert.Throws<ChunkIntegrityException>(() => trees.Load(db.RootTree));

        // Sealing in another client's name: refused, and a manifest relabelled after sealing does not check.
        var forged = web.Clone();
        forged.Client = "db1";
        Assert.Throws<ArgumentException>(() => ManifestSeal.Seal(webRing.For("web1"), forged));
        Assert.Throws<ForgedManifestException>(() => repo.Ring.Open(forged.ToByteString()));
        // Nor under the keys of snapshots from before per-client keys, which only the cell key holds.
        forged.Keys = KeyScheme.Cell;
        Assert.Throws<MissingKeyException>(() => webRing.For("db1", KeyScheme.Cell));
        Assert.Throws<ForgedManifestException>(() => repo.Ring.Open(forged.ToByteString()));
        // The holder of the cell key reads both.
        Assert.Equal("db1", repo.Ring.Open(db.ToByteString()).Client);
    }

    [Fact]
    public void A_private_key_domain_keeps_a_sets_file_chunks_from_every_other_client()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        MakeSource(src);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var set = new BackupSet("s", [src]);
        repo.Backup(set, Level.Full, client: "db1");
        var keys = repo.Ring.For("web1", KeyScheme.ClientPrivate);
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id, Client = "web1" };
        var manifest = new Archiver(keys, repo.Library, repo.Library).Run(set, options, null);
        StoredManifests.Store(repo.Ring, keys, repo.Library, manifest, 3);
        // No dedup with the other client: its chunks are named and sealed under web1's private keys.
        Assert.True(manifest.Stats.BytesNew > 300_000, $"{manifest.Stats.BytesNew} new bytes");
        Assert.Equal(KeyScheme.ClientPrivate, manifest.Keys);

        var webRing = Keyring(repo.Ring, "web1", dir.Sub("keys"));
        var dbRing = Keyring(repo.Ring, "db1", dir.Sub("keys"));
        var opened = webRing.Open(manifest.ToByteString());
        var target = Path.Combine(dir.Path, "restored");
        Assert.Empty(new Restorer(webRing.For(opened), repo.Library).Run(opened, target, new RestoreOptions()).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        // db1 holds the cell's data keys, but they do not open web1's private chunks.
        ChunkId big;
        using (var trees = new TreeReader(webRing.For(opened), repo.Library))
        {
            big = FirstFileChunk(trees, trees.Load(opened.RootTree)) ?? throw new InvalidOperationException("no file in the snapshot");
            // A reader of trees refuses a record that is no tree.
            Assert.Throws<ChunkIntegrityException>(() => trees.Load(big));
        }
        using var decoder = new ChunkDecoder(dbRing.Shared);
        Assert.Throws<ChunkIntegrityException>(() => decoder.Load(big, repo.Library));
        // A later backup of the set under the shared keys does not reuse the private chunk lists (it reads everything).
        var shared = repo.Ring.For("web1");
        var again = new Archiver(shared, repo.Library, repo.Library, keys).Run(set, options with { Level = Level.Incremental }, manifest);
        Assert.Equal(0ul, again.Stats.FilesUnchanged);
    }

    private static ChunkId? FirstFileChunk(TreeReader trees, Tree tree)
    {
        foreach (var node in tree.Nodes)
        {
            if (node.Type == NodeType.File && node.ChunkCount() > 0) return node.ChunkAt(0);
            if (node.Type == NodeType.Directory && FirstFileChunk(trees, trees.Load(node.Subtree)) is { } found) return found;
        }
        return null;
    }

    [Fact]
    public void An_unsealed_manifest_a_client_host_stored_in_another_clients_name_is_not_taken_by_a_rebuild()
    {
        using var dir = new TempDir();
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var webRing = Keyring(repo.Ring, "web1", dir.Sub("keys"));
        // web1 holds the data keys manifests are stored under: it can store one, flagged as a manifest, with no seal.
        var fake = new SnapshotManifest { Id = "feedfacefeedface", Client = "db1", BackupSet = "s", Keys = KeyScheme.Cell, RootTree = ByteString.CopyFrom(new byte[32]) };
        using (var upload = webRing.Shared.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(webRing.Shared, upload, 3))
        {
            var stored = encoder.Store(fake.ToByteArray(), Volumes.RecordFlags.Manifest, repo.Library);
            repo.Library.AddReferences(fake.Id, [stored.Id]);
            repo.Library.Commit();
        }
        // A rebuild with the cell key does not take it as db1's snapshot: no seal proves nothing any more.
        var (found, added, problems) = StoredManifests.Rebuild(repo.Ring, repo.Library, repo.Catalog);
        Assert.Equal(0, found);
        Assert.Empty(added);
        Assert.Contains(problems, p => p.Contains("seal"));
    }

    [Fact]
    public void A_damaged_keyring_file_is_an_error_that_names_it()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "client.json");
        File.WriteAllText(path, "{\"version\":1,\"client\":\"web1\",\"chunk_id_key\":\"AAAA\"}");
        var e = Assert.Throws<InvalidDataException>(() => KeyRing.LoadClientKeyring(path));
        Assert.Contains(path, e.Message);
        File.WriteAllText(path, "not json");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => KeyRing.LoadClientKeyring(path)).Message);
        // A key set to null is a damaged file too, not a NullReferenceException at the node's start.
        var key = Convert.ToBase64String(new byte[32]);
        File.WriteAllText(path, $"{{\"version\":1,\"client\":\"web1\",\"chunk_id_key\":\"{key}\",\"gear_seed\":\"{key}\",\"data_key\":null,\"client_key\":\"{key}\"}}");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => KeyRing.LoadClientKeyring(path)).Message);
    }

    [Fact]
    public void A_snapshot_from_before_per_client_keys_reads_with_the_cell_key_only()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        MakeSource(src);
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var keys = repo.Ring.For("web1", KeyScheme.Cell);
        var manifest = new Archiver(keys, repo.Library, repo.Library).Run(new BackupSet("s", [src]), new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Library = repo.Library.Id, Client = "web1" }, null);
        StoredManifests.Store(repo.Ring, keys, repo.Library, manifest, 3);
        var target = Path.Combine(dir.Path, "restored");
        var opened = repo.Ring.Open(manifest.ToByteString());
        Assert.Empty(new Restorer(repo.Ring.For(opened), repo.Library).Run(opened, target, new RestoreOptions()).Errors);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        var webRing = Keyring(repo.Ring, "web1", dir.Sub("keys"));
        Assert.Contains("cell key", Assert.Throws<MissingKeyException>(() => webRing.Open(manifest.ToByteString())).Message);
        // As a parent it is none for a keyring (the backup reads everything), and stays one for the cell key.
        Assert.Null(ManifestSeal.Parent(webRing, webRing.For("web1"), manifest));
        Assert.NotNull(ManifestSeal.Parent(repo.Ring, repo.Ring.For("web1"), manifest));
    }
}
