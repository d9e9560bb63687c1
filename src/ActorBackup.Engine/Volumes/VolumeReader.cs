using System.Buffers.Binary;
using System.IO.Hashing;
using ActorBackup.Engine.Hashing;
using Microsoft.Win32.SafeHandles;

namespace ActorBackup.Engine.Volumes;

/// <summary>
/// Reads a volume with positional reads: thread-safe, any number of concurrent readers.
/// </summary>
public sealed class VolumeReader : IDisposable
{
    private readonly SafeFileHandle _handle;
    public string Path { get; }
    public VolumeFormat.Header Header { get; }

    public VolumeReader(string path)
    {
        Path = path;
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        try
        {
            var buffer = new byte[VolumeFormat.MaxHeaderSize];
            var read = RandomAccess.Read(_handle, buffer, 0);
            Header = VolumeFormat.DecodeHeader(buffer.AsSpan(0, read), path);
        }
        catch
        {
            _handle.Dispose();
            throw;
        }
    }

    public long Length => RandomAccess.GetLength(_handle);

    /// <summary>
    /// Reads the record at <paramref name="offset"/> into <paramref name="buffer"/> (at least RecordOverhead + length)
    /// and returns its payload, after checking magic, id, length, bounds and checksum.
    /// </summary>
    public ReadOnlySpan<byte> ReadRecord(long offset, ChunkId expectedId, int expectedLength, Span<byte> buffer, out RecordFlags flags)
    {
        var total = VolumeFormat.RecordOverhead + expectedLength;
        if (expectedLength < 0 || expectedLength > VolumeFormat.MaxPayload || offset < Header.Length || offset + total > Length)
            throw new VolumeCorruptException(Path, offset, $"record of {expectedLength} bytes lies outside the volume ({Length} bytes): the index and the volume disagree", medium: false);
        var span = buffer[..total];
        ReadExactly(span, offset);
        var info = ParseRecordHeader(span, offset) ?? throw new VolumeCorruptException(Path, offset, "no record starts here (bad magic)");
        if (info.Id != expectedId) throw new VolumeCorruptException(Path, offset, $"holds chunk {info.Id.Short}, the index says {expectedId.Short}", medium: false);
        if (info.PayloadLength != expectedLength) throw new VolumeCorruptException(Path, offset, $"record length {info.PayloadLength}, the index says {expectedLength}", medium: false);
        CheckCrc(span, offset);
        flags = info.Flags;
        return span.Slice(VolumeFormat.RecordHeaderSize, expectedLength);
    }

    private void ReadExactly(Span<byte> span, long offset)
    {
        var done = 0;
        while (done < span.Length)
        {
            var n = RandomAccess.Read(_handle, span[done..], offset + done);
            if (n == 0) throw new VolumeCorruptException(Path, offset + done, "unexpected end of volume");
            done += n;
        }
    }

    private void CheckCrc(ReadOnlySpan<byte> record, long offset)
    {
        var body = record[..^4];
        if (BinaryPrimitives.ReadUInt32LittleEndian(record[^4..]) != Crc32.HashToUInt32(body))
            throw new VolumeCorruptException(Path, offset, "record checksum mismatch (bit rot or a torn write)");
    }

    private static RecordInfo? ParseRecordHeader(ReadOnlySpan<byte> h, long offset)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(h) != VolumeFormat.RecordMagic) return null;
        var length = BinaryPrimitives.ReadInt32LittleEndian(h[40..]);
        return new RecordInfo(new ChunkId(h[8..40]), (RecordFlags)h[4], offset, length);
    }

    /// <summary>The sealed volume's trailer, if it has a valid one: (footer offset, record count).</summary>
    public (long FooterOffset, int Count)? ReadTrailer()
    {
        var length = Length;
        if (length < Header.Length + VolumeFormat.TrailerSize) return null;
        Span<byte> t = stackalloc byte[VolumeFormat.TrailerSize];
        ReadExactly(t, length - VolumeFormat.TrailerSize);
        if (BinaryPrimitives.ReadUInt32LittleEndian(t[12..]) != VolumeFormat.TrailerMagic) return null;
        var footer = BinaryPrimitives.ReadInt64LittleEndian(t);
        var count = BinaryPrimitives.ReadInt32LittleEndian(t[8..]);
        var expected = (long)count * VolumeFormat.FooterEntrySize + 12;
        if (footer < Header.Length || count < 0 || footer + expected + VolumeFormat.TrailerSize != length) return null;
        return (footer, count);
    }

    /// <summary>The footer index of a sealed volume, checked; throws VolumeCorruptException when it is damaged.</summary>
    /// <remarks>
    /// Hostile bytes: the count is bounded by what the records before the footer can hold (each record takes at least
    /// RecordOverhead bytes) and by the file's length before anything is read; the footer is read in blocks (never
    /// one allocation of the claimed size) with a running checksum; each entry must lie after the one before it and
    /// inside the records, with arithmetic that cannot wrap.
    /// </remarks>
    public List<RecordInfo> ReadFooter(long footerOffset, int count)
    {
        var size = 8 + (long)count * VolumeFormat.FooterEntrySize + 4;
        if (footerOffset < Header.Length || count < 0 || count > (footerOffset - Header.Length) / VolumeFormat.RecordOverhead || footerOffset + size > Length)
            throw new VolumeCorruptException(Path, footerOffset, $"footer claims {count} records, more than the volume's {footerOffset} bytes of records can hold");
        Span<byte> head = stackalloc byte[8];
        ReadExactly(head, footerOffset);
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != VolumeFormat.FooterMagic || BinaryPrimitives.ReadInt32LittleEndian(head[4..]) != count)
            throw new VolumeCorruptException(Path, footerOffset, "footer magic or count is wrong");
        var crc = new Crc32();
        crc.Append(head);
        var list = new List<RecordInfo>(Math.Min(count, 64 * 1024));
        var block = new byte[VolumeFormat.FooterEntrySize * 1024];
        var previousEnd = (long)Header.Length;
        for (var first = 0; first < count; first += 1024)
        {
            var n = Math.Min(1024, count - first);
            var span = block.AsSpan(0, n * VolumeFormat.FooterEntrySize);
            var at = footerOffset + 8 + (long)first * VolumeFormat.FooterEntrySize;
            ReadExactly(span, at);
            crc.Append(span);
            for (var i = 0; i < n; i++)
            {
                var e = span.Slice(i * VolumeFormat.FooterEntrySize, VolumeFormat.FooterEntrySize);
                var offset = BinaryPrimitives.ReadInt64LittleEndian(e[32..]);
                var length = BinaryPrimitives.ReadInt32LittleEndian(e[40..]);
                if (offset < previousEnd || length < 0 || length > VolumeFormat.MaxPayload || offset > footerOffset - VolumeFormat.RecordOverhead - length)
                    throw new VolumeCorruptException(Path, at + (long)i * VolumeFormat.FooterEntrySize, "footer entry points outside the volume or before the entry it follows");
                previousEnd = offset + VolumeFormat.RecordOverhead + length;
                list.Add(new RecordInfo(new ChunkId(e), (RecordFlags)e[44], offset, length));
            }
        }
        Span<byte> stored = stackalloc byte[4];
        ReadExactly(stored, footerOffset + size - 4);
        if (BinaryPrimitives.ReadUInt32LittleEndian(stored) != crc.GetCurrentHashAsUInt32())
            throw new VolumeCorruptException(Path, footerOffset, "footer checksum mismatch");
        return list;
    }

    /// <summary>Result of reading a volume record by record from its header on.</summary>
    public sealed record ScanResult(List<RecordInfo> Records, long GoodEnd, List<VolumeDamage> Damage, bool TornTail, bool Sealed);

    /// <summary>
    /// Walks every record from the header to the footer (or the end), checking each checksum. A record that
    /// cannot be whole (it runs past the end) and has no whole record after it is a torn tail: the scan stops
    /// there and <see cref="ScanResult.GoodEnd"/> is where an append may go on. A damaged record with whole
    /// records after it is damage, reported with its offset, and the scan resynchronises on the next record.
    /// </summary>
    /// <param name="trustedEnd">
    /// Records that end at or before this offset were committed (fsynced and checked when written): their
    /// headers are walked but their payload checksums are not read again, which makes reopening a large
    /// volume cheap. A verify pass passes 0.
    /// </param>
    public ScanResult Scan(long trustedEnd = 0)
    {
        var records = new List<RecordInfo>();
        var damage = new List<VolumeDamage>();
        var trailer = ReadTrailer();
        var end = trailer?.FooterOffset ?? Length;
        var offset = (long)Header.Length;
        var header = new byte[VolumeFormat.RecordHeaderSize];
        var buffer = new byte[1024 * 1024];
        var torn = false;
        // Bytes read for records that failed, over the whole scan: damage that alternates a record claiming a long
        // payload with a whole one right after it would otherwise cost the square of the volume (each failed record
        // read to near the end), hours on a volume of a few hundred MiB.
        var spent = 0L;
        var budget = 2 * Length + ResyncBudget;
        while (offset < end)
        {
            if (offset > Index.ChunkLocation.MaxOffset)
            {
                // No index entry can point there (a volume holds at most 1 TiB): a file grown past that is damage.
                damage.Add(new VolumeDamage(Path, offset, "the volume goes on past 1 TiB, more than a volume may hold: what is there is not read"));
                break;
            }
            var problem = TryReadRecordAt(offset, end, header, ref buffer, out var info, trustedEnd);
            if (problem is null)
            {
                records.Add(info);
                offset = info.End;
                continue;
            }
            spent += VolumeFormat.RecordOverhead + Math.Clamp(info.PayloadLength, 0, VolumeFormat.MaxPayload);
            var next = spent > budget ? GaveUp : FindNextRecord(offset + 1, end, header, ref buffer, ref spent, budget);
            if (next < 0)
            {
                // Nothing whole follows: a torn tail (a crash in the middle of an append), unless the volume was
                // sealed (the footer promises whole records up to it) or the record was committed (it was whole and
                // checked when written: this is damage, never cut away), or the search for the next record gave up.
                if (trailer is null && offset >= trustedEnd && next == NoRecord) torn = true;
                else damage.Add(new VolumeDamage(Path, offset, next == GaveUp
                    ? problem + "; no whole record found within the resync budget after it (the rest of the volume is not read: damaged throughout?)"
                    : problem));
                break;
            }
            damage.Add(new VolumeDamage(Path, offset, problem));
            offset = next;
        }
        if (trailer is { } t)
        {
            try
            {
                var footer = ReadFooter(t.FooterOffset, t.Count);
                if (footer.Count != records.Count) damage.Add(new VolumeDamage(Path, t.FooterOffset, $"footer lists {footer.Count} records, the volume holds {records.Count} whole ones"));
            }
            catch (VolumeCorruptException e)
            {
                damage.Add(new VolumeDamage(Path, e.Offset, e.Reason));
            }
        }
        return new ScanResult(records, offset, damage, torn, trailer is not null);
    }

    private string? TryReadRecordAt(long offset, long end, byte[] header, ref byte[] buffer, out RecordInfo info, long trustedEnd = 0)
    {
        info = default;
        if (offset + VolumeFormat.RecordOverhead > end) return "a record header runs past the end of the volume";
        ReadExactly(header, offset);
        if (ParseRecordHeader(header, offset) is not { } parsed) return "bad record magic";
        if (parsed.PayloadLength < 0 || parsed.PayloadLength > VolumeFormat.MaxPayload) return $"record length {parsed.PayloadLength} is out of bounds";
        info = parsed; // what it claims, for the resync's budget; a failed record sets it to no more than that
        if (parsed.End > end) return $"record of {parsed.PayloadLength} bytes runs past the end of the volume";
        if (parsed.End <= trustedEnd)
        {
            info = parsed;
            return null;
        }
        var total = VolumeFormat.RecordOverhead + parsed.PayloadLength;
        if (buffer.Length < total) buffer = new byte[Math.Max(total, Math.Min(buffer.Length * 2, VolumeFormat.RecordOverhead + VolumeFormat.MaxPayload))];
        var span = buffer.AsSpan(0, total);
        ReadExactly(span, offset);
        if (BinaryPrimitives.ReadUInt32LittleEndian(span[^4..]) != Crc32.HashToUInt32(span[..^4])) return "record checksum mismatch";
        info = parsed;
        return null;
    }

    private const long NoRecord = -1, GaveUp = -2;
    /// <summary>Bytes a resync may check before it gives up: fake record markers, each claiming a large payload, would otherwise cost the square of the volume.</summary>
    private const long ResyncBudget = 2L * VolumeFormat.MaxPayload;

    /// <param name="scanSpent">what the scan has read for records that failed, this search's included</param>
    /// <param name="scanBudget">what the whole scan may read for them</param>
    private long FindNextRecord(long from, long end, byte[] header, ref byte[] buffer, ref long scanSpent, long scanBudget)
    {
        var window = new byte[64 * 1024];
        var spent = 0L;
        for (var pos = from; pos + VolumeFormat.RecordOverhead <= end;)
        {
            var n = RandomAccess.Read(_handle, window, pos);
            if (n < 4) return NoRecord;
            for (var i = 0; i + 4 <= n; i++)
            {
                if (BinaryPrimitives.ReadUInt32LittleEndian(window.AsSpan(i)) != VolumeFormat.RecordMagic) continue;
                if (TryReadRecordAt(pos + i, end, header, ref buffer, out var candidate) is null) return pos + i;
                var cost = VolumeFormat.RecordOverhead + Math.Clamp(candidate.PayloadLength, 0, VolumeFormat.MaxPayload);
                spent += cost;
                scanSpent += cost;
                if (spent > ResyncBudget || scanSpent > scanBudget) return GaveUp;
            }
            pos += n - 3;
        }
        return NoRecord;
    }

    public void Dispose() => _handle.Dispose();
}
