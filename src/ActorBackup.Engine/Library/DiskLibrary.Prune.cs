using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

/// <summary>What a prune found or did to one library.</summary>
public sealed record PruneResult(long ChunksDead, long BytesDead, long ChunksMoved, long BytesMoved, IReadOnlyList<uint> VolumesCompacted,
    long BytesFreed, IReadOnlyList<string> Problems);

// Prune: chunks that no kept snapshot references leave the index, and the volumes they leave mostly empty are
// rewritten (their live records copied into the volume being written) and deleted.
//
// The race with backups that run meanwhile, and how it is closed:
// * A backup deduplicates against chunks already stored (TryReserve answering "have it", Missing, Contains).
//   From BeginPrune on, every chunk so answered is remembered (_touched) and never swept in this prune.
// * A backup that was already running at BeginPrune may have been answered before it: the owner (the media
//   agent) sweeps only once every write session open at BeginPrune has closed.
// * A snapshot committed here but not yet in the catalog (its job's end on its way to the manager), or during
//   the prune, brings its reference list: a list the catalog neither keeps nor deleted counts as live until
//   it is old (an orphan, whose job failed after the commit). Chunks stored since BeginPrune are not candidates.
//   A list written since BeginPrune (_listsWritten) counts as live whatever its age or the keep list the prune was
//   given (made before it was written) says, and is not removed after the sweep: the mark can come long after
//   BeginPrune (it waits for the backups open then), and the list of a backup still running is not an orphan.
// Nothing is deleted from disk before the index without those chunks is durable (the owner journals it), and a
// volume is deleted only after its live records' new places are durable: kill -9 at any point loses nothing
// that is referenced.
public sealed partial class DiskLibrary
{
    /// <summary>Chunks answered as present since BeginPrune; null: no prune runs.</summary>
    private HashSet<ChunkId>? _touched;
    /// <summary>Snapshots whose reference lists were written since BeginPrune; null: no prune runs.</summary>
    private HashSet<string>? _listsWritten;
    private List<KeyValuePair<ChunkId, ChunkLocation>>? _candidates;
    /// <summary>Readers of deleted or sealed volumes, with when they were retired: a read that took one just before still finishes.</summary>
    private readonly List<(VolumeReader Reader, DateTime RetiredUtc)> _retiredReaders = [];

    /// <summary>
    /// How long a retired reader stays open: longer than a positional read that looked it up before usually takes (one
    /// that takes longer, behind a slow mount, looks its chunk up again: ReadPayload). Tests make it zero.
    /// </summary>
    internal TimeSpan RetiredReaderGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Tests: the volume's reader retired, as a prune that deletes the volume retires it.</summary>
    internal void RetireReader(uint volume)
    {
        lock (_lock)
            if (_readers.TryRemove(volume, out var reader)) Retire(reader);
    }

    /// <summary>
    /// Under the lock: a reader leaves the cache; it is disposed when no read can still be using it (its file's
    /// space is given back only then), at the next retire or <see cref="CloseRetiredReaders"/>.
    /// </summary>
    private void Retire(VolumeReader reader)
    {
        _retiredReaders.Add((reader, DateTime.UtcNow));
        CloseRetiredReadersLocked();
    }

    private void CloseRetiredReadersLocked()
    {
        var now = DateTime.UtcNow;
        foreach (var old in _retiredReaders.Where(r => now - r.RetiredUtc >= RetiredReaderGrace).ToList())
        {
            old.Reader.Dispose();
            _retiredReaders.Remove(old);
        }
    }

    /// <summary>Closes the readers of deleted volumes that no read can still use, so that their disk space comes back.</summary>
    public void CloseRetiredReaders()
    {
        lock (_lock) CloseRetiredReadersLocked();
    }

    public bool Pruning { get { lock (_lock) return _touched is not null; } }

    /// <summary>Under the lock: a chunk was answered as present; a running prune keeps it.</summary>
    private void Touch(ChunkId id) => _touched?.Add(id);

    /// <summary>Starts a prune: from now on chunks answered as present are kept; the candidates are the index as it is now.</summary>
    public void BeginPrune()
    {
        lock (_lock)
        {
            if (_touched is not null) throw new InvalidOperationException($"library {Id} is being pruned already");
            _touched = [];
            _listsWritten = new HashSet<string>(StringComparer.Ordinal);
            _candidates = _index.Entries.ToList();
        }
    }

    public void EndPrune()
    {
        lock (_lock)
        {
            _touched = null;
            _listsWritten = null;
            _candidates = null;
        }
    }

    /// <summary>When the reference list of <paramref name="snapshot"/> was last written here (UTC), or null when there is none.</summary>
    public DateTime? ReferencesWritten(string snapshot)
    {
        if (!ReferenceList.IsValidSnapshotId(snapshot)) return null;
        var path = References.PathOf(snapshot);
        return File.Exists(path) ? File.GetLastWriteTimeUtc(path) : null;
    }

    /// <summary>
    /// The live set, from the reference lists here: those of the kept snapshots, and those of snapshots the
    /// catalog does not know yet (a backup that committed here but has not been recorded, or one committed during
    /// the prune) unless older than <paramref name="orphanAfter"/> (a backup whose job failed after its commit).
    /// The lists of <paramref name="deleted"/> snapshots do not count. <paramref name="missing"/>: kept snapshots
    /// with no list here (made before lists were kept): their chunks are unknown, so a prune must not sweep.
    /// <paramref name="dead"/>: the lists that do not count, removed after the sweep (<see cref="RemoveReferences"/>).
    /// </summary>
    public HashSet<ChunkId> LiveReferences(IEnumerable<string> keep, IEnumerable<string> deleted, TimeSpan orphanAfter,
        out List<string> missing, out List<string> damaged, out List<string> dead)
    {
        var live = new HashSet<ChunkId>();
        missing = [];
        damaged = [];
        dead = [];
        var kept = keep.ToHashSet(StringComparer.Ordinal);
        var gone = deleted.ToHashSet(StringComparer.Ordinal);
        missing.AddRange(kept.Where(k => !HasReferences(k)).Order(StringComparer.Ordinal));
        var now = DateTime.UtcNow;
        var counted = new List<string>();
        HashSet<string> written;
        lock (_lock) written = _listsWritten is null ? [] : [.. _listsWritten];
        foreach (var snapshot in References.Snapshots())
        {
            if (!kept.Contains(snapshot) && !written.Contains(snapshot)
                && (gone.Contains(snapshot) || now - File.GetLastWriteTimeUtc(References.PathOf(snapshot)) >= orphanAfter))
                dead.Add(snapshot);
            else counted.Add(snapshot);
        }
        // A damaged list of a snapshot the catalog does not know stops the prune too (what it holds is unknown), but it
        // is a backup's that failed, or one not recorded yet: it goes once older than the orphans' age, and says so.
        References.AddLive(counted.Where(kept.Contains), live, damaged);
        var unknownDamaged = new List<string>();
        References.AddLive(counted.Where(s => !kept.Contains(s)), live, unknownDamaged);
        damaged.AddRange(unknownDamaged.Select(d => d + "; it is of a snapshot the catalog does not know (a backup that failed, or one not recorded yet): " +
                                                    "it goes, and prunes here go on, once it is older than actorbackup.manager.prune-orphans-after (7 days by default), " +
                                                    "or at once with abk prune LIBRARY --drop-unknown when the prune's report says it keeps the unknown lists"));
        return live;
    }

    /// <summary>
    /// The sweep: candidates that are not live, not answered as present since BeginPrune, and still where they
    /// were, leave the index (unless <paramref name="dryRun"/>). Returns them with their places; the owner
    /// journals their removal before anything is compacted. A library that owns its index writes it at once.
    /// </summary>
    public IReadOnlyList<KeyValuePair<ChunkId, ChunkLocation>> Sweep(IReadOnlySet<ChunkId> live, bool dryRun)
    {
        lock (_lock)
        {
            if (_touched is null || _candidates is null) throw new InvalidOperationException("BeginPrune first");
            // A library its owner indexes can be swept even when it cannot write (a full disk): the sweep is the
            // owner's journal entry, and what it frees may be what lets the library write again.
            if (_ownsIndex) ThrowIfBroken();
            var dead = new List<KeyValuePair<ChunkId, ChunkLocation>>();
            foreach (var c in _candidates)
            {
                if (live.Contains(c.Key) || _touched.Contains(c.Key) || _reserved.Contains(c.Key)) continue;
                if (!_index.TryGet(c.Key, out var now) || now != c.Value) continue; // moved or gone meanwhile
                dead.Add(c);
            }
            if (dryRun) return dead;
            foreach (var d in dead) _index.Remove(d.Key);
            _candidates = null;
            if (_ownsIndex) CommitLocked();
            return dead;
        }
    }

    /// <summary>The reference lists of snapshots whose chunks a sweep let go, and the bases no list is on any more.</summary>
    public void RemoveReferences(IEnumerable<string> snapshots)
    {
        // Not one written since the prune began (after the mark, say: a part of a backup that runs): the next prune sees it.
        lock (_lock) References.Remove(_listsWritten is null ? snapshots : snapshots.Where(s => !_listsWritten.Contains(s)).ToList());
    }

    /// <summary>
    /// Volumes whose dead share (bytes no index entry points into) is at least <paramref name="threshold"/>,
    /// with their live bytes; the volume being written counts too (it is sealed before it is compacted). Wholly dead
    /// ones first (they free room and need none), then the most dead: each copy needs room for its live chunks, which
    /// the ones before may have freed (<see cref="CopyLive"/> passes over one there is no room for).
    /// </summary>
    public IReadOnlyList<(uint Volume, long LiveBytes, long FileBytes)> VolumesToCompact(double threshold, IReadOnlySet<ChunkId>? alsoDead = null)
    {
        lock (_lock)
        {
            var live = LiveBytesByVolume(alsoDead);
            var result = new List<(uint, long, long)>();
            foreach (var v in _manifest.Volumes)
            {
                if (v.State is VolumeState.Recycle or VolumeState.Error || v.Bytes <= 0) continue;
                var liveBytes = live.GetValueOrDefault(v.Number);
                if (liveBytes >= long.MaxValue / 4) continue;
                // The header and a sealed volume's footer count as dead here: a few bytes, and 1% of a volume of 4 KiB chunks.
                var dead = v.Bytes - liveBytes;
                if (dead > 4096 && dead >= threshold * v.Bytes) result.Add((v.Number, liveBytes, v.Bytes));
            }
            return [.. result.OrderBy(v => v.Item2 > 0).ThenBy(v => (double)v.Item2 / Math.Max(1, v.Item3)).ThenBy(v => v.Item1)];
        }
    }

    /// <summary>Under the lock: each volume's live bytes (records an index entry points into, less <paramref name="alsoDead"/>);
    /// a volume being committed into counts as wholly live (long.MaxValue / 4: not compacted now).</summary>
    private Dictionary<uint, long> LiveBytesByVolume(IReadOnlySet<ChunkId>? alsoDead)
    {
        var live = new Dictionary<uint, long>();
        foreach (var (id, loc) in _index.Entries)
        {
            if (alsoDead is not null && alsoDead.Contains(id)) continue;
            live[loc.Volume] = live.GetValueOrDefault(loc.Volume) + VolumeFormat.RecordOverhead + loc.Length;
        }
        foreach (var (_, loc) in _committing.Concat(_pending)) live[loc.Volume] = long.MaxValue / 4; // being committed into: not now
        return live;
    }

    /// <summary><paramref name="volumes"/> (a prune's plan, in its order) with their live and file bytes, for <see cref="ThatFit"/>.</summary>
    public IReadOnlyList<(uint Volume, long LiveBytes, long FileBytes)> LiveBytesOf(IReadOnlyList<uint> volumes, IReadOnlySet<ChunkId>? alsoDead)
    {
        lock (_lock)
        {
            var live = LiveBytesByVolume(alsoDead);
            return [.. volumes.Select(n =>
            {
                var bytes = _manifest.Volumes.FirstOrDefault(v => v.Number == n)?.Bytes ?? 0;
                return (n, Math.Min(live.GetValueOrDefault(n), bytes), bytes); // one being committed into counts whole
            })];
        }
    }

    /// <summary>
    /// What a dry run says a prune would compact: <paramref name="volumes"/> (as <see cref="VolumesToCompact"/> orders them)
    /// that fit above the reserve as each before it frees its file, as <see cref="CopyLive"/> decides; those passed over
    /// go into <paramref name="passed"/>, said as the prune would.
    /// </summary>
    public IReadOnlyList<(uint Volume, long LiveBytes, long FileBytes)> ThatFit(IReadOnlyList<(uint Volume, long LiveBytes, long FileBytes)> volumes, List<string> passed)
    {
        long free;
        lock (_lock) free = Available();
        var fit = new List<(uint, long, long)>();
        foreach (var v in volumes)
        {
            if (v.LiveBytes > 0 && NoRoomToCopy(v.Volume, v.LiveBytes, free, dryRun: true) is { } noRoom)
            {
                passed.Add(noRoom);
                continue;
            }
            fit.Add(v);
            free += v.FileBytes - v.LiveBytes;
        }
        return fit;
    }

    /// <summary>Why copying <paramref name="live"/> bytes of <paramref name="volume"/> out, with <paramref name="free"/> free,
    /// would bring the library below its reserve (said as a prune or its dry run says it), or null when it fits.</summary>
    private string? NoRoomToCopy(uint volume, long live, long free, bool dryRun)
    {
        var keep = Math.Max(0, ReserveBytes);
        if (free - live >= keep) return null;
        return $"volume {volume} {(dryRun ? "would not be" : "is not")} compacted now: copying its {Size(live)} of live chunks out would leave less than the " +
               $"{Size(keep)} library {Id} keeps free ({Size(Math.Max(0, free))} are)" + (dryRun ? "" : "; the next prune does it once the volumes freed before it give room");
    }

    /// <summary>
    /// Before compacting <paramref name="volumes"/>: the volume being written, when it is among them, is sealed
    /// now, so that the live records copied out of the others go to a new volume and are not copied twice.
    /// </summary>
    public void PrepareCompaction(IEnumerable<uint> volumes)
    {
        lock (_lock)
            foreach (var w in _writers.Values.Where(w => volumes.Contains(w.Number)).ToList()) SealOrBreak(w);
    }

    /// <summary>
    /// Copies the live records of <paramref name="volume"/> into the volume being written (sealing it first if
    /// it is that one). The copies are pending: the owner commits and journals them, then calls
    /// <see cref="MarkRecycle"/>. Returns how many records and bytes were copied; a record that cannot be read is a
    /// problem, and then the volume is not to be retired. A volume whose live records would bring the library below its
    /// reserve is not copied at all (a problem too): a compaction must not fill the disk it is freeing.
    /// </summary>
    public (int Records, long Bytes, List<string> Problems) CopyLive(uint volume, CancellationToken cancel = default)
    {
        List<KeyValuePair<ChunkId, ChunkLocation>> records;
        lock (_lock)
        {
            ThrowIfBroken();
            records = _index.Entries.Where(e => e.Value.Volume == volume).OrderBy(e => e.Value.Offset).ToList();
            var need = records.Sum(r => (long)VolumeFormat.RecordOverhead + r.Value.Length);
            if (NoRoomToCopy(volume, need, need == 0 ? long.MaxValue : Available(), dryRun: false) is { } noRoom) return (0, 0, [noRoom]);
            if (WriterOf(volume) is { } w) SealOrBreak(w);
        }
        var problems = new List<string>();
        var buffer = new byte[64 * 1024];
        long bytes = 0;
        var copied = 0;
        VolumeReader reader;
        try
        {
            reader = _readers.GetOrAdd(volume, n => new VolumeReader(VolumePath(n)));
        }
        catch (VolumeCorruptException e)
        {
            // Its header is damaged: none of its records is copied, the volume is kept, and the prune goes on with the
            // others. Its chunks are marked damaged, so backups (or a heal) store them again elsewhere.
            lock (_lock)
                foreach (var (id, loc) in records)
                    FoundDamaged(id, loc);
            if (e.Medium) CartridgeError(volume, e.Reason, e.Offset);
            return (0, 0, [$"volume {volume} cannot be opened ({e.Message}): it is kept, and its {records.Count} live chunks are marked damaged " +
                           "(backups of hosts that still have their data store them again; 'abk verify' of a snapshot heals it from a copy)"]);
        }
        foreach (var (id, loc) in records)
        {
            cancel.ThrowIfCancellationRequested();
            var need = VolumeFormat.RecordOverhead + loc.Length;
            if (buffer.Length < need) buffer = new byte[Math.Max(need, buffer.Length * 2)];
            ReadOnlySpan<byte> payload;
            RecordFlags flags;
            try
            {
                _medium.Reading(volume, loc.Offset, need);
                payload = reader.ReadRecord(loc.Offset, id, loc.Length, buffer, out flags);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                if (e is VolumeCorruptException { Medium: true } corrupt) CartridgeError(volume, corrupt.Reason, corrupt.Offset);
                problems.Add($"volume {volume}: chunk {id.Short} at offset {loc.Offset} cannot be read ({e.Message}): the volume is kept");
                continue;
            }
            lock (_lock)
            {
                // Still here? (A concurrent sweep or copy may have moved it.)
                if (!_index.TryGet(id, out var now) || now != loc) continue;
                Append(id, flags, payload);
            }
            copied++;
            bytes += loc.Length;
        }
        return (copied, bytes, problems);
    }

    /// <summary>
    /// A compacted volume is marked Recycle in the table (the owner journals that with its next commit, then
    /// calls <see cref="DeleteVolume"/>; a library that is opened finds Recycle volumes and deletes them).
    /// Refused while any index entry still points into it.
    /// </summary>
    /// <param name="retire">to be taken out of service when deleted (<see cref="VolumeEntry.Retire"/>, kept in the table until then)</param>
    public void MarkRecycle(uint volume, bool retire = false)
    {
        lock (_lock)
        {
            if (_index.Entries.Any(e => e.Value.Volume == volume) || _pending.Values.Concat(_committing.Values).Any(l => l.Volume == volume))
                throw new InvalidOperationException($"volume {volume} still holds live chunks: it is not retired");
            var entry = _manifest.Volumes.Single(v => v.Number == volume);
            if (WriterOf(volume) is { } w) SealOrBreak(w);
            entry.State = VolumeState.Recycle;
            entry.Retire = retire;
            entry.Bytes = 0;
            entry.Records = 0;
            try
            {
                WriteManifest();
            }
            catch (IOException) when (!_ownsIndex)
            {
                // A full disk: the owner's journal says it (the copy in library.json is rewritten at the next commit).
            }
        }
    }

    /// <summary>Deletes a volume marked Recycle; returns the bytes given back.</summary>
    /// <param name="retire">taken out of service: a cartridge is never written again (a disk volume's file just goes)</param>
    public long DeleteVolume(uint volume, bool retire = false)
    {
        lock (_lock)
        {
            var entry = _manifest.Volumes.Single(v => v.Number == volume);
            if (entry.State != VolumeState.Recycle)
                throw new InvalidOperationException($"volume {volume} is not marked for recycling");
            // An open reader keeps the deleted file readable for a read that looked the old place up just before.
            if (_readers.TryRemove(volume, out var reader)) Retire(reader);
            return _medium.Release(volume, retire || entry.Retire); // a disk's file deleted, a cartridge's tape erased for reuse (or retired)
        }
    }

    /// <summary>Under the lock: the volume being written is sealed and closed; the next append opens a new one.</summary>
    private void SealWriter(VolumeWriter w)
    {
        w.Seal();
        _medium.Committed(w.Number, w.Length);
        var entry = _manifest.Volumes.Single(v => v.Number == w.Number);
        entry.State = VolumeState.Full;
        entry.Bytes = w.Length;
        w.Dispose();
        if (_readers.TryRemove(w.Number, out var stale)) Retire(stale);
        foreach (var stream in _writers.Where(kv => kv.Value == w).Select(kv => kv.Key).ToList()) _writers.Remove(stream);
    }

    /// <summary>Sealing outside an append: a write that fails (no room for the footer, say) breaks the library as an append's would.</summary>
    private void SealOrBreak(VolumeWriter w)
    {
        try
        {
            SealWriter(w);
        }
        catch (IOException e)
        {
            throw Break(e);
        }
    }

    /// <summary>Volumes retired by a prune whose file an interrupted prune left behind: deleted now (or at the next open).</summary>
    private void DeleteRecycled()
    {
        foreach (var v in _manifest.Volumes.Where(v => v.State == VolumeState.Recycle))
            try
            {
                _medium.Release(v.Number, v.Retire); // one marked to be retired stays out of service
            }
            catch (IOException)
            {
                // Tried again at the next open; the volume holds nothing the index points to.
            }
            catch (UnauthorizedAccessException)
            {
            }
    }

    /// <summary>
    /// The whole prune of a library that owns its index (the engine on its own, one process): mark from the
    /// kept snapshots' reference lists, sweep, compact the volumes at least <paramref name="threshold"/> dead.
    /// A media agent runs the same steps itself, journaling between them.
    /// </summary>
    public PruneResult Prune(IEnumerable<string> keep, double threshold = 0.2, bool dryRun = false, CancellationToken cancel = default)
    {
        if (!_ownsIndex) throw new InvalidOperationException("a library whose index its owner keeps is pruned by its owner");
        var kept = keep.ToList();
        BeginPrune();
        try
        {
            // One process, no backup running meanwhile: a list the caller does not keep is dead.
            var live = LiveReferences(kept, [], TimeSpan.Zero, out var missing, out var damaged, out var deadLists);
            if (missing.Count > 0 || damaged.Count > 0)
                throw new InvalidOperationException("prune cannot tell what is live: " + string.Join("; ",
                    missing.Select(m => $"snapshot {m} has no reference list here (made before lists were kept): its chunks are unknown").Concat(damaged)));
            var dead = Sweep(live, dryRun);
            var deadBytes = dead.Sum(d => (long)VolumeFormat.RecordOverhead + d.Value.Length);
            var deadIds = dryRun ? dead.Select(d => d.Key).ToHashSet() : null;
            var volumes = VolumesToCompact(threshold, deadIds);
            if (dryRun)
            {
                var passed = new List<string>();
                var fit = ThatFit(volumes, passed);
                return new PruneResult(dead.Count, deadBytes, 0, fit.Sum(v => v.LiveBytes), fit.Select(v => v.Volume).ToList(), fit.Sum(v => v.FileBytes - v.LiveBytes), passed);
            }
            RemoveReferences(deadLists);
            long moved = 0, movedBytes = 0, freed = 0;
            var problems = new List<string>();
            var compacted = new List<uint>();
            PrepareCompaction(volumes.Select(v => v.Volume));
            foreach (var (volume, _, _) in volumes)
            {
                var (records, bytes, copyProblems) = CopyLive(volume, cancel);
                Commit();
                moved += records;
                movedBytes += bytes;
                if (copyProblems.Count > 0)
                {
                    problems.AddRange(copyProblems);
                    continue;
                }
                MarkRecycle(volume);
                Commit();
                freed += DeleteVolume(volume);
                compacted.Add(volume);
            }
            Commit();
            return new PruneResult(dead.Count, deadBytes, moved, movedBytes, compacted, freed - movedBytes, problems);
        }
        finally
        {
            EndPrune();
        }
    }
}
