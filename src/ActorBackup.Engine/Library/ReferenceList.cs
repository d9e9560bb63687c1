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
        sorted.Sort();
        var distinct = 0;
        for (var i = 0; i < sorted.Length; i++)
            if (i == 0 || sorted[i] != sorted[i - 1]) distinct++;
        var tmp = path + ".tmp";
        var crc = new Crc32();
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> head = stackalloc byte[HeaderSize];
            Magic.CopyTo(head);
            BinaryPrimitives.WriteUInt32LittleEndian(head[8..], (uint)distinct);
            f.Write(head);
            crc.Append(head);
            Span<byte> id = stackalloc byte[ChunkId.Size];
            for (var i = 0; i < sorted.Length; i++)
            {
                if (i > 0 && sorted[i] == sorted[i - 1]) continue;
                sorted[i].WriteTo(id);
                f.Write(id);
                crc.Append(id);
            }
            Span<byte> tail = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(tail, crc.GetCurrentHashAsUInt32());
            f.Write(tail);
            f.Flush(true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads a list; InvalidDataException (with the path) when it is damaged, never a huge allocation.</summary>
    public static ChunkId[] Read(string path)
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
        var ids = new ChunkId[count];
        for (var i = 0; i < ids.Length; i++) ids[i] = new ChunkId(bytes.AsSpan(HeaderSize + i * ChunkId.Size, ChunkId.Size));
        return ids;
    }
}
