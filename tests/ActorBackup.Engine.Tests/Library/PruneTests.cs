using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests;

/// <summary>Prune: the chunks only deleted snapshots held leave the index and the disk; kept snapshots restore.</summary>
public sealed class PruneTests
{
    internal static readonly RepositoryConfig Small = new() { ChunkMin = 16 * 1024, ChunkAvg = 64 * 1024, ChunkMax = 256 * 1024, VolumeCapacity = 4 * 1024 * 1024 };

    private static long VolumeBytes(Repository.Repository repo) =>
        Directory.GetFiles(Path.Combine(repo.Library.Root, "volumes")).Sum(f => new FileInfo(f).Length);

    [Fact]
    public void Deleting_a_snapshot_and_pruning_frees_its_bytes_and_the_kept_one_restores_byte_for_byte()
    {
        using var dir = new TempDir();
        var shared = Path.Combine(dir.Path, "a", "shared.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(shared)!);
        File.WriteAllBytes(shared, TestRepo.RandomBytes(2_000_000, 1));
        File.WriteAllBytes(Path.Combine(dir.Path, "a", "gone.bin"), TestRepo.RandomBytes(6_000_000, 2));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), Small);
        var set = new BackupSet("s", [Path.Combine(dir.Path, "a")]);
        var first = repo.Backup(set, Level.Full);
        File.Delete(Path.Combine(dir.Path, "a", "gone.bin"));
        File.WriteAllBytes(Path.Combine(dir.Path, "a", "new.bin"), TestRepo.RandomBytes(1_000_000, 3));
        var second = repo.Backup(set, Level.Incremental);
        Assert.True(repo.Library.HasReferences(first.Id), string.Join(",", Directory.GetFiles(repo.Library.ReferencesDir)) + " first " + first.Id);
        Assert.True(repo.Library.HasReferences(second.Id), string.Join(",", Directory.GetFiles(repo.Library.ReferencesDir)) + " second " + second.Id);
        var before = VolumeBytes(repo);

        // A dry run says what would go and changes nothing.
        var dry = repo.Library.Prune([second.Id], dryRun: true);
        Assert.True(dry.BytesDead >= 6_000_000, $"dead {dry.BytesDead}");
        Assert.Equal(before, VolumeBytes(repo));

        var result = repo.Library.Prune([second.Id]);
        Assert.Empty(result.Problems);
        Assert.Equal(dry.ChunksDead, result.ChunksDead);
        Assert.NotEmpty(result.VolumesCompacted);
        var after = VolumeBytes(repo);
        Assert.True(before - after >= 0.9 * 6_000_000, $"volumes {before} -> {after}: freed {before - after}");
        Assert.False(repo.Library.HasReferences(first.Id));
        Assert.True(repo.Library.Verify().Ok);

        // The kept snapshot restores byte for byte, also after reopening the library from disk (once closed: one writer).
        repo.Dispose();
        using var reopened = TestRepo.Open(Path.Combine(dir.Path, "repo"));
        var target = Path.Combine(dir.Path, "restored");
        var restored = reopened.Restore(second.Id, target);
        Assert.Empty(restored.Errors);
        var src = Path.Combine(dir.Path, "a");
        foreach (var f in Directory.GetFiles(src))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(target, Path.GetRelativePath("/", src), Path.GetFileName(f))));
        // Pruning again finds nothing more.
        Assert.Equal(0, reopened.Library.Prune([second.Id]).ChunksDead);
    }

    [Fact]
    public void Snapshots_kept_as_deltas_on_one_base_prune_exactly_and_the_base_goes_with_the_last()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "a");
        Directory.CreateDirectory(src);
        // More files than a list is written whole for: the lists are deltas on a shared base.
        for (var i = 0; i < ReferenceStore.WholeBelow + 500; i++) File.WriteAllText(Path.Combine(src, $"f{i}"), $"file {i} {Guid.NewGuid()}");
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), Small);
        var set = new BackupSet("s", [src]);
        var first = repo.Backup(set, Level.Full);
        for (var i = 0; i < 100; i++)
        {
            File.Delete(Path.Combine(src, $"f{i}"));
            File.WriteAllText(Path.Combine(src, $"n{i}"), $"new {i} {Guid.NewGuid()}");
        }
        var second = repo.Backup(set, Level.Incremental);
        var lib = repo.Library;
        var store = new ReferenceStore(lib.ReferencesDir);
        Assert.Single(Directory.GetFiles(store.BasesDir, "*.base"));
        Assert.True(new FileInfo(store.PathOf(second.Id)).Length < 250 * 32, "the second list holds only what changed");
        var firstIds = lib.ReadReferences(first.Id);
        var secondIds = lib.ReadReferences(second.Id);
        Assert.True(firstIds.Length > ReferenceStore.WholeBelow);

        // Only what the first alone referenced goes; the second still reads whole, on the base the first made.
        var result = lib.Prune([second.Id]);
        Assert.Empty(result.Problems);
        Assert.Equal(firstIds.Except(secondIds).Count(), result.ChunksDead);
        Assert.False(lib.HasReferences(first.Id));
        Assert.Single(Directory.GetFiles(store.BasesDir, "*.base"));
        Assert.Equal(secondIds, lib.ReadReferences(second.Id));
        Assert.All(secondIds, id => Assert.True(lib.Contains(id)));
        var target = Path.Combine(dir.Path, "restored");
        Assert.Empty(repo.Restore(second.Id, target).Errors);
        foreach (var f in Directory.GetFiles(src))
            Assert.Equal(File.ReadAllText(f), File.ReadAllText(Path.Combine(target, Path.GetRelativePath("/", src), Path.GetFileName(f))));

        // The last list on the base goes: so does the base.
        Assert.Equal(secondIds.Length, lib.Prune([]).ChunksDead);
        Assert.Empty(Directory.GetFiles(store.BasesDir, "*.base"));
        Assert.Empty(Directory.GetFiles(lib.ReferencesDir, "*.ref"));
    }

    [Fact]
    public void A_part_that_cannot_join_its_damaged_list_is_dropped_and_the_commit_and_the_library_go_on()
    {
        using var dir = new TempDir();
        using var repo = OneFileBackedUp(dir, 300_000, 6, out var snap);
        var lib = repo.Library;
        var path = Path.Combine(lib.ReferencesDir, ReferenceList.FileName(snap.Id));
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 1;
        File.WriteAllBytes(path, bytes);
        // A later part of that list, and another snapshot's list, at one commit: the commit goes on, the library still
        // writes, the damaged list stays as it was and is named by a check and by a prune, which stops at it.
        var other = new Hashing.ChunkId(System.Security.Cryptography.SHA256.HashData("other"u8));
        lib.AddReferences(snap.Id, [other]);
        lib.AddReferences("later", [other]);
        lib.Commit();
        Assert.Null(lib.Broken);
        Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.Equal([other], lib.ReadReferences("later"));
        var (damaged, why) = Assert.Single(lib.DamagedReferences());
        Assert.Equal(snap.Id, damaged);
        Assert.Contains("checksum", why);
        Assert.Contains(path, Assert.Throws<InvalidOperationException>(() => lib.Prune([snap.Id, "later"])).Message);
        lib.AddReferences("next", [other]);
        lib.Commit();
        Assert.True(lib.HasReferences("next"));
    }

    [Fact]
    public void A_check_names_a_volume_file_that_is_missing_while_the_table_holds_it()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(Path.Combine(dir.Path, "a.bin"), TestRepo.RandomBytes(300_000, 4));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), Small);
        repo.Backup(new BackupSet("s", [Path.Combine(dir.Path, "a.bin")]), Level.Full);
        Assert.True(repo.Library.Verify().Ok);
        var volume = Directory.GetFiles(Path.Combine(repo.Library.Root, "volumes")).First();
        File.Delete(volume); // a folder removed by hand, say: the table still holds the volume
        var report = repo.Library.Verify();
        Assert.False(report.Ok);
        Assert.Contains(report.Damage, d => d.ToString().Contains("volume file is missing"));
        Assert.NotEmpty(report.Unreadable); // what it held is named unreadable
    }

    [Fact]
    public void A_part_dropped_while_its_base_was_missing_leaves_the_list_damaged_even_once_the_base_is_back()
    {
        using var dir = new TempDir();
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), Small);
        var lib = repo.Library;
        static Hashing.ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));
        lib.AddReferences("s1", Enumerable.Range(0, ReferenceStore.WholeBelow + 10).Select(Id).ToList());
        lib.Commit();
        var bases = Path.Combine(lib.ReferencesDir, "bases");
        Directory.Move(bases, bases + ".away"); // refs/ copied without its bases, say
        lib.AddReferences("s1", [Id(-1)]);
        lib.Commit();
        Assert.Null(lib.Broken);
        Directory.Move(bases + ".away", bases); // the base back: the list reads as it was, without the part
        Assert.Contains("incomplete", Assert.Throws<InvalidDataException>(() => lib.ReadReferences("s1")).Message);
        Assert.Equal("s1", Assert.Single(lib.DamagedReferences()).Snapshot);
        lib.LiveReferences(["s1"], [], TimeSpan.FromDays(1), out _, out var damaged, out _);
        Assert.Contains("incomplete", Assert.Single(damaged));
        Assert.DoesNotContain("does not know", damaged[0]); // a kept snapshot's: it stops prunes until it is deleted
        // The same list when the catalog does not know its snapshot (a backup that failed): the prune says when it goes.
        lib.LiveReferences([], [], TimeSpan.FromDays(1), out _, out var unknown, out _);
        Assert.Contains("the catalog does not know", Assert.Single(unknown));
        Assert.Contains("prune-orphans-after", unknown[0]);
        lib.RemoveReferences(["s1"]);
        Assert.Empty(Directory.GetFiles(lib.ReferencesDir));
    }

    [Fact]
    public void A_library_closed_under_a_writer_takes_no_further_references_that_no_commit_of_it_would_ever_write()
    {
        using var dir = new TempDir();
        var lib = DiskLibrary.Create(Path.Combine(dir.Path, "lib"), "l");
        var id = new Hashing.ChunkId(Enumerable.Repeat((byte)7, Hashing.ChunkId.Size).ToArray());
        lib.AddReferences("s1", [id]);
        lib.Dispose(); // opened again as another object (a copy still writing into this one, say)
        Assert.Throws<ObjectDisposedException>(() => lib.AddReferences("s1", [id]));
    }

    /// <summary>A repository (small chunks) with one full backup of one file of <paramref name="bytes"/> random bytes.</summary>
    private static Repository.Repository OneFileBackedUp(TempDir dir, int bytes, int seed, out SnapshotManifest snapshot)
    {
        var file = Path.Combine(dir.Path, "f.bin");
        File.WriteAllBytes(file, TestRepo.RandomBytes(bytes, seed));
        var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), Small);
        try
        {
            snapshot = repo.Backup(new BackupSet("s", [file]), Level.Full);
            return repo;
        }
        catch
        {
            repo.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="act"/> between BeginPrune and EndPrune, as a prune's steps run.</summary>
    private static void WhilePruning(DiskLibrary lib, Action act)
    {
        lib.BeginPrune();
        try
        {
            act();
        }
        finally
        {
            lib.EndPrune();
        }
    }

    [Fact]
    public void A_chunk_a_writer_was_told_is_present_during_the_prune_is_not_swept()
    {
        using var dir = new TempDir();
        using var repo = OneFileBackedUp(dir, 500_000, 4, out var snap);
        var ids = repo.Library.ReadReferences(snap.Id);
        var lib = repo.Library;
        WhilePruning(lib, () =>
        {
            // A backup running meanwhile deduplicates against one of the chunks (the snapshot itself is not kept).
            Assert.False(lib.TryReserve(ids[0]));
            var live = lib.LiveReferences([], [snap.Id], TimeSpan.FromDays(1), out var missing, out _, out var deadLists);
            Assert.Equal([snap.Id], deadLists);
            Assert.Empty(missing);
            var dead = lib.Sweep(live, dryRun: false);
            Assert.DoesNotContain(dead, d => d.Key == ids[0]);
            Assert.Contains(dead, d => d.Key == ids[1]);
            Assert.True(lib.Contains(ids[0]));
        });
    }

    [Fact]
    public void A_list_written_during_the_prune_is_live_whatever_its_age_and_is_not_removed_after_the_sweep()
    {
        using var dir = new TempDir();
        using var repo = OneFileBackedUp(dir, 300_000, 6, out var old);
        var lib = repo.Library;
        var ids = lib.ReadReferences(old.Id);
        WhilePruning(lib, () =>
        {
            // A backup that began after the prune commits its first parts; the mark comes later than the orphan age
            // (zero here: every list not kept is old), its snapshot in no keep list yet.
            lib.AddReferences("running", [ids[0]]);
            lib.Commit();
            var live = lib.LiveReferences([], [old.Id], TimeSpan.Zero, out _, out _, out var deadLists);
            Assert.Equal([old.Id], deadLists);
            Assert.Contains(ids[0], live);
            var dead = lib.Sweep(live, dryRun: false);
            Assert.DoesNotContain(dead, d => d.Key == ids[0]);
            // A part of a list the mark found dead, written after it: the list stays for the next prune.
            lib.AddReferences(old.Id, [ids[0]]);
            lib.Commit();
            lib.RemoveReferences([old.Id, "running"]);
            Assert.True(lib.HasReferences("running"));
            Assert.True(lib.HasReferences(old.Id));
        });
        // With no prune under way, the age counts again.
        WhilePruning(lib, () =>
        {
            lib.LiveReferences([], [], TimeSpan.Zero, out _, out _, out var deadLists);
            Assert.Equal(new[] { old.Id, "running" }.Order(StringComparer.Ordinal), deadLists.Order(StringComparer.Ordinal));
        });
    }

    [Fact]
    public void A_kept_snapshot_without_a_reference_list_stops_the_prune_before_anything_is_swept()
    {
        using var dir = new TempDir();
        using var repo = OneFileBackedUp(dir, 300_000, 5, out var snap);
        File.Delete(Path.Combine(repo.Library.ReferencesDir, ReferenceList.FileName(snap.Id)));
        var count = repo.Library.ChunkCount;
        var e = Assert.Throws<InvalidOperationException>(() => repo.Library.Prune([snap.Id]));
        Assert.Contains($"snapshot {snap.Id} has no reference list", e.Message);
        Assert.Equal(count, repo.Library.ChunkCount);
    }
}

/// <summary>A media agent whose journal was lost opens its library on an empty index: every record comes back.</summary>
public sealed class LostJournalTests
{
    [Fact]
    public void An_owner_with_an_empty_index_finds_every_record_of_sealed_and_open_volumes_again()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        var ids = new List<Hashing.ChunkId>();
        var random = new Random(3);
        using (var lib = Engine.Library.DiskLibrary.Create(root, "lib1", 1024 * 1024))
        {
            var payload = new byte[100_000];
            for (var i = 0; i < 40; i++) // 4 MB in 1 MiB volumes: three sealed, one open
            {
                random.NextBytes(payload);
                var id = new byte[32];
                random.NextBytes(id);
                ids.Add(new Hashing.ChunkId(id));
                lib.Append(ids[^1], Volumes.RecordFlags.Encrypted, payload);
            }
            lib.Commit();
            Assert.True(lib.Volumes.Count(v => v.State == Engine.Library.VolumeState.Full) >= 3);
        }
        using var owned = Engine.Library.DiskLibrary.OpenOwned(root, "lib1", 1024 * 1024, new ActorBackup.Engine.Index.ChunkIndex(), []);
        Assert.Equal(40, owned.LastOpen.RecoveredRecords);
        var buffer = new byte[1];
        foreach (var id in ids) Assert.Equal(100_000, owned.ReadPayload(id, ref buffer, out _).Length);
    }
}

/// <summary>A compaction never fills the disk it frees: a volume whose live chunks would not fit above the reserve waits.</summary>
public sealed class CompactionRoomTests
{
    [Fact]
    public void A_volume_whose_live_chunks_do_not_fit_above_the_reserve_is_passed_over_then_compacted_when_there_is_room()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "a");
        Directory.CreateDirectory(src);
        // One volume of 4 MiB holding 1 MB kept and 2.5 MB deleted: about 70% dead, 1 MB to copy out.
        File.WriteAllBytes(Path.Combine(src, "kept.bin"), TestRepo.RandomBytes(1_000_000, 1));
        File.WriteAllBytes(Path.Combine(src, "gone.bin"), TestRepo.RandomBytes(2_500_000, 2));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), PruneTests.Small);
        var set = new BackupSet("s", [src]);
        var first = repo.Backup(set, Level.Full);
        File.Delete(Path.Combine(src, "gone.bin"));
        var second = repo.Backup(set, Level.Full);

        repo.Library.ReserveBytes = 1 << 20;
        repo.Library.AvailableBytes = () => (1 << 20) + 500_000; // room for 0.5 MB above the reserve: not for the 1 MB live
        var dry = repo.Library.Prune([second.Id], dryRun: true); // says what the run would do
        Assert.Empty(dry.VolumesCompacted);
        Assert.Contains(dry.Problems, p => p.Contains("would not be compacted now"));
        var tight = repo.Library.Prune([second.Id]);
        Assert.True(tight.ChunksDead > 0);
        Assert.Empty(tight.VolumesCompacted);
        Assert.Contains(tight.Problems, p => p.Contains("is not compacted now") && p.Contains("keeps free"));
        Assert.Null(repo.Library.Broken);
        Assert.True(repo.Library.Verify().Ok);

        repo.Library.AvailableBytes = () => 1L << 40;
        var roomy = repo.Library.Prune([second.Id]);
        Assert.Empty(roomy.Problems);
        Assert.NotEmpty(roomy.VolumesCompacted);
        var target = Path.Combine(dir.Path, "restored");
        Assert.Empty(repo.Restore(second.Id, target).Errors);
        Assert.Equal(File.ReadAllBytes(Path.Combine(src, "kept.bin")), File.ReadAllBytes(Path.Combine(target, Path.GetRelativePath("/", src), "kept.bin")));
        _ = first;
    }
}
