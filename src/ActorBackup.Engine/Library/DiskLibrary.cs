using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using ActorBackup.Engine.Chunks;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

public enum VolumeState { Append, Full, ReadOnly, Recycle, Error }

public sealed class VolumeEntry
{
    [JsonPropertyName("number")] public uint Number { get; set; }
    [JsonPropertyName("label")] public string Label { get; set; } = "";
    [JsonPropertyName("state")] public VolumeState State { get; set; }
    [JsonPropertyName("bytes")] public long Bytes { get; set; }
    [JsonPropertyName("records")] public int Records { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
}

public sealed class LibraryManifest
{
    [JsonPropertyName("id")] public string Id { get; set; } = "";
    [JsonPropertyName("format")] public int Format { get; set; } = 1;
    [JsonPropertyName("volume_capacity")] public long VolumeCapacity { get; set; }
    [JsonPropertyName("created")] public DateTimeOffset Created { get; set; }
    [JsonPropertyName("volumes")] public List<VolumeEntry> Volumes { get; set; } = [];
}

/// <summary>What a commit made durable: the index entries and the volume table since the last commit.</summary>
public sealed record CommitBatch(IReadOnlyList<KeyValuePair<ChunkId, ChunkLocation>> Entries, IReadOnlyList<VolumeEntry> Volumes);

/// <summary>What opening a library found and did, for the operator.</summary>
public sealed record OpenReport(int RecoveredRecords, long TornBytesCut, IReadOnlyList<string> Problems);

/// <summary>
/// A disk library: a folder of append-only volumes plus the committed chunk index. Appends are serialised
/// under one lock; reads are positional and run in parallel. Durability point: <see cref="Commit"/>.
/// <code>
/// library.json        id, capacity, the volume table (state, bytes, records)
/// index.abi           the chunk index as of the last commit (ChunkIndex serialized form)
/// volumes/vol-NNNNNN.abv
/// </code>
/// </summary>
public sealed class DiskLibrary : IChunkSink, IChunkSource, IDisposable
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };
    private readonly object _lock = new();
    private readonly ChunkIndex _index;
    private readonly HashSet<ChunkId> _reserved = [];
    private readonly ConcurrentDictionary<uint, VolumeReader> _readers = new();
    private readonly LibraryManifest _manifest;
    private VolumeWriter? _writer;
    private List<KeyValuePair<ChunkId, ChunkLocation>> _pending = [];
    // Standalone, the library keeps its own index in index.abi. In a cell the media agent's journal is the
    // index: the library hands each commit's entries to it and writes no index file.
    private readonly bool _ownsIndex = true;

    public string Root { get; }
    public string Id => _manifest.Id;
    public long VolumeCapacity => _manifest.VolumeCapacity;
    public OpenReport LastOpen { get; private set; } = new(0, 0, []);

    private DiskLibrary(string root, LibraryManifest manifest, ChunkIndex index, bool ownsIndex = true)
    {
        Root = root;
        _manifest = manifest;
        _index = index;
        _ownsIndex = ownsIndex;
    }

    /// <summary>
    /// Opens (or creates) a library whose index and volume table are kept by its owner, the media agent,
    /// in its journal. Whole records written after the owner's last commit are found again and come back
    /// in the next <see cref="Commit"/>; a torn tail is cut.
    /// </summary>
    public static DiskLibrary OpenOwned(string root, string id, long volumeCapacity, ChunkIndex index, IEnumerable<VolumeEntry> volumes)
    {
        Directory.CreateDirectory(Path.Combine(root, "volumes"));
        var manifest = new LibraryManifest { Id = id, VolumeCapacity = volumeCapacity, Created = DateTimeOffset.UtcNow, Volumes = volumes.Select(Clone).ToList() };
        var lib = new DiskLibrary(root, manifest, index, ownsIndex: false);
        try
        {
            lib.WriteManifest();
        }
        catch (IOException e)
        {
            lib._broken = DescribeWriteFailure(id, root, e); // opens for reading; writes wait for room
        }
        lib.RecoverUncommitted();
        return lib;
    }

    private string VolumesDir => Path.Combine(Root, "volumes");
    private string VolumePath(uint n) => Path.Combine(VolumesDir, VolumeFormat.VolumeFileName(n));

    public static DiskLibrary Create(string root, string id, long volumeCapacity = 4L * 1024 * 1024 * 1024)
    {
        if (string.IsNullOrWhiteSpace(id) || id.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw new ArgumentException($"library id '{id}' may hold only letters, digits, '-', '_' and '.'");
        if (volumeCapacity < 1024 * 1024 || volumeCapacity > ChunkLocation.MaxOffset)
            throw new ArgumentException($"volume capacity must be between 1 MiB and 1 TiB, got {volumeCapacity}");
        if (File.Exists(Path.Combine(root, "library.json"))) throw new IOException($"{root} already holds a library: open it instead");
        Directory.CreateDirectory(Path.Combine(root, "volumes"));
        var manifest = new LibraryManifest { Id = id, VolumeCapacity = volumeCapacity, Created = DateTimeOffset.UtcNow };
        var lib = new DiskLibrary(root, manifest, new ChunkIndex());
        lib.WriteManifest();
        return lib;
    }

    public static bool Exists(string root) => File.Exists(Path.Combine(root, "library.json"));

    public static DiskLibrary Open(string root)
    {
        var manifestPath = Path.Combine(root, "library.json");
        if (!File.Exists(manifestPath)) throw new DirectoryNotFoundException($"{root} is not an ActorBackup library (no library.json): create one first, or check the path");
        LibraryManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<LibraryManifest>(File.ReadAllText(manifestPath), Json) ?? throw new InvalidDataException("empty");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"{manifestPath} is damaged ({e.Message}): rebuild the library from its volumes", e);
        }
        var indexPath = Path.Combine(root, "index.abi");
        ChunkIndex index;
        if (File.Exists(indexPath))
        {
            try
            {
                using var f = new FileStream(indexPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                index = ChunkIndex.ReadFrom(f);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
                throw new InvalidDataException($"{indexPath} is damaged ({e.Message}): rebuild the library from its volumes", e);
            }
        }
        else index = new ChunkIndex();
        var lib = new DiskLibrary(root, manifest, index);
        lib.RecoverUncommitted();
        return lib;
    }

    /// <summary>
    /// Like Bacula's bscan: forgets the index and the volume table and reads them back from the volumes alone
    /// (the footer of a sealed volume, else record by record). Damaged records are left out and reported.
    /// </summary>
    public static DiskLibrary Rebuild(string root, string? id = null, long? volumeCapacity = null)
    {
        var volumes = Path.Combine(root, "volumes");
        if (!Directory.Exists(volumes)) throw new DirectoryNotFoundException($"{volumes} does not exist: nothing to rebuild from");
        LibraryManifest? old = null;
        try { old = JsonSerializer.Deserialize<LibraryManifest>(File.ReadAllText(Path.Combine(root, "library.json")), Json); }
        catch (Exception e) when (e is IOException or JsonException) { }
        var manifest = new LibraryManifest
        {
            Id = id ?? old?.Id ?? "",
            VolumeCapacity = volumeCapacity ?? old?.VolumeCapacity ?? 4L * 1024 * 1024 * 1024,
            Created = old?.Created ?? DateTimeOffset.UtcNow,
        };
        var index = new ChunkIndex();
        var problems = new List<string>();
        foreach (var file in Directory.EnumerateFiles(volumes, "vol-*.abv").Order(StringComparer.Ordinal))
        {
            try
            {
                using var reader = new VolumeReader(file);
                if (manifest.Id == "") manifest.Id = reader.Header.LibraryId;
                var scan = reader.Scan();
                var n = reader.Header.VolumeNumber;
                foreach (var r in scan.Records) index.Set(r.Id, new ChunkLocation(n, r.Offset, r.PayloadLength));
                foreach (var d in scan.Damage) problems.Add(d.ToString());
                manifest.Volumes.Add(new VolumeEntry
                {
                    Number = n, Label = reader.Header.Label, Records = scan.Records.Count, Bytes = reader.Length,
                    State = scan.Damage.Count > 0 ? VolumeState.Error : scan.Sealed ? VolumeState.Full : VolumeState.Append,
                    Error = scan.Damage.Count > 0 ? scan.Damage[0].ToString() : null,
                });
            }
            catch (VolumeCorruptException e)
            {
                problems.Add(e.Message);
            }
        }
        if (manifest.Id == "") throw new InvalidDataException($"no readable volume under {volumes}: give the library id to rebuild an empty library");
        // Only the newest unsealed volume takes appends; any older unsealed one is closed for writing.
        var appendable = manifest.Volumes.Where(v => v.State == VolumeState.Append).Select(v => v.Number).DefaultIfEmpty(0u).Max();
        foreach (var v in manifest.Volumes.Where(v => v.State == VolumeState.Append && v.Number != appendable)) v.State = VolumeState.ReadOnly;
        var lib = new DiskLibrary(root, manifest, index) { LastOpen = new OpenReport(index.Count, 0, problems) };
        lib.Commit();
        return lib;
    }

    private void RecoverUncommitted()
    {
        var problems = new List<string>();
        var recovered = 0;
        long cut = 0;
        var known = _manifest.Volumes.ToDictionary(v => v.Number);
        foreach (var file in Directory.EnumerateFiles(VolumesDir, "vol-*.abv").Order(StringComparer.Ordinal))
        {
            uint number;
            try
            {
                using var r = new VolumeReader(file);
                number = r.Header.VolumeNumber;
            }
            catch (VolumeCorruptException e)
            {
                problems.Add(e.Message);
                continue;
            }
            if (known.TryGetValue(number, out var entry) && entry.State != VolumeState.Append) continue;
            var before = new FileInfo(file).Length;
            try
            {
                var writer = VolumeWriter.OpenForAppend(file, out var scan, entry?.Bytes ?? 0);
                foreach (var rec in scan.Records)
                {
                    if (_index.TryGet(rec.Id, out var loc) && loc.Volume == number && loc.Offset == rec.Offset) continue;
                    if (_index.Contains(rec.Id)) continue;
                    var location = new ChunkLocation(number, rec.Offset, rec.PayloadLength);
                    _index.Set(rec.Id, location);
                    _pending.Add(new(rec.Id, location));
                    recovered++;
                }
                cut += before - writer.Length;
                if (entry is null)
                {
                    entry = new VolumeEntry { Number = number, Label = VolumeFormat.Label(Id, number), State = VolumeState.Append };
                    _manifest.Volumes.Add(entry);
                }
                entry.Bytes = writer.Length;
                entry.Records = writer.Records.Count;
                if (_writer is null || _writer.Number < number)
                {
                    if (_writer is { } older) MarkReadOnly(older);
                    _writer = writer;
                }
                else MarkReadOnly(writer);
            }
            catch (VolumeCorruptException e)
            {
                problems.Add(e.Message);
                entry ??= new VolumeEntry { Number = number, Label = VolumeFormat.Label(Id, number) };
                if (!_manifest.Volumes.Contains(entry)) _manifest.Volumes.Add(entry);
                entry.State = VolumeState.Error;
                entry.Error = e.Reason;
            }
            catch (InvalidOperationException)
            {
                // A sealed volume the table did not know as sealed (crash between seal and commit).
                if (entry is not null) entry.State = VolumeState.Full;
            }
        }
        _manifest.Volumes.Sort((a, b) => a.Number.CompareTo(b.Number));
        LastOpen = new OpenReport(recovered, cut, problems);
        if (_ownsIndex && (recovered > 0 || cut > 0 || problems.Count > 0)) Commit();

        void MarkReadOnly(VolumeWriter w)
        {
            _manifest.Volumes.First(v => v.Number == w.Number).State = VolumeState.ReadOnly;
            w.Dispose();
        }
    }

    public int ChunkCount { get { lock (_lock) return _index.Count; } }
    public IReadOnlyList<VolumeEntry> Volumes { get { lock (_lock) return _manifest.Volumes.Select(Clone).ToList(); } }
    private static VolumeEntry Clone(VolumeEntry v) => new() { Number = v.Number, Label = v.Label, State = v.State, Bytes = v.Bytes, Records = v.Records, Error = v.Error };
    public long StoredBytes { get { lock (_lock) return _manifest.Volumes.Sum(v => v.Bytes); } }

    public bool Contains(ChunkId id)
    {
        lock (_lock) return _index.Contains(id);
    }

    public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        lock (_lock) return ids.Where(id => !_index.Contains(id)).ToHashSet();
    }

    public bool TryGetLocation(ChunkId id, out ChunkLocation location)
    {
        lock (_lock) return _index.TryGet(id, out location);
    }

    /// <summary>
    /// Claims the right to store <paramref name="id"/>: false when the library has it. When another writer is
    /// storing it right now, waits for that writer's <see cref="Append"/> (then false) or <see cref="Release"/>
    /// (then true): answering false at once would let this caller's snapshot name a chunk that a writer about
    /// to fail never stores. Whoever gets true must call <see cref="Append"/> or <see cref="Release"/>; a
    /// writer holds one reservation at a time, so waiters never wait on each other in a circle.
    /// </summary>
    public bool TryReserve(ChunkId id)
    {
        lock (_lock)
        {
            while (true)
            {
                ThrowIfBroken(); // also when it broke while this caller waited
                if (_index.Contains(id)) return false;
                if (_reserved.Add(id)) return true;
                Monitor.Wait(_lock);
            }
        }
    }

    public void Release(ChunkId id)
    {
        lock (_lock)
        {
            if (_reserved.Remove(id)) Monitor.PulseAll(_lock);
        }
    }

    void IChunkSink.Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload) => Append(id, flags, payload);

    public ChunkLocation Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        lock (_lock)
        {
            ThrowIfBroken();
            VolumeWriter writer;
            RecordInfo info;
            try
            {
                writer = WriterFor(payload.Length);
                info = writer.Append(id, flags, payload);
            }
            catch (IOException e)
            {
                throw Break(e);
            }
            var location = new ChunkLocation(writer.Number, info.Offset, info.PayloadLength);
            _index.Set(id, location);
            _pending.Add(new(id, location));
            if (_reserved.Remove(id)) Monitor.PulseAll(_lock);
            var entry = _manifest.Volumes[^1];
            entry.Bytes = writer.Length;
            entry.Records = writer.Records.Count;
            return location;
        }
    }

    private VolumeWriter WriterFor(int payloadLength)
    {
        if (_writer is { } w && w.Records.Count > 0 && w.Length + w.SpaceFor(payloadLength) + w.SealSize + VolumeFormat.FooterEntrySize > VolumeCapacity)
        {
            w.Seal();
            var entry = _manifest.Volumes.Single(v => v.Number == w.Number);
            entry.State = VolumeState.Full;
            entry.Bytes = w.Length;
            w.Dispose();
            _readers.TryRemove(w.Number, out var stale);
            stale?.Dispose();
            _writer = null;
        }
        if (_writer is null)
        {
            var number = _manifest.Volumes.Count == 0 ? 1u : _manifest.Volumes.Max(v => v.Number) + 1;
            var label = VolumeFormat.Label(Id, number);
            _writer = VolumeWriter.Create(VolumePath(number), number, Id, label);
            _manifest.Volumes.Add(new VolumeEntry { Number = number, Label = label, State = VolumeState.Append, Bytes = _writer.Length });
        }
        return _writer;
    }

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

    private IOException Break(IOException e)
    {
        _broken = DescribeWriteFailure(Id, Root, e);
        try
        {
            _writer?.Dispose();
        }
        catch (IOException)
        {
            // Its buffer could not be written either: reopening cuts the volume back to its last whole record.
        }
        _writer = null;
        return new IOException(_broken, e);
    }

    /// <summary>What an operator reads when a library cannot write: a full disk, or another I/O error.</summary>
    public static string DescribeWriteFailure(string id, string root, Exception e) =>
        Posix.Posix.IsNoSpace(e)
            ? $"library {id} is out of space at {root}: free space there or move the library to a larger disk, then run the job again (everything committed before is intact)"
            : $"library {id} could not write to {root} ({e.Message}): check that disk, then run the job again (everything committed before is intact)";

    private CommitBatch CommitLocked()
    {
        _writer?.Sync();
        var batch = new CommitBatch(_pending, _manifest.Volumes.Select(Clone).ToList());
        _pending = [];
        if (!_ownsIndex)
        {
            WriteManifest();
            return batch;
        }
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

    /// <summary>
    /// Reads a chunk's stored payload into <paramref name="buffer"/> (resized when too small) and returns it,
    /// checked against the volume's record checksum. Thread-safe.
    /// </summary>
    public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
    {
        ChunkLocation loc;
        lock (_lock)
        {
            if (!_index.TryGet(id, out loc))
                throw new KeyNotFoundException($"chunk {id.Short} is not in library {Id}: the snapshot refers to data this library never stored, or lost (run verify)");
            if (_writer is { } w && w.Number == loc.Volume) w.FlushToFile();
        }
        var need = VolumeFormat.RecordOverhead + loc.Length;
        if (buffer.Length < need) buffer = new byte[Math.Max(need, buffer.Length * 2)];
        var reader = _readers.GetOrAdd(loc.Volume, n => new VolumeReader(VolumePath(n)));
        return reader.ReadRecord(loc.Offset, id, loc.Length, buffer, out flags);
    }

    public sealed record VerifyReport(int Volumes, int Records, long Bytes, IReadOnlyList<VolumeDamage> Damage, IReadOnlyList<string> IndexProblems)
    {
        public bool Ok => Damage.Count == 0 && IndexProblems.Count == 0;
    }

    /// <summary>
    /// Reads every volume record by record and checks every checksum, then checks the index against what the
    /// volumes hold. Needs no key: it proves the bytes are as written, not what they mean.
    /// </summary>
    public VerifyReport Verify()
    {
        lock (_lock) _writer?.FlushToFile();
        var damage = new List<VolumeDamage>();
        var found = new HashSet<(ChunkId, ChunkLocation)>();
        int records = 0, volumes = 0;
        long bytes = 0;
        foreach (var v in Volumes)
        {
            var path = VolumePath(v.Number);
            if (!File.Exists(path))
            {
                damage.Add(new VolumeDamage(path, 0, "volume file is missing"));
                continue;
            }
            try
            {
                using var reader = new VolumeReader(path);
                var scan = reader.Scan();
                volumes++;
                records += scan.Records.Count;
                bytes += reader.Length;
                damage.AddRange(scan.Damage);
                if (scan.TornTail) damage.Add(new VolumeDamage(path, scan.GoodEnd, "torn tail after the last whole record"));
                foreach (var r in scan.Records) found.Add((r.Id, new ChunkLocation(v.Number, r.Offset, r.PayloadLength)));
            }
            catch (VolumeCorruptException e)
            {
                damage.Add(new VolumeDamage(path, e.Offset, e.Reason));
            }
        }
        var indexProblems = new List<string>();
        lock (_lock)
        {
            foreach (var (id, loc) in _index.Entries)
            {
                if (!found.Contains((id, loc)))
                    indexProblems.Add($"chunk {id.Short} is indexed at volume {loc.Volume} offset {loc.Offset}, but no whole record there holds it");
            }
        }
        return new VerifyReport(volumes, records, bytes, damage, indexProblems);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            try
            {
                _writer?.Dispose();
            }
            catch (IOException) when (_broken is not null)
            {
                // A broken writer's buffer cannot be written: the next open cuts the volume back.
            }
            _writer = null;
            foreach (var r in _readers.Values) r.Dispose();
            _readers.Clear();
        }
    }
}
