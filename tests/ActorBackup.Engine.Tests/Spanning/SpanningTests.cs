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

    /// <summary>A library that takes an append only of a chunk reserved in it (as a media node's data plane, per connection).</summary>
    private sealed class Strict(DiskLibrary library) : Codec.IChunkSink
    {
        private readonly HashSet<Hashing.ChunkId> _reserved = [];

        public bool TryReserve(Hashing.ChunkId id)
        {
            var granted = library.TryReserve(id);
            if (granted) lock (_reserved) _reserved.Add(id);
            return granted;
        }

        public void Append(Hashing.ChunkId id, Volumes.RecordFlags flags, ReadOnlySpan<byte> payload)
        {
            lock (_reserved)
                if (!_reserved.Remove(id)) throw new IOException($"an append of {id} this library did not reserve");
            library.Append(id, flags, payload);
        }

        public void Release(Hashing.ChunkId id)
        {
            lock (_reserved)
                if (!_reserved.Remove(id)) return;
            library.Release(id);
        }

        public bool Contains(Hashing.ChunkId id) => library.Contains(id);
        public IReadOnlySet<Hashing.ChunkId> Missing(IReadOnlyList<Hashing.ChunkId> ids) => library.Missing(ids);
        public void Commit() => library.Commit();
    }

    [Fact]
    public void A_chunk_reserved_before_the_switch_is_appended_where_it_was_reserved()
    {
        using var dir = new TempDir();
        using var lib1 = DiskLibrary.Create(Path.Combine(dir.Path, "lib1"), "lib1");
        using var lib2 = DiskLibrary.Create(Path.Combine(dir.Path, "lib2"), "lib2");
        lib1.ReserveBytes = 4 << 20;
        lib1.AvailableBytes = () => (5L << 20); // room for one reservation: the next one looks again
        var sink = new SpanningSink("lib1", new Strict(lib1), ["lib2"], _ => new Strict(lib2));
        var (x, y) = (new Hashing.ChunkId(System.Security.Cryptography.SHA256.HashData([1])), new Hashing.ChunkId(System.Security.Cryptography.SHA256.HashData([2])));
        using var reserved = new ManualResetEventSlim();
        using var switched = new ManualResetEventSlim();
        Exception? failed = null;
        // A writer holds x in lib1 (reserved before it filled) while another writer meets lib1 full and goes on in lib2.
        var writer = new Thread(() =>
        {
            try
            {
                Assert.True(sink.TryReserve(x));
                reserved.Set();
                switched.Wait();
                sink.Append(x, Volumes.RecordFlags.None, [1, 2, 3]);
            }
            catch (Exception e)
            {
                failed = e;
            }
        });
        writer.Start();
        reserved.Wait();
        lib1.AvailableBytes = () => 1;
        Assert.True(sink.TryReserve(y));
        Assert.Equal(["lib1", "lib2"], sink.Libraries);
        switched.Set();
        writer.Join();
        Assert.Null(failed);
        sink.Append(y, Volumes.RecordFlags.None, [4, 5, 6]);
        sink.Commit();
        Assert.True(lib1.Contains(x));
        Assert.True(lib2.Contains(y));
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
