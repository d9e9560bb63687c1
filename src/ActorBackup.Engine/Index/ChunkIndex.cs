using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Index;

/// <summary>
/// Chunk id to location. A dictionary entry is 52 bytes (32 id + 12 location + 8 hash/next) plus a 4-byte
/// bucket, and the table's prime sizing adds up to 20% more: 56 to 67 bytes a chunk, about 60 typically. Not thread-safe: its owner (the library, later the media
/// agent) serialises access.
///
/// Serialized form: "ABKI" | u32 version | u64 count | count x (id 32 | u32 volume | u64 offset | u32 length),
/// sorted by id | u32 crc32. 48 bytes a chunk; the sort makes it deterministic and mergeable.
/// </summary>
public sealed class ChunkIndex
{
    public const int EntrySize = 48;
    private const uint Magic = 0x494B4241; // "ABKI"
    private readonly Dictionary<ChunkId, ChunkLocation> _map;

    public ChunkIndex(int capacity = 0) => _map = new Dictionary<ChunkId, ChunkLocation>(capacity);

    public int Count => _map.Count;
    public bool Contains(ChunkId id) => _map.ContainsKey(id);
    public bool TryGet(ChunkId id, out ChunkLocation location) => _map.TryGetValue(id, out location);

    /// <summary>Adds or replaces (a chunk rewritten elsewhere, e.g. after a move, points to its new place).</summary>
    public void Set(ChunkId id, ChunkLocation location) => _map[id] = location;
    public bool Remove(ChunkId id) => _map.Remove(id);
    public void TrimExcess() => _map.TrimExcess();
    /// <summary>
    /// Before <paramref name="entries"/> are added: a batch large beside the index (a quarter of it or more) grows the
    /// table once to its size, where doubling through it would leave up to twice the slots. A smaller one is left to
    /// the table's own growth (sizing it exactly every time would rehash the index at every small batch).
    /// </summary>
    public void MakeRoomFor(int entries)
    {
        if (entries >= _map.Count / 4) _map.EnsureCapacity(_map.Count + entries);
    }

    public IEnumerable<KeyValuePair<ChunkId, ChunkLocation>> Entries => _map;

    public void WriteTo(Stream stream)
    {
        var sorted = _map.ToArray();
        Array.Sort(sorted, (a, b) => a.Key.CompareTo(b.Key));
        var crc = new Crc32();
        Span<byte> head = stackalloc byte[16];
        WriteHead(head, sorted.Length);
        crc.Append(head);
        stream.Write(head);
        var block = new byte[EntrySize * 4096];
        var used = 0;
        foreach (var (id, loc) in sorted)
        {
            WriteEntry(block.AsSpan(used, EntrySize), id, loc);
            used += EntrySize;
            if (used == block.Length)
            {
                crc.Append(block);
                stream.Write(block);
                used = 0;
            }
        }
        crc.Append(block.AsSpan(0, used));
        stream.Write(block, 0, used);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, crc.GetCurrentHashAsUInt32());
        stream.Write(tail);
    }

    private static void WriteHead(Span<byte> head, long count)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(head, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(head[4..], 1);
        BinaryPrimitives.WriteInt64LittleEndian(head[8..], count);
    }

    /// <summary>
    /// The serialized form (as <see cref="WriteTo"/>) in one array of its exact size, its entries written and then
    /// sorted in place: no copy of the index beside it (a media agent's snapshot of millions of chunks).
    /// </summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[16 + (long)Count * EntrySize + 4];
        WriteHead(bytes, Count);
        var body = bytes.AsSpan(16, Count * EntrySize);
        var i = 0;
        foreach (var (id, loc) in _map) WriteEntry(body.Slice(i++ * EntrySize, EntrySize), id, loc);
        // An id's bytes are its four words big-endian: their byte order is ChunkId's order.
        MemoryMarshal.Cast<byte, PackedEntry>(body).Sort(static (a, b) => a.Id.SequenceCompareTo(b.Id));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), Crc32.HashToUInt32(bytes.AsSpan(0, bytes.Length - 4)));
        return bytes;
    }

    /// <summary>One serialized entry, to sort entries where they are.</summary>
    [InlineArray(EntrySize)]
    private struct PackedEntry
    {
        private byte _first;

        public readonly ReadOnlySpan<byte> Id => MemoryMarshal.CreateReadOnlySpan(in _first, ChunkId.Size);
    }

    /// <summary>Reads the serialized form, checking bounds and the checksum; InvalidDataException when damaged.</summary>
    public static ChunkIndex ReadFrom(Stream stream)
    {
        var crc = new Crc32();
        Span<byte> head = stackalloc byte[16];
        stream.ReadExactly(head);
        crc.Append(head);
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != Magic) throw new InvalidDataException("not a chunk index (bad magic)");
        if (BinaryPrimitives.ReadUInt32LittleEndian(head[4..]) != 1) throw new InvalidDataException("chunk index version is not supported");
        var count = BinaryPrimitives.ReadInt64LittleEndian(head[8..]);
        if (count < 0 || count > int.MaxValue / 2 || (stream.CanSeek && stream.Length - stream.Position < count * EntrySize + 4))
            throw new InvalidDataException($"chunk index claims {count} entries, more than its length holds");
        var index = new ChunkIndex((int)Math.Min(count, 4 * 1024 * 1024)); // a count on disk never sizes memory alone: the entries grow it
        var block = new byte[EntrySize * 4096];
        for (long done = 0; done < count;)
        {
            var n = (int)Math.Min(4096, count - done);
            var span = block.AsSpan(0, n * EntrySize);
            stream.ReadExactly(span);
            crc.Append(span);
            for (var i = 0; i < n; i++)
            {
                var (id, loc) = ReadEntry(span.Slice(i * EntrySize, EntrySize));
                index._map[id] = loc;
            }
            done += n;
        }
        Span<byte> tail = stackalloc byte[4];
        stream.ReadExactly(tail);
        if (BinaryPrimitives.ReadUInt32LittleEndian(tail) != crc.GetCurrentHashAsUInt32()) throw new InvalidDataException("chunk index checksum mismatch");
        return index;
    }

    /// <summary>One entry of the serialized form: chunk id 32 | u32 volume | u64 offset | u32 length.</summary>
    public static void WriteEntry(Span<byte> e, ChunkId id, ChunkLocation loc)
    {
        id.WriteTo(e);
        BinaryPrimitives.WriteUInt32LittleEndian(e[32..], loc.Volume);
        BinaryPrimitives.WriteInt64LittleEndian(e[36..], loc.Offset);
        BinaryPrimitives.WriteInt32LittleEndian(e[44..], loc.Length);
    }

    /// <summary>One entry, bounded: an impossible volume number, offset or length is damage (InvalidDataException), never a location.</summary>
    public static (ChunkId Id, ChunkLocation Location) ReadEntry(ReadOnlySpan<byte> e)
    {
        var volume = BinaryPrimitives.ReadUInt32LittleEndian(e[32..]);
        var offset = BinaryPrimitives.ReadInt64LittleEndian(e[36..]);
        var length = BinaryPrimitives.ReadInt32LittleEndian(e[44..]);
        if (volume > ChunkLocation.MaxVolume || offset < 0 || offset > ChunkLocation.MaxOffset || length < 0 || length > Volumes.VolumeFormat.MaxPayload)
            throw new InvalidDataException($"index entry of chunk {new ChunkId(e).Short} is impossible (volume {volume}, offset {offset}, length {length}): the index is damaged; rebuild it from the volumes");
        return (new ChunkId(e), new ChunkLocation(volume, offset, length));
    }

    /// <summary>Entries packed back to back in the serialized entry layout (for index batches in the journal).</summary>
    public static byte[] Pack(IReadOnlyCollection<KeyValuePair<ChunkId, ChunkLocation>> entries)
    {
        var bytes = new byte[entries.Count * EntrySize];
        var i = 0;
        foreach (var (id, loc) in entries) WriteEntry(bytes.AsSpan(i++ * EntrySize, EntrySize), id, loc);
        return bytes;
    }

    /// <summary>Adds or replaces every packed entry; InvalidDataException when the length is not whole entries.</summary>
    public void Apply(ReadOnlySpan<byte> packed)
    {
        if (packed.Length % EntrySize != 0) throw new InvalidDataException($"an index batch of {packed.Length} bytes is not whole {EntrySize}-byte entries");
        MakeRoomFor(packed.Length / EntrySize);
        for (var o = 0; o < packed.Length; o += EntrySize)
        {
            var (id, loc) = ReadEntry(packed.Slice(o, EntrySize));
            _map[id] = loc;
        }
    }

    public static unsafe ChunkIndex FromBytes(ReadOnlySpan<byte> bytes)
    {
        fixed (byte* p = bytes) // read in place: no copy of a whole index
        {
            using var ms = new UnmanagedMemoryStream(p, bytes.Length);
            return ReadFrom(ms);
        }
    }
}
