using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Tape;
using ActorBackup.Engine.Volumes;
using ActorBackup.TestSupport;

namespace ActorBackup.Engine.Tests;

/// <summary>A library whose volumes are cartridges behind simulated drives: spanning, mounts, end of scratch, restart.</summary>
public sealed class TapeLibraryTests : IDisposable
{
    private const int Capacity = 1 << 20;
    private readonly TempDir _dir = new();
    private readonly Random _random = new(7);
    private readonly Dictionary<ChunkId, byte[]> _written = [];

    private string Root => Path.Combine(_dir.Path, "tape1");

    public void Dispose() => _dir.Dispose();

    /// <summary>A changer of 2 drives and 8 slots with <paramref name="cartridges"/> labelled data cartridges of 1 MiB.</summary>
    private TapeMedium Medium(int cartridges = 0)
    {
        var changer = TapeChanger.Open(Root, new ChangerConfig(Slots: 8, Drives: 2, CartridgeCapacity: Capacity), TapeTimings.Instant);
        for (var i = 1; i <= cartridges; i++)
        {
            Assert.Null(changer.Execute(new ImportCartridge($"AAA{i:D3}L8")));
            Assert.Null(changer.Execute(new LabelCartridge(i, $"VOL{i:D3}")));
        }
        return new TapeMedium(changer, "tape1");
    }

    private static DiskLibrary Open(string root, TapeMedium medium, ChunkIndex? index = null, IEnumerable<VolumeEntry>? volumes = null) =>
        DiskLibrary.OpenOwned(root, "tape1", Capacity, index ?? new ChunkIndex(), volumes ?? [], medium);

    /// <summary>A new chunk of <paramref name="size"/> random bytes appended (from <paramref name="random"/>, when a thread has its own).</summary>
    private ChunkId Append(DiskLibrary library, Random? random = null, int size = 100_000)
    {
        random ??= _random;
        var payload = new byte[size];
        random.NextBytes(payload);
        var raw = new byte[32];
        random.NextBytes(raw);
        var id = new ChunkId(raw);
        library.Append(id, RecordFlags.Encrypted, payload);
        lock (_written) _written[id] = payload;
        return id;
    }

    /// <summary>Three cartridges and 12 chunks committed: volume 1 sealed (full), volume 2 begun.</summary>
    private (TapeMedium Medium, DiskLibrary Library, List<ChunkId> Chunks) TwoVolumes()
    {
        var medium = Medium(cartridges: 3);
        var library = Open(Root, medium);
        var chunks = Enumerable.Range(0, 12).Select(_ => Append(library)).ToList();
        library.Committed(library.Commit());
        return (medium, library, chunks);
    }

    /// <summary>One byte of the chunk's stored payload at <paramref name="at"/> turns (bit rot, a worn cartridge).</summary>
    private static void FlipPayloadByte(string path, ChunkLocation at)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = at.Offset + VolumeFormat.RecordOverhead + 10;
        var b = file.ReadByte();
        file.Position--;
        file.WriteByte((byte)~b);
    }

    private static void AssertReads(DiskLibrary library, IEnumerable<(ChunkId Id, byte[] Payload)> chunks)
    {
        var buffer = new byte[1];
        foreach (var (id, payload) in chunks) Assert.Equal(payload, library.ReadPayload(id, ref buffer, out _).ToArray());
    }

    [Fact]
    public void Only_a_volume_still_being_written_is_appending_and_an_exported_cartridges_volume_is_missing()
    {
        var (medium, library, _) = TwoVolumes();
        using (library)
        {
            foreach (var drive in medium.Changer.State.Drives.Where(d => d.Cartridge != ""))
                Assert.Null(medium.Changer.Execute(new UnmountCartridge(drive.Number)));
            Assert.False(library.Appending(1)); // full
            Assert.True(library.Appending(2));
            Assert.Null(medium.Changer.Execute(new ExportCartridge("AAA001L8")));
            Assert.Equal([1u], library.MissingVolumes()); // away: the library says so until it is back
        }
    }

    [Fact]
    public void Chunks_span_cartridges_each_volume_one_cartridge_and_a_read_in_tape_order_mounts_each_once()
    {
        var medium = Medium(cartridges: 4);
        using var library = Open(Root, medium);
        for (var i = 0; i < 25; i++) Append(library); // 2.5 MB on cartridges of 1 MiB: three volumes
        library.Committed(library.Commit());

        Assert.Equal("tape", library.Kind);
        Assert.Equal([(1u, VolumeState.Full, "VOL001"), (2u, VolumeState.Full, "VOL002"), (3u, VolumeState.Append, "VOL003")],
            library.Volumes.Select(v => (v.Number, v.State, v.Label)));
        Assert.Equal([(1u, "AAA001L8"), (2u, "AAA002L8"), (3u, "AAA003L8")],
            medium.Changer.State.Cartridges.Values.Where(c => c.Volume != 0).Select(c => (c.Volume, c.Barcode)));
        Assert.All(library.Volumes, v => Assert.True(new FileInfo(medium.Changer.TapePath($"AAA00{v.Number}L8")).Length <= Capacity));

        // Read in the order of the tape (volume, then offset): each cartridge is mounted at most once.
        var ordered = _written.Select(kv => (kv.Key, kv.Value, At: library.TryGetLocation(kv.Key, out var l) ? l : default))
            .OrderBy(x => x.At.Volume).ThenBy(x => x.At.Offset).ToList();
        var before = medium.Mounts;
        AssertReads(library, ordered.Select(x => (x.Key, x.Value)));
        Assert.True(medium.Mounts - before <= 3, $"{medium.Mounts - before} mounts for 3 cartridges read in order");

        // Read alternating between the three cartridges on two drives: a mount nearly every read.
        var byVolume = ordered.GroupBy(x => x.At.Volume).Select(g => g.ToList()).ToList();
        var scattered = Enumerable.Range(0, byVolume.Min(g => g.Count)).SelectMany(i => byVolume.Select(g => g[i])).ToList();
        before = medium.Mounts;
        AssertReads(library, scattered.Select(x => (x.Key, x.Value)));
        Assert.True(medium.Mounts - before >= scattered.Count / 2, $"{medium.Mounts - before} mounts for {scattered.Count} scattered reads");
    }

    [Fact]
    public void Jobs_on_two_drives_write_their_own_cartridges_each_in_its_drive_and_a_writer_without_a_drive_joins_one()
    {
        var medium = Medium(cartridges: 4);
        using var library = Open(Root, medium);
        var written = new Dictionary<int, List<ChunkId>> { [1] = [], [2] = [] };
        // Two jobs at once, as the manager gave them drives 1 and 2: their chunks interleave in time.
        var threads = new[] { 1, 2 }.Select(drive => new Thread(() =>
        {
            TapeMedium.WorkingFor($"job-{drive}", drive);
            var random = new Random(drive);
            for (var i = 0; i < 6; i++)
            {
                written[drive].Add(Append(library, random, size: 50_000));
                Thread.Yield();
            }
            TapeMedium.WorkingFor(null);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        library.Committed(library.Commit());

        // Each job's chunks on one volume, a cartridge of its own, sitting in the job's drive; the drive names the job.
        var state = medium.Changer.State;
        foreach (var drive in new[] { 1, 2 })
        {
            var volumes = written[drive].Select(id => library.TryGetLocation(id, out var at) ? at.Volume : 0).Distinct().ToList();
            var volume = Assert.Single(volumes);
            Assert.Equal(Place.Drive(drive), state.HoldingVolume(volume)!.Place);
            Assert.Equal($"job-{drive}", medium.JobOn(drive));
        }
        Assert.Equal(2, library.Volumes.Count(v => v.State == VolumeState.Append));
        AssertReads(library, _written.Select(kv => (kv.Key, kv.Value)));

        // A write that names no drive (a prune's copy) goes on one of the volumes being written: no third cartridge.
        Append(library);
        Assert.Equal(2, library.Volumes.Count);
    }

    [Fact]
    public void A_job_that_reads_one_cartridge_and_writes_another_uses_two_drives_instead_of_swapping_them()
    {
        var (medium, library, first) = TwoVolumes();
        using var opened = library;
        var onFirst = first.Where(id => library.TryGetLocation(id, out var at) && at.Volume == 1).ToList();
        Assert.True(onFirst.Count >= 5);
        foreach (var d in medium.Changer.State.Drives.Where(d => d.Cartridge != "")) Assert.Null(medium.Changer.Execute(new UnmountCartridge(d.Number)));

        // As a prune's copy on drive 1: read a chunk of volume 1, write it again, and so on.
        var before = medium.Mounts;
        using (TapeMedium.WorkingFor("prune-job", 1, writes: true))
        {
            var buffer = new byte[1];
            foreach (var id in onFirst)
            {
                library.ReadPayload(id, ref buffer, out _);
                Append(library, size: 10_000); // volume 2 has room for them all
            }
        }
        Assert.Equal(2, medium.Mounts - before); // each cartridge once, each in a drive of its own
        Assert.Equal(Place.Drive(1), medium.Changer.State.HoldingVolume(2)!.Place); // the job writes in its drive
    }

    [Fact]
    public void A_restore_reads_in_the_drive_the_manager_gave_it_even_where_an_ended_backup_left_its_cartridge()
    {
        var (medium, library, first) = TwoVolumes(); // volume 2, being written, sits in drive 2
        using var opened = library;
        Assert.Equal(Place.Drive(2), medium.Changer.State.HoldingVolume(2)!.Place);
        Assert.Null(medium.Changer.Execute(new UnmountCartridge(1)));
        Assert.True(library.TryGetLocation(first[0], out var at) && at.Volume == 1);
        using (TapeMedium.WorkingFor("restore-job", 2))
        {
            var buffer = new byte[1];
            library.ReadPayload(first[0], ref buffer, out _);
        }
        Assert.Equal(Place.Drive(2), medium.Changer.State.HoldingVolume(1)!.Place); // its own drive: no other job holds it
        Assert.Equal("restore-job", medium.JobOn(2));
    }

    /// <summary>A tape medium whose drive 1 waits at a gate before it writes (a mount or a wind that takes its time).</summary>
    private sealed class GatedMedium(TapeMedium inner) : ForwardingMedium(inner)
    {
        public readonly ManualResetEventSlim Gate = new(true);
        public readonly ManualResetEventSlim AtGate = new(false);

        public override void Writing(uint volume, long offset, long length)
        {
            if (inner.Stream == 1 && !Gate.IsSet)
            {
                AtGate.Set();
                Gate.Wait();
            }
            base.Writing(volume, offset, length);
        }
    }

    [Fact]
    public async Task One_drive_winding_or_mounting_does_not_hold_up_another_drives_appends()
    {
        var medium = new GatedMedium(Medium(cartridges: 3));
        using var library = DiskLibrary.OpenOwned(Root, "tape1", Capacity, new ChunkIndex(), [], medium);
        var seed = 0;
        async Task<ChunkId> On(int drive) => await Task.Run(() =>
        {
            TapeMedium.WorkingFor($"job-{drive}", drive);
            try
            {
                return Append(library, new Random(Interlocked.Increment(ref seed)), size: 10_000);
            }
            finally
            {
                TapeMedium.WorkingFor(null);
            }
        });
        await On(1);
        await On(2); // each drive writing its own cartridge
        medium.Gate.Reset();
        var slow = On(1); // drive 1 takes its time before it writes
        Task<ChunkId> other;
        try
        {
            Assert.True(await Task.Run(() => medium.AtGate.Wait(TimeSpan.FromSeconds(60))));
            other = On(2);
            Assert.Same(other, await Task.WhenAny(other, Task.Delay(TimeSpan.FromSeconds(60)))); // drive 2 appends meanwhile
            Assert.False(slow.IsCompleted);
        }
        finally
        {
            medium.Gate.Set(); // a failure above leaves nothing waiting
        }
        await slow;
        await other;
        AssertReads(library, _written.Select(kv => (kv.Key, kv.Value)));
    }

    [Fact]
    public void A_cartridge_whose_record_fails_its_checksum_is_in_error_takes_no_more_appends_and_its_other_chunks_still_read()
    {
        var medium = Medium(cartridges: 3);
        using var library = Open(Root, medium);
        var ids = Enumerable.Range(0, 4).Select(_ => Append(library)).ToList();
        library.Committed(library.Commit());
        Assert.True(library.TryGetLocation(ids[1], out var at));
        Assert.Empty(library.VolumesInError);

        // One byte of the second chunk's payload turns on the tape (bit rot, a worn cartridge).
        FlipPayloadByte(medium.Changer.TapePath("AAA001L8"), at);
        var buffer = new byte[1];
        Assert.Throws<VolumeCorruptException>(() => library.ReadPayload(ids[1], ref buffer, out _));

        // The cartridge is in error: reported for retirement, sealed, and the next chunk goes on the next cartridge.
        Assert.Equal([at.Volume], library.VolumesInError);
        var volume = library.Volumes.Single(v => v.Number == at.Volume);
        Assert.Equal(VolumeState.Error, volume.State);
        Assert.Contains("checksum", volume.Error);
        Assert.Contains($"at cartridge AAA001L8 (volume {at.Volume}), tape file 0, ", volume.Error); // where on the tape
        var next = Append(library);
        Assert.True(library.TryGetLocation(next, out var nextAt));
        Assert.NotEqual(at.Volume, nextAt.Volume);
        AssertReads(library, ids.Where(id => id != ids[1]).Append(next).Select(id => (id, _written[id])));
        // Kept across a commit and a reopen (the owner journals the volume table).
        var batch = library.Commit();
        library.Committed(batch);
        Assert.Equal(VolumeState.Error, batch.Volumes.Single(v => v.Number == at.Volume).State);
        library.Dispose();
        using var reopened = Open(Root, Medium(), volumes: batch.Volumes);
        Assert.Equal([at.Volume], reopened.VolumesInError);
        Append(reopened);
        Assert.Equal(VolumeState.Error, reopened.Volumes.Single(v => v.Number == at.Volume).State);
    }

    [Fact]
    public void A_call_made_in_place_puts_back_the_job_and_drive_the_thread_served()
    {
        using var medium = Medium();
        using (TapeMedium.WorkingFor("copy-job", 2, writes: true))
        {
            using (TapeMedium.WorkingFor("its-source-read", 0)) Assert.Equal(0, medium.Stream); // the copy reads its source in place
            Assert.Equal(2, medium.Stream); // and writes on in its own drive
        }
        Assert.Equal(0, medium.Stream);
    }

    [Fact]
    public void Reopened_with_two_cartridges_being_written_both_go_on_taking_appends()
    {
        var medium = Medium(cartridges: 3);
        using var library = Open(Root, medium);
        foreach (var drive in new[] { 1, 2 })
            using (TapeMedium.WorkingFor($"job-{drive}", drive))
                Append(library);
        var batch = library.Commit();
        library.Committed(batch);
        Assert.Equal(2, batch.Volumes.Count(v => v.State == VolumeState.Append));
        library.Dispose();

        // After a restart each drive's job goes on on a cartridge begun before: none is closed with room left.
        var again = Medium();
        using var reopened = Open(Root, again, volumes: batch.Volumes);
        foreach (var drive in new[] { 2, 1 })
            using (TapeMedium.WorkingFor($"job-{drive}", drive))
                Append(reopened);
        Assert.Equal([(1u, VolumeState.Append), (2u, VolumeState.Append)], reopened.Volumes.Select(v => (v.Number, v.State)));
        Assert.Single(again.Changer.State.Scratch); // the third cartridge is still blank
    }

    [Fact]
    public void A_damaged_record_on_a_disk_volume_leaves_the_volume_in_service_to_be_healed_from_a_copy()
    {
        using var library = DiskLibrary.OpenOwned(Path.Combine(_dir.Path, "disk1"), "disk1", Capacity, new ChunkIndex(), []);
        var id = Append(library);
        library.Committed(library.Commit());
        Assert.True(library.TryGetLocation(id, out var at));
        FlipPayloadByte(Path.Combine(_dir.Path, "disk1", "volumes", VolumeFormat.VolumeFileName(at.Volume)), at);
        var buffer = new byte[1];
        Assert.Throws<VolumeCorruptException>(() => library.ReadPayload(id, ref buffer, out _));
        Assert.Empty(library.VolumesInError);
        Assert.Equal(VolumeState.Append, library.Volumes.Single().State);
    }

    [Fact]
    public void Each_commit_and_each_seal_ends_a_tape_file_and_a_position_names_the_file_and_the_bytes_into_it()
    {
        var medium = Medium(cartridges: 3);
        using var library = Open(Root, medium);
        var a = Append(library);
        library.Committed(library.Commit());
        var b = Append(library);
        library.Committed(library.Commit());
        library.Committed(library.Commit()); // nothing new since: no second mark in a row
        var cartridge = medium.Changer.State.HoldingVolume(1)!;
        Assert.Equal(2, cartridge.Marks!.Count);
        Assert.Equal(library.Volumes[0].Bytes, cartridge.Marks[^1]);
        Assert.True(library.TryGetLocation(a, out var atA));
        Assert.True(library.TryGetLocation(b, out var atB));
        Assert.Equal((0, atA.Offset), cartridge.Position(atA.Offset));
        Assert.Equal((1, atB.Offset - cartridge.Marks[0]), cartridge.Position(atB.Offset));

        // A sealed cartridge ends with a mark at its end; a recycled one starts again without any.
        for (var i = 0; i < 10; i++) Append(library);
        var sealedOne = medium.Changer.State.HoldingVolume(1)!;
        Assert.Equal(VolumeState.Full, library.Volumes[0].State);
        Assert.Equal(new FileInfo(medium.Changer.TapePath(sealedOne.Barcode)).Length, sealedOne.Marks![^1]);
        Assert.Null(medium.Changer.Execute(new RecycleVolume(1)));
        Assert.Null(medium.Changer.State.Cartridge(sealedOne.Barcode)!.Marks);
        // A mark behind the last (the tail was cut on recovery and written again) replaces those after it.
        Assert.Null(medium.Changer.Execute(new WriteFileMark(2, 5_000)));
        Assert.Null(medium.Changer.Execute(new WriteFileMark(2, 3_000)));
        Assert.Equal([3_000L], medium.Changer.State.HoldingVolume(2)!.Marks!);
    }

    [Fact]
    public void With_no_scratch_cartridge_left_the_library_is_full_not_broken_and_what_it_took_commits()
    {
        var medium = Medium(cartridges: 1);
        using var library = Open(Root, medium);
        // With a reserve (as a media agent sets it), a writer hears "full" when it asks to store a new chunk.
        library.ReserveBytes = 150_000;
        var full = Assert.Throws<LibraryFullException>(() =>
        {
            for (var i = 0; i < 20; i++)
            {
                var raw = new byte[32];
                _random.NextBytes(raw);
                Assert.True(library.TryReserve(new ChunkId(raw)));
                library.Release(new ChunkId(raw));
                Append(library);
            }
        });
        Assert.StartsWith("tape library tape1 is nearly full: ", full.Message);
        Assert.Contains("import cartridges and label them", full.Message);
        // Without one, the append that needs a new cartridge is refused whole, and nothing breaks.
        library.ReserveBytes = 0;
        var none = Assert.Throws<LibraryFullException>(() =>
        {
            for (var i = 0; i < 20; i++) Append(library);
        });
        Assert.Equal("tape library tape1: no labelled cartridge is free to write on: import cartridges and label them (abk library import, abk volume label), or prune to recycle some", none.Message);
        Assert.Null(library.Broken);
        Assert.NotNull(library.Full);
        var appended = _written.Keys.Where(id => library.Contains(id)).ToList();
        Assert.Equal(_written.Count, appended.Count); // every append before the refused one (which the helper did not record)
        library.Committed(library.Commit());
        AssertReads(library, appended.Select(id => (id, _written[id])));
    }

    [Fact]
    public void A_media_node_restarting_mid_write_finds_the_cartridges_last_whole_block()
    {
        var medium = Medium(cartridges: 2);
        CommitBatch batch;
        List<ChunkId> committed, uncommitted;
        using (var library = Open(Root, medium))
        {
            committed = Enumerable.Range(0, 3).Select(_ => Append(library)).ToList();
            batch = library.Commit();
            library.Committed(batch);
            uncommitted = Enumerable.Range(0, 3).Select(_ => Append(library)).ToList();
        } // closed without a commit: the three blocks are on the tape, not in the index
        medium.Changer.Dispose();
        // The power went in the middle of the last block: half of it reached the tape.
        var tape = new TapeMedium(TapeChanger.Open(Root, new ChangerConfig(Slots: 8, Drives: 2, CartridgeCapacity: Capacity), TapeTimings.Instant), "tape1");
        var path = tape.PathOf(1);
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(f.Length - 50_000);

        var index = new ChunkIndex();
        foreach (var (id, at) in batch.Entries) index.Set(id, at);
        using var again = Open(Root, tape, index, batch.Volumes);
        Assert.Equal(2, again.LastOpen.RecoveredRecords); // the two whole blocks after the commit
        Assert.True(again.LastOpen.TornBytesCut > 0);
        again.Committed(again.Commit());
        AssertReads(again, committed.Concat(uncommitted.Take(2)).Select(id => (id, _written[id])));
        Assert.False(again.Contains(uncommitted[2]));
        var next = Append(again); // appends go on at the end of the cut tape
        again.Committed(again.Commit());
        AssertReads(again, [(next, _written[next])]);
    }

    [Fact]
    public void With_the_changer_state_and_the_journal_lost_the_cartridges_are_read_again_and_never_written_over()
    {
        using (var library = Open(Root, Medium(cartridges: 4)))
        {
            for (var i = 0; i < 25; i++) Append(library); // volumes 1 to 3
            library.Committed(library.Commit());
        }
        File.Delete(Path.Combine(Root, "changer.json"));
        // The cartridges imported and labelled again, as scratch: their tapes say which volume each holds.
        var medium = Medium(cartridges: 4);
        Assert.Equal([(1u, "AAA001L8"), (2u, "AAA002L8"), (3u, "AAA003L8")],
            medium.Changer.State.Cartridges.Values.Where(c => c.Volume != 0).Select(c => (c.Volume, c.Barcode)));
        using var again = Open(Root, medium); // an empty index and volume table: every record is found on the tapes
        Assert.Equal(_written.Count, again.LastOpen.RecoveredRecords);
        Assert.Equal(["VOL001", "VOL002", "VOL003"], again.Volumes.Select(v => v.Label));
        again.Committed(again.Commit());
        AssertReads(again, _written.Select(kv => (kv.Key, kv.Value)));
        for (var i = 0; i < 10; i++) Append(again); // on after volume 3: volume 4 on the one scratch cartridge left
        again.Committed(again.Commit());
        Assert.Equal("AAA004L8", medium.Changer.State.HoldingVolume(4)?.Barcode);
        AssertReads(again, _written.Select(kv => (kv.Key, kv.Value)));
    }

    [Fact]
    public void A_cartridge_of_another_library_labelled_here_is_never_written_over()
    {
        using (var library = Open(Root, Medium(cartridges: 1)))
        {
            for (var i = 0; i < 3; i++) Append(library);
            library.Committed(library.Commit());
        }
        // Its cartridge moves to another library, where an operator labels it with a blank one beside it.
        var otherRoot = Path.Combine(_dir.Path, "tape2");
        var changer = TapeChanger.Open(otherRoot, new ChangerConfig(Slots: 4, Drives: 1, CartridgeCapacity: Capacity), TapeTimings.Instant);
        File.Copy(Path.Combine(Root, "cartridges", "AAA001L8.tape"), changer.TapePath("AAA001L8"));
        var before = File.ReadAllBytes(changer.TapePath("AAA001L8"));
        foreach (var (barcode, slot) in new[] { ("AAA001L8", 1), ("BBB002L8", 2) })
        {
            Assert.Null(changer.Execute(new ImportCartridge(barcode)));
            Assert.Null(changer.Execute(new LabelCartridge(slot, barcode)));
        }
        using var other = DiskLibrary.OpenOwned(otherRoot, "tape2", Capacity, new ChunkIndex(), [], new TapeMedium(changer, "tape2"));
        Assert.Equal(Capacity, other.RoomLeft); // the blank cartridge alone: the other library's is no room to write
        Append(other);
        other.Committed(other.Commit());
        Assert.Equal("BBB002L8", changer.State.HoldingVolume(1)?.Barcode); // the blank one
        Assert.Equal(before, File.ReadAllBytes(changer.TapePath("AAA001L8")));
        Assert.Equal(0u, changer.State.Cartridge("AAA001L8")!.Volume);
    }

    [Fact]
    public void After_going_back_to_an_older_table_a_newer_builds_cartridge_keeps_its_number_and_its_tape()
    {
        // Volume 2 went on a cartridge; then the journal went back to a copy that knew volume 1 alone, and volume 2's tape
        // is of a newer build's format (it cannot be adopted): a new volume takes number 3 on a blank cartridge.
        var (_, library, _) = TwoVolumes();
        VolumeEntry first;
        using (library) first = library.Volumes.Single(v => v.Number == 1);
        var medium = Medium();
        var newer = medium.Changer.State.HoldingVolume(2)!.Barcode;
        var tape = medium.Changer.TapePath(newer);
        var bytes = File.ReadAllBytes(tape);
        int length = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(10));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), 2);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(length - 4), System.IO.Hashing.Crc32.HashToUInt32(bytes.AsSpan(0, length - 4)));
        File.WriteAllBytes(tape, bytes);
        using var back = Open(Root, medium, volumes: [first]);
        Assert.Contains(back.LastOpen.Problems, p => p.Contains("written by a newer ActorBackup"));
        for (var i = 0; i < 4; i++) Append(back);
        back.Committed(back.Commit());
        Assert.Equal(newer, medium.Changer.State.HoldingVolume(2)?.Barcode);
        Assert.Equal(bytes, File.ReadAllBytes(tape));
        Assert.NotNull(medium.Changer.State.HoldingVolume(3));
        Assert.Contains(back.Volumes, v => v.Number == 3);
    }

    [Fact]
    public void A_volume_a_prune_emptied_is_erased_and_its_cartridge_takes_the_next_volume()
    {
        var (medium, library, first) = TwoVolumes();
        using var opened = library;
        Assert.Equal(VolumeState.Full, library.Volumes[0].State);
        // Nothing of volume 1 is live any more: its records go, the volume is recycled and its tape erased.
        library.BeginPrune();
        library.Sweep(first.Skip(11).ToHashSet(), dryRun: false);
        library.Committed(library.Commit());
        library.MarkRecycle(1);
        Assert.True(library.DeleteVolume(1) > 0);
        Assert.Equal(0u, medium.Changer.State.Cartridge("AAA001L8")!.Volume);
        Assert.Equal("VOL001", medium.Changer.State.Cartridge("AAA001L8")!.Label); // scratch again, label kept
        Assert.False(File.Exists(medium.Changer.TapePath("AAA001L8")));
        // Volume 2 fills AAA002; the next volumes go on the recycled AAA001 (still in its drive: first) and on AAA003.
        for (var i = 0; i < 25; i++) Append(library);
        library.Committed(library.Commit());
        Assert.Equal(["AAA002L8", "AAA001L8", "AAA003L8"], new uint[] { 2, 3, 4 }.Select(v => medium.Changer.State.HoldingVolume(v)?.Barcode));
        AssertReads(library, _written.Where(kv => library.Contains(kv.Key)).Select(kv => (kv.Key, kv.Value)));
    }

    [Fact]
    public void A_cartridge_marked_to_be_retired_stays_out_of_service_when_the_node_stopped_before_its_deletion()
    {
        var (_, library, first) = TwoVolumes();
        library.BeginPrune();
        library.Sweep(first.Skip(11).ToHashSet(), dryRun: false);
        library.Committed(library.Commit());
        library.MarkRecycle(1, retire: true); // its read errors: an operator retires it
        var batch = library.Commit(); // the table with it journaled; the node dies before DeleteVolume
        library.Committed(batch);
        library.Dispose();

        var again = Medium();
        using var reopened = Open(Root, again, volumes: batch.Volumes); // deletes what is marked Recycle
        var cartridge = again.Changer.State.Cartridge("AAA001L8")!;
        Assert.True(cartridge.Retired, "the cartridge went back to scratch: backups would be written on it");
        Assert.DoesNotContain(again.Changer.State.Scratch, c => c.Barcode == "AAA001L8");
    }
}
