using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Find;

/// <summary>
/// One snapshot's file index: every entry's name, directory, type, size and mtime, for `abk find`. A projection
/// of the snapshot's trees (built from them, dropped and built again whenever in doubt), never a source of truth.
/// Laid out in columns so that a search runs over the names alone, with vectorized byte searches, and touches
/// an entry's row only when its name matches.
/// <code>
/// "ABKFIDX3"
/// header:  snapshot id, client (LEB128 length + UTF-8), finished unix ms (zig-zag LEB128), the root tree's id
///          (LEB128 length + bytes; empty for an index of directories given by hand)
/// names:   every entry's name followed by a NUL (never part of a name), in entry order: depth first, by name
/// rows:    per entry, 24 bytes: directory number u32, type letter u8, 3 zero bytes, size u64, mtime seconds i64
/// dirs:    every directory's path followed by a NUL, by number ("" for the root)
/// trailer: names bytes, entries, dirs bytes, directories (u64 each), XxHash3 of everything before it (u64)
/// </code>
/// All fixed-size integers little-endian. Paths are bytes; an entry's path is its directory's, '/', its name.
/// </summary>
public static class FileIndex
{
    public static ReadOnlySpan<byte> Magic => "ABKFIDX3"u8; // 2: without the root tree (rebuilt: it reads as damaged)
    /// <summary>No index file is read beyond this size (about 20 million entries): a bigger one is damaged or not ours.</summary>
    public const long MaxFileBytes = 1L << 30;
    public const int RowBytes = 24;
    private const int TrailerBytes = 40;

    /// <summary>What an index says of itself. <paramref name="Root"/>: the id of the tree it projects (empty: directories given by hand).</summary>
    public sealed record Header(string Snapshot, string Client, long FinishedUnixMs, long Entries, long Directories, byte[] Root);

    /// <summary>Writes the index of a snapshot, walking its trees (<paramref name="cancel"/> is looked at before each folder).</summary>
    public static Header Write(TreeReader trees, SnapshotManifest snapshot, Stream output, Stream? scratch = null, CancellationToken cancel = default) =>
        Write(snapshot.Id, snapshot.Client, snapshot.FinishedUnixMs, Directories(trees, snapshot, cancel).Select(d => (d.Dir, Rows(d.Tree))), output, scratch,
            snapshot.RootTree.Span);

    /// <summary>What the index records of one entry: its name (as the engine works with it), type, size and mtime.</summary>
    private readonly record struct Listed(string Name, NodeType Type, ulong Size, long MtimeSec);

    /// <summary>A folder's entries as its tree's bytes hold them (no node made for each: ParentTree).</summary>
    private static IEnumerable<Listed> Rows(ParentTree tree)
    {
        for (var i = 0; i < tree.Count; i++) yield return new Listed(tree.Name(i), tree[i].Type, tree[i].Size, tree[i].MtimeSec);
    }

    /// <summary>
    /// Writes the index of <paramref name="snapshot"/> from the index of another snapshot of the same root tree (an
    /// unchanged backup's parent): the same entries, the snapshot's own header, checksum and all, without a tree read.
    /// </summary>
    /// <param name="source">a whole index (checked with <see cref="Check"/>) whose root is the snapshot's</param>
    public static Header Rewrite(ReadOnlySpan<byte> source, SnapshotManifest snapshot, Stream output)
    {
        var from = Open(source, out var bodyAt);
        if (from.Header.Root.Length == 0 || !from.Header.Root.AsSpan().SequenceEqual(snapshot.RootTree.Span))
            throw new ArgumentException($"the index of snapshot {from.Header.Snapshot} is not of snapshot {snapshot.Id}'s tree");
        var hash = new XxHash3();
        var header = HeaderBytes(snapshot.Id, snapshot.Client, snapshot.FinishedUnixMs, snapshot.RootTree.Span);
        hash.Append(header);
        output.Write(header);
        var rest = source[bodyAt..^8]; // the columns and the trailer's sizes, as they were
        hash.Append(rest);
        output.Write(rest);
        Span<byte> sum = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(sum, hash.GetCurrentHashAsUInt64());
        output.Write(sum);
        return from.Header with { Snapshot = snapshot.Id, Client = snapshot.Client, FinishedUnixMs = snapshot.FinishedUnixMs };
    }

    private static byte[] HeaderBytes(string snapshot, string client, long finishedUnixMs, ReadOnlySpan<byte> root)
    {
        var buffer = new Buffer(256);
        buffer.WriteRaw(Magic);
        buffer.WriteBytes(Encoding.UTF8.GetBytes(snapshot));
        buffer.WriteBytes(Encoding.UTF8.GetBytes(client));
        buffer.WriteVarint(ZigZag(finishedUnixMs));
        buffer.WriteBytes(root);
        return buffer.Written.ToArray();
    }

    /// <summary>
    /// A snapshot's directories with their listings, depth first in name order; the root's path is "". Paths as ls
    /// shows them (PosixNames.Display). The listings are read from the trees' bytes, no node made for each entry
    /// (ParentTree): an index of a million files parsed a million nodes for four fields each. A folder's tree is read
    /// before the next is asked for: it goes back to the pool then (a later read of it throws).
    /// </summary>
    /// <exception cref="InvalidDataException">a folder's tree id is not an id</exception>
    public static IEnumerable<(string Dir, ParentTree Tree)> Directories(TreeReader trees, SnapshotManifest snapshot, CancellationToken cancel = default)
    {
        var pending = new Stack<(string Dir, Hashing.ChunkId Tree)>();
        pending.Push(("", new Hashing.ChunkId(snapshot.RootTree.Span)));
        while (pending.Count > 0)
        {
            var (dir, id) = pending.Pop();
            cancel.ThrowIfCancellationRequested();
            var tree = trees.LoadParent(id);
            yield return (dir, tree);
            for (var i = tree.Count - 1; i >= 0; i--)
                if (tree[i] is { Type: NodeType.Directory, SubtreeLength: > 0 } sub)
                {
                    var path = dir + "/" + Posix.PosixNames.Display(tree.Name(i));
                    if (!sub.HasSubtree) throw new InvalidDataException($"the tree id of {path} in snapshot {snapshot.Id} is not {Hashing.ChunkId.Size} bytes");
                    pending.Push((path, tree.SubtreeId(i)));
                }
            tree.Return(); // its rows were read (Write reads a folder's before it asks for the next)
        }
    }

    /// <summary>
    /// Writes an index of the given directories (each with its listing). Names stream to <paramref name="output"/>;
    /// rows go to <paramref name="scratch"/> (default: memory) until the names are written, then follow them.
    /// </summary>
    public static Header Write(string snapshot, string client, long finishedUnixMs, IEnumerable<(string Dir, Tree Tree)> directories, Stream output,
        Stream? scratch = null, ReadOnlySpan<byte> root = default) =>
        Write(snapshot, client, finishedUnixMs, directories.Select(d => (d.Dir, d.Tree.Nodes.Select(n => new Listed(n.FileName(), n.Type, n.Size, n.MtimeSec)))),
            output, scratch, root);

    private static Header Write(string snapshot, string client, long finishedUnixMs, IEnumerable<(string Dir, IEnumerable<Listed> Rows)> directories, Stream output,
        Stream? scratch, ReadOnlySpan<byte> root)
    {
        var hash = new XxHash3();
        var buffer = new Buffer(1 << 16);
        void Flush()
        {
            hash.Append(buffer.Written);
            output.Write(buffer.Written);
            buffer.Clear();
        }
        buffer.WriteRaw(HeaderBytes(snapshot, client, finishedUnixMs, root));
        Flush();
        long entries = 0, namesBytes = 0;
        using var ownRows = scratch is null ? new MemoryStream() : null;
        var rows = scratch ?? ownRows!;
        var dirs = new Buffer(1 << 12);
        uint dirCount = 0;
        Span<byte> row = stackalloc byte[RowBytes];
        foreach (var (dir, entriesOfDir) in directories)
        {
            var number = dirCount++;
            dirs.WriteRaw(Encoding.UTF8.GetBytes(dir));
            dirs.WriteByte(0);
            foreach (var entry in entriesOfDir)
            {
                entries++;
                var before = buffer.Length;
                buffer.WriteRaw(Encoding.UTF8.GetBytes(Posix.PosixNames.Display(entry.Name)));
                buffer.WriteByte(0);
                namesBytes += buffer.Length - before;
                row.Clear();
                BinaryPrimitives.WriteUInt32LittleEndian(row, number);
                row[4] = TypeLetter(entry.Type);
                BinaryPrimitives.WriteUInt64LittleEndian(row[8..], entry.Size);
                BinaryPrimitives.WriteInt64LittleEndian(row[16..], entry.MtimeSec);
                rows.Write(row);
            }
            if (buffer.Length > 1 << 20) Flush();
        }
        Flush();
        rows.Position = 0;
        var copy = new byte[1 << 16];
        int n;
        while ((n = rows.Read(copy)) > 0)
        {
            hash.Append(copy.AsSpan(0, n));
            output.Write(copy, 0, n);
        }
        hash.Append(dirs.Written);
        output.Write(dirs.Written);
        Span<byte> trailer = stackalloc byte[TrailerBytes];
        BinaryPrimitives.WriteInt64LittleEndian(trailer, namesBytes);
        BinaryPrimitives.WriteInt64LittleEndian(trailer[8..], entries);
        BinaryPrimitives.WriteInt64LittleEndian(trailer[16..], dirs.Length);
        BinaryPrimitives.WriteInt64LittleEndian(trailer[24..], dirCount);
        hash.Append(trailer[..32]);
        BinaryPrimitives.WriteUInt64LittleEndian(trailer[32..], hash.GetCurrentHashAsUInt64());
        output.Write(trailer);
        return new Header(snapshot, client, finishedUnixMs, entries, dirCount, root.ToArray());
    }

    /// <summary>
    /// Whose snapshot an index file is of and when that ended, from the file's first bytes alone (the header; nothing
    /// checked beyond it): null when they are not an index's header.
    /// </summary>
    public static (string Snapshot, string Client, long FinishedUnixMs)? Owner(ReadOnlySpan<byte> start)
    {
        if (start.Length < Magic.Length || !start[..Magic.Length].SequenceEqual(Magic)) return null;
        try
        {
            var reader = new SpanReader(start) { Position = Magic.Length };
            return ReadOwner(ref reader);
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>The header's first fields, after the magic: snapshot id, client, finished unix ms.</summary>
    private static (string Snapshot, string Client, long FinishedUnixMs) ReadOwner(ref SpanReader reader)
    {
        var snapshot = Encoding.UTF8.GetString(reader.ReadBytes());
        var client = Encoding.UTF8.GetString(reader.ReadBytes());
        return (snapshot, client, UnZigZag(reader.ReadVarint()));
    }

    /// <summary>Checks an index file whole (sizes and checksum) and reads its header.</summary>
    /// <exception cref="InvalidDataException">the bytes are not a whole, undamaged index</exception>
    public static Header Check(ReadOnlySpan<byte> file)
    {
        var view = Open(file);
        if (XxHash3.HashToUInt64(file[..^8]) != BinaryPrimitives.ReadUInt64LittleEndian(file[^8..])) throw new InvalidDataException("file index checksum mismatch");
        return view.Header;
    }

    /// <summary>An index's columns, every size checked against the file (not its checksum: see <see cref="Check"/>).</summary>
    /// <exception cref="InvalidDataException">the sizes do not add up</exception>
    public static View Open(ReadOnlySpan<byte> file) => Open(file, out _);

    private static View Open(ReadOnlySpan<byte> file, out int bodyAt)
    {
        if (file.Length < Magic.Length + TrailerBytes || !file[..Magic.Length].SequenceEqual(Magic)) throw new InvalidDataException("not a file index (bad magic)");
        var t = file[^TrailerBytes..];
        ulong namesBytes = BinaryPrimitives.ReadUInt64LittleEndian(t), entries = BinaryPrimitives.ReadUInt64LittleEndian(t[8..]),
            dirsBytes = BinaryPrimitives.ReadUInt64LittleEndian(t[16..]), dirCount = BinaryPrimitives.ReadUInt64LittleEndian(t[24..]);
        var reader = new SpanReader(file[..^TrailerBytes]) { Position = Magic.Length };
        var (snapshot, client, finished) = ReadOwner(ref reader);
        var root = reader.ReadBytes().ToArray();
        bodyAt = reader.Position;
        var body = (ulong)(file.Length - TrailerBytes - reader.Position);
        // Each part no larger than what holds it, so that their sum cannot overflow.
        if (namesBytes > body || entries > body / RowBytes || dirsBytes > body || dirCount > dirsBytes || namesBytes + entries * RowBytes + dirsBytes != body
            || entries > namesBytes / 2)
            throw new InvalidDataException("file index sizes do not add up");
        var names = file.Slice(reader.Position, (int)namesBytes);
        var rows = file.Slice(reader.Position + (int)namesBytes, (int)entries * RowBytes);
        var dirs = file.Slice(reader.Position + (int)namesBytes + rows.Length, (int)dirsBytes);
        if ((names.Length > 0 && names[^1] != 0) || (dirs.Length > 0 && dirs[^1] != 0)) throw new InvalidDataException("file index column not terminated");
        return new View(new Header(snapshot, client, finished, (long)entries, (long)dirCount, root), names, rows, dirs);
    }

    /// <summary>An index's columns. Spans into the file's bytes, valid as long as they are.</summary>
    public readonly ref struct View(Header header, ReadOnlySpan<byte> names, ReadOnlySpan<byte> rows, ReadOnlySpan<byte> dirs)
    {
        public Header Header { get; } = header;
        /// <summary>Every entry's name followed by a NUL.</summary>
        public ReadOnlySpan<byte> Names { get; } = names;
        public ReadOnlySpan<byte> Dirs { get; } = dirs;
        private readonly ReadOnlySpan<byte> _rows = rows;

        public Row RowOf(long entry)
        {
            if ((ulong)entry >= (ulong)Header.Entries) throw new InvalidDataException($"file index has more names than its {Header.Entries} entries");
            var r = _rows.Slice((int)(entry * RowBytes), RowBytes);
            return new Row(BinaryPrimitives.ReadUInt32LittleEndian(r), r[4], BinaryPrimitives.ReadUInt64LittleEndian(r[8..]), BinaryPrimitives.ReadInt64LittleEndian(r[16..]));
        }

        /// <summary>Where each directory's path starts in <see cref="Dirs"/>, by number.</summary>
        public int[] DirStarts()
        {
            var starts = new int[(int)Header.Directories];
            var at = 0;
            for (var i = 0; i < starts.Length; i++)
            {
                if (at >= Dirs.Length) throw new InvalidDataException("file index has fewer directories than it says");
                starts[i] = at;
                at += Dirs[at..].IndexOf((byte)0) + 1;
            }
            return starts;
        }

        public ReadOnlySpan<byte> Dir(int[] starts, uint number)
        {
            if (number >= starts.Length) throw new InvalidDataException($"file index row names directory {number} of {starts.Length}");
            var from = starts[number];
            return Dirs[from..(from + Dirs[from..].IndexOf((byte)0))];
        }
    }

    public readonly record struct Row(uint Dir, byte Type, ulong Size, long MtimeSec);

    public static byte TypeLetter(NodeType t) => (byte)(t switch
    {
        NodeType.Directory => 'd', NodeType.Symlink => 'l', NodeType.Hardlink => 'h', NodeType.Fifo => 'p',
        NodeType.CharDevice => 'c', NodeType.BlockDevice => 'b', NodeType.Socket => 's', _ => '-',
    });

    private static ulong ZigZag(long v) => (ulong)((v << 1) ^ (v >> 63));
    private static long UnZigZag(ulong v) => (long)(v >> 1) ^ -(long)(v & 1);

    private sealed class Buffer(int capacity)
    {
        private byte[] _buffer = new byte[capacity];

        public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);
        public int Length { get; private set; }
        public void Clear() => Length = 0;

        private Span<byte> Reserve(int n)
        {
            if (Length + n > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, Length + n));
            return _buffer.AsSpan(Length, n);
        }

        public void WriteByte(byte b)
        {
            Reserve(1)[0] = b;
            Length++;
        }

        public void WriteVarint(ulong v)
        {
            var span = Reserve(10);
            var n = 0;
            while (v >= 0x80)
            {
                span[n++] = (byte)(v | 0x80);
                v >>= 7;
            }
            span[n++] = (byte)v;
            Length += n;
        }

        public void WriteRaw(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(Reserve(bytes.Length));
            Length += bytes.Length;
        }

        public void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            WriteVarint((ulong)bytes.Length);
            WriteRaw(bytes);
        }
    }

    /// <summary>Reads the header, every length checked against what is left.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        public int Position;

        private byte ReadByte()
        {
            if (Position >= _data.Length) throw Truncated();
            return _data[Position++];
        }

        public ulong ReadVarint()
        {
            ulong v = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = ReadByte();
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return v;
            }
            throw new InvalidDataException("file index varint longer than 10 bytes");
        }

        public ReadOnlySpan<byte> ReadBytes()
        {
            var n = ReadVarint();
            if (n > 4096 || n > (ulong)(_data.Length - Position)) throw Truncated();
            var span = _data.Slice(Position, (int)n);
            Position += (int)n;
            return span;
        }

        private static InvalidDataException Truncated() => new("file index header truncated");
    }
}
