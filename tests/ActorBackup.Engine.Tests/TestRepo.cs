using System.Diagnostics;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests;

public static class TestRepo
{
    /// <summary>Cheap Argon2 so tests stay quick; the production default is t=3, 64 MiB.</summary>
    public static readonly KeyStore.Argon2Parameters FastArgon = new(1, 8 * 1024 * 1024);

    // Tests make files and back them up at once; nothing changes them within a clock tick after: the parent's record of
    // a file changed right before it began is trusted (BackupOptions.RereadChangedWithin 0), unless a test says otherwise.
    public static Repository.Repository Create(string root, RepositoryConfig? config = null) =>
        Init(Repository.Repository.Init(root, new KeySource.Passphrase("correct horse"), config, FastArgon));

    public static Repository.Repository Open(string root) => Init(Repository.Repository.Open(root, new KeySource.Passphrase("correct horse")));

    private static Repository.Repository Init(Repository.Repository repo)
    {
        repo.RereadChangedWithin = TimeSpan.Zero;
        return repo;
    }

    /// <summary>
    /// The parent's tree of <paramref name="folder"/> changed by <paramref name="change"/> and stored again, with every tree
    /// above it: the parent as a damaged or hostile tree would make it, its manifest pointing at the new root.
    /// </summary>
    public static SnapshotManifest WithTreeOf(Repository.Repository repo, SnapshotManifest parent, string folder, Action<Tree> change)
    {
        using var reader = new TreeReader(repo.Keys, repo.Library);
        using var session = repo.Keys.Trees.Cipher.BeginUpload();
        using var encoder = new Codec.ChunkEncoder(repo.Keys.Trees, session, 3);
        Hashing.ChunkId Rewrite(Hashing.ChunkId id, string[] rest)
        {
            var tree = reader.Load(id);
            if (rest.Length == 0) change(tree);
            else
            {
                var node = tree.Nodes.Single(n => n.FileName() == rest[0]);
                node.Subtree = ByteString.CopyFrom(Rewrite(new Hashing.ChunkId(node.Subtree.Span), rest[1..]).ToArray());
            }
            return encoder.Store(tree.ToByteArray(), Volumes.RecordFlags.Tree, repo.Library).Id;
        }
        var root = Rewrite(new Hashing.ChunkId(parent.RootTree.Span), folder.Split('/', StringSplitOptions.RemoveEmptyEntries));
        repo.Library.Commit();
        var crafted = parent.Clone();
        crafted.RootTree = ByteString.CopyFrom(root.ToArray());
        return crafted;
    }

    public static byte[] RandomBytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static void Sh(string script)
    {
        var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", script]) { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"sh failed: {script}: {err}");
    }

    /// <summary>
    /// A file of <paramref name="size"/> bytes with 64 KiB of data at its start and at <paramref name="second"/>, holes
    /// between, and twice its size allocated past its end (fallocate --keep-size): more blocks than its size, so its
    /// block count says nothing of its holes.
    /// </summary>
    public static void WritePreallocated(string path, long size, long second, int seed)
    {
        using (var f = new FileStream(path, FileMode.Create))
        {
            f.Write(RandomBytes(64 * 1024, seed));
            f.Position = second;
            f.Write(RandomBytes(64 * 1024, seed + 1));
            f.SetLength(size);
        }
        Sh($"fallocate --keep-size --offset {size} --length {2 * size} '{path}'");
        Assert.False(Posix.Posix.LStat(path)!.Value.MayBeSparse);
    }
}
