using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

/// <summary>
/// A disk library: a folder of append-only volumes plus the chunk index. Appends are serialised under one
/// lock; reads are positional and run in parallel. Durability point: <see cref="Commit"/>.
/// <code>
/// library.json        id, capacity, the volume table (state, bytes, records)
/// index.abi           the chunk index as of the last commit (only when the library owns its index)
/// volumes/vol-NNNNNN.abv
/// </code>
/// The committed index belongs to the owner: a media agent keeps it in its journal (<see cref="OpenOwned"/>,
/// <see cref="Committed"/>); the engine's repository lets the library keep it in index.abi. The library itself
/// holds only what is pending (appended since the last commit) and committing (durable, being journaled), so
/// that a write that fails drops only the pending part and the owner opens the library again on the same
/// committed index. One file per concern: Reservations, VolumeSet (appends, commits, failures), Recovery
/// (open, create, rebuild, records after the last commit), Verify.
/// </summary>
public sealed partial class DiskLibrary : IChunkSink, IChunkSource, IChunkPlacement, IDisposable
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };
    private readonly object _lock = new();
    private readonly ChunkIndex _index;
    private readonly HashSet<ChunkId> _reserved = [];
    private readonly ConcurrentDictionary<uint, VolumeReader> _readers = new();
    private readonly LibraryManifest _manifest;
    /// <summary>
    /// The volumes being written, one per write stream (<see cref="IVolumeMedium.Stream"/>; a disk library has one, 0).
    /// Keys 0 and below: volumes no stream holds yet (reopened), which a stream's first append takes over.
    /// </summary>
    private readonly Dictionary<int, VolumeWriter> _writers = [];
    /// <summary>Appended since the last commit: not durable yet, and not in the committed index, which its owner keeps.</summary>
    private Dictionary<ChunkId, ChunkLocation> _pending = [];
    /// <summary>Committed to disk, waiting for the owner to journal them (<see cref="Committed"/>).</summary>
    private Dictionary<ChunkId, ChunkLocation> _committing = [];
    // Standalone, the library keeps its own index in index.abi. In a cell the media agent's journal is the
    // index: the library hands each commit's entries to it and writes no index file.
    private readonly bool _ownsIndex = true;

    public string Root { get; }
    public string Id => _manifest.Id;
    public long VolumeCapacity => _manifest.VolumeCapacity;
    public OpenReport LastOpen { get; private set; } = new(0, 0, []);

    private readonly WriterLock _writerLock;

    private readonly IVolumeMedium _medium;

    /// <summary>disk, or tape (volumes on cartridges behind drives).</summary>
    public string Kind => _medium.Kind;

    private DiskLibrary(string root, LibraryManifest manifest, ChunkIndex index, bool ownsIndex = true, IVolumeMedium? medium = null)
    {
        _medium = medium ?? new DiskMedium(root);
        _writerLock = WriterLock.Take(root, manifest.Id); // one writer: a second opener fails here, before it reads anything
        Root = root;
        References = new ReferenceStore(ReferencesDir);
        _manifest = manifest;
        _index = index;
        _ownsIndex = ownsIndex;
    }

    public int ChunkCount { get { lock (_lock) return _index.Count + _committing.Count + _pending.Count; } }
    public IReadOnlyList<VolumeEntry> Volumes { get { lock (_lock) return _manifest.Volumes.Select(Clone).ToList(); } }
    private static VolumeEntry Clone(VolumeEntry v) => new() { Number = v.Number, Label = v.Label, State = v.State, Bytes = v.Bytes, Records = v.Records, Error = v.Error, Retire = v.Retire };
    public long StoredBytes { get { lock (_lock) return _manifest.Volumes.Sum(v => v.Bytes); } }

    /// <summary>
    /// Volumes of the table that hold data but whose file is not there (a disk unmounted, a folder removed, a cartridge
    /// exported): the library takes no writes until they are back, and reads only while some volumes are there
    /// (MediaActor.ReadableWith). (A library writing on with part of its data away would have new backups take chunks
    /// only the absent volume holds.)
    /// </summary>
    public IReadOnlyList<uint> MissingVolumes()
    {
        lock (_lock)
            return _manifest.Volumes.Where(v => v.State is not (VolumeState.Recycle or VolumeState.Error) && v.Records > 0 && !File.Exists(VolumePath(v.Number)))
                .Select(v => v.Number).ToList();
    }

    /// <summary>How many volumes hold records (those <see cref="MissingVolumes"/> looks for).</summary>
    public int VolumesHolding()
    {
        lock (_lock) return _manifest.Volumes.Count(v => v.State is not (VolumeState.Recycle or VolumeState.Error) && v.Records > 0);
    }

    /// <summary>Whether <paramref name="volume"/> is the one being written (its cartridge must stay in the library).</summary>
    public bool Appending(uint volume)
    {
        lock (_lock) return _manifest.Volumes.Any(v => v.Number == volume && v.State == VolumeState.Append && v.Records > 0);
    }

    public bool Contains(ChunkId id)
    {
        lock (_lock)
        {
            if (!HasSound(id)) return false; // a chunk found damaged is stored again (DiskLibrary.Damaged.cs)
            Touch(id); // a running prune keeps what a writer was told is here
            return true;
        }
    }

    public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        lock (_lock)
        {
            var missing = new HashSet<ChunkId>();
            // The index asked for the whole batch at once (its slots fetched ahead: a million ids were a million cache misses).
            ReadOnlySpan<ChunkId> asked = ids is List<ChunkId> list ? System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list)
                : ids is ChunkId[] array ? array : ids.ToArray();
            var held = asked.Length <= 4096 ? stackalloc bool[asked.Length] : new bool[asked.Length];
            _index.Holds(asked, held);
            for (var i = 0; i < asked.Length; i++)
                if ((!held[i] || IsDamaged(asked[i])) && !Staged(asked[i])) missing.Add(asked[i]); // found damaged: stored again
                else Touch(asked[i]);
            return missing;
        }
    }

    /// <summary>A tape library: reads in place order, one volume written per drive, cartridges with errors retired.</summary>
    public bool Sequential => _medium.Kind == "tape";

    public IReadOnlyList<ChunkPlace> Places(IReadOnlyList<ChunkId> ids)
    {
        var places = new ChunkPlace[ids.Count];
        lock (_lock)
            for (var i = 0; i < ids.Count; i++)
                if (TryGetLocationLocked(ids[i], out var at)) places[i] = new ChunkPlace(at.Volume, at.Offset);
        return places;
    }

    public bool TryGetLocation(ChunkId id, out ChunkLocation location)
    {
        lock (_lock) return TryGetLocationLocked(id, out location);
    }

    /// <summary>Committed or pending: a chunk that this library holds or is about to commit.</summary>
    private bool Has(ChunkId id) => _index.Contains(id) || Staged(id);

    /// <summary>Appended and not committed yet: pending, or in the commit under way.</summary>
    private bool Staged(ChunkId id) => _committing.ContainsKey(id) || _pending.ContainsKey(id);

    private bool TryGetLocationLocked(ChunkId id, out ChunkLocation location) =>
        _index.TryGet(id, out location) || _committing.TryGetValue(id, out location) || _pending.TryGetValue(id, out location);

    /// <summary>
    /// Reads a chunk's stored payload into <paramref name="buffer"/> (resized when too small) and returns it,
    /// checked against the volume's record checksum. Thread-safe.
    /// </summary>
    public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
    {
        for (var attempt = 0; ; attempt++)
        {
            ChunkLocation loc;
            VolumeReader reader;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_closed, this); // closed meanwhile (reopened): no reader made on it again
                if (!TryGetLocationLocked(id, out loc))
                    throw new KeyNotFoundException($"chunk {id.Short} is not in library {Id}: the snapshot refers to data this library never stored, or lost (run verify)");
                // Only a record not in the file yet needs the writer's buffer written out (a read of committed data
                // on a full disk does not break the library under the backup writing beside it).
                if (WriterOf(loc.Volume) is { } writer && writer.InFile < loc.Offset + VolumeFormat.RecordOverhead + loc.Length) FlushOrBreak(writer);
                // Taken with the location, under the lock: a prune that moves the chunk and deletes the volume right
                // after retires this reader without closing it, so the read below still finds the bytes.
                try
                {
                    reader = _readers.GetOrAdd(loc.Volume, n => new VolumeReader(VolumePath(n)));
                }
                catch (VolumeCorruptException e)
                {
                    FoundDamaged(id, loc); // a damaged volume header: each chunk read from it is marked, and stored again
                    if (e.Medium) CartridgeError(loc.Volume, e.Reason, e.Offset);
                    throw;
                }
            }
            var need = VolumeFormat.RecordOverhead + loc.Length;
            if (buffer.Length < need) buffer = new byte[Math.Max(need, buffer.Length * 2)];
            _medium.Reading(loc.Volume, loc.Offset, need); // a cartridge: mounted and wound there first
            BeforeRecordRead?.Invoke(reader);
            try
            {
                return reader.ReadRecord(loc.Offset, id, loc.Length, buffer, out flags);
            }
            catch (ObjectDisposedException) when (attempt < 3)
            {
                // Retired and closed while this read waited past the grace (a slow mount, a busy disk): the chunk
                // moved with its volume's prune; its place is looked up again.
            }
            catch (VolumeCorruptException e)
            {
                lock (_lock) FoundDamaged(id, loc); // the next writer that has its data stores it again
                if (e.Medium) CartridgeError(loc.Volume, e.Reason, e.Offset); // the index disagreeing with a sound cartridge does not retire it
                throw;
            }
        }
    }

    /// <summary>Whether <see cref="Dispose"/> closed the library.</summary>
    private bool _closed;

    /// <summary>Tests: called with the reader a read took, right before it reads (a prune that retires and closes it meanwhile).</summary>
    internal Action<VolumeReader>? BeforeRecordRead { get; set; }

    /// <summary>Volumes in the Error state: found damaged when opened or, on tape, when read (cartridges with errors, to retire).</summary>
    public IReadOnlyList<uint> VolumesInError
    {
        get { lock (_lock) return _manifest.Volumes.Where(v => v.State == VolumeState.Error).Select(v => v.Number).ToList(); }
    }

    /// <summary>
    /// On tape, a volume whose records fail their checks when read is a cartridge with errors: it takes no more
    /// appends (sealed when being written) and is Error in the table, which the media agent reports so that the
    /// manager retires it (its readable live chunks copied away, then out of service). Its chunks are still read.
    /// A disk volume's damaged records are healed one by one from a copy instead (abk verify SNAPSHOT).
    /// </summary>
    private void CartridgeError(uint volume, string reason, long offset)
    {
        if (!Sequential) return;
        reason = $"{reason} at {_medium.Where(volume, offset)}";
        lock (_lock)
        {
            if (_manifest.Volumes.FirstOrDefault(v => v.Number == volume) is not { State: not (VolumeState.Error or VolumeState.Recycle) } entry) return;
            if (WriterOf(volume) is { } w) SealOrBreak(w);
            entry.State = VolumeState.Error;
            entry.Error = reason;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _closed = true;
            Monitor.PulseAll(_lock); // writers waiting on a reservation hear it now, not at their timeout
            // Every step runs whatever one before it threw (a writer's last flush on a full disk): a library half closed
            // would keep its writer lock, and the library opened again would be refused as having "another writer".
            Exception? first = null;
            void Step(Action step)
            {
                try
                {
                    step();
                }
                catch (Exception e)
                {
                    first ??= e;
                }
            }
            Step(DisposeWriters);
            _broken ??= $"library {Id} is closed"; // a task still running on it (a prune's copy) appends nothing more
            foreach (var r in _readers.Values.Concat(_retiredReaders.Select(x => x.Reader))) Step(r.Dispose);
            _readers.Clear();
            _retiredReaders.Clear();
            Step(_writerLock.Dispose);
            Step(_medium.Dispose);
            if (first is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        }
    }
}
