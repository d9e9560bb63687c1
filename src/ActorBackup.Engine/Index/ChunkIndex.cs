using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Index;

/// <summary>
/// Chunk id to location: an open-addressing table (Robin Hood hashing, linear probes, removals shift the entries after
/// back), its slots an array of 48-byte structs: id 32, location 12, and how far the entry lies past its home slot.
/// An id is a uniform hash, so 8 of its bytes pick the home slot (multiplied into the table's size, which need not be a
/// power of two): its second 8, not its first (ChunkId.Scatter), since the serialized form and other batches come in
/// id order, and homes in that order would fill one ever longer run at the start of a table still growing to them. A
/// lookup is one cache line or two (a dictionary's was its bucket's and then its entry's, most of a million lookups
/// cache misses), and <see cref="Holds"/> fetches a batch's slots ahead of their turn. The table is kept 60-90% full
/// (grown by half at 90%): 53 to 80 bytes a chunk (the dictionary before it: 56 to 67, and twice its table's size while
/// it grew). Not thread-safe: its owner (the library, later the media agent) serialises access.
///
/// Serialized form: "ABKI" | u32 version | u64 count | count x (id 32 | u32 volume | u64 offset | u32 length),
/// sorted by id | u32 crc32. 48 bytes a chunk; the sort makes it deterministic and mergeable.
/// </summary>
public sealed class ChunkIndex
{
    public const int EntrySize = 48;
    private const uint Magic = 0x494B4241; // "ABKI"

    /// <summary>One slot: empty when <see cref="Distance"/> is 0.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    internal struct Slot
    {
        public ChunkId Id;
        public ChunkLocation Location;
        /// <summary>0: empty; else how many slots past its home the entry lies, plus one.</summary>
        public uint Distance;
    }

    private Slot[] _slots;
    private int _count;
    /// <summary>Changed by every change: an enumeration that sees it change fails, as a dictionary's did.</summary>
    private int _version;

    public ChunkIndex(int capacity = 0) => _slots = capacity <= 0 ? [] : new Slot[SlotsFor(capacity)];

    public int Count => _count;
    public bool Contains(ChunkId id) => Find(id) >= 0;

    public bool TryGet(ChunkId id, out ChunkLocation location)
    {
        var at = Find(id);
        location = at >= 0 ? _slots[at].Location : default;
        return at >= 0;
    }

    /// <summary>
    /// For each of <paramref name="ids"/>, whether the index holds it (<paramref name="held"/>, as long). The slots of
    /// the ids a few places on are fetched while each is looked up: a batch of random ids costs about its memory
    /// bandwidth, not a cache miss after another.
    /// </summary>
    public unsafe void Holds(ReadOnlySpan<ChunkId> ids, Span<bool> held)
    {
        if (held.Length < ids.Length) throw new ArgumentException("one answer an id", nameof(held));
        const int ahead = 8;
        var slots = _slots;
        fixed (Slot* first = slots)
            for (var k = 0; k < ids.Length; k++)
            {
                if (Sse.IsSupported && k + ahead < ids.Length && slots.Length > 0)
                {
                    var home = (byte*)(first + Home(ids[k + ahead].Scatter, slots.Length));
                    Sse.Prefetch0(home);
                    Sse.Prefetch0(home + 64); // a slot may straddle two lines, and the entry lie a slot or two on
                }
                held[k] = Find(ids[k]) >= 0;
            }
    }

    /// <summary>Adds or replaces (a chunk rewritten elsewhere, e.g. after a move, points to its new place).</summary>
    public void Set(ChunkId id, ChunkLocation location)
    {
        if (_count + 1 > MaxEntries(_slots.Length))
        {
            var grown = Grown(_slots.Length, _count + 1);
            if (_count + 1 > MaxEntries(grown)) throw new InvalidOperationException($"a chunk index holds at most {MaxEntries(Array.MaxLength)} chunks");
            Resize(grown);
        }
        var slots = _slots;
        var i = Home(id.Scatter, slots.Length);
        for (uint distance = 1; ; distance++)
        {
            ref var slot = ref slots[i];
            if (slot.Distance < distance) // empty, or nearer its home than this id would be: the id is not here
            {
                Place(i, new Slot { Id = id, Location = location, Distance = distance });
                _count++;
                _version++;
                return;
            }
            if (slot.Distance == distance && slot.Id == id)
            {
                slot.Location = location;
                _version++;
                return;
            }
            if (++i == slots.Length) i = 0;
        }
    }

    public bool Remove(ChunkId id)
    {
        var i = Find(id);
        if (i < 0) return false;
        var slots = _slots;
        // The entries after it that lie past their home move back a slot each (no tombstones: lookups stay short).
        for (var next = i + 1 == slots.Length ? 0 : i + 1; slots[next].Distance > 1; next = next + 1 == slots.Length ? 0 : next + 1)
        {
            slots[i] = slots[next];
            slots[i].Distance--;
            i = next;
        }
        slots[i] = default;
        _count--;
        _version++;
        return true;
    }

    /// <summary>The table made as small as its entries allow (after a prune took many).</summary>
    public void TrimExcess()
    {
        var size = SlotsFor(_count);
        if (size < _slots.Length) Resize(size);
    }

    /// <summary>
    /// Before <paramref name="entries"/> are added: a batch large beside the index (a quarter of it or more) grows the
    /// table once to its size, where growing by half through it would rehash it several times. A smaller one is left
    /// to the table's own growth.
    /// </summary>
    public void MakeRoomFor(int entries)
    {
        if (entries >= _count / 4 && (long)_count + entries > MaxEntries(_slots.Length)) Resize(SlotsFor((int)Math.Min(int.MaxValue, (long)_count + entries)));
    }

    public IEnumerable<KeyValuePair<ChunkId, ChunkLocation>> Entries
    {
        get
        {
            var version = _version;
            var slots = _slots;
            for (var i = 0; i < slots.Length; i++)
            {
                if (_version != version) throw new InvalidOperationException("the chunk index changed while it was read");
                if (slots[i].Distance != 0) yield return new(slots[i].Id, slots[i].Location);
            }
            if (_version != version) throw new InvalidOperationException("the chunk index changed while it was read");
        }
    }

    /// <summary>The slot holding <paramref name="id"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Find(in ChunkId id)
    {
        var slots = _slots;
        if (slots.Length == 0) return -1;
        var i = Home(id.Scatter, slots.Length);
        for (uint distance = 1; ; distance++)
        {
            ref var slot = ref slots[i];
            if (slot.Distance < distance) return -1; // it would lie here or before, had it been added
            if (slot.Distance == distance && slot.Id == id) return i;
            if (++i == slots.Length) i = 0;
        }
    }

    /// <summary>
    /// Puts an entry into slot <paramref name="i"/>, where it is nearer its home than the one there (or the slot is
    /// empty): the one there moves on to the next slot it may take, and so on to an empty one.
    /// </summary>
    private void Place(int i, Slot entry)
    {
        var slots = _slots;
        while (true)
        {
            ref var slot = ref slots[i];
            if (slot.Distance == 0)
            {
                slot = entry;
                return;
            }
            if (slot.Distance < entry.Distance) (slot, entry) = (entry, slot);
            entry.Distance++;
            if (++i == slots.Length) i = 0;
        }
    }

    private void Resize(int size)
    {
        var old = _slots;
        _slots = new Slot[size];
        // The old slots lie in their homes' order, and the new table has more slots than entries: it fills from its
        // start to its end, each entry at or just past its home.
        foreach (ref readonly var slot in old.AsSpan())
            if (slot.Distance != 0)
                Place(Home(slot.Id.Scatter, size), slot with { Distance = 1 });
        _version++;
    }

    /// <summary>An id's home slot: 8 of its bytes, uniform, scaled to the table's size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Home(ulong scatter, int size) => (int)Math.BigMul(scatter, (ulong)size, out _);

    /// <summary>How many entries a table of <paramref name="size"/> slots takes (90%: one slot in ten stays empty).</summary>
    private static long MaxEntries(int size) => size * 9L / 10;

    private static int SlotsFor(int entries) => (int)Math.Min(Array.MaxLength, Math.Max(16, entries * 10L / 9 + 2));

    /// <summary>The size a full table grows to: by half, or to what <paramref name="entries"/> need.</summary>
    private static int Grown(int size, int entries) => Math.Max(SlotsFor(entries), (int)Math.Min(Array.MaxLength, size + (long)size / 2));

    /// <summary>The longest way from an entry's home to its slot (tests: the probes stay short whatever the order added).</summary>
    internal int LongestProbe
    {
        get
        {
            uint longest = 0;
            foreach (var slot in _slots) longest = Math.Max(longest, slot.Distance);
            return (int)longest;
        }
    }

    /// <summary>
    /// The serialized form (as <see cref="ToBytes"/>) written to <paramref name="stream"/> block by block: the entries
    /// sorted as an array of their own (a byte array of the whole form would end at ~44 million chunks, its 2 GB limit).
    /// </summary>
    public void WriteTo(Stream stream)
    {
        var sorted = new KeyValuePair<ChunkId, ChunkLocation>[_count];
        var n = 0;
        foreach (var entry in Entries) sorted[n++] = entry;
        ChunkIdSort.Sort<KeyValuePair<ChunkId, ChunkLocation>, EntryKey>(sorted);
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

    private readonly struct EntryKey : ChunkIdSort.IKey<KeyValuePair<ChunkId, ChunkLocation>>
    {
        public ChunkId Of(in KeyValuePair<ChunkId, ChunkLocation> item) => item.Key;
    }

    private static void WriteHead(Span<byte> head, long count)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(head, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(head[4..], 1);
        BinaryPrimitives.WriteInt64LittleEndian(head[8..], count);
    }

    /// <summary>
    /// The serialized form in one array of its exact size, its entries written and then sorted in place: no copy of the
    /// index beside it (a media agent's snapshot of millions of chunks; at most ~44 million, a byte array's limit).
    /// </summary>
    /// <param name="guard">the lock under which the index changes, if any: held while the entries are copied, not while
    /// they are sorted (a library's data-plane calls wait for the copy only)</param>
    public byte[] ToBytes(object? guard = null)
    {
        byte[] bytes;
        if (guard is null) bytes = Unsorted();
        else
            lock (guard) bytes = Unsorted();
        var body = bytes.AsSpan(16, bytes.Length - 20);
        // An id's bytes are its four words big-endian: their byte order is ChunkId's order.
        ChunkIdSort.Sort<PackedEntry, PackedEntry.Key>(MemoryMarshal.Cast<byte, PackedEntry>(body));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), Crc32.HashToUInt32(bytes.AsSpan(0, bytes.Length - 4)));
        return bytes;

        byte[] Unsorted()
        {
            var unsorted = new byte[16 + (long)Count * EntrySize + 4];
            WriteHead(unsorted, Count);
            var i = 0;
            foreach (var (id, loc) in Entries) WriteEntry(unsorted.AsSpan(16 + i++ * EntrySize, EntrySize), id, loc);
            return unsorted;
        }
    }

    /// <summary>One serialized entry, to sort entries where they are.</summary>
    [InlineArray(EntrySize)]
    private struct PackedEntry
    {
        private byte _first;

        public readonly struct Key : ChunkIdSort.IKey<PackedEntry>
        {
            public ChunkId Of(in PackedEntry item) => new(MemoryMarshal.CreateReadOnlySpan(in item._first, ChunkId.Size));
        }
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
        // A count on disk sizes the table only when the stream's length vouches for it (checked above); else the entries grow it.
        var index = new ChunkIndex((int)(stream.CanSeek ? count : Math.Min(count, 4 * 1024 * 1024)));
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
                index.Set(id, loc);
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

    /// <summary>The most entries one packed batch holds (one array: 2 GB).</summary>
    public const int MaxPacked = 0x7FFFFFC7 / EntrySize;

    /// <summary>IOException, saying what to do, when <paramref name="count"/> entries are more than one packed batch holds.</summary>
    public static void CheckPackable(int count)
    {
        if (count > MaxPacked)
            throw new IOException($"{count} new chunks wait for one commit, more than a commit holds ({MaxPacked}): back such a host up in several sets (its folders split between them)");
    }

    /// <summary>Entries packed back to back in the serialized entry layout (for index batches in the journal).</summary>
    public static byte[] Pack(IReadOnlyCollection<KeyValuePair<ChunkId, ChunkLocation>> entries)
    {
        CheckPackable(entries.Count);
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
            Set(id, loc);
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
