using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Volumes;

/// <summary>
/// The on-disk layout of a volume: an append-only file.
/// <code>
/// header : "ABKVOLUM" | u16 version | u16 header length | u32 volume number | i64 created (unix ms)
///          | u16 len + library id | u16 len + label | u32 crc32 of the header before it
///          Every later format keeps the first 12 bytes as they are (magic, version at 8, header length at 10, at most
///          4096) and a crc32 of the header before it in its last 4 bytes: a build then tells a newer volume
///          (NewerFormatException) from a damaged one.
/// record : u32 "ABKR" | u8 flags | 3 zero | chunk id (32) | u32 payload length | payload | u32 crc32 of all before it
/// footer : u32 "ABKF" | u32 count | count x (chunk id 32 | u64 offset | u32 length | u8 flags | 3 zero) | u32 crc32
/// trailer: u64 footer offset | u32 record count | u32 "ABKE"          (only on a sealed volume)
/// </code>
/// All integers little-endian. No length read from disk is used before it is checked against the file's size
/// and <see cref="MaxPayload"/>.
/// </summary>
public static class VolumeFormat
{
    public const ushort Version = 1;
    public static ReadOnlySpan<byte> HeaderMagic => "ABKVOLUM"u8;
    public const uint RecordMagic = 0x524B4241; // "ABKR"
    public const uint FooterMagic = 0x464B4241; // "ABKF"
    public const uint TrailerMagic = 0x454B4241; // "ABKE"
    public const int RecordHeaderSize = 44;
    public const int RecordOverhead = RecordHeaderSize + 4;
    public const int FooterEntrySize = 48;
    public const int TrailerSize = 16;
    public const int MaxHeaderSize = 4096;
    /// <summary>No record payload is larger: a max-size chunk (256 MiB) plus compression and sealing slack.</summary>
    public const int MaxPayload = 256 * 1024 * 1024 + 64 * 1024;
    /// <summary>
    /// A volume takes no more records: its footer (48 bytes a record) stays under 1.5 GiB and its count well inside an
    /// int (a 1 TiB volume of 1 KiB records would need 2^30). A library starts the next volume when one holds this many.
    /// </summary>
    public const int MaxRecordsPerVolume = 1 << 25;

    public static byte[] EncodeHeader(uint volumeNumber, string libraryId, string label, DateTimeOffset created)
    {
        var lib = Encoding.UTF8.GetBytes(libraryId);
        var lab = Encoding.UTF8.GetBytes(label);
        var length = 8 + 2 + 2 + 4 + 8 + 2 + lib.Length + 2 + lab.Length + 4;
        if (length > MaxHeaderSize) throw new ArgumentException("library id and label are too long for a volume header");
        var h = new byte[length];
        HeaderMagic.CopyTo(h);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(10), (ushort)length);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(12), volumeNumber);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(16), created.ToUnixTimeMilliseconds());
        var p = 24;
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(p), (ushort)lib.Length);
        lib.CopyTo(h, p + 2);
        p += 2 + lib.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(p), (ushort)lab.Length);
        lab.CopyTo(h, p + 2);
        p += 2 + lab.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(p), Crc32.HashToUInt32(h.AsSpan(0, p)));
        return h;
    }

    public sealed record Header(uint VolumeNumber, string LibraryId, string Label, DateTimeOffset Created, int Length);

    /// <summary>Parses and checks a header; throws VolumeCorruptException naming the volume and what is wrong.</summary>
    public static Header DecodeHeader(ReadOnlySpan<byte> h, string volumePath)
    {
        if (h.Length < 30 || !h[..8].SequenceEqual(HeaderMagic))
            throw new VolumeCorruptException(volumePath, 0, "not an ActorBackup volume (bad magic)");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
        int length = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
        if (length < 30 || length > h.Length) throw new VolumeCorruptException(volumePath, 10, $"header length {length} is out of bounds");
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(h[(length - 4)..]);
        if (crc != Crc32.HashToUInt32(h[..(length - 4)])) throw new VolumeCorruptException(volumePath, 0, "header checksum mismatch");
        // Checked after the checksum: a flipped bit in the version is damage, a newer build's header sums right.
        if (version > Version) throw new NewerFormatException($"volume {volumePath}", version, Version);
        if (version != Version) throw new VolumeCorruptException(volumePath, 8, $"volume format version {version} is not supported (this build reads {Version})");
        var number = BinaryPrimitives.ReadUInt32LittleEndian(h[12..]);
        if (number > Index.ChunkLocation.MaxVolume) throw new VolumeCorruptException(volumePath, 12, $"volume number {number} is out of bounds");
        var createdMs = BinaryPrimitives.ReadInt64LittleEndian(h[16..]);
        if (createdMs < 0 || createdMs > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds()) throw new VolumeCorruptException(volumePath, 16, $"creation time {createdMs} is out of bounds");
        var created = DateTimeOffset.FromUnixTimeMilliseconds(createdMs);
        int libLen = BinaryPrimitives.ReadUInt16LittleEndian(h[24..]);
        if (26 + libLen + 2 > length - 4) throw new VolumeCorruptException(volumePath, 24, "library id length out of bounds");
        var lib = Encoding.UTF8.GetString(h.Slice(26, libLen));
        int labLen = BinaryPrimitives.ReadUInt16LittleEndian(h[(26 + libLen)..]);
        if (28 + libLen + labLen != length - 4) throw new VolumeCorruptException(volumePath, 26 + libLen, "label length out of bounds");
        var label = Encoding.UTF8.GetString(h.Slice(28 + libLen, labLen));
        return new Header(number, lib, label, created, length);
    }

    public static void WriteRecordHeader(Span<byte> destination, ChunkId id, RecordFlags flags, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, RecordMagic);
        destination[4] = (byte)flags;
        destination[5] = destination[6] = destination[7] = 0;
        id.WriteTo(destination[8..]);
        BinaryPrimitives.WriteInt32LittleEndian(destination[40..], payloadLength);
    }

    public static string VolumeFileName(uint number) => $"vol-{number:D6}.abv";

    public static string Label(string libraryId, uint number) => $"{libraryId}-{number:D6}";
}
