using System.Buffers.Binary;
using System.IO.Hashing;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Library;

/// <summary>
/// The chunk ids one snapshot references (its trees and every file's chunks), sorted and distinct, as a file
/// beside the volumes: <c>refs/SNAPSHOT.ref</c>. Written when the snapshot's backup commits, so that the media
/// side can tell live chunks from dead ones without the key (keyed ids reveal nothing of the data).
/// <code>
/// "ABKREFS1" | u32 count | count x 32-byte id, ascending | u32 crc32 of everything before
/// </code>
/// </summary>
public static class ReferenceList
{
    private static readonly byte[] Magic = "ABKREFS1"u8.ToArray();
    private const int HeaderSize = 12;

    public static string FileName(string snapshot) => snapshot + ".ref";

    /// <summary>A snapshot id that is safe as a file name (the hex ids the archiver makes, or similar).</summary>
    public static bool IsValidSnapshotId(string snapshot) =>
        snapshot.Length is > 0 and <= 64 && snapshot.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>Writes the list durably (a temporary file, fsync, rename); <paramref name="ids"/> need not be sorted.</summary>
    public static void Write(string path, IEnumerable<ChunkId> ids) => Write(path, ids.ToList());

    /// <summary>
    /// Writes the list durably, sorting <paramref name="ids"/> in place and leaving out repeats as it writes (no copy
    /// of a million ids beside the list: 32 bytes each).
    /// </summary>
    public static void Write(string path, List<ChunkId> ids)
    {
        var sorted = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids);
        ChunkIdSort.Sort(sorted);
        var distinct = 0u;
        for (var i = 0; i < sorted.Length; i++)
            if (i == 0 || sorted[i] != sorted[i - 1]) distinct++;
        using var output = new Output(path, distinct);
        for (var i = 0; i < sorted.Length; i++)
            if (i == 0 || sorted[i] != sorted[i - 1]) output.Add(sorted[i]);
        output.Complete();
    }

    /// <summary>
    /// Adds <paramref name="ids"/> (any order, repeats and all; sorted in place) to the list at <paramref name="path"/>,
    /// durably: a snapshot's list may come in parts, committed one after the other (its manifest's chunk comes last).
    /// The list written is merged with the one there, as it is read: never both held as ids. No list there: written anew.
    /// </summary>
    public static void Merge(string path, List<ChunkId> ids)
    {
        if (!File.Exists(path))
        {
            Write(path, ids);
            return;
        }
        var (bytes, count) = ReadChecked(path);
        var had = bytes.AsSpan(HeaderSize, (int)count * ChunkId.Size);
        ChunkId Had(Span<byte> span, int i) => new(span.Slice(i * ChunkId.Size, ChunkId.Size));
        var added = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids);
        ChunkIdSort.Sort(added);
        // Twice through the two sorted lists: the count goes first in the file.
        uint Walk(Span<byte> had, ReadOnlySpan<ChunkId> added, Output? output)
        {
            var n = 0u;
            int i = 0, j = 0;
            ChunkId? last = null;
            while (i < count || j < added.Length)
            {
                ChunkId next;
                if (j == added.Length || i < count && Had(had, i).CompareTo(added[j]) <= 0) next = Had(had, i++);
                else next = added[j++];
                if (last is { } l && l.CompareTo(next) >= 0)
                {
                    if (l == next) continue;
                    throw new InvalidDataException($"{path}: its ids are not in ascending order (damaged)");
                }
                last = next;
                n++;
                output?.Add(next);
            }
            return n;
        }
        var distinct = Walk(had, added, null);
        using var output = new Output(path, distinct);
        Walk(had, added, output);
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

        public Output(string path, uint count)
        {
            (_path, _tmp) = (path, path + ".tmp");
            _file = new FileStream(_tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
            Magic.CopyTo(_buffer, 0);
            BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(8), count);
            _used = HeaderSize;
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

        /// <summary>The checksum, the sync, the rename: the list is there whole or not at all.</summary>
        public void Complete()
        {
            Drain();
            Span<byte> tail = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(tail, _crc.GetCurrentHashAsUInt32());
            _file.Write(tail);
            _file.Flush(true);
            _file.Dispose();
            File.Move(_tmp, _path, overwrite: true);
            _done = true;
        }

        public void Dispose()
        {
            _file.Dispose();
            if (!_done) File.Delete(_tmp);
        }
    }

    /// <summary>Reads a list; InvalidDataException (with the path) when it is damaged, never a huge allocation.</summary>
    public static ChunkId[] Read(string path)
    {
        var (bytes, count) = ReadChecked(path);
        var ids = new ChunkId[count];
        for (var i = 0; i < ids.Length; i++) ids[i] = new ChunkId(bytes.AsSpan(HeaderSize + i * ChunkId.Size, ChunkId.Size));
        return ids;
    }

    /// <summary>A list's bytes and count, checked whole (magic, size, checksum).</summary>
    private static (byte[] Bytes, uint Count) ReadChecked(string path)
    {
        // 32 Mi ids (32 TiB of 1 MiB chunks) at most: a larger file is damage, not a list to read whole.
        var size = new FileInfo(path).Length;
        if (size > HeaderSize + 4 + 32L * 1024 * 1024 * ChunkId.Size)
            throw new InvalidDataException($"{path} is {size} bytes, larger than any reference list (damaged)");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < HeaderSize + 4 || !bytes.AsSpan(0, 8).SequenceEqual(Magic))
            throw new InvalidDataException($"{path} is not a reference list");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        if ((long)count * ChunkId.Size + HeaderSize + 4 != bytes.Length)
            throw new InvalidDataException($"{path}: {count} ids do not fit its {bytes.Length} bytes (truncated or damaged)");
        var body = bytes.AsSpan(0, bytes.Length - 4);
        if (Crc32.HashToUInt32(body) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)))
            throw new InvalidDataException($"{path}: checksum mismatch (damaged)");
        return (bytes, count);
    }
}
