using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using ActorBackup.Engine.Hashing;
using Google.Protobuf;

namespace ActorBackup.Engine.Trees;

/// <summary>
/// A parent snapshot's tree as a backup walks against it: each entry's name and the fields the walk compares, read
/// straight from the record's bytes (<see cref="Scanned"/>), and a whole <see cref="Node"/> made only for an entry that
/// needs one (<see cref="NodeAt"/>: a changed file, a folder, a kept entry of a folder stored anew). A walk of a million
/// unchanged files parsed a million nodes (each a node, four repeated fields, three strings and its chunk ids: about a
/// kilobyte) to compare a dozen numbers, and the collector then had them all to sweep.
/// </summary>
/// <remarks>
/// The scanned fields are read-only (any thread); a name made into a string is kept (<see cref="Name"/>: two threads
/// making one at once each make it, the same). A tree is read by several threads only before its folder is walked (a
/// listing made ahead takes its names, and the walk waits for that listing before the tree can be given back: nothing
/// reads a tree while <see cref="Return"/> runs). <see cref="NodeAt"/> makes and keeps a node and is not thread-safe:
/// it is called for a folder's entries by the walk's thread while that folder is walked or its files wait for the
/// library's word (the folder's pending count held), and by the thread that stores the folder once nothing is pending
/// (Archiver.Finish): never at once. The scan reads the wire format as the generated parser does (a tag cut to 32
/// bits, the last of a repeated scalar counts, a packed or unpacked chunk_sizes, a known field on another wire type
/// kept as unknown) and refuses what the parser refuses (a torn or overlong number, field 0, a length past its end,
/// a string that is not UTF-8, a broken nested message) and groups too (never written): bytes it takes, the parser takes, so
/// <see cref="NodeAt"/> does not fail on them. An entry the scan cannot vouch for (<see cref="Scanned.Plain"/> false)
/// is compared as a node.
/// </remarks>
public sealed class ParentTree
{
    /// <summary>
    /// One entry as the walk compares it: its fields, and where its node's bytes lie in the record. No references (its
    /// name and owners are the tree's, <see cref="Name"/>, <see cref="User"/>, <see cref="Group"/>): an array of them is
    /// a block of memory the collector never looks into, taken from the pool and given back (<see cref="Return"/>).
    /// </summary>
    public struct Scanned
    {
        internal int Start, Length;
        public NodeType Type;
        public uint Mode, Uid, Gid, MtimeNsec, CtimeNsec, AtimeNsec, Nlink, RdevMajor, RdevMinor;
        public long MtimeSec, CtimeSec, AtimeSec;
        public ulong Inode, Device, Size;
        /// <summary>The owner's user and group names as recorded: their places among the tree's owner names.</summary>
        internal int UserAt, GroupAt;
        internal int ChunksStart, ChunksLength, SubtreeStart, SubtreeLength;
        /// <summary>Where its name's bytes lie in the record: the name's UTF-8, or its raw bytes (<see cref="RawName"/>).</summary>
        internal int NameStart, NameLength;
        /// <summary>Its name is raw_name's bytes (not UTF-8), read as PosixNames.Decode reads them.</summary>
        internal bool RawName;
        /// <summary>How many chunk sizes it lists.</summary>
        public int ChunkSizes;
        /// <summary>
        /// No raw name, link target, hard link target or chunk lists: every field that tells such an entry apart is
        /// above (extended attributes, ACL names, flags and fields of a later format are taken as they are, as the
        /// parent's node was when it was parsed whole).
        /// </summary>
        public bool Plain;
        public readonly int ChunkCount => ChunksLength / ChunkId.Size;
        public readonly bool HasSubtree => SubtreeLength == ChunkId.Size;
    }

    private readonly ChunkId _id;
    private byte[] _bytes;
    private Scanned[] _entries;
    /// <summary>Names made into strings when first asked (<see cref="Name"/>): a walk of unchanged files compares the bytes.</summary>
    private string?[]? _names;
    /// <summary>Owner names as the entries give them ("" first): an entry's the one before's when the bytes are the same.</summary>
    private readonly List<string> _owners;
    private int _count;
    /// <summary>Its record's bytes and its entries are the pool's (<see cref="ScanRented"/>), given back by <see cref="Return"/>.</summary>
    private readonly bool _pooled;
    /// <summary>1 once given back (Interlocked: the arrays go back to the pool once, whoever calls).</summary>
    private int _returnedOnce;
    private bool IsGivenBack => Volatile.Read(ref _returnedOnce) != 0;
    private Node?[]? _nodes;

    private ParentTree(ChunkId id, byte[] bytes, Scanned[] entries, List<string> owners, int count, bool pooled)
    {
        _id = id;
        _bytes = bytes;
        _entries = entries;
        _owners = owners;
        _count = count;
        _pooled = pooled;
    }

    /// <summary>How many entries it has (a tree given back to the pool has none to count: it throws, never says 0).</summary>
    public int Count => IsGivenBack ? throw Returned() : _count;

    public ref readonly Scanned this[int index] => ref _entries[Checked(index)];

    /// <summary>An entry's name as the engine works with it (NodeExtensions.FileName).</summary>
    public string Name(int index)
    {
        var names = _names ??= new string?[_count];
        return names[Checked(index)] ??= NameOf(_entries[index]);
    }

    private string NameOf(in Scanned e) => e.RawName
        ? Posix.PosixNames.Decode(_bytes.AsSpan(e.NameStart, e.NameLength))
        : Encoding.UTF8.GetString(_bytes, e.NameStart, e.NameLength);

    /// <summary>
    /// An entry's name against <paramref name="name"/> in ordinal order, as string.CompareOrdinal(Name(index), name)
    /// orders them (its sign): an ASCII name is compared as its bytes, no string made.
    /// </summary>
    public int CompareName(int index, string name)
    {
        ref readonly var e = ref _entries[Checked(index)];
        if (!e.RawName && _names?[index] is null)
        {
            var bytes = _bytes.AsSpan(e.NameStart, e.NameLength);
            var common = Math.Min(bytes.Length, name.Length);
            var k = 0;
            for (; k < common; k++)
            {
                var b = bytes[k];
                if (b >= 0x80) break; // a character of several bytes: compared as strings
                if (b != name[k]) return b - name[k];
            }
            if (k == common) return bytes.Length - name.Length; // one is the other's start: as many characters as bytes
        }
        return string.CompareOrdinal(Name(index), name);
    }

    /// <summary>Whether an entry's name is <paramref name="name"/> (<see cref="CompareName"/>).</summary>
    public bool NameIs(int index, string name) => CompareName(index, name) == 0;

    /// <summary>An entry's owner's user name as recorded ("" when none).</summary>
    public string User(int index) => _owners[_entries[Checked(index)].UserAt];

    /// <summary>An entry's owner's group name as recorded ("" when none).</summary>
    public string Group(int index) => _owners[_entries[Checked(index)].GroupAt];

    /// <summary>An index of an entry: a pooled array is longer than the entries, and a tree given back has none.</summary>
    private int Checked(int index) => IsGivenBack ? throw Returned()
        : (uint)index < (uint)_count ? index : throw new ArgumentOutOfRangeException(nameof(index), index, $"the tree has {_count} entries");

    private InvalidOperationException Returned() => new($"parent tree {_id.Short} was read after its folder was stored (its arrays are the pool's again)");

    /// <summary>The id of an entry's tree (a folder's, <see cref="Scanned.HasSubtree"/>).</summary>
    public ChunkId SubtreeId(int index) => new(_bytes.AsSpan(_entries[Checked(index)].SubtreeStart, ChunkId.Size));

    /// <summary>An entry's chunk ids (holes among them: the empty id), as they lie in the record.</summary>
    public ReadOnlySpan<byte> Chunks(int index) => _bytes.AsSpan(_entries[Checked(index)].ChunksStart, _entries[index].ChunksLength);

    /// <summary>
    /// An entry as a whole node, parsed once and kept (so that a change made to it, a file read again, is the one its
    /// folder stores). A node whose chunk lists are torn (NodeExtensions.HasTornLists) comes without entries: read again.
    /// </summary>
    public Node NodeAt(int index)
    {
        _nodes ??= new Node?[_count];
        if (_nodes[Checked(index)] is { } made) return made;
        ref readonly var e = ref _entries[index];
        Node node;
        try
        {
            node = Node.Parser.ParseFrom(_bytes.AsSpan(e.Start, e.Length));
        }
        catch (InvalidProtocolBufferException x)
        {
            throw new Codec.ChunkIntegrityException(_id, $"is not a tree: entry {Posix.PosixNames.Display(Name(index))}: {x.Message}");
        }
        if (node.HasTornLists()) node.ForgetEntries();
        return _nodes[index] = node;
    }

    /// <summary>The node made of an entry (<see cref="NodeAt"/>), or null when none was.</summary>
    public Node? Made(int index)
    {
        Checked(index); // a tree given back throws here too (its nodes went with it), never says none was made
        return _nodes?[index];
    }

    /// <summary>
    /// Its names in strictly ascending ordinal order (as a walk stores a folder's entries): a listing's sorted names can
    /// be matched to them in one pass. Worked out once, when first asked.
    /// </summary>
    public bool NamesAscending
    {
        get
        {
            if (_ascending == 0)
            {
                // Worked out whole before it is kept: a thread that asks meanwhile works it out too, never reads half an answer.
                var ascending = 1;
                for (var i = 1; i < Count; i++)
                    if (CompareNames(i - 1, i) >= 0)
                    {
                        ascending = -1;
                        break;
                    }
                _ascending = ascending;
            }
            return _ascending > 0;
        }
    }

    /// <summary>0: not worked out yet; 1: ascending; -1: not.</summary>
    private int _ascending;

    /// <summary>
    /// Every name one plain component of a path, as a folder's listing holds them (<see cref="NodeExtensions.UnsafeNameReason"/>,
    /// the restore's rule: not empty, not "." or "..", no '/' or NUL): names a walk may stat in the folder as they are.
    /// Worked out once, when first asked (the names made then are kept: a listing takes them next).
    /// </summary>
    public bool NamesArePlain
    {
        get
        {
            if (_plain == 0)
            {
                var plain = 1; // as _ascending: kept once whole
                for (var i = 0; i < Count; i++)
                    if (NodeExtensions.UnsafeNameReason(Name(i)) is not null)
                    {
                        plain = -1;
                        break;
                    }
                _plain = plain;
            }
            return _plain > 0;
        }
    }

    /// <summary>0: not worked out yet; 1: plain; -1: not.</summary>
    private int _plain;

    /// <summary>Two entries' names in ordinal order (the sign of string.CompareOrdinal): ASCII names as their bytes.</summary>
    private int CompareNames(int a, int b)
    {
        ref readonly var x = ref _entries[a];
        ref readonly var y = ref _entries[b];
        if (!x.RawName && !y.RawName)
        {
            var first = _bytes.AsSpan(x.NameStart, x.NameLength);
            var second = _bytes.AsSpan(y.NameStart, y.NameLength);
            var common = Math.Min(first.Length, second.Length);
            var k = 0;
            for (; k < common; k++)
            {
                if ((first[k] | second[k]) >= 0x80) break; // characters of several bytes: compared as strings
                if (first[k] != second[k]) return first[k] - second[k];
            }
            if (k == common) return first.Length - second.Length;
        }
        return string.CompareOrdinal(Name(a), Name(b));
    }

    /// <summary>The index of the entry of that name, or -1 (a folder's entries are few on the way to a backup path).</summary>
    public int Find(string name)
    {
        for (var i = 0; i < Count; i++)
            if (NameIs(i, name)) return i;
        return -1;
    }

    /// <summary>Reads tree record <paramref name="id"/>'s plaintext (kept: the entries point into it).</summary>
    /// <exception cref="InvalidDataException">the bytes are not a tree</exception>
    public static ParentTree Scan(ChunkId id, byte[] bytes) => Scan(id, bytes, bytes.Length, pooled: false);

    /// <summary>
    /// Reads the first <paramref name="length"/> bytes of <paramref name="rented"/> (from ArrayPool&lt;byte&gt;.Shared,
    /// the tree's from now on: given back by <see cref="Return"/>, or here when the bytes are not a tree), its entries
    /// into an array from the pool too: a walk of a million files reads a thousand trees of a thousand entries, each of
    /// those two arrays a large object (about 120 and 130 KB) that only a full collection took back.
    /// </summary>
    /// <exception cref="InvalidDataException">the bytes are not a tree</exception>
    public static ParentTree ScanRented(ChunkId id, byte[] rented, int length)
    {
        try
        {
            return Scan(id, rented, length, pooled: true);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(rented);
            throw;
        }
    }

    /// <summary>
    /// Gives a pooled tree's arrays back: the tree is not read again (its folder is stored). Any use of it after this
    /// throws (never reads another tree's entries, never counts none). Once; nothing for a tree not from the pool.
    /// </summary>
    public void Return()
    {
        if (!_pooled || Interlocked.Exchange(ref _returnedOnce, 1) != 0) return;
        var (bytes, entries) = (_bytes, _entries);
        (_bytes, _entries, _names, _nodes, _count) = ([], [], null, null, 0);
        ArrayPool<byte>.Shared.Return(bytes);
        ArrayPool<Scanned>.Shared.Return(entries); // numbers only: nothing to clear
    }

    private static ParentTree Scan(ChunkId id, byte[] bytes, int end, bool pooled)
    {
        var count = 0;
        List<ChunkId>? parts = null;
        var badParts = false;
        for (var at = 0; at < end;)
        {
            var tag = Tag(bytes, ref at, end);
            if (tag == NodesTag) count++;
            if (tag != PartsTag)
            {
                Skip(bytes, ref at, tag, end);
                continue;
            }
            var (start, length) = Field(bytes, ref at, end);
            if (length == ChunkId.Size) (parts ??= []).Add(new ChunkId(bytes.AsSpan(start, length)));
            else badParts = true; // the parser takes it (bytes of any length): TreeReader refuses the tree
        }
        var entries = pooled ? ArrayPool<Scanned>.Shared.Rent(count) : new Scanned[count];
        try
        {
            var owners = new List<string> { "" };
            var k = 0;
            for (var at = 0; at < end;)
            {
                var tag = Tag(bytes, ref at, end);
                if (tag != NodesTag)
                {
                    Skip(bytes, ref at, tag, end);
                    continue;
                }
                var (node, length) = Field(bytes, ref at, end);
                entries[k] = default; // a pooled array holds another tree's entries
                ScanNode(bytes, node, length, ref entries[k], owners);
                k++;
            }
            return new ParentTree(id, bytes, entries, owners, count, pooled) { Parts = parts ?? [], PartsDamaged = badParts };
        }
        catch when (pooled)
        {
            ArrayPool<Scanned>.Shared.Return(entries);
            throw;
        }
    }

    private const uint NodesTag = 1 << 3 | 2;
    private const uint PartsTag = 2 << 3 | 2;

    /// <summary>The ids of the further records of the folder's tree (Tree.parts), in order; none for most folders.</summary>
    public IReadOnlyList<ChunkId> Parts { get; private init; } = [];

    /// <summary>A part's id is not 32 bytes (a damaged tree; <see cref="Parts"/> leaves it out).</summary>
    public bool PartsDamaged { get; private init; }

    /// <summary>A string field's bytes, checked by <see cref="Text(byte[], ref int, int)"/> when they were read.</summary>
    private static string Text(byte[] bytes, int start, int length) => Encoding.UTF8.GetString(bytes, start, length);

    /// <summary>A string field, checked as the parser checks each one it reads (bytes that are not UTF-8 refuse the record).</summary>
    private static (int Start, int Length) Text(byte[] bytes, ref int at, int end)
    {
        var field = Field(bytes, ref at, end);
        if (!System.Text.Unicode.Utf8.IsValid(bytes.AsSpan(field.Start, field.Length))) throw new InvalidDataException("a tree holds a string that is not UTF-8");
        return field;
    }

    /// <summary>Reads one node's fields into <paramref name="e"/> (its name's place among them).</summary>
    private static void ScanNode(byte[] bytes, int start, int length, ref Scanned e, List<string> owners)
    {
        e.Start = start;
        e.Length = length;
        int nameStart = 0, nameLength = 0, rawStart = 0, rawLength = -1, userStart = 0, userLength = 0, groupStart = 0, groupLength = 0;
        int linkTarget = 0, hardlinkTarget = 0, rawHardlinkTarget = 0, chunkLists = 0; // their lengths: the last of each counts
        var end = start + length;
        for (var at = start; at < end;)
        {
            var tag = Tag(bytes, ref at, end);
            switch (tag)
            {
                case 1 << 3 | 2: (nameStart, nameLength) = Text(bytes, ref at, end); break;
                case 2 << 3: e.Type = (NodeType)(int)(uint)Varint(bytes, ref at, end); break;
                case 3 << 3: e.Mode = (uint)Varint(bytes, ref at, end); break;
                case 4 << 3: e.Uid = (uint)Varint(bytes, ref at, end); break;
                case 5 << 3: e.Gid = (uint)Varint(bytes, ref at, end); break;
                case 6 << 3: e.MtimeSec = (long)Varint(bytes, ref at, end); break;
                case 7 << 3: e.MtimeNsec = (uint)Varint(bytes, ref at, end); break;
                case 8 << 3: e.CtimeSec = (long)Varint(bytes, ref at, end); break;
                case 9 << 3: e.CtimeNsec = (uint)Varint(bytes, ref at, end); break;
                case 10 << 3: e.Inode = Varint(bytes, ref at, end); break;
                case 11 << 3: e.Device = Varint(bytes, ref at, end); break;
                case 12 << 3: e.Size = Varint(bytes, ref at, end); break;
                case 13 << 3 | 2: (e.ChunksStart, e.ChunksLength) = Field(bytes, ref at, end); break;
                case 14 << 3 | 2: (e.SubtreeStart, e.SubtreeLength) = Field(bytes, ref at, end); break;
                case 17 << 3: e.RdevMajor = (uint)Varint(bytes, ref at, end); break;
                case 18 << 3: e.RdevMinor = (uint)Varint(bytes, ref at, end); break;
                case 19 << 3: e.Nlink = (uint)Varint(bytes, ref at, end); break;
                case 20 << 3: // one chunk size, not packed
                    Varint(bytes, ref at, end);
                    e.ChunkSizes++;
                    break;
                case 20 << 3 | 2: // packed: one varint each; a length of 0 or less (cut to 32 bits) is an empty run to the parser
                    var packed = (int)(uint)Varint(bytes, ref at, end);
                    if (packed <= 0) break;
                    if (packed > end - at) throw new InvalidDataException("a tree's field runs past its end");
                    for (var stop = at + packed; at < stop; e.ChunkSizes++) Varint(bytes, ref at, stop);
                    break;
                case 21 << 3 | 2: (rawStart, rawLength) = Field(bytes, ref at, end); break;
                case 24 << 3 | 2: (userStart, userLength) = Text(bytes, ref at, end); break;
                case 25 << 3 | 2: (groupStart, groupLength) = Text(bytes, ref at, end); break;
                case 27 << 3: e.AtimeSec = (long)Varint(bytes, ref at, end); break;
                case 28 << 3: e.AtimeNsec = (uint)Varint(bytes, ref at, end); break;
                case 23 << 3 | 2 or 29 << 3 | 2 or 30 << 3 | 2: // xattrs, ACL names: taken as they are, once seen to parse
                    var (message, messageLength) = Field(bytes, ref at, end);
                    for (var i = message; i < message + messageLength;)
                    {
                        var inner = Tag(bytes, ref i, message + messageLength);
                        if (inner == (2 << 3 | 2) && tag != (23 << 3 | 2)) Text(bytes, ref i, message + messageLength); // an ACL entry's name (IdName.name)
                        else Skip(bytes, ref i, inner, message + messageLength);
                    }
                    break;
                case 15 << 3 | 2: linkTarget = Field(bytes, ref at, end).Length; break;
                case 16 << 3 | 2: hardlinkTarget = Text(bytes, ref at, end).Length; break;
                case 22 << 3 | 2: rawHardlinkTarget = Field(bytes, ref at, end).Length; break;
                case 31 << 3 | 2: chunkLists = Field(bytes, ref at, end).Length; break;
                default: // flags, a field of a later format, one on another wire type: kept by the parser as it is
                    Skip(bytes, ref at, tag, end);
                    break;
            }
        }
        // A raw name, link targets, chunk lists: such an entry is compared as a node.
        e.Plain = rawLength <= 0 && linkTarget == 0 && hardlinkTarget == 0 && rawHardlinkTarget == 0 && chunkLists == 0;
        e.UserAt = Owner(bytes, userStart, userLength, owners);
        e.GroupAt = Owner(bytes, groupStart, groupLength, owners);
        (e.NameStart, e.NameLength, e.RawName) = rawLength > 0 ? (rawStart, rawLength, true) : (nameStart, nameLength, false);
    }

    /// <summary>
    /// An owner's name, as its place among the tree's owner names: "" (0), one of the last two taken when the bytes are the
    /// same (a folder's files mostly share a user and a group), else added.
    /// </summary>
    private static int Owner(byte[] bytes, int start, int length, List<string> owners)
    {
        if (length == 0) return 0;
        for (var i = owners.Count - 1; i >= Math.Max(1, owners.Count - 2); i--)
            if (owners[i].Length == length && Ascii.Equals(bytes.AsSpan(start, length), owners[i])) return i;
        owners.Add(Text(bytes, start, length));
        return owners.Count - 1;
    }

    private static (int Start, int Length) Field(byte[] bytes, ref int at, int end)
    {
        var length = Length(bytes, ref at, end);
        var start = at;
        at += length;
        return (start, length);
    }

    private static int Length(byte[] bytes, ref int at, int end)
    {
        var length = (int)(uint)Varint(bytes, ref at, end); // cut to 32 bits, as the parser reads a length
        if (length < 0 || length > end - at) throw new InvalidDataException("a tree's field runs past its end");
        return length;
    }

    /// <summary>A field's tag, cut to 32 bits as the generated parser reads it; field 0 is refused, as it refuses it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Tag(byte[] bytes, ref int at, int end)
    {
        var tag = (uint)Varint(bytes, ref at, end);
        if (tag >> 3 == 0) throw new InvalidDataException("a tree holds a field numbered 0");
        return tag;
    }

    private static void Skip(byte[] bytes, ref int at, uint tag, int end)
    {
        switch (tag & 7)
        {
            case 0: Varint(bytes, ref at, end); break;
            case 1:
                if (end - at < 8) throw new InvalidDataException("a tree's field runs past its end");
                at += 8;
                break;
            case 2: Field(bytes, ref at, end); break;
            case 5:
                if (end - at < 4) throw new InvalidDataException("a tree's field runs past its end");
                at += 4;
                break;
            default: throw new InvalidDataException($"a tree holds a field of wire type {tag & 7}");
        }
    }

    /// <summary>
    /// A varint: one byte, or up to eight read as one word (a node's times, sizes and inodes are several bytes each,
    /// and a million-file tree is mostly these); longer ones, and those near the end, byte by byte.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Varint(byte[] bytes, ref int at, int end)
    {
        var i = at;
        if ((uint)i < (uint)end && (uint)i < (uint)bytes.Length)
        {
            var b = bytes[i];
            if (b < 0x80)
            {
                at = i + 1;
                return b;
            }
            if (end - i >= 8)
            {
                var word = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i));
                var stops = ~word & 0x8080808080808080UL; // a byte without its top bit ends the number
                if (stops != 0)
                {
                    var length = (BitOperations.TrailingZeroCount(stops) >> 3) + 1;
                    if (length < 8) word &= (1UL << (length * 8)) - 1;
                    at = i + length;
                    return (word & 0x7F) | (word >> 1 & 0x7FUL << 7) | (word >> 2 & 0x7FUL << 14) | (word >> 3 & 0x7FUL << 21)
                        | (word >> 4 & 0x7FUL << 28) | (word >> 5 & 0x7FUL << 35) | (word >> 6 & 0x7FUL << 42) | (word >> 7 & 0x7FUL << 49);
                }
            }
        }
        return VarintByBytes(bytes, ref at, end);
    }

    private static ulong VarintByBytes(byte[] bytes, ref int at, int end)
    {
        ulong value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (at >= end) throw new InvalidDataException("a tree's number runs past its end");
            var b = bytes[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new InvalidDataException("a tree holds a number of more than ten bytes");
    }
}
