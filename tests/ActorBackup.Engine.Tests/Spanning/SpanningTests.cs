using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Spanning;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests.Spanning;

/// <summary>A backup bigger than its library's room goes on in the next library and restores from both.</summary>
public sealed class SpanningTests
{
    [Fact]
    public void A_backup_that_fills_its_library_goes_on_in_the_next_and_restores_from_both()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        for (var i = 0; i < 12; i++) File.WriteAllBytes(Path.Combine(src, $"f{i}.bin"), TestRepo.RandomBytes(2 << 20, i));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo")); // its keys; lib1 and lib2 are the libraries
        using var lib1 = DiskLibrary.Create(Path.Combine(dir.Path, "lib1"), "lib1");
        using var lib2 = DiskLibrary.Create(Path.Combine(dir.Path, "lib2"), "lib2");
        // lib1's disk: 12 MiB free at first, less with every byte appended; it keeps 4 MiB.
        lib1.ReserveBytes = 4 << 20;
        lib1.AvailableBytes = () => Math.Max(1, (12L << 20) - lib1.StoredBytes);
        var opened = new List<string>();
        var sink = new SpanningSink("lib1", lib1, ["lib3", "lib2"], name =>
        {
            opened.Add(name);
            return name == "lib2" ? lib2 : throw new IOException($"library {name} is unreachable");
        });

        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Chunker = repo.Config.Chunker, CompressionLevel = 3, Library = "lib1", Client = "c" };
        var manifest = new Archiver(repo.Ring.For("c"), sink, lib1).Run(new BackupSet("s", [src]), options, null, null, CancellationToken.None);
        Assert.Equal(["lib1", "lib2"], sink.Libraries);
        Assert.Equal(["lib3", "lib2"], opened); // lib3 refused: passed over
        Assert.NotNull(lib1.Full);
        Assert.InRange(lib1.StoredBytes, 6L << 20, 12L << 20); // it took what its room allowed
        Assert.True(lib2.StoredBytes > 8L << 20);
        // Each keeps the ids of the snapshot it holds (lib2, written last, all of them): a prune of either keeps what the snapshot needs.
        var refs1 = lib1.ReadReferences(manifest.Id);
        Assert.InRange(refs1.Length, 1, lib2.ReadReferences(manifest.Id).Length - 1);
        Assert.All(refs1, id => Assert.True(lib1.Contains(id)));

        var target = Path.Combine(dir.Path, "restored");
        var result = new Restorer(repo.Ring.For("c"), new SpanningSource([lib1, lib2])).Run(manifest, target, new RestoreOptions(), null, CancellationToken.None);
        Assert.Empty(result.Errors);
        for (var i = 0; i < 12; i++) Assert.Equal(File.ReadAllBytes(Path.Combine(src, $"f{i}.bin")), File.ReadAllBytes(target + Path.Combine(src, $"f{i}.bin")));
        // lib1 alone cannot restore it.
        Assert.NotEmpty(new Restorer(repo.Ring.For("c"), lib1).Run(manifest, Path.Combine(dir.Path, "r1"), new RestoreOptions(), null, CancellationToken.None).Errors);

        // With room again, lib1 takes new chunks.
        lib1.AvailableBytes = () => 1L << 40;
        lib1.CheckRoom();
        Assert.Null(lib1.Full);
    }

    [Fact]
    public void With_no_library_left_the_backup_fails_saying_so()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        for (var i = 0; i < 6; i++) File.WriteAllBytes(Path.Combine(src, $"f{i}.bin"), TestRepo.RandomBytes(2 << 20, i));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        using var lib1 = DiskLibrary.Create(Path.Combine(dir.Path, "lib1"), "lib1");
        lib1.ReserveBytes = 4 << 20;
        lib1.AvailableBytes = () => Math.Max(1, (6L << 20) - lib1.StoredBytes);
        var sink = new SpanningSink("lib1", lib1, [], _ => throw new InvalidOperationException());
        var options = new BackupOptions { RereadChangedWithin = TimeSpan.Zero, Level = Level.Full, Chunker = repo.Config.Chunker, CompressionLevel = 3, Library = "lib1", Client = "c" };
        var e = Assert.Throws<LibraryFullException>(() => new Archiver(repo.Ring.For("c"), sink, lib1).Run(new BackupSet("s", [src]), options, null, null, CancellationToken.None));
        Assert.Contains("out of space", e.Message);
        Assert.Contains("no other library of the pool is left", e.Message);
        Assert.True(lib1.Verify().Ok); // what it took is whole
    }

    /// <summary>The connection to a library lost (as DataPlaneLostException says it).</summary>
    private sealed class Lost() : IOException("lost the connection (test)"), Codec.ISourceFault;

    /// <summary>A library that has no chunk, or cannot be reached at all.</summary>
    private sealed class Answers(bool reachable) : Codec.IChunkSource
    {
        public ReadOnlySpan<byte> ReadPayload(Hashing.ChunkId id, ref byte[] buffer, out Volumes.RecordFlags flags) =>
            reachable ? throw new KeyNotFoundException($"chunk {id.Short} is not here") : throw new Lost();
    }

    [Fact]
    public void A_library_of_the_snapshot_that_cannot_be_reached_fails_the_read_and_a_fallback_copy_that_cannot_leaves_the_damage()
    {
        var id = new Hashing.ChunkId(new byte[32]);
        var buffer = Array.Empty<byte>();
        // Not in the first library, and the library it spans into is unreachable: the job fails (and is retried),
        // the chunk is not called damaged.
        var spanned = new SpanningSource([new Answers(reachable: true), new Answers(reachable: false)]);
        Assert.Throws<Lost>(() => spanned.ReadPayload(id, ref buffer, out _));
        var errors = new List<Exception?>();
        Assert.Throws<Lost>(() => spanned.ReadPayloads([id], ref buffer, (_, _, _, e) => errors.Add(e)));
        // The unreachable one only a fallback copy: the chunk's damage stands, the read goes on past it.
        var withCopy = new SpanningSource([new Answers(reachable: true), new Answers(reachable: false)], firstFallback: 1);
        Assert.Throws<KeyNotFoundException>(() => withCopy.ReadPayload(id, ref buffer, out _));
        withCopy.ReadPayloads([id], ref buffer, (_, _, _, e) => errors.Add(e));
        Assert.IsType<KeyNotFoundException>(Assert.Single(errors));
    }
}
