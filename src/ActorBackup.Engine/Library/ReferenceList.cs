using System.Buffers.Binary;
using System.IO.Hashing;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Library;

/// <summary>
/// The chunk ids one snapshot references (its trees and every file's chunks), sorted and distinct, as a file
/// beside the volumes: <c>refs/SNAPSHOT.ref</c>. Written when the snapshot's backup commits, so that the media
/// side can tell live chunks from dead ones without the key (keyed ids reveal nothing of the data). Two forms:
/// <code>
/// whole:  "ABKREFS1" | u32 count | count x 32-byte id, ascending | u32 crc32 of everything before
/// delta:  "ABKREFD1" | u8 n | n-byte base name | u32 base's count | u32 base's crc32 | u32 removed | u32 added
///         | removed x id, ascending | added x id, ascending | u32 crc32 of everything before
/// </code>
/// A delta's ids are its base's (a whole list in <c>refs/bases/NAME.base</c>, never changed once written; the delta
/// names its count and checksum, so that another list under that name is never taken for it) without the removed
/// ones, with the added ones: a snapshot much like an earlier one costs what changed, not 32 bytes for every chunk
/// again (<see cref="ReferenceStore"/> chooses the form). Read as a stream: a list's ids are held once, never its bytes beside them.
/// </summary>
public static class ReferenceList
{
    private static readonly byte[] Magic = "ABKREFS1"u8.ToArray();
    private static readonly byte[] DeltaMagic = "ABKREFD1"u8.ToArray();
    private const int HeaderSize = 12;
    /// <summary>
    /// The most ids a list may say it holds: as many as one array takes. A list grows past what one commit stages
    /// (DiskLibrary.MaxStagedReferences) when its parts come over several commits, and a list written is a list that
    /// reads; a count must also fit the file's length exactly, so no count makes a reader hold more than the file is.
    /// </summary>
    public static readonly long MaxIds = Array.MaxLength;
    /// <summary>The longest base name (a snapshot id and a suffix).</summary>
    public const int MaxBaseName = 100;

    public static string FileName(string snapshot) => snapshot + ".ref";

    /// <summary>A snapshot id that is safe as a file name (the hex ids the archiver makes, or similar).</summary>
    public static bool IsValidSnapshotId(string snapshot) =>
        snapshot.Length is > 0 and <= 64 && snapshot.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>A base list's name: a file name of letters, digits, '-' and '_' (nothing that leads out of its folder).</summary>
    public static bool IsValidBaseName(string name) =>
        name.Length is > 0 and <= MaxBaseName && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>
    /// Writes the list whole, durably (a temporary file, fsync, rename); <paramref name="ids"/> need not be sorted. The
    /// form every list had before deltas (<see cref="ReferenceStore"/> writes lists now): tests and tools make old
    /// libraries' lists with it.
    /// </summary>
    public static void Write(string path, IEnumerable<ChunkId> ids) => Write(path, ids.ToList());

    /// <summary>Writes the list durably, sorting <paramref name="ids"/> in place and leaving out repeats.</summary>
    public static void Write(string path, List<ChunkId> ids)
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids);
        WriteSorted(path, span[..SortDistinct(span)]);
    }

    /// <summary>Sorts <paramref name="ids"/> in place and moves each id once to the front: returns how many that is.</summary>
    public static int SortDistinct(Span<ChunkId> ids)
    {
        ChunkIdSort.Sort(ids);
        var n = 0;
        for (var i = 0; i < ids.Length; i++)
            if (i == 0 || ids[i] != ids[n - 1]) ids[n++] = ids[i];
        return n;
    }

    /// <summary>
    /// Writes a whole list durably from ids already sorted and distinct; returns its checksum. Over a list there,
    /// unless <paramref name="overwrite"/> is false (then IOException, and nothing written).
    /// </summary>
    public static uint WriteSorted(string path, ReadOnlySpan<ChunkId> ids, bool overwrite = true)
    {
        using var output = new Output(path, Magic, (uint)ids.Length);
        foreach (var id in ids) output.Add(id);
        return output.Complete(overwrite);
    }

    /// <summary>A base list as a delta names it: its name, count and checksum.</summary>
    public readonly record struct BaseList(string Name, uint Count, uint Checksum);

    /// <summary>
    /// Writes a delta durably: the ids of base list <paramref name="of"/> without <paramref name="removed"/>, with
    /// <paramref name="added"/> (each sorted and distinct).
    /// </summary>
    public static void WriteDelta(string path, BaseList of, ReadOnlySpan<ChunkId> removed, ReadOnlySpan<ChunkId> added)
    {
        if (!IsValidBaseName(of.Name)) throw new ArgumentException($"'{of.Name}' is not a base list's name", nameof(of));
        var n = of.Name.Length;
        var head = new byte[1 + n + 16];
        head[0] = (byte)n;
        System.Text.Encoding.ASCII.GetBytes(of.Name, head.AsSpan(1));
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(1 + n), of.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(5 + n), of.Checksum);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(9 + n), (uint)removed.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(13 + n), (uint)added.Length);
        using var output = new Output(path, DeltaMagic, head);
        foreach (var id in removed) output.Add(id);
        foreach (var id in added) output.Add(id);
        output.Complete();
    }

    /// <summary>A list being written: a temporary file beside it, renamed over it once synced (Complete).</summary>
    private sealed class Output : IDisposable
    {
        private readonly string _path, _tmp;
        private readonly FileStream _file;
        private readonly byte[] _buffer = new byte[1 << 16];
        private readonly Crc32 _crc = new();
        private int _used;
        private bool _done;

        public Output(string path, byte[] magic, uint count) : this(path, magic, new byte[4])
            => BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(magic.Length), count);

        /// <summary>The magic, then <paramref name="head"/> (at most a few hundred bytes).</summary>
        public Output(string path, byte[] magic, byte[] head)
        {
            (_path, _tmp) = (path, path + ".tmp");
            _file = new FileStream(_tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
            magic.CopyTo(_buffer, 0);
            head.CopyTo(_buffer, magic.Length);
            _used = magic.Length + head.Length;
        }

        public void Add(ChunkId id)
        {
            if (_used + ChunkId.Size > _buffer.Length) Drain();
            id.WriteTo(_buffer.AsSpan(_used));
            _used += ChunkId.Size;
        }

        private void Drain()
        {
            _crc.Append(_buffer.AsSpan(0, _used));
            _file.Write(_buffer, 0, _used);
            _used = 0;
        }

        /// <summary>The checksum, the sync, the rename: the list is there whole or not at all. Returns the checksum.</summary>
        public uint Complete(bool overwrite = true)
        {
            Drain();
            var crc = _crc.GetCurrentHashAsUInt32();
            Span<byte> tail = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(tail, crc);
            _file.Write(tail);
            _file.Flush(true);
            _file.Dispose();
            File.Move(_tmp, _path, overwrite);
            _done = true;
            return crc;
        }

        public void Dispose()
        {
            _file.Dispose();
            if (!_done) File.Delete(_tmp);
        }
    }

    /// <summary>A delta list as read: the base it is on, the ids it leaves out of the base and the ids it adds.</summary>
    public sealed record Delta(BaseList Base, ChunkId[] Removed, ChunkId[] Added);

    /// <summary>A list as read: one of <paramref name="Whole"/> and <paramref name="Delta"/>; its checksum.</summary>
    public readonly record struct Parsed(ChunkId[]? Whole, Delta? Delta, uint Checksum);

    /// <summary>Reads a whole list; InvalidDataException (with the path) when it is damaged or a delta, never a huge allocation.</summary>
    public static ChunkId[] Read(string path) =>
        ReadAny(path) is { Whole: { } whole } ? whole : throw new InvalidDataException($"{path} is a delta list, not a whole one");

    /// <summary>
    /// Reads a list of either form, checked whole (magic, counts against the size, checksum, order) as it streams
    /// by: its ids are allocated only once their counts fit the file's size, and no copy of its bytes is held.
    /// </summary>
    public static Parsed ReadAny(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        var input = new Input(file, path);
        Span<byte> head = stackalloc byte[8];
        input.Read(head);
        if (head.SequenceEqual(Magic))
        {
            var count = input.UInt32();
            if (count > MaxIds || (long)count * ChunkId.Size + HeaderSize + 4 != file.Length)
                throw new InvalidDataException($"{path}: {count} ids do not fit its {file.Length} bytes (truncated or damaged)");
            var ids = input.Ids((int)count);
            return new Parsed(ids, null, input.Finish());
        }
        if (head.SequenceEqual(DeltaMagic))
        {
            var baseName = input.BaseName();
            var of = new BaseList(baseName, input.UInt32(), input.UInt32());
            var removed = input.UInt32();
            var added = input.UInt32();
            if ((long)removed + added > MaxIds || ((long)removed + added) * ChunkId.Size + 8 + 1 + baseName.Length + 16 + 4 != file.Length)
                throw new InvalidDataException($"{path}: {removed} + {added} ids do not fit its {file.Length} bytes (truncated or damaged)");
            var r = input.Ids((int)removed);
            var a = input.Ids((int)added);
            return new Parsed(null, new Delta(of, r, a), input.Finish());
        }
        throw new InvalidDataException($"{path} is not a reference list");
    }

    /// <summary>A list's bytes read in order, each into the checksum, in blocks of 64 KiB.</summary>
    private sealed class Input(FileStream file, string path)
    {
        private readonly Crc32 _crc = new();
        private readonly byte[] _block = new byte[1 << 16];

        public void Read(Span<byte> into)
        {
            try
            {
                file.ReadExactly(into);
            }
            catch (EndOfStreamException)
            {
                throw new InvalidDataException($"{path}: truncated (damaged)");
            }
            _crc.Append(into);
        }

        /// <summary>A delta's base name: a length byte, then letters, digits, '-' and '_' (nothing that leads out of its folder).</summary>
        public string BaseName()
        {
            Span<byte> b = stackalloc byte[MaxBaseName];
            Read(b[..1]);
            int length = b[0];
            if (length is 0 or > MaxBaseName) throw new InvalidDataException($"{path}: its base's name is damaged");
            Read(b[..length]);
            var name = System.Text.Encoding.ASCII.GetString(b[..length]);
            return IsValidBaseName(name) ? name : throw new InvalidDataException($"{path}: its base's name is damaged");
        }

        public uint UInt32()
        {
            Span<byte> b = stackalloc byte[4];
            Read(b);
            return BinaryPrimitives.ReadUInt32LittleEndian(b);
        }

        /// <summary><paramref name="count"/> ids, which must ascend (a list out of order is damaged: merges rely on the order).</summary>
        public ChunkId[] Ids(int count)
        {
            var ids = new ChunkId[count];
            const int PerBlock = (1 << 16) / ChunkId.Size;
            for (var at = 0; at < count; at += PerBlock)
            {
                var n = Math.Min(PerBlock, count - at);
                var block = _block.AsSpan(0, n * ChunkId.Size);
                Read(block);
                for (var i = 0; i < n; i++)
                {
                    var id = ids[at + i] = new ChunkId(block.Slice(i * ChunkId.Size, ChunkId.Size));
                    if (at + i > 0 && ids[at + i - 1].CompareTo(id) >= 0)
                        throw new InvalidDataException($"{path}: its ids are not in ascending order (damaged)");
                }
            }
            return ids;
        }

        /// <summary>The stored checksum against the bytes read; returns it.</summary>
        public uint Finish()
        {
            var crc = _crc.GetCurrentHashAsUInt32();
            Span<byte> tail = stackalloc byte[4];
            try
            {
                file.ReadExactly(tail);
            }
            catch (EndOfStreamException)
            {
                throw new InvalidDataException($"{path}: truncated (damaged)");
            }
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail) != crc) throw new InvalidDataException($"{path}: checksum mismatch (damaged)");
            return crc;
        }
    }

    /// <summary>
    /// The base a list names (null: a whole list), from its first bytes only: what a sweep of unused bases needs
    /// of every list. InvalidDataException when they are not a list's.
    /// </summary>
    public static string? BaseOf(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        var input = new Input(file, path);
        Span<byte> head = stackalloc byte[8];
        input.Read(head);
        if (head.SequenceEqual(Magic)) return null;
        if (head.SequenceEqual(DeltaMagic)) return input.BaseName();
        throw new InvalidDataException($"{path} is not a reference list");
    }

    /// <summary>
    /// The first (smallest) <paramref name="k"/> ids of a whole list and its count, from its first bytes (unchecked
    /// beyond them: a sample to choose a base by, never taken for the list).
    /// </summary>
    public static ChunkId[] ReadFirst(string path, int k, out uint count)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        var input = new Input(file, path);
        Span<byte> head = stackalloc byte[8];
        input.Read(head);
        if (!head.SequenceEqual(Magic)) throw new InvalidDataException($"{path} is not a whole reference list");
        count = input.UInt32();
        if (count > MaxIds || (long)count * ChunkId.Size + HeaderSize + 4 != file.Length)
            throw new InvalidDataException($"{path}: {count} ids do not fit its {file.Length} bytes (truncated or damaged)");
        return input.Ids((int)Math.Min(count, (uint)k));
    }

    /// <summary>
    /// A delta's ids: its base's (<paramref name="baseIds"/>, sorted) without the removed, with the added, sorted.
    /// InvalidDataException when the delta was not made from this base (it removes an id the base lacks, or adds one it has).
    /// </summary>
    public static ChunkId[] Apply(ReadOnlySpan<ChunkId> baseIds, Delta delta)
    {
        var result = new ChunkId[(long)baseIds.Length - delta.Removed.Length + delta.Added.Length is var n and >= 0 ? n : 0];
        int i = 0, r = 0, a = 0, o = 0;
        while (i < baseIds.Length || a < delta.Added.Length)
        {
            ChunkId id;
            if (a == delta.Added.Length || i < baseIds.Length && baseIds[i].CompareTo(delta.Added[a]) < 0)
            {
                id = baseIds[i++];
                if (r < delta.Removed.Length && delta.Removed[r].CompareTo(id) < 0) break; // a removed id the base lacks
                if (r < delta.Removed.Length && delta.Removed[r] == id)
                {
                    r++;
                    continue;
                }
            }
            else
            {
                id = delta.Added[a++];
                if (i < baseIds.Length && baseIds[i] == id) break; // added, but in the base already
            }
            if (o == result.Length) break;
            result[o++] = id;
        }
        if (r != delta.Removed.Length || a != delta.Added.Length || i != baseIds.Length || o != result.Length)
            throw new InvalidDataException($"it was not made from base {delta.Base.Name} as that list is now");
        return result;
    }

    /// <summary>
    /// What turns <paramref name="baseIds"/> into <paramref name="ids"/> (both sorted and distinct): the ids to remove
    /// and to add, or null when they would be more than <paramref name="limit"/> together.
    /// </summary>
    public static (ChunkId[] Removed, ChunkId[] Added)? Diff(ReadOnlySpan<ChunkId> baseIds, ReadOnlySpan<ChunkId> ids, int limit)
    {
        var removed = new List<ChunkId>();
        var added = new List<ChunkId>();
        int i = 0, j = 0;
        while (i < baseIds.Length || j < ids.Length)
        {
            var c = i == baseIds.Length ? 1 : j == ids.Length ? -1 : baseIds[i].CompareTo(ids[j]);
            if (c == 0) { i++; j++; continue; }
            if (c < 0) removed.Add(baseIds[i++]);
            else added.Add(ids[j++]);
            if (removed.Count + added.Count > limit) return null;
        }
        return (removed.ToArray(), added.ToArray());
    }
}
