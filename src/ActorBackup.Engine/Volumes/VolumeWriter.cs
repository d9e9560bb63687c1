using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Volumes;

/// <summary>
/// Appends records to one volume. Not thread-safe: the library serialises appends. Records are gathered in a buffer
/// of <see cref="BufferSize"/>; a full buffer comes back from <see cref="Append"/> as a <see cref="Segment"/> that the
/// caller writes with <see cref="Write"/> after it let go of the library's lock, so that the copy into the file (the
/// costliest part of an append, the kernel's) of one writer does not hold up the appends of the others. Reads of the
/// file (<see cref="FlushToFile"/>), <see cref="Sync"/>, <see cref="Seal"/> and <see cref="Dispose"/> first wait for
/// the segments being written. Segments reach the file in their order (a later one waits for the one before it), so
/// the file never has a gap before bytes written after it, and a failed write is kept: every later write, flush,
/// sync and seal of the volume throws it (nothing after a hole is written, nothing is said durable that is not).
/// Durable only after <see cref="Sync"/>; a crash before that leaves at worst a torn tail, which
/// <see cref="OpenForAppend"/> cuts back to the last whole record.
/// </summary>
public sealed class VolumeWriter : IDisposable
{
    public const int BufferSize = 1024 * 1024;

    /// <summary>
    /// Every this many bytes written, a thread of its own makes them durable (fdatasync) while the appends go on, so
    /// that the commit's fsync finds little left to do: with the whole of a 1 GiB image's volume left to it, both cores
    /// waited 0.3 s on that fsync at the end of a full backup (a virtual machine's disk flushes its host's cache then;
    /// starting the kernel's write-out early, sync_file_range, did not shorten it). docs/benchmarks.md has the figures.
    /// </summary>
    public const long SyncEvery = 64L * 1024 * 1024;

    /// <summary>Bytes of the volume to write at <see cref="Offset"/>: the caller writes them (<see cref="Write"/>) once, or abandons them.</summary>
    public sealed class Segment
    {
        internal Segment(byte[] bytes, int length, long offset) => (Bytes, Length, Offset) = (bytes, length, offset);
        internal byte[] Bytes { get; }
        public int Length { get; }
        public long Offset { get; }
        /// <summary>1 once written or abandoned.</summary>
        internal int Done;
    }

    private readonly SafeFileHandle _handle;
    private readonly List<RecordInfo> _records;
    private byte[] _buffer = Pool.Rent(BufferSize);
    private int _used;
    /// <summary>Where the buffer's first byte goes in the file.</summary>
    private long _bufferStart;
    /// <summary>Segments handed out and not written yet, how far the file is written, and the first write that failed (guarded by itself).</summary>
    private readonly object _flight = new();
    private int _inFlight;
    private long _writtenUpTo;
    /// <summary>Written bytes from here on are not yet in a background sync (<see cref="SyncEvery"/>); the sync running, if any.</summary>
    private long _syncFrom;
    private Task? _backgroundSync;
    /// <summary>
    /// How far the last sync that succeeded made the file durable (every commit's bytes are before it), and whether a
    /// sync failed since: then the bytes after it may read back from the page cache and yet not be on the disk, so
    /// closing the volume cuts it back there (guarded by <see cref="_flight"/>).
    /// </summary>
    private long _syncedUpTo;
    private bool _syncFailed;
    private Exception? _failure;
    private bool _disposed;

    public string Path { get; }
    public uint Number { get; }
    public long Length => _bufferStart + _used;

    /// <summary>How far the file holds what was appended (the rest is in the buffer or in segments being written).</summary>
    public long InFile
    {
        get { lock (_flight) return _writtenUpTo; }
    }
    public IReadOnlyList<RecordInfo> Records => _records;

    /// <param name="synced">Bytes known durable (a cut after a failed sync keeps them): the header, or what was committed.</param>
    private VolumeWriter(string path, uint number, SafeFileHandle handle, long length, long synced, List<RecordInfo> records)
    {
        Path = path;
        Number = number;
        _handle = handle;
        _bufferStart = length;
        _writtenUpTo = length;
        _syncFrom = length;
        _syncedUpTo = synced;
        _records = records;
    }

    public static VolumeWriter Create(string path, uint number, string libraryId, string label)
    {
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        var header = VolumeFormat.EncodeHeader(number, libraryId, label, DateTimeOffset.UtcNow);
        try
        {
            RandomAccess.Write(handle, header, 0); // at once: a volume file found after a crash says whose it is
            // Its name on disk before any commit counts on it: the commit syncs the file's bytes, not its folder.
            Posix.Posix.SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        return new VolumeWriter(path, number, handle, header.Length, header.Length, []);
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
        long headerLength;
        using (var reader = new VolumeReader(path))
        {
            scan = reader.Scan(committedLength);
            number = reader.Header.VolumeNumber;
            headerLength = reader.Header.Length;
        }
        if (scan.Sealed) throw new InvalidOperationException($"volume {path} is sealed: appends go to a new volume");
        if (scan.Damage.Count > 0) throw new VolumeCorruptException(path, scan.Damage[0].Offset, scan.Damage[0].Reason + " (the volume is kept read-only for salvage; appends go to a new volume)");
        // Shorter than what was committed to it (the disk lost acknowledged writes, or the file was cut at a record's
        // end): committed records are gone. Damage, never the place of the next appends (they would take the offsets
        // the index gives those records).
        if (scan.GoodEnd < committedLength)
            throw new VolumeCorruptException(path, scan.GoodEnd, $"it ends at byte {scan.GoodEnd}, before the {committedLength} bytes committed to it: committed records are missing " +
                                                                 "(the volume is kept read-only for salvage; appends go to a new volume; 'abk verify --library' names the snapshots that lost chunks)");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        if (scan.TornTail)
        {
            RandomAccess.SetLength(handle, scan.GoodEnd);
            RandomAccess.FlushToDisk(handle);
        }
        // Whole records after the committed length may be in the page cache only (a library reopened after a failed
        // write, in the same process): they do not count as synced until a sync says so.
        return new VolumeWriter(path, number, handle, scan.GoodEnd, Math.Max(headerLength, Math.Min(committedLength, scan.GoodEnd)), scan.Records);
    }

    public long SpaceFor(int payloadLength) => VolumeFormat.RecordOverhead + payloadLength;

    /// <summary>Bytes a seal would add for the records written so far.</summary>
    public long SealSize => 12 + (long)_records.Count * VolumeFormat.FooterEntrySize + VolumeFormat.TrailerSize;

    /// <summary>
    /// Appends a record to the buffer. Once the buffer holds <see cref="BufferSize"/> bytes or more it comes back as
    /// <paramref name="full"/>, for the caller to <see cref="Write"/> outside the library's lock (a record larger than
    /// what is left grows the buffer: at most one segment an append).
    /// </summary>
    public RecordInfo Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload, out Segment? full)
    {
        if (payload.Length > VolumeFormat.MaxPayload) throw new ArgumentException($"a record payload is at most {VolumeFormat.MaxPayload} bytes");
        ObjectDisposedException.ThrowIf(_disposed, this);
        var size = (int)SpaceFor(payload.Length);
        if (_used + size > _buffer.Length)
        {
            var larger = Pool.Rent(_used + size);
            _buffer.AsSpan(0, _used).CopyTo(larger);
            Pool.Return(_buffer);
            _buffer = larger;
        }
        var offset = Length;
        var record = _buffer.AsSpan(_used, size);
        VolumeFormat.WriteRecordHeader(record, id, flags, payload.Length);
        payload.CopyTo(record[VolumeFormat.RecordHeaderSize..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record[^4..], Crc32.HashToUInt32(record[..^4]));
        _used += size;
        full = _used >= BufferSize ? TakeBuffer() : null;
        var info = new RecordInfo(id, flags, offset, payload.Length);
        _records.Add(info);
        return info;
    }

    /// <summary>Appends a record, writing a full buffer at once (one writer alone, no lock to let go of).</summary>
    public RecordInfo Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        var info = Append(id, flags, payload, out var full);
        if (full is not null) Write(full);
        return info;
    }

    /// <summary>The writers' buffers: arrays up to 4 MiB are kept for the next (at most 4 of each size, 28 MiB), larger ones are not.</summary>
    private static readonly System.Buffers.ArrayPool<byte> Pool = System.Buffers.ArrayPool<byte>.Create(4 * BufferSize, 4);

    /// <summary>The buffer as a segment to write, counted in flight; a new buffer takes its place.</summary>
    private Segment TakeBuffer()
    {
        var segment = new Segment(_buffer, _used, _bufferStart);
        lock (_flight) _inFlight++;
        _bufferStart += _used;
        _used = 0;
        _buffer = Pool.Rent(BufferSize);
        return segment;
    }

    /// <summary>
    /// Writes a segment <see cref="Append"/> handed out (outside the library's lock; any thread, once): after the
    /// segments before it, so that the file has no gap. Throws when this or an earlier write of the volume failed.
    /// </summary>
    public void Write(Segment segment)
    {
        if (Interlocked.Exchange(ref segment.Done, 1) != 0) throw new InvalidOperationException("a segment is written once");
        try
        {
            lock (_flight)
            {
                while (_failure is null && _writtenUpTo != segment.Offset) Monitor.Wait(_flight);
                ThrowIfFailed();
            }
            RandomAccess.Write(_handle, segment.Bytes.AsSpan(0, segment.Length), segment.Offset);
            Task? sync = null;
            lock (_flight)
            {
                _writtenUpTo = segment.Offset + segment.Length;
                if (_writtenUpTo - _syncFrom >= SyncEvery && _backgroundSync is not { IsCompleted: false } && _failure is null)
                {
                    _syncFrom = _writtenUpTo;
                    sync = _backgroundSync = new Task(SyncInBackground, TaskCreationOptions.LongRunning); // its own thread: an fdatasync can block long
                    BackgroundSyncs++;
                }
            }
            sync?.Start(TaskScheduler.Default);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            lock (_flight) _failure ??= e;
            throw;
        }
        finally
        {
            Pool.Return(segment.Bytes);
            lock (_flight)
            {
                _inFlight--;
                Monitor.PulseAll(_flight);
            }
        }
    }

    /// <summary>Background syncs started so far, and a hook each runs before its fdatasync (for tests: a disk that fails it).</summary>
    internal int BackgroundSyncs { get; private set; }
    internal Action? BeforeBackgroundSync { get; set; }

    /// <summary>
    /// fdatasync of what is written so far, off the appending threads. A failure is kept as a failed write is: the
    /// kernel reports a write-back error to one sync of the file only, so the commit's own fsync would not see it.
    /// </summary>
    private void SyncInBackground()
    {
        try
        {
            BeforeBackgroundSync?.Invoke();
            RandomAccess.FlushToDisk(_handle);
        }
        catch (Exception e)
        {
            SyncFailed(new IOException($"volume {Path} could not be made durable ({e.Message})", e));
        }
    }

    private void SyncFailed(Exception e)
    {
        lock (_flight)
        {
            _syncFailed = true;
            _failure ??= e;
        }
    }

    /// <summary>The background sync, if one runs, has ended (its failure, if any, is kept in <see cref="_failure"/>).</summary>
    private void WaitForBackgroundSync()
    {
        Task? sync;
        lock (_flight) sync = _backgroundSync;
        sync?.Wait();
    }

    /// <summary>A segment its caller cannot write (it failed before): the volume takes no more writes, as after a failed one.</summary>
    public void Abandon(Segment segment, Exception why)
    {
        if (Interlocked.Exchange(ref segment.Done, 1) != 0) return;
        Pool.Return(segment.Bytes);
        lock (_flight)
        {
            _failure ??= new IOException($"a write of volume {Path} was abandoned: {why.Message}", why);
            _inFlight--;
            Monitor.PulseAll(_flight);
        }
    }

    private bool Failed
    {
        get { lock (_flight) return _failure is not null; }
    }

    /// <summary>Under <see cref="_flight"/>: throws the failed write, if one did.</summary>
    private void ThrowIfFailed()
    {
        if (_failure is not null) throw new IOException($"an earlier write of volume {Path} failed ({_failure.Message}): nothing after it is written", _failure);
    }

    /// <summary>Every segment handed out has been written (or has failed: then it throws, unless <paramref name="quietly"/>).</summary>
    private void WaitForSegments(bool quietly = false)
    {
        lock (_flight)
        {
            while (_inFlight > 0) Monitor.Wait(_flight);
            if (!quietly) ThrowIfFailed();
        }
    }

    /// <summary>Makes everything appended so far durable (fsync).</summary>
    public void Sync()
    {
        FlushToFile();
        FlushToDisk();
    }

    /// <summary>
    /// fsync of everything written (after <see cref="FlushToFile"/>), then the background sync's outcome too: a
    /// write-back error it was told of is this fsync's as well. A failure is kept: nothing later is written or synced.
    /// </summary>
    private void FlushToDisk()
    {
        long upTo;
        lock (_flight) upTo = _writtenUpTo;
        try
        {
            RandomAccess.FlushToDisk(_handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            SyncFailed(e);
            throw;
        }
        WaitForBackgroundSync();
        lock (_flight)
        {
            ThrowIfFailed();
            _syncedUpTo = upTo;
            _syncFrom = Math.Max(_syncFrom, upTo);
        }
    }

    /// <summary>
    /// Pushes appended bytes to the file so that positional readers see them (no fsync): the segments being written,
    /// then the buffer. Throws when a write of the volume failed.
    /// </summary>
    public void FlushToFile()
    {
        WaitForSegments();
        if (_used == 0) return;
        try
        {
            RandomAccess.Write(_handle, _buffer.AsSpan(0, _used), _bufferStart);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            lock (_flight) _failure ??= e;
            throw;
        }
        _bufferStart += _used;
        _used = 0;
        lock (_flight) _writtenUpTo = _bufferStart;
    }

    /// <summary>
    /// Writes the footer index and trailer and fsyncs: the volume is full and read-only from now on. The footer is
    /// written in blocks (its checksum taken as it goes): a volume of millions of records needs no footer-sized buffer.
    /// </summary>
    public void Seal()
    {
        var footerOffset = Length;
        var count = _records.Count;
        FlushToFile();
        WaitForBackgroundSync(); // a failed one must not be followed by a footer that says the volume whole
        lock (_flight) ThrowIfFailed();
        const int Entries = 4096;
        var block = new byte[8 + Entries * VolumeFormat.FooterEntrySize + 4 + VolumeFormat.TrailerSize];
        var crc = new Crc32();
        var at = _bufferStart;
        BinaryPrimitives.WriteUInt32LittleEndian(block, VolumeFormat.FooterMagic);
        BinaryPrimitives.WriteInt32LittleEndian(block.AsSpan(4), count);
        var used = 8;
        void Put()
        {
            crc.Append(block.AsSpan(0, used));
            RandomAccess.Write(_handle, block.AsSpan(0, used), at);
            at += used;
            used = 0;
        }
        for (var i = 0; i < count; i++)
        {
            if (used + VolumeFormat.FooterEntrySize > 8 + Entries * VolumeFormat.FooterEntrySize) Put();
            var r = _records[i];
            var e = block.AsSpan(used, VolumeFormat.FooterEntrySize);
            e.Clear();
            r.Id.WriteTo(e);
            BinaryPrimitives.WriteInt64LittleEndian(e[32..], r.Offset);
            BinaryPrimitives.WriteInt32LittleEndian(e[40..], r.PayloadLength);
            e[44] = (byte)r.Flags;
            used += VolumeFormat.FooterEntrySize;
        }
        crc.Append(block.AsSpan(0, used));
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(used), crc.GetCurrentHashAsUInt32());
        used += 4;
        RandomAccess.Write(_handle, block.AsSpan(0, used), at);
        at += used;
        // The trailer is the seal: written once the records and the whole footer are on the disk. Written with them, a
        // power cut could keep the trailer and lose a footer block or a record's last segment, and a sound volume would
        // read as damaged for good (its checks failing, a cartridge retired). Without it, the volume reopens for
        // appending and is sealed again.
        _bufferStart = at;
        lock (_flight) _writtenUpTo = _bufferStart;
        FlushToDisk();
        var t = block.AsSpan(0, VolumeFormat.TrailerSize);
        BinaryPrimitives.WriteInt64LittleEndian(t, footerOffset);
        BinaryPrimitives.WriteInt32LittleEndian(t[8..], count);
        BinaryPrimitives.WriteUInt32LittleEndian(t[12..], VolumeFormat.TrailerMagic);
        RandomAccess.Write(_handle, t, at);
        at += VolumeFormat.TrailerSize;
        _bufferStart = at;
        lock (_flight) _writtenUpTo = _bufferStart;
        FlushToDisk();
    }

    /// <summary>What was appended reaches the file (as FileStream's close did), then the file is closed.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            FlushToFile();
        }
        catch (IOException) when (Failed)
        {
            // A write failed before: the thread that wrote it was told; nothing is written past the hole.
        }
        finally
        {
            WaitForSegments(quietly: true);
            WaitForBackgroundSync();
            bool cut;
            long keep;
            lock (_flight) (cut, keep) = (_syncFailed, _syncedUpTo);
            if (cut)
            {
                try
                {
                    RandomAccess.SetLength(_handle, keep); // the reopen takes back no record the disk may not hold
                }
                catch (IOException)
                {
                    // A disk that failed the sync may fail this too: then the records after the last good sync stay, and a
                    // reopen may take them back (a second fault on a disk whose failed sync the library already reported).
                }
            }
            _handle.Dispose();
            Pool.Return(_buffer);
            _buffer = [];
        }
    }
}
