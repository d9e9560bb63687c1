using System.Text.Json;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

// Appends into the volume being written, sealing full ones, commits, and what a failed write leaves.
public sealed partial class DiskLibrary
{
    private string VolumePath(uint n) => _medium.PathOf(n);

    void IChunkSink.Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload) => Append(id, flags, payload);

    public ChunkLocation Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        var prepared = PrepareWriting(payload.Length);
        VolumeWriter writer;
        VolumeWriter.Segment? full;
        ChunkLocation location;
        lock (_lock)
        {
            ThrowIfBroken();
            // No more new chunks than one commit holds: refused here, before they are written, not at a commit that could
            // then never be made.
            ChunkIndex.CheckPackable(_pending.Count + 1);
            _appendedSinceCheck += payload.Length; // the reserve is checked when chunks are reserved
            RecordInfo info;
            try
            {
                writer = WriterFor(payload.Length);
                if (writer.Number != prepared) _medium.Writing(writer.Number, writer.Length, writer.SpaceFor(payload.Length));
                info = writer.Append(id, flags, payload, out full);
            }
            catch (LibraryFullException e)
            {
                _full = e.Message; // nowhere to start a new volume (no scratch cartridge): nothing was written, nothing is broken
                throw;
            }
            catch (IOException e)
            {
                throw Break(e);
            }
            try
            {
                location = new ChunkLocation(writer.Number, info.Offset, info.PayloadLength);
                _pending[id] = location;
                if (_reserved.Remove(id)) Monitor.PulseAll(_lock);
                var entry = _manifest.Volumes.Last(v => v.Number == writer.Number);
                entry.Bytes = writer.Length;
                entry.Records = writer.Records.Count;
            }
            catch (Exception e) when (full is not null)
            {
                writer.Abandon(full, e); // never left in flight: a flush would wait for it forever
                throw;
            }
        }
        // A full buffer goes to the file outside the lock: the kernel's copy of a megabyte does not hold up the other
        // writers' appends (a read of this volume, a commit or a seal waits for it: VolumeWriter.FlushToFile).
        if (full is not null) WriteOutsideLock(writer, full);
        return location;
    }

    private void WriteOutsideLock(VolumeWriter writer, VolumeWriter.Segment segment)
    {
        try
        {
            writer.Write(segment);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            lock (_lock) throw BrokenBy(e);
        }
    }

    /// <summary>
    /// The volume this thread's write stream appends to: its own, sealed and followed by a new one when full. A thread
    /// that names no stream (a prune's copy) appends to a volume being written when there is one; a stream's first
    /// append takes over the volume no stream holds (the one a reopened library goes on writing).
    /// </summary>
    private VolumeWriter WriterFor(int payloadLength)
    {
        var w = StreamWriter(out var stream);
        if (w is not null && !Fits(w, payloadLength))
        {
            SealWriter(w);
            w = null;
        }
        if (w is null)
        {
            var number = Math.Max(_manifest.Volumes.Count == 0 ? 0u : _manifest.Volumes.Max(v => v.Number), _medium.HighestWritten()) + 1;
            string path, label;
            try
            {
                (path, label) = _medium.Allocate(number, Id);
            }
            catch (LibraryFullException)
            {
                // No cartridge left to start: the stream appends to one another stream writes, while it has room.
                if (_writers.Values.FirstOrDefault(o => Fits(o, payloadLength)) is not { } other) throw;
                return other;
            }
            _writers[stream] = w = VolumeWriter.Create(path, number, Id, label);
            _manifest.Volumes.Add(new VolumeEntry { Number = number, Label = label, State = VolumeState.Append, Bytes = w.Length });
        }
        return w;
    }

    /// <summary>Under the lock: the volume this thread's stream writes now, or null (it starts one at its next append).</summary>
    private VolumeWriter? StreamWriter(out int stream)
    {
        stream = _medium.Stream;
        if (_writers.TryGetValue(stream, out var w)) return w;
        if (stream == 0 && _writers.Count > 0) return _writers.MinBy(kv => kv.Key).Value;
        // A stream's first append takes over a volume no stream holds (0, or on tape one of those reopened: -volume),
        // one whose cartridge is not in another stream's drive first.
        if (stream != 0 && _writers.Where(kv => kv.Key <= 0).OrderBy(kv => _medium.Near(kv.Value.Number) ? 0 : 1).ThenBy(kv => kv.Key)
                .Select(kv => kv.Key).FirstOrDefault(1) is <= 0 and var unheldKey && _writers.Remove(unheldKey, out var unheld))
            return _writers[stream] = unheld;
        return null;
    }

    private bool Fits(VolumeWriter w, int payloadLength) =>
        w.Records.Count == 0 || (w.Records.Count < VolumeFormat.MaxRecordsPerVolume
                                 && w.Length + w.SpaceFor(payloadLength) + w.SealSize + VolumeFormat.FooterEntrySize <= VolumeCapacity);

    /// <summary>
    /// On tape, before the library's lock is taken: the stream's cartridge mounted and its drive charged for the
    /// append, so that one drive's mount, winding and streaming do not hold up another drive's appends (only a new
    /// volume's first mount waits under the lock). Returns the volume prepared, or 0 (none: a disk library, or the
    /// append starts a volume). A mount that fails here has written nothing: the library is not broken by it.
    /// </summary>
    private uint PrepareWriting(int payloadLength)
    {
        if (!Sequential) return 0;
        uint volume;
        long offset, length;
        lock (_lock)
        {
            ThrowIfBroken();
            if (StreamWriter(out _) is not { } w || !Fits(w, payloadLength)) return 0;
            (volume, offset, length) = (w.Number, w.Length, w.SpaceFor(payloadLength));
        }
        try
        {
            _medium.Writing(volume, offset, length);
        }
        catch (ObjectDisposedException)
        {
            throw new IOException($"library {Id} is closed");
        }
        return volume;
    }

    /// <summary>Every writer closed, each on its own: one whose buffer cannot be written does not leave the others open.</summary>
    private void DisposeWriters()
    {
        IOException? failed = null;
        foreach (var w in _writers.Values)
            try
            {
                w.Dispose();
            }
            catch (IOException e)
            {
                // A broken library's buffer cannot be written: the next open cuts the volume back. Else it is said, after the rest.
                if (_broken is null) failed ??= e;
            }
        _writers.Clear();
        if (failed is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed);
    }

    /// <summary>The writer of <paramref name="volume"/> when it is being written, else null.</summary>
    private VolumeWriter? WriterOf(uint volume) => _writers.Values.FirstOrDefault(w => w.Number == volume);

    /// <summary>Under the lock: what every writer buffered reaches its file (a read of the file sees it).</summary>
    private void FlushWriters()
    {
        foreach (var w in _writers.Values) FlushOrBreak(w);
    }

    /// <summary>
    /// Under the lock: what <paramref name="writer"/> buffered reaches its file. A write that fails here (a full disk,
    /// met by a read or a check rather than an append) breaks the library as an append's would: it is opened again on
    /// its committed index, and the failure is not kept in the writer for the next session to meet as its own.
    /// </summary>
    private void FlushOrBreak(VolumeWriter writer)
    {
        try
        {
            writer.FlushToFile();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw BrokenBy(e);
        }
    }

    /// <summary>
    /// Under the lock: the failed write <paramref name="e"/> breaks the library (<see cref="Break"/>), or, when it is
    /// broken already, is told with that first failure's reason.
    /// </summary>
    private IOException BrokenBy(Exception e) =>
        _broken is not null ? new IOException(_broken, e) : Break(e as IOException ?? new IOException(e.Message, e));

    /// <summary>The lengths of the volumes being written (what a tape medium still has room for on them).</summary>
    private List<long> WritingLengths => [.. _writers.Values.Select(w => w.Length)];

    /// <summary>
    /// Makes every append so far durable: fsync of the open volume, then the index and the volume table are
    /// replaced atomically. After a crash, Open goes back to this point (whole records after it are kept).
    /// </summary>
    void IChunkSink.Commit() => Commit();

    public CommitBatch Commit()
    {
        lock (_lock)
        {
            ThrowIfBroken();
            _writerLock.CheckStillHeld(Id);
            try
            {
                return CommitLocked();
            }
            catch (IOException e)
            {
                throw Break(e);
            }
        }
    }

    /// <summary>
    /// Why this library object takes no more writes, or null. A write that failed (a full disk, an I/O error)
    /// may have left part of a record behind and chunks in the in-memory index that are not on disk: from then
    /// on appends and commits are refused, reads of committed chunks still work, and the owner reopens the
    /// library, which cuts the volume back to its last whole record and indexes only what is there.
    /// </summary>
    public string? Broken { get { lock (_lock) return _broken; } }

    private string? _broken;

    private void ThrowIfBroken()
    {
        if (_broken is not null) throw new IOException(_broken);
    }

    /// <summary>
    /// The owner has journaled <paramref name="batch"/> (from <see cref="Commit"/>): its entries join the
    /// committed index, which the owner keeps. Only for a library opened with <see cref="OpenOwned"/>.
    /// </summary>
    public void Committed(CommitBatch batch)
    {
        lock (_lock)
        {
            _index.MakeRoomFor(batch.Count);
            foreach (var (id, location) in batch.Entries)
            {
                _index.Set(id, location);
                _committing.Remove(id);
            }
            if (_committing.Count == 0) _committing = []; // a dictionary keeps its largest size: a million slots after a million-chunk commit
        }
    }

    private IOException Break(IOException e)
    {
        _broken = DescribeWriteFailure(Id, Root, e);
        if (Monitor.IsEntered(_lock)) Monitor.PulseAll(_lock); // writers waiting on a reservation hear it now, not at their timeout
        _pending.Clear(); // appended since the last commit: maybe not on disk; reopening finds the whole records again
        DisposeWriters(); // their buffers may not be written either: reopening cuts each volume back to its last whole record
        return new IOException(_broken, e);
    }

    /// <summary>What an operator reads when a library cannot write: a full disk, or another I/O error.</summary>
    public static string DescribeWriteFailure(string id, string root, Exception e) =>
        Posix.Posix.IsNoSpace(e)
            ? $"library {id} is out of space (or over its disk quota) at {root}{FreeAt(root)}: free space there or move the library to a larger disk, then run the job again (everything committed before is intact)"
            : $"library {id} could not write to {root} ({e.Message}): check that disk, then run the job again (everything committed before is intact)";

    /// <summary>
    /// " (N KiB free there now)": how full the disk is as the failure is said, or that its inodes ran out (creating a file
    /// then fails as out of space, with gigabytes free); empty when that cannot be read.
    /// </summary>
    private static string FreeAt(string root)
    {
        try
        {
            var free = Size(new DriveInfo(root).AvailableFreeSpace);
            return Posix.Posix.Inodes(root) is { Free: 0, Total: > 0 } inodes
                ? $" (no inode left of its file system's {inodes.Total:N0}, though {free} are free: delete files there, or make the file system with more inodes)"
                : $" ({free} free there now)";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return "";
        }
    }

    private CommitBatch CommitLocked()
    {
        foreach (var w in _writers.Values)
        {
            w.Sync();
            _medium.Committed(w.Number, w.Length); // on tape a file mark: the committed data is a tape file
        }
        WriteStagedReferences();
        var batch = new CommitBatch(ChunkIndex.Pack(_pending), _manifest.Volumes.Select(Clone).ToList());
        if (!_ownsIndex)
        {
            // Durable on disk; the owner journals the batch and then calls Committed, which indexes it. Until
            // then the entries stay visible as committing, and a failed write later does not drop them.
            WriteManifest();
            if (_committing.Count == 0) (_committing, _pending) = (_pending, []); // handed over, not copied
            else
            {
                foreach (var (id, location) in _pending) _committing[id] = location;
                _pending = [];
            }
            return batch;
        }
        foreach (var (id, location) in _pending) _index.Set(id, location);
        _pending = [];
        Posix.Posix.WriteFileDurably(Path.Combine(Root, "index.abi"), _index.WriteTo, bufferSize: 1 << 20);
        WriteManifest();
        return batch;
    }

    /// <summary>The whole index in its serialized form, for the owner's snapshots.</summary>
    public byte[] IndexBytes() => _index.ToBytes(_lock);

    private void WriteManifest()
    {
        Posix.Posix.WriteFileDurably(Path.Combine(Root, "library.json"), f => JsonSerializer.Serialize(f, _manifest, Json));
    }
}
