using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests;

/// <summary>A chunk found damaged where the index has it is answered missing to writers, stored again, and read sound after.</summary>
public sealed class DamagedChunkTests
{
    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    private static byte[] Payload(int i) => Enumerable.Range(0, 4000).Select(b => (byte)(b * 7 + i)).ToArray();

    /// <summary>Flips one byte in the middle of <paramref name="id"/>'s stored payload.</summary>
    private static void Rot(DiskLibrary lib, string root, ChunkId id)
    {
        Assert.True(lib.TryGetLocation(id, out var at));
        Flip(root, at.Volume, at.Offset + VolumeFormat.RecordHeaderSize + at.Length / 2);
    }

    /// <summary>Flips the bits of the byte at <paramref name="offset"/> of volume <paramref name="volume"/>.</summary>
    private static void Flip(string root, uint volume, long offset)
    {
        using var f = new FileStream(Path.Combine(root, "volumes", VolumeFormat.VolumeFileName(volume)), FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = f.ReadByte();
        f.Position--;
        f.WriteByte((byte)(b ^ 0xFF));
    }

    /// <summary>A new library at <paramref name="root"/> holding chunks 0 and 1, committed.</summary>
    private static DiskLibrary TwoChunks(string root)
    {
        var lib = DiskLibrary.Create(root, "l");
        lib.Append(Id(0), RecordFlags.None, Payload(0));
        lib.Append(Id(1), RecordFlags.None, Payload(1));
        lib.Commit();
        return lib;
    }

    [Fact]
    public void A_chunk_a_read_found_damaged_is_missing_to_writers_until_stored_again_and_then_reads_sound()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using var lib = DiskLibrary.Create(root, "l");
        for (var i = 0; i < 3; i++) lib.Append(Id(i), RecordFlags.None, Payload(i));
        lib.Commit();
        Rot(lib, root, Id(1));
        var buffer = new byte[16];
        Assert.Throws<VolumeCorruptException>(() => lib.ReadPayload(Id(1), ref buffer, out _).ToArray());

        // Writers are told to store it again; the others stay deduplicated.
        Assert.Equal([Id(1)], lib.Missing([Id(0), Id(1), Id(2)]));
        Assert.False(lib.Contains(Id(1)));
        Assert.True(lib.Contains(Id(0)));
        Assert.True(lib.TryReserve(Id(1)));
        var found = Assert.Single(lib.TakeFoundDamaged());
        Assert.Equal(Id(1), found.Id);
        Assert.Empty(lib.TakeFoundDamaged()); // handed over once
        Assert.Single(lib.Damaged);

        // Stored again: indexed at its new place, the mark no longer holds, and it reads back whole.
        lib.Append(Id(1), RecordFlags.None, Payload(1));
        Assert.Empty(lib.Missing([Id(1)])); // about to be committed
        lib.Commit();
        Assert.Empty(lib.Missing([Id(0), Id(1), Id(2)]));
        Assert.True(lib.Contains(Id(1)));
        Assert.Equal(Payload(1), lib.ReadPayload(Id(1), ref buffer, out _).ToArray());
        Assert.Empty(lib.Damaged);
    }

    [Fact]
    public void A_volume_whose_header_is_damaged_is_kept_by_a_compaction_that_goes_on_and_its_chunks_are_stored_again()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using var lib = TwoChunks(root);
        Assert.True(lib.TryGetLocation(Id(0), out var at));
        Flip(root, at.Volume, 6); // in its header
        // A read of one of its chunks (a restore's) fails, and marks that chunk.
        var buffer = new byte[16];
        Assert.Throws<VolumeCorruptException>(() => lib.ReadPayload(Id(0), ref buffer, out _).ToArray());
        Assert.Equal([Id(0)], lib.Missing([Id(0), Id(1)]));
        var (records, _, problems) = lib.CopyLive(at.Volume);
        Assert.Equal(0, records);
        Assert.Contains("cannot be opened", Assert.Single(problems));
        Assert.Equal(2, lib.Missing([Id(0), Id(1)]).Count);
        Assert.Equal(2, lib.TakeFoundDamaged().Count); // each once
    }

    [Fact]
    public void A_mark_holds_for_the_place_it_was_found_at_and_a_recovered_one_for_a_chunk_stored_again_since_does_not()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "lib");
        using var lib = TwoChunks(root);
        Assert.True(lib.TryGetLocation(Id(0), out var first));
        Assert.True(lib.TryGetLocation(Id(1), out var second));
        // A library check found them unreadable: both marked once; an id the library never held, or one found at a place
        // it is no longer at, is passed over.
        Assert.Equal(2, lib.MarkDamaged([(Id(0), first), (Id(1), second), (Id(9), first), (Id(1), first)]).Count);
        Assert.Empty(lib.MarkDamaged([(Id(0), first)]));
        Assert.Equal(2, lib.Missing([Id(0), Id(1)]).Count);
        lib.Append(Id(0), RecordFlags.None, Payload(0));
        lib.Commit();
        // The owner's journal still has the first mark of Id(0) at its old place: recovered, it does not hold.
        lib.RecoveredDamaged([(Id(0), first)]);
        Assert.Equal([Id(1)], lib.Missing([Id(0), Id(1)]));
        Assert.Equal([Id(1)], lib.Damaged.Select(d => d.Id));
    }
}
