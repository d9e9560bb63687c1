using System.Buffers.Binary;
using System.IO.Hashing;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Volumes;

/// <summary>
/// Appends records to one volume. Not thread-safe: the library serialises appends. Durable only after
/// <see cref="Sync"/>; a crash before that leaves at worst a torn tail, which <see cref="OpenForAppend"/> cuts.
/// </summary>
public sealed class VolumeWriter : IDisposable
{
    private readonly FileStream _stream;
    private readonly List<RecordInfo> _records;
    private readonly byte[] _header = new byte[VolumeFormat.RecordHeaderSize];

    public string Path { get; }
    public uint Number { get; }
    public long Length { get; private set; }
    public IReadOnlyList<RecordInfo> Records => _records;

    private VolumeWriter(string path, uint number, FileStream stream, long length, List<RecordInfo> records)
    {
        Path = path;
        Number = number;
        _stream = stream;
        Length = length;
        _records = records;
    }

    public static VolumeWriter Create(string path, uint number, string libraryId, string label)
    {
        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 1024 * 1024);
        var header = VolumeFormat.EncodeHeader(number, libraryId, label, DateTimeOffset.UtcNow);
        stream.Write(header);
        return new VolumeWriter(path, number, stream, header.Length, []);
    }

    /// <summary>
    /// Reopens an unsealed volume after a stop or a crash: walks its records (checking the checksums of those
    /// written after the last commit), cuts a torn tail back to the last whole record, and positions for the
    /// next append. Refuses a sealed or damaged volume.
    /// </summary>
    /// <param name="committedLength">Bytes known to be committed: their records' checksums are not read again.</param>
    public static VolumeWriter OpenForAppend(string path, out VolumeReader.ScanResult scan, long committedLength = 0)
    {
        uint number;
        using (var reader = new VolumeReader(path))
        {
            scan = reader.Scan(committedLength);
            number = reader.Header.VolumeNumber;
        }
        if (scan.Sealed) throw new InvalidOperationException($"volume {path} is sealed: appends go to a new volume");
        if (scan.Damage.Count > 0) throw new VolumeCorruptException(path, scan.Damage[0].Offset, scan.Damage[0].Reason + " (the volume is kept read-only for salvage; appends go to a new volume)");
        var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, 1024 * 1024);
        if (scan.TornTail)
        {
            stream.SetLength(scan.GoodEnd);
            stream.Flush(true);
        }
        stream.Position = scan.GoodEnd;
        return new VolumeWriter(path, number, stream, scan.GoodEnd, scan.Records);
    }

    public long SpaceFor(int payloadLength) => VolumeFormat.RecordOverhead + payloadLength;

    /// <summary>Bytes a seal would add for the records written so far.</summary>
    public long SealSize => 12 + (long)_records.Count * VolumeFormat.FooterEntrySize + VolumeFormat.TrailerSize;

    public RecordInfo Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > VolumeFormat.MaxPayload) throw new ArgumentException($"a record payload is at most {VolumeFormat.MaxPayload} bytes");
        VolumeFormat.WriteRecordHeader(_header, id, flags, payload.Length);
        var crc = new Crc32();
        crc.Append(_header);
        crc.Append(payload);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, crc.GetCurrentHashAsUInt32());
        var offset = Length;
        _stream.Write(_header);
        _stream.Write(payload);
        _stream.Write(tail);
        Length += VolumeFormat.RecordOverhead + payload.Length;
        var info = new RecordInfo(id, flags, offset, payload.Length);
        _records.Add(info);
        return info;
    }

    /// <summary>Makes everything appended so far durable (fsync).</summary>
    public void Sync() => _stream.Flush(flushToDisk: true);

    /// <summary>Pushes buffered bytes to the file so that positional readers see them (no fsync).</summary>
    public void FlushToFile() => _stream.Flush(flushToDisk: false);

    /// <summary>Writes the footer index and trailer and fsyncs: the volume is full and read-only from now on.</summary>
    public void Seal()
    {
        var footerOffset = Length;
        var size = 8 + _records.Count * VolumeFormat.FooterEntrySize + 4;
        var footer = new byte[size + VolumeFormat.TrailerSize];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, VolumeFormat.FooterMagic);
        BinaryPrimitives.WriteInt32LittleEndian(footer.AsSpan(4), _records.Count);
        for (var i = 0; i < _records.Count; i++)
        {
            var r = _records[i];
            var e = footer.AsSpan(8 + i * VolumeFormat.FooterEntrySize);
            r.Id.WriteTo(e);
            BinaryPrimitives.WriteInt64LittleEndian(e[32..], r.Offset);
            BinaryPrimitives.WriteInt32LittleEndian(e[40..], r.PayloadLength);
            e[44] = (byte)r.Flags;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(footer.AsSpan(size - 4), Crc32.HashToUInt32(footer.AsSpan(0, size - 4)));
        var t = footer.AsSpan(size);
        BinaryPrimitives.WriteInt64LittleEndian(t, footerOffset);
        BinaryPrimitives.WriteInt32LittleEndian(t[8..], _records.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(t[12..], VolumeFormat.TrailerMagic);
        _stream.Write(footer);
        Length += footer.Length;
        _stream.Flush(true);
    }

    public void Dispose() => _stream.Dispose();
}
