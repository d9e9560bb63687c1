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
        lock (_lock)
        {
            ThrowIfBroken();
            _appendedSinceCheck += payload.Length; // the reserve is checked when chunks are reserved
            VolumeWriter writer;
            RecordInfo info;
            try
            {
                writer = WriterFor(payload.Length);
                _medium.Writing(writer.Number, writer.Length, writer.SpaceFor(payload.Length));
                info = writer.Append(id, flags, payload);
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
            var location = new ChunkLocation(writer.Number, info.Offset, info.PayloadLength);
            _pending[id] = location;
            if (_reserved.Remove(id)) Monitor.PulseAll(_lock);
            var entry = _manifest.Volumes.Last(v => v.Number == writer.Number);
            entry.Bytes = writer.Length;
            entry.Records = writer.Records.Count;
            return location;
        }
    }

    /// <summary>
    /// The volume this thread's write stream appends to: its own, sealed and followed by a new one when full. A thread
    /// that names no stream (a prune's copy) appends to a volume being written when there is one; a stream's first
    /// append takes over the volume no stream holds (the one a reopened library goes on writing).
    /// </summary>
    private VolumeWriter WriterFor(int payloadLength)
    {
        var stream = _medium.Stream;
        if (!_writers.TryGetValue(stream, out var w))
        {
            if (stream == 0 && _writers.Count > 0) w = _writers.MinBy(kv => kv.Key).Value;
            else if (stream != 0 && _writers.Remove(0, out var unheld)) _writers[stream] = w = unheld;
        }
        if (w is not null && w.Records.Count > 0 && w.Length + w.SpaceFor(payloadLength) + w.SealSize + VolumeFormat.FooterEntrySize > VolumeCapacity)
        {
            SealWriter(w);
            w = null;
        }
        if (w is null)
        {
            var number = _manifest.Volumes.Count == 0 ? 1u : _manifest.Volumes.Max(v => v.Number) + 1;
            var (path, label) = _medium.Allocate(number, Id);
            _writers[stream] = w = VolumeWriter.Create(path, number, Id, label);
            _manifest.Volumes.Add(new VolumeEntry { Number = number, Label = label, State = VolumeState.Append, Bytes = w.Length });
        }
        return w;
    }

    /// <summary>The writer of <paramref name="volume"/> when it is being written, else null.</summary>
    private VolumeWriter? WriterOf(uint volume) => _writers.Values.FirstOrDefault(w => w.Number == volume);

    /// <summary>Under the lock: what every writer buffered reaches its file (a read of the file sees it).</summary>
    private void FlushWriters()
    {
        foreach (var w in _writers.Values) w.FlushToFile();
    }

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
            foreach (var (id, location) in batch.Entries)
            {
                _index.Set(id, location);
                _committing.Remove(id);
            }
        }
    }

    private IOException Break(IOException e)
    {
        _broken = DescribeWriteFailure(Id, Root, e);
        _pending.Clear(); // appended since the last commit: maybe not on disk; reopening finds the whole records again
        try
        {
            foreach (var w in _writers.Values) w.Dispose();
        }
        catch (IOException)
        {
            // Its buffer could not be written either: reopening cuts the volume back to its last whole record.
        }
        _writers.Clear();
        return new IOException(_broken, e);
    }

    /// <summary>What an operator reads when a library cannot write: a full disk, or another I/O error.</summary>
    public static string DescribeWriteFailure(string id, string root, Exception e) =>
        Posix.Posix.IsNoSpace(e)
            ? $"library {id} is out of space at {root}: free space there or move the library to a larger disk, then run the job again (everything committed before is intact)"
            : $"library {id} could not write to {root} ({e.Message}): check that disk, then run the job again (everything committed before is intact)";

    private CommitBatch CommitLocked()
    {
        foreach (var w in _writers.Values) w.Sync();
        WriteStagedReferences();
        var batch = new CommitBatch(_pending.ToList(), _manifest.Volumes.Select(Clone).ToList());
        if (!_ownsIndex)
        {
            // Durable on disk; the owner journals the batch and then calls Committed, which indexes it. Until
            // then the entries stay visible as committing, and a failed write later does not drop them.
            WriteManifest();
            foreach (var (id, location) in _pending) _committing[id] = location;
            _pending = [];
            return batch;
        }
        foreach (var (id, location) in _pending) _index.Set(id, location);
        _pending = [];
        var indexPath = Path.Combine(Root, "index.abi");
        var tmp = indexPath + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            _index.WriteTo(f);
            f.Flush(true);
        }
        File.Move(tmp, indexPath, overwrite: true);
        WriteManifest();
        return batch;
    }

    /// <summary>The whole index in its serialized form, for the owner's snapshots.</summary>
    public byte[] IndexBytes()
    {
        lock (_lock) return _index.ToBytes();
    }

    private void WriteManifest()
    {
        var path = Path.Combine(Root, "library.json");
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(f, _manifest, Json);
            f.Flush(true);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
