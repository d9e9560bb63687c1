using ActorBackup.Engine.Codec;
using System.Buffers.Binary;
using System.IO.Hashing;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests;

/// <summary>
/// Crafted files of the kinds the trust issue names: each gives an error that says it is damage and where,
/// checked before anything of the size it claims is allocated, and never an exception of another kind.
/// </summary>
public class HostileBytesTests
{
    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    /// <summary>Bytes this thread allocates while <paramref name="action"/> runs.</summary>
    private static long Allocated(Action action)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void A_trailer_claiming_50_million_entries_is_damage_found_before_any_allocation_of_that_size()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "vol-000001.abv");
        using (var w = VolumeWriter.Create(path, 1, "lib1", "lib1-000001"))
        {
            for (var i = 0; i < 3; i++) w.Append(Id(i), RecordFlags.None, new byte[1000]);
            w.Seal();
        }
        long footer;
        using (var r = new VolumeReader(path)) footer = r.ReadTrailer()!.Value.FooterOffset;
        // The trailer now claims 50 million entries, and the file is (sparsely) as long as that would need, so the
        // trailer's own arithmetic holds: only the footer's bounds can tell.
        const int claimed = 50_000_000;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            var length = footer + (long)claimed * VolumeFormat.FooterEntrySize + 12 + VolumeFormat.TrailerSize;
            f.SetLength(length);
            var trailer = new byte[VolumeFormat.TrailerSize];
            BinaryPrimitives.WriteInt64LittleEndian(trailer, footer);
            BinaryPrimitives.WriteInt32LittleEndian(trailer.AsSpan(8), claimed);
            BinaryPrimitives.WriteUInt32LittleEndian(trailer.AsSpan(12), VolumeFormat.TrailerMagic);
            f.Position = length - VolumeFormat.TrailerSize;
            f.Write(trailer);
        }
        using var reader = new VolumeReader(path);
        Assert.Equal(claimed, reader.ReadTrailer()!.Value.Count);
        VolumeCorruptException? e = null;
        var bytes = Allocated(() => e = Assert.Throws<VolumeCorruptException>(() => reader.ReadFooter(footer, claimed)));
        Assert.Contains("footer claims 50000000 records", e!.Message);
        Assert.True(bytes < 16 * 1024 * 1024, $"{bytes} bytes allocated for a footer that claims {claimed} entries");
        // A scan (verify, rebuild, reopening) reports it as damage and goes on.
        var scan = reader.Scan();
        Assert.Contains(scan.Damage, d => d.Reason.Contains("footer claims"));
        Assert.Equal(3, scan.Records.Count);
    }

    /// <summary>Volume <paramref name="number"/> holding one committed record of 4 KiB: its path and committed length (what hostile bytes follow).</summary>
    private static (string Path, long Committed) OneRecord(TempDir dir, uint number)
    {
        var path = Path.Combine(dir.Path, $"vol-{number:D6}.abv");
        using (var w = VolumeWriter.Create(path, number, "lib1", $"lib1-{number:D6}"))
        {
            w.Append(Id(1), RecordFlags.None, new byte[4096]);
            w.Sync();
        }
        return (path, new FileInfo(path).Length);
    }

    [Fact]
    public void Sixty_four_MiB_of_fake_record_markers_is_damage_with_bounded_work_and_memory()
    {
        using var dir = new TempDir();
        var (path, committed) = OneRecord(dir, 2);
        // After the one real record: 64 MiB of record headers, every 64 bytes, each claiming a payload that runs to
        // just before the end, none with a good checksum. Checked naively, every marker would be read to the end.
        const int total = 64 * 1024 * 1024;
        var fake = new byte[total];
        for (var at = 0; at + VolumeFormat.RecordHeaderSize <= total; at += 64)
        {
            var h = fake.AsSpan(at);
            BinaryPrimitives.WriteUInt32LittleEndian(h, VolumeFormat.RecordMagic);
            Id(at).WriteTo(h[8..]);
            BinaryPrimitives.WriteInt32LittleEndian(h[40..], total - at - VolumeFormat.RecordOverhead - 8);
        }
        using (var f = new FileStream(path, FileMode.Append)) f.Write(fake);
        using var reader = new VolumeReader(path);
        VolumeReader.ScanResult? scan = null;
        var bytes = Allocated(() => scan = reader.Scan(committed));
        Assert.Single(scan!.Records); // the real one
        Assert.NotEmpty(scan.Damage);
        Assert.False(scan.TornTail); // what it could not make sense of is reported, not cut away as a torn tail
        Assert.True(bytes < 200L * 1024 * 1024, $"{bytes} bytes allocated scanning 64 MiB");
    }

    [Fact]
    public void Failed_records_each_claiming_the_rest_of_the_volume_cost_a_bounded_read_over_the_whole_scan()
    {
        using var dir = new TempDir();
        var (path, committed) = OneRecord(dir, 4);
        // After it, 2 MiB of pairs: a record whose checksum fails and that claims a payload running to just before the
        // end, then a whole empty record right after its header. Each failed one is read to near the end, and the
        // resync finds the whole one at once: its own budget never runs out, and the scan would read 10 GiB (the
        // square of the volume over 192 bytes). A budget over the whole scan stops it after about twice the volume
        // and MaxPayload twice over, reporting where.
        const int total = 2 * 1024 * 1024, pair = 2 * VolumeFormat.RecordOverhead;
        var tail = new byte[total];
        for (var at = 0; at + pair <= total; at += pair)
        {
            var failed = tail.AsSpan(at, VolumeFormat.RecordOverhead);
            BinaryPrimitives.WriteUInt32LittleEndian(failed, VolumeFormat.RecordMagic);
            Id(at).WriteTo(failed[8..]);
            BinaryPrimitives.WriteInt32LittleEndian(failed[40..], total - at - VolumeFormat.RecordOverhead - 8); // its checksum: zeros
            var whole = tail.AsSpan(at + VolumeFormat.RecordOverhead, VolumeFormat.RecordOverhead);
            BinaryPrimitives.WriteUInt32LittleEndian(whole, VolumeFormat.RecordMagic);
            Id(at + 1).WriteTo(whole[8..]);
            BinaryPrimitives.WriteUInt32LittleEndian(whole[VolumeFormat.RecordHeaderSize..], Crc32.HashToUInt32(whole[..VolumeFormat.RecordHeaderSize]));
        }
        using (var f = new FileStream(path, FileMode.Append)) f.Write(tail);
        using var reader = new VolumeReader(path);
        var scan = reader.Scan(committed);
        Assert.Contains(scan.Damage, d => d.Reason.Contains("the rest of the volume is not read"));
        Assert.False(scan.TornTail);
        // Some of the whole records were found before it stopped, not all (every one would take the square).
        Assert.InRange(scan.Records.Count, 2, total / pair - 1);
    }

    [Fact]
    public void A_committed_record_damaged_at_the_end_of_an_open_volume_is_reported_never_cut_away()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "vol-000003.abv");
        RecordInfo last;
        using (var w = VolumeWriter.Create(path, 3, "lib1", "lib1-000003"))
        {
            w.Append(Id(1), RecordFlags.None, new byte[2000]);
            last = w.Append(Id(2), RecordFlags.None, new byte[2000]);
            w.Sync();
        }
        var committed = new FileInfo(path).Length;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = last.Offset; // a bit flip in the last record's magic
            f.WriteByte(0x00);
        }
        var e = Assert.Throws<VolumeCorruptException>(() => VolumeWriter.OpenForAppend(path, out _, committed));
        Assert.Contains("read-only for salvage", e.Message);
        Assert.Equal(committed, new FileInfo(path).Length); // nothing truncated
    }

    /// <summary>A standalone library in <paramref name="dir"/> that holds one committed chunk (Id(1)); its folder.</summary>
    private static string LibraryOfOneChunk(TempDir dir)
    {
        var root = Path.Combine(dir.Path, "lib");
        using var lib = DiskLibrary.Create(root, "lib1");
        Assert.True(lib.TryReserve(Id(1)));
        lib.Append(Id(1), RecordFlags.None, new byte[100]);
        lib.Commit();
        return root;
    }

    [Fact]
    public void An_index_entry_with_an_impossible_volume_number_is_damage_that_names_the_index()
    {
        using var dir = new TempDir();
        var root = LibraryOfOneChunk(dir);
        var indexPath = Path.Combine(root, "index.abi");
        var bytes = File.ReadAllBytes(indexPath);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16 + 32), 0xFFFF_FFF0); // the entry's volume number
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), Crc32.HashToUInt32(bytes.AsSpan(0, bytes.Length - 4)));
        File.WriteAllBytes(indexPath, bytes);
        var e = Assert.Throws<InvalidDataException>(() => DiskLibrary.Open(root));
        Assert.Contains("index.abi", e.Message);
        Assert.Contains("impossible", e.Message);
    }

    [Fact]
    public void A_library_whose_index_file_was_lost_does_not_open_as_empty()
    {
        using var dir = new TempDir();
        var root = LibraryOfOneChunk(dir);
        File.Delete(Path.Combine(root, "index.abi"));
        // Opened empty, its one chunk would be unknown and a prune would delete its volume as dead.
        var e = Assert.Throws<InvalidDataException>(() => DiskLibrary.Open(root));
        Assert.Contains("index.abi is missing", e.Message);
        Assert.Contains("rebuild the library", e.Message);
        using var rebuilt = DiskLibrary.Rebuild(root);
        Assert.Equal(1, rebuilt.ChunkCount);
        // A new library has no index file yet, and opens.
        var fresh = Path.Combine(dir.Path, "new");
        DiskLibrary.Create(fresh, "lib2").Dispose();
        DiskLibrary.Open(fresh).Dispose();
    }

    [Fact]
    public void Files_of_a_newer_format_are_named_as_such_never_taken_as_damage()
    {
        using var dir = new TempDir();
        // A volume whose header says format 2 (its checksum right): a newer build's, not damaged.
        var path = Path.Combine(dir.Path, "vol-000001.abv");
        using (var w = VolumeWriter.Create(path, 1, "lib1", "lib1-000001"))
        {
            w.Append(Id(1), RecordFlags.None, new byte[100]);
            w.Seal();
        }
        var bytes = File.ReadAllBytes(path);
        int length = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(10));
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(length - 4), System.IO.Hashing.Crc32.HashToUInt32(bytes.AsSpan(0, length - 4)));
        File.WriteAllBytes(path, bytes);
        var volume = Assert.Throws<NewerFormatException>(() => new VolumeReader(path));
        Assert.Contains("written by a newer ActorBackup (format 2; this build reads up to 1)", volume.Message);
        // In a library, such a volume is a problem of its opening, neither appended to nor damage.
        var withNewer = Path.Combine(dir.Path, "with-newer");
        DiskLibrary.Create(withNewer, "lib1").Dispose();
        File.Copy(path, Path.Combine(withNewer, "volumes", VolumeFormat.VolumeFileName(1)));
        using (var opened = DiskLibrary.Open(withNewer))
        {
            Assert.Contains(opened.LastOpen.Problems, p => p.Contains("written by a newer ActorBackup"));
            Assert.Empty(opened.Verify().Damage); // not in its table: left alone
        }
        Assert.True(SourceFault.IsDamage(new VolumeCorruptException(path, 0, "x")) && !SourceFault.IsDamage(volume)); // a reader stops on it, as on a fault
        // A repository whose library holds such a volume under a number its table does not know (a journal copy restored
        // after a newer build wrote): backups go on in the next number, the file left as it is.
        var repoWithNewer = Path.Combine(dir.Path, "repo-with-newer");
        TestRepo.Create(repoWithNewer).Dispose();
        File.Copy(path, Path.Combine(repoWithNewer, "library", "volumes", VolumeFormat.VolumeFileName(1)));
        var data = Path.Combine(dir.Path, "data");
        Directory.CreateDirectory(data);
        File.WriteAllText(Path.Combine(data, "f"), "after going back");
        using (var back = TestRepo.Open(repoWithNewer))
        {
            var snap = back.Backup(new ActorBackup.Engine.Archive.BackupSet("after", [data]), ActorBackup.Engine.Trees.Level.Full);
            Assert.Empty(back.Restore(snap.Id, Path.Combine(dir.Path, "restored")).Errors);
        }
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(repoWithNewer, "library", "volumes", VolumeFormat.VolumeFileName(1))));

        // library.json and a wrapped key of a newer format: the same, not "damaged ... rebuild" or "restore it from your copy".
        var libRoot = Path.Combine(dir.Path, "lib");
        DiskLibrary.Create(libRoot, "lib1").Dispose();
        var libraryJson = Path.Combine(libRoot, "library.json");
        File.WriteAllText(libraryJson, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(libraryJson), "\"format\": 1", "\"format\": 2"));
        Assert.DoesNotContain("rebuild", Assert.Throws<NewerFormatException>(() => DiskLibrary.Open(libRoot)).Message);
        var repoRoot = Path.Combine(dir.Path, "repo");
        TestRepo.Create(repoRoot).Dispose();
        var master = Path.Combine(repoRoot, "keys", "master.json");
        File.WriteAllText(master, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(master), "\"version\": 1", "\"version\": 3"));
        Assert.Contains("format 3", Assert.Throws<NewerFormatException>(() => KeyStore.Load(master)).Message);
    }

    [Fact]
    public void Damaged_key_library_and_repository_files_give_an_error_that_names_them()
    {
        using var dir = new TempDir();
        var repoRoot = Path.Combine(dir.Path, "repo");
        TestRepo.Create(repoRoot).Dispose();

        // master.json asking Argon2 for two billion iterations: refused on reading, never a hung unlock.
        var master = Path.Combine(repoRoot, "keys", "master.json");
        var good = File.ReadAllText(master);
        File.WriteAllText(master, System.Text.RegularExpressions.Regex.Replace(good, "\"iterations\": \\d+", "\"iterations\": 2147483647"));
        var e = Assert.Throws<InvalidDataException>(() => KeyStore.Load(master));
        Assert.Contains(master, e.Message);
        Assert.Contains("Argon2", e.Message);
        File.WriteAllText(master, good.Replace("\"nonce\": \"", "\"nonce\": \"!!"));
        Assert.Contains(master, Assert.Throws<InvalidDataException>(() => KeyStore.Load(master)).Message);
        File.WriteAllText(master, good);

        var config = Path.Combine(repoRoot, "repository.json");
        File.WriteAllText(config, "{ \"chunk_avg\": ");
        Assert.Contains(config, Assert.Throws<InvalidDataException>(() => TestRepo.Open(repoRoot)).Message);
        File.WriteAllText(config, "{ \"chunk_min\": 0, \"chunk_avg\": 0, \"chunk_max\": 0 }");
        Assert.Contains(config, Assert.Throws<InvalidDataException>(() => TestRepo.Open(repoRoot)).Message);

        var libRoot = Path.Combine(dir.Path, "lib");
        DiskLibrary.Create(libRoot, "lib1").Dispose();
        var libraryJson = Path.Combine(libRoot, "library.json");
        var text = File.ReadAllText(libraryJson);
        File.WriteAllText(libraryJson, System.Text.RegularExpressions.Regex.Replace(text, "\"volume_capacity\": \\d+", "\"volume_capacity\": -5"));
        var damaged = Assert.Throws<InvalidDataException>(() => DiskLibrary.Open(libRoot));
        Assert.Contains(libraryJson, damaged.Message);
    }
}
