using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;
using ActorBackup.TestSupport;

namespace ActorBackup.Engine.Tests;

/// <summary>A restore from a sequential source (tape): chunks in the medium's order, with a bound on the files open at once.</summary>
public class SequentialRestoreTests
{
    /// <summary>
    /// The library's chunks as a tape would hold them after backups that read many files at once: each file's first
    /// chunks, then each file's second ones, and so on (placed by the chunk's index within its file).
    /// </summary>
    private sealed class Interleaved(IChunkSource inner, IReadOnlyDictionary<ChunkId, int> rank) : IChunkSource, IChunkPlacement
    {
        public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags) => inner.ReadPayload(id, ref buffer, out flags);

        public bool Sequential => true;

        public IReadOnlyList<ChunkPlace> Places(IReadOnlyList<ChunkId> ids) => [.. ids.Select(id => new ChunkPlace(1, rank.GetValueOrDefault(id, int.MaxValue)))];
    }

    [Fact]
    public void Files_whose_chunks_interleave_on_tape_restore_identical_with_a_bounded_number_open_at_once()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        const int files = 60;
        for (var f = 0; f < files; f++) File.WriteAllBytes(Path.Combine(src, $"f{f:D2}.bin"), TestRepo.RandomBytes(12_000, f + 1));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), new RepositoryConfig { ChunkMin = 1024, ChunkAvg = 4096, ChunkMax = 8192 });
        var snapshot = repo.Backup(new BackupSet("s", [src], []), Level.Full);
        // Each chunk's place: its index within its file, then the file (so every file's first chunk comes first).
        var rank = new Dictionary<ChunkId, int>();
        var order = FileChunks(repo, snapshot);
        Assert.Equal(files, order.Count);
        Assert.All(order, chunks => Assert.True(chunks.Count >= 2, "each file is several chunks"));
        for (var c = 0; order.Any(o => c < o.Count); c++)
            for (var f = 0; f < order.Count; f++)
                if (c < order[f].Count) rank.TryAdd(order[f][c], rank.Count);

        int Restore(string target, int cap)
        {
            var restorer = new Restorer(repo.Keys, new Interleaved(repo.Library, rank)) { MaxOpenFiles = cap };
            var result = restorer.Run(snapshot, target, new RestoreOptions());
            Assert.Empty(result.Errors);
            TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
            return restorer.PeakOpenFiles;
        }
        // Unbounded, every file is open at once; bounded, at most the bound beside the batch being written.
        Assert.Equal(files, Restore(Path.Combine(dir.Path, "all"), int.MaxValue));
        Assert.InRange(Restore(Path.Combine(dir.Path, "bounded"), 4), 1, 4 + 32);
    }

    /// <summary>Each file's chunk ids, in order (the snapshot's trees walked).</summary>
    private static List<List<ChunkId>> FileChunks(Repository.Repository repo, SnapshotManifest snapshot)
    {
        var files = new List<List<ChunkId>>();
        using var reader = new TreeReader(repo.Keys, repo.Library);
        var pending = new Stack<ChunkId>([new ChunkId(snapshot.RootTree.Span)]);
        while (pending.Count > 0)
            foreach (var n in reader.Load(pending.Pop()).Nodes)
                if (!n.Subtree.IsEmpty) pending.Push(n.SubtreeId());
                else if (n.ChunkCount() > 0) files.Add([.. Enumerable.Range(0, n.ChunkCount()).Select(n.ChunkAt)]);
        return files;
    }
}
