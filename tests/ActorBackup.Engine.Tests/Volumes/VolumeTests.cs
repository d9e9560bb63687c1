using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using CsCheck;

namespace ActorBackup.Engine.Tests;

public class VolumeTests
{
    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    private static List<(ChunkId Id, byte[] Payload, RecordInfo Info)> WriteVolume(string path, IEnumerable<byte[]> payloads, bool seal)
    {
        var written = new List<(ChunkId, byte[], RecordInfo)>();
        using var w = VolumeWriter.Create(path, 7, "lib-a", "lib-a-000007");
        var i = 0;
        foreach (var p in payloads)
        {
            var id = Id(i++);
            written.Add((id, p, w.Append(id, RecordFlags.Encrypted, p)));
        }
        if (seal) w.Seal();
        else w.Sync();
        return written;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4095)]
    [InlineData(4096)]
    [InlineData(4097)]
    [InlineData(10_000)]
    public void A_footer_written_in_blocks_reads_back_whole_at_any_count(int records)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var written = WriteVolume(path, Enumerable.Range(0, records).Select(i => BitConverter.GetBytes(i)), seal: true);
        using var r = new VolumeReader(path);
        var t = r.ReadTrailer()!.Value;
        Assert.Equal(records, t.Count);
        Assert.Equal(written.Select(w => w.Info), r.ReadFooter(t.FooterOffset, t.Count));
        var scan = r.Scan();
        Assert.True(scan.Sealed);
        Assert.Empty(scan.Damage);
    }

    [Fact]
    public void Records_round_trip_in_sealed_and_open_volumes()
    {
        Gen.Select(Gen.Byte.Array[0, 5000].Array[1, 40], Gen.Bool).Sample((payloads, seal) =>
        {
            using var dir = new TempDir();
            var path = Path.Combine(dir.Path, "v.abv");
            var written = WriteVolume(path, payloads, seal);
            using var r = new VolumeReader(path);
            Assert.Equal("lib-a", r.Header.LibraryId);
            Assert.Equal("lib-a-000007", r.Header.Label);
            var buffer = new byte[6000];
            foreach (var (id, payload, info) in written)
                Assert.True(r.ReadRecord(info.Offset, id, payload.Length, buffer, out _).SequenceEqual(payload));
            var scan = r.Scan();
            Assert.Empty(scan.Damage);
            Assert.Equal(seal, scan.Sealed);
            Assert.Equal(written.Select(w => w.Info), scan.Records);
            if (seal)
            {
                var t = r.ReadTrailer()!.Value;
                Assert.Equal(written.Select(w => w.Info), r.ReadFooter(t.FooterOffset, t.Count));
            }
        }, iter: 30);
    }

    [Fact]
    public void A_torn_tail_is_cut_back_to_the_last_whole_record_at_any_byte()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var payloads = Enumerable.Range(0, 4).Select(i => TestRepo.RandomBytes(300 + i, i)).ToList();
        var written = WriteVolume(path, payloads, seal: false);
        var whole = File.ReadAllBytes(path);
        var lastStart = (int)written[^1].Info.Offset;
        for (var cut = lastStart; cut < whole.Length; cut++)
        {
            File.WriteAllBytes(path, whole.AsSpan(0, cut).ToArray());
            using (var w = VolumeWriter.OpenForAppend(path, out var scan))
            {
                Assert.Equal(3, scan.Records.Count);
                Assert.Equal(cut > lastStart, scan.TornTail);
                Assert.Equal(lastStart, w.Length);
                // And appending goes on from there.
                w.Append(Id(99), RecordFlags.None, [1, 2, 3]);
                w.Sync();
            }
            using var r = new VolumeReader(path);
            var after = r.Scan();
            Assert.Empty(after.Damage);
            Assert.Equal(4, after.Records.Count);
            Assert.Equal(Id(99), after.Records[^1].Id);
        }
    }

    [Fact]
    public void A_tail_of_zeroes_after_a_crash_is_a_torn_tail_too()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        WriteVolume(path, [TestRepo.RandomBytes(100, 1), TestRepo.RandomBytes(100, 2)], seal: false);
        var before = new FileInfo(path).Length;
        using (var f = new FileStream(path, FileMode.Append)) f.Write(new byte[4096]);
        using var w = VolumeWriter.OpenForAppend(path, out var scan);
        Assert.True(scan.TornTail);
        Assert.Equal(2, scan.Records.Count);
        Assert.Equal(before, w.Length);
    }

    [Fact]
    public void A_flipped_bit_anywhere_is_reported_with_volume_and_offset()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var written = WriteVolume(path, Enumerable.Range(0, 3).Select(i => TestRepo.RandomBytes(64, i)), seal: true);
        var clean = File.ReadAllBytes(path);
        for (var bit = 0; bit < clean.Length * 8; bit += 7)
        {
            var bytes = (byte[])clean.Clone();
            bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            File.WriteAllBytes(path, bytes);
            var offset = bit / 8;
            bool reported;
            try
            {
                using var r = new VolumeReader(path);
                var scan = r.Scan();
                reported = scan.Damage.Count > 0 || scan.TornTail || !scan.Sealed;
                if (scan.Damage.Count > 0) Assert.All(scan.Damage, d => Assert.Equal(path, d.Volume));
                // A record read must not return the flipped bytes as good data.
                var buffer = new byte[200];
                foreach (var (id, payload, info) in written)
                {
                    if (offset < info.Offset || offset >= info.End) continue;
                    var e = Assert.Throws<VolumeCorruptException>(() => r.ReadRecord(info.Offset, id, payload.Length, buffer, out _));
                    Assert.Equal(path, e.Volume);
                    Assert.Equal(info.Offset, e.Offset);
                }
            }
            catch (VolumeCorruptException e)
            {
                // A damaged header is refused at open, with the offset.
                Assert.Equal(path, e.Volume);
                reported = true;
            }
            Assert.True(reported, $"bit {bit} (byte {offset}) flipped without a report");
        }
    }

    [Fact]
    public void A_record_that_is_not_what_the_index_says_is_told_from_bad_bytes()
    {
        // A sound record read for another id, or another length, is the index disagreeing (a cartridge is not retired
        // for it); a flipped bit is the medium's.
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var written = WriteVolume(path, [TestRepo.RandomBytes(64, 1), TestRepo.RandomBytes(64, 2)], seal: false);
        var buffer = new byte[200];
        using (var r = new VolumeReader(path))
        {
            Assert.False(Assert.Throws<VolumeCorruptException>(() => r.ReadRecord(written[0].Info.Offset, written[1].Id, 64, buffer, out _)).Medium);
            Assert.False(Assert.Throws<VolumeCorruptException>(() => r.ReadRecord(written[0].Info.Offset, written[0].Id, 63, buffer, out _)).Medium);
            Assert.False(Assert.Throws<VolumeCorruptException>(() => r.ReadRecord(r.Length - 10, written[0].Id, 64, buffer, out _)).Medium);
        }
        var bytes = File.ReadAllBytes(path);
        bytes[(int)written[0].Info.Offset + VolumeFormat.RecordHeaderSize + 10] ^= 1;
        File.WriteAllBytes(path, bytes);
        using var damaged = new VolumeReader(path);
        Assert.True(Assert.Throws<VolumeCorruptException>(() => damaged.ReadRecord(written[0].Info.Offset, written[0].Id, 64, buffer, out _)).Medium);
    }

    [Fact]
    public void A_length_from_disk_is_never_trusted()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var written = WriteVolume(path, [TestRepo.RandomBytes(64, 1), TestRepo.RandomBytes(64, 2)], seal: false);
        var bytes = File.ReadAllBytes(path);
        // Claim a 2 GiB payload in the first record.
        BitConverter.GetBytes(int.MaxValue).CopyTo(bytes, (int)written[0].Info.Offset + 40);
        File.WriteAllBytes(path, bytes);
        using var r = new VolumeReader(path);
        var scan = r.Scan();
        Assert.Contains(scan.Damage, d => d.Offset == written[0].Info.Offset);
        Assert.Single(scan.Records); // the scan resynchronised on the second record
        Assert.Throws<VolumeCorruptException>(() => r.ReadRecord(written[0].Info.Offset, written[0].Id, int.MaxValue, new byte[10], out _));
    }

    [Fact]
    public void A_sealed_volume_with_a_damaged_footer_still_gives_its_manifests_to_a_catalog_rebuild()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        var manifests = new List<ChunkId>();
        using (var lib = DiskLibrary.Create(root, "lib-f", 1024 * 1024))
        {
            for (var i = 0; i < 20; i++)
            {
                var id = Id(1000 + i);
                Assert.True(lib.TryReserve(id));
                lib.Append(id, i % 4 == 0 ? RecordFlags.Manifest : RecordFlags.None, TestRepo.RandomBytes(100_000, i));
                if (i % 4 == 0) manifests.Add(id);
            }
            lib.Commit();
            Assert.Equal(VolumeState.Full, lib.Volumes[0].State);
        }
        // A footer block the disk lost (its records whole): the footer's checksum fails.
        var first = Directory.GetFiles(Path.Combine(root, "volumes")).Order(StringComparer.Ordinal).First();
        long footer;
        using (var r = new VolumeReader(first)) footer = r.ReadTrailer()!.Value.FooterOffset;
        using (var f = new FileStream(first, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = footer + 8;
            f.WriteByte(0xFF);
        }
        using (var lib = DiskLibrary.Open(root))
            Assert.Equal(manifests.Order().ToList(), lib.FindRecords(RecordFlags.Manifest).Order().ToList());
    }

    [Fact]
    public void A_volume_whose_seal_lost_its_trailer_opens_for_appending_and_is_sealed_again()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        List<RecordInfo> written = [];
        using (var w = VolumeWriter.Create(path, 1, "lib-t", "lib-t-000001"))
        {
            for (var i = 0; i < 5; i++) written.Add(w.Append(Id(i), RecordFlags.None, TestRepo.RandomBytes(10_000, i), out _));
            w.Seal();
        }
        // The footer reached the disk, the trailer did not (a power cut between the seal's two syncs).
        using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite)) f.SetLength(f.Length - VolumeFormat.TrailerSize);
        using (var w = VolumeWriter.OpenForAppend(path, out var scan, written[^1].End))
        {
            Assert.Empty(scan.Damage);
            Assert.Equal(5, scan.Records.Count);
            Assert.Equal(written[^1].End, w.Length); // the footer cut off as a torn tail
            w.Seal();
        }
        using var reader = new VolumeReader(path);
        var again = reader.Scan();
        Assert.True(again.Sealed);
        Assert.Empty(again.Damage);
        Assert.Equal(5, again.Records.Count);
    }

    [Fact]
    public void Library_seals_full_volumes_verifies_and_rebuilds_from_volumes_alone()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        var ids = new List<ChunkId>();
        using (var lib = DiskLibrary.Create(root, "lib-b", 1024 * 1024))
        {
            for (var i = 0; i < 40; i++)
            {
                var id = Id(i);
                Assert.True(lib.TryReserve(id));
                lib.Append(id, RecordFlags.None, TestRepo.RandomBytes(100_000, i));
                ids.Add(id);
            }
            Assert.False(lib.TryReserve(ids[0]));
            lib.Commit();
            Assert.True(lib.Volumes.Count >= 4);
            Assert.All(lib.Volumes.SkipLast(1), v => Assert.Equal(VolumeState.Full, v.State));
            Assert.All(lib.Volumes, v => Assert.True(v.Bytes <= 1024 * 1024));
            Assert.True(lib.Verify().Ok);
        }
        File.Delete(Path.Combine(root, "index.abi"));
        File.Delete(Path.Combine(root, "library.json"));
        using (var rebuilt = DiskLibrary.Rebuild(root))
        {
            Assert.Equal("lib-b", rebuilt.Id);
            Assert.Equal(40, rebuilt.ChunkCount);
            var buffer = new byte[10];
            for (var i = 0; i < 40; i++)
                Assert.True(rebuilt.ReadPayload(ids[i], ref buffer, out _).SequenceEqual(TestRepo.RandomBytes(100_000, i)));
            Assert.True(rebuilt.Verify().Ok);
        }
    }

    [Fact]
    public async Task A_read_of_the_file_waits_for_the_segment_another_writer_is_writing()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        using var w = VolumeWriter.Create(path, 1, "lib-s", "lib-s-000001");
        var payload = TestRepo.RandomBytes(VolumeWriter.BufferSize, 5);
        var info = w.Append(Id(5), RecordFlags.None, payload, out var full);
        Assert.NotNull(full); // a buffer's worth: handed out, to be written outside the library's lock
        // A reader flushes the writer (as the library does before it reads a volume being written), then reads.
        var reader = Task.Run(() =>
        {
            w.FlushToFile();
            using var r = new VolumeReader(path);
            return r.ReadRecord(info.Offset, Id(5), payload.Length, new byte[VolumeFormat.RecordOverhead + payload.Length], out _).ToArray();
        });
        // Given a moment, the reader is still waiting: the segment is not written yet (on a slow machine it may not
        // have started; then it finds the segment written and the check below holds all the same).
        var waited = await Task.WhenAny(reader, Task.Delay(200)) != reader;
        w.Write(full!); // before any check: a writer's close waits for the segments it handed out
        Assert.True(waited, "the read did not wait for the segment being written");
        Assert.Equal(payload, await reader);
    }

    [Fact]
    public async Task Segments_reach_the_file_in_order_so_a_crash_leaves_no_gap()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        using var w = VolumeWriter.Create(path, 1, "lib-o", "lib-o-000001");
        var first = w.Append(Id(1), RecordFlags.None, TestRepo.RandomBytes(VolumeWriter.BufferSize, 1), out var s1);
        w.Append(Id(2), RecordFlags.None, TestRepo.RandomBytes(VolumeWriter.BufferSize, 2), out var s2);
        Assert.NotNull(s1);
        Assert.NotNull(s2);
        // The second segment's writer comes first: it waits for the first, and the file holds nothing past a gap.
        var second = Task.Run(() => w.Write(s2!));
        var waited = await Task.WhenAny(second, Task.Delay(200)) != second;
        var lengthMeanwhile = new FileInfo(path).Length;
        w.Write(s1!);
        await second;
        Assert.True(waited, "the later segment did not wait for the earlier one");
        Assert.Equal(first.Offset, lengthMeanwhile); // the header alone (written when the volume was made)
        // A crash now (the file as it is) loses nothing: every record is whole, and the volume takes appends.
        var copy = path + ".crash";
        File.Copy(path, copy);
        using var again = VolumeWriter.OpenForAppend(copy, out var scan);
        Assert.Equal(2, scan.Records.Count);
        Assert.Equal(first.Offset, scan.Records[0].Offset);
    }

    [Fact]
    public void After_a_failed_write_nothing_later_is_written_and_a_sync_says_so()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var w = VolumeWriter.Create(path, 1, "lib-f", "lib-f-000001");
        var first = w.Append(Id(1), RecordFlags.None, TestRepo.RandomBytes(VolumeWriter.BufferSize, 1), out var s1);
        w.Append(Id(2), RecordFlags.None, TestRepo.RandomBytes(VolumeWriter.BufferSize, 2), out var s2);
        w.Append(Id(3), RecordFlags.None, TestRepo.RandomBytes(1000, 3), out var none);
        Assert.Null(none);
        // The first segment's write fails (its thread gave up on it: a full disk, say).
        w.Abandon(s1!, new IOException("No space left on device"));
        Assert.Throws<IOException>(() => w.Write(s2!)); // after the hole: not written
        var sync = Assert.Throws<IOException>(w.Sync); // a commit is refused, not told the bytes are durable
        Assert.Contains("failed", sync.Message);
        Assert.Throws<IOException>(w.FlushToFile);
        w.Dispose(); // closes without writing the buffer past the hole
        Assert.Equal(first.Offset, new FileInfo(path).Length); // the header alone
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bytes_are_synced_in_the_background_as_they_are_written_and_a_failed_background_sync_fails_the_commit(bool fails)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "v.abv");
        var payload = TestRepo.RandomBytes(VolumeWriter.BufferSize, 5);
        var written = new List<(ChunkId Id, RecordInfo Info)>();
        using var gate = new ManualResetEventSlim();
        var ran = 0;
        long committed;
        using (var w = VolumeWriter.Create(path, 1, "lib-s", "lib-s-000001"))
        {
            written.Add((Id(-1), w.Append(Id(-1), RecordFlags.None, payload.AsSpan(0, 1000))));
            w.Sync(); // a commit before: its bytes stay whatever comes after
            committed = w.Length;
            w.BeforeBackgroundSync = () =>
            {
                gate.Wait(TimeSpan.FromSeconds(60)); // held until the appends are done, so that none of them meets the failure
                Thread.Sleep(100); // and slower than the commit's own fsync: the commit must wait for it
                Interlocked.Increment(ref ran);
                if (fails) throw new IOException("Input/output error");
            };
            // Each record is a full 1 MiB segment: the last of these takes the written bytes past SyncEvery.
            for (var i = 0; i < VolumeWriter.SyncEvery / VolumeWriter.BufferSize; i++)
                written.Add((Id(i), w.Append(Id(i), RecordFlags.None, payload)));
            Assert.Equal(1, w.BackgroundSyncs);
            gate.Set();
            if (fails)
            {
                // The kernel tells one sync of a write-back error: the commit's fsync must not say durable what the background one was told was not.
                var e = Assert.Throws<IOException>(w.Sync);
                Assert.Contains("could not be made durable", e.Message);
                Assert.Throws<IOException>(w.FlushToFile); // and nothing more is written to that volume
            }
            else
            {
                w.Sync();
                Assert.Equal(1, Volatile.Read(ref ran)); // the commit waited for the background sync
            }
        }
        if (fails)
        {
            // Closed, the volume is cut back to the last commit: a reopen takes back no record the disk may not hold.
            Assert.Equal(committed, new FileInfo(path).Length);
            written.RemoveRange(1, written.Count - 1);
        }
        using var r = new VolumeReader(path);
        var buffer = new byte[VolumeFormat.RecordOverhead + payload.Length];
        foreach (var (id, info) in written)
            Assert.True(r.ReadRecord(info.Offset, id, info.PayloadLength, buffer, out _).SequenceEqual(payload.AsSpan(0, info.PayloadLength)));
    }

    [Fact]
    public void Writers_appending_at_once_read_back_what_they_appended_at_once_and_after_a_reopen()
    {
        // Four writers on one library: full buffers are written outside the library's lock, so a read of a chunk just
        // appended, a seal (small volumes) and a commit each wait for the segments other writers are writing.
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        const int writers = 4, each = 150;
        static byte[] Payload(int w, int i) => TestRepo.RandomBytes(1000 + (w * each + i) * 7919 % 600_000, w * each + i + 1);
        using (var lib = DiskLibrary.Create(root, "lib-p", 8 * 1024 * 1024))
        {
            Parallel.For(0, writers, new ParallelOptions { MaxDegreeOfParallelism = writers }, w =>
            {
                var buffer = new byte[10];
                for (var i = 0; i < each; i++)
                {
                    var id = Id(10_000 + w * each + i);
                    Assert.True(lib.TryReserve(id));
                    lib.Append(id, RecordFlags.None, Payload(w, i));
                    Assert.True(lib.ReadPayload(id, ref buffer, out _).SequenceEqual(Payload(w, i)), $"writer {w}, chunk {i} read back at once");
                    if (i % 50 == 49 && w == 0) lib.Commit();
                }
            });
            lib.Commit();
            Assert.True(lib.Volumes.Count >= 4, "small volumes: sealed while others wrote");
            Assert.True(lib.Verify().Ok);
        }
        using (var again = DiskLibrary.Open(root))
        {
            Assert.Equal(writers * each, again.ChunkCount);
            var buffer = new byte[10];
            for (var w = 0; w < writers; w++)
                for (var i = 0; i < each; i++)
                    Assert.True(again.ReadPayload(Id(10_000 + w * each + i), ref buffer, out _).SequenceEqual(Payload(w, i)));
            Assert.True(again.Verify().Ok);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(200)]
    public void A_volume_file_a_crash_left_before_it_wrote_anything_does_not_stop_the_next_volume(int leftover)
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using (var lib = DiskLibrary.Create(root, "lib-e", volumeCapacity: 1024 * 1024)) // one chunk a volume: the next one starts volume 2
        {
            lib.Append(Id(1), RecordFlags.None, TestRepo.RandomBytes(600_000, 1));
            lib.Commit();
        }
        // The node died right after it created volume 2 (unknown to the committed table): the file is there, empty,
        // or as long as a header but zeros (its size reached the disk, its bytes did not).
        File.WriteAllBytes(Path.Combine(root, "volumes", VolumeFormat.VolumeFileName(2)), new byte[leftover]);
        using (var lib = DiskLibrary.Open(root))
        {
            lib.Append(Id(2), RecordFlags.None, TestRepo.RandomBytes(600_000, 2));
            lib.Commit();
        }
        using var again = DiskLibrary.Open(root);
        var buffer = new byte[10];
        Assert.True(again.ReadPayload(Id(2), ref buffer, out _).SequenceEqual(TestRepo.RandomBytes(600_000, 2)));
        Assert.Equal([1u, 2u], again.Volumes.Select(v => v.Number));
        Assert.True(again.Verify().Ok);
    }

    [Fact]
    public void Library_reopened_after_a_crash_keeps_whole_uncommitted_records_and_cuts_the_torn_one()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using (var lib = DiskLibrary.Create(root, "lib-c"))
        {
            lib.Append(Id(1), RecordFlags.None, TestRepo.RandomBytes(1000, 1));
            lib.Commit();
            lib.Append(Id(2), RecordFlags.None, TestRepo.RandomBytes(1000, 2));
            lib.Append(Id(3), RecordFlags.None, TestRepo.RandomBytes(1000, 3));
            // No commit: the process dies here, with the last record half written.
        }
        var volume = Directory.GetFiles(Path.Combine(root, "volumes")).Single();
        using (var f = new FileStream(volume, FileMode.Open)) f.SetLength(f.Length - 10);
        using (var reopened = DiskLibrary.Open(root))
        {
            Assert.True(reopened.Contains(Id(1)));
            Assert.True(reopened.Contains(Id(2)));
            Assert.False(reopened.Contains(Id(3)));
            Assert.Equal(1048 - 10, reopened.LastOpen.TornBytesCut);
            Assert.True(reopened.Verify().Ok);
            reopened.Append(Id(3), RecordFlags.None, TestRepo.RandomBytes(1000, 3));
            reopened.Commit();
        }
        using var again = DiskLibrary.Open(root);
        Assert.Equal(3, again.ChunkCount);
        Assert.True(again.Verify().Ok);
    }

    [Fact]
    public void A_volume_shorter_than_what_was_committed_to_it_is_damage_not_a_place_for_appends()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using (var lib = DiskLibrary.Create(root, "lib-s"))
        {
            for (byte i = 1; i <= 3; i++) lib.Append(Id(i), RecordFlags.None, TestRepo.RandomBytes(1000, i));
            lib.Commit();
        }
        // The disk lost the last committed record whole (cut at a record's end: nothing looks torn).
        var volume = Directory.GetFiles(Path.Combine(root, "volumes")).Single();
        using (var f = new FileStream(volume, FileMode.Open)) f.SetLength(f.Length - 1048);
        using (var reopened = DiskLibrary.Open(root))
        {
            Assert.Contains(reopened.LastOpen.Problems, p => p.Contains("committed records are missing"));
            Assert.Equal(VolumeState.Error, reopened.Volumes.Single().State);
            // New chunks go to a new volume, not over the offset the index gives the lost record.
            reopened.Append(Id(4), RecordFlags.None, TestRepo.RandomBytes(1000, 4));
            reopened.Commit();
            Assert.Equal([1u, 2u], reopened.Volumes.Select(v => v.Number));
            var buffer = new byte[10];
            Assert.True(reopened.ReadPayload(Id(1), ref buffer, out _).SequenceEqual(TestRepo.RandomBytes(1000, 1))); // what is there still reads
            Assert.False(reopened.Verify().Ok);
        }
    }

    [Fact]
    public void A_read_whose_volume_reader_was_retired_and_closed_meanwhile_looks_its_chunk_up_again()
    {
        using var dir = new TempDir();
        using var lib = DiskLibrary.Create(Path.Combine(dir.Path, "lib"), "lib-r");
        lib.Append(Id(1), RecordFlags.None, TestRepo.RandomBytes(1000, 1));
        lib.Commit();
        lib.RetiredReaderGrace = TimeSpan.Zero;
        var closed = 0;
        // A prune retires the reader this read took, and the grace passes before the read comes (a slow mount, say).
        lib.BeforeRecordRead = _ =>
        {
            if (closed++ > 0) return;
            lib.RetireReader(1);
            lib.CloseRetiredReaders();
        };
        var buffer = new byte[10];
        Assert.True(lib.ReadPayload(Id(1), ref buffer, out _).SequenceEqual(TestRepo.RandomBytes(1000, 1)));
        Assert.Equal(2, closed); // read again, through a reader of its own
    }

    /// <summary>A disk medium that runs <see cref="OnRead"/> once, when a volume is first read (a library check reads one).</summary>
    private sealed class ReadHook(string root) : ForwardingMedium(new DiskMedium(root))
    {
        public Action? OnRead;

        public override void Reading(uint volume, long offset, long length)
        {
            var once = OnRead;
            OnRead = null;
            once?.Invoke();
            base.Reading(volume, offset, length);
        }
    }

    [Fact]
    public void A_library_check_while_a_backup_commits_into_a_new_volume_reports_no_damage()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        var hook = new ReadHook(root);
        using var lib = DiskLibrary.OpenOwned(root, "lib-v", 1024 * 1024, new Engine.Index.ChunkIndex(), [], hook);
        lib.Append(Id(1), RecordFlags.None, TestRepo.RandomBytes(600_000, 1));
        lib.Committed(lib.Commit());
        // A backup commits while the check reads volume 1: its chunk goes to volume 2, which the check did not list.
        hook.OnRead = () =>
        {
            lib.Append(Id(2), RecordFlags.None, TestRepo.RandomBytes(600_000, 2));
            lib.Committed(lib.Commit());
        };
        var report = lib.Verify();
        Assert.True(report.Ok, string.Join("; ", report.IndexProblems.Concat(report.Damage.Select(d => d.Reason))));
        Assert.Equal(2, lib.Volumes.Count);
        Assert.True(lib.Verify().Ok); // and the next check reads both
        Assert.Equal(2, lib.Verify().Volumes);
    }
}
