using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Verify;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests.Verify;

/// <summary>A verify reads every chunk of a snapshot back and names the files a damaged chunk takes with it.</summary>
public sealed class SnapshotVerifierTests
{
    [Fact]
    public void A_good_snapshot_verifies_and_a_flipped_bit_names_every_file_that_needs_the_chunk()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(Path.Combine(src, "sub"));
        File.WriteAllBytes(Path.Combine(src, "big.bin"), TestRepo.RandomBytes(3_000_000, 1));
        File.WriteAllBytes(Path.Combine(src, "sub", "copy.bin"), TestRepo.RandomBytes(3_000_000, 1)); // the same chunks
        File.WriteAllText(Path.Combine(src, "small.txt"), "small");
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);

        var ok = SnapshotVerifier.Run(repo.Keys, repo.Library, snap);
        Assert.True(ok.Ok);
        Assert.Empty(ok.DamagedFiles);
        // Each distinct chunk once: the copy's chunks are big.bin's, read once (plus the trees' few bytes).
        Assert.InRange(ok.Bytes, 3_000_005, 3_100_000);
        Assert.True(ok.Trees >= 2);

        // Flip a bit in the payload of big.bin's second chunk.
        var big = FindFile(repo, snap, "big.bin");
        Assert.True(repo.Library.TryGetLocation(big.ChunkAt(1), out var at));
        var volume = Directory.GetFiles(Path.Combine(repo.Library.Root, "volumes")).Single();
        using (var s = new FileStream(volume, FileMode.Open))
        {
            s.Position = at.Offset + VolumeFormat.RecordHeaderSize + 40;
            var b = s.ReadByte();
            s.Position--;
            s.WriteByte((byte)(b ^ 0x01));
        }
        var damaged = SnapshotVerifier.Run(repo.Keys, repo.Library, snap);
        Assert.False(damaged.Ok);
        Assert.Equal(1, damaged.BadChunks);
        Assert.Equal(2, damaged.DamagedFileCount);
        Assert.True(damaged.DamagedFiles.Any(f => f.Contains("/big.bin: chunk ")), string.Join("\n", damaged.DamagedFiles));
        Assert.Contains(damaged.DamagedFiles, f => f.Contains("/sub/copy.bin: chunk "));
        Assert.DoesNotContain(damaged.DamagedFiles, f => f.Contains("small.txt"));
    }

    [Fact]
    public void A_share_reads_back_a_random_part_of_the_file_chunks_and_every_tree()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        for (var i = 0; i < 40; i++) File.WriteAllBytes(Path.Combine(src, $"f{i}.bin"), TestRepo.RandomBytes(20_000, i)); // one chunk each
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var all = SnapshotVerifier.Run(repo.Keys, repo.Library, snap);
        var half = SnapshotVerifier.Run(repo.Keys, repo.Library, snap, sharePercent: 50);
        Assert.Equal(all.Trees, half.Trees);
        Assert.InRange(half.Chunks - half.Trees, 5, 35); // about 20 of the 40 file chunks
        Assert.True(half.Ok);
        Assert.Equal(all.Chunks, SnapshotVerifier.Run(repo.Keys, repo.Library, snap, sharePercent: 100).Chunks);
    }

    private static Node FindFile(Repository.Repository repo, SnapshotManifest snap, string name)
    {
        using var reader = new TreeReader(repo.Keys, repo.Library);
        var pending = new Stack<ChunkId>([new ChunkId(snap.RootTree.Span)]);
        while (pending.Count > 0)
            foreach (var n in reader.Load(pending.Pop()).Nodes)
            {
                if (n.Name == name && n.Subtree.IsEmpty) return n;
                if (!n.Subtree.IsEmpty) pending.Push(n.SubtreeId());
            }
        throw new KeyNotFoundException(name);
    }
}
