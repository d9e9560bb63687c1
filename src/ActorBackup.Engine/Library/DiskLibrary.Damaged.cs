using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;

namespace ActorBackup.Engine.Library;

// Chunks found damaged where the index says they are (a record whose checksum, magic or id is wrong; its volume gone):
// the library answers them as missing to writers (Missing, Contains, TryReserve), so the next backup of a host that
// still holds the data, or a copy or heal from another library, stores them again, and the new record, indexed in
// the old one's place, mends every snapshot that names the chunk (they name ids, not places). Until then the index
// still points at the damaged record: nothing is dropped on a suspicion, and a read error that passes costs only one
// chunk stored twice. A mark holds for the place it was found at: a chunk stored again (or moved by a prune) is sound.
public sealed partial class DiskLibrary
{
    /// <summary>The most chunks marked damaged at once (a lost volume of a million small chunks); past it, new ones are not marked.</summary>
    public const int MaxDamaged = 1_000_000;

    private readonly Dictionary<ChunkId, ChunkLocation> _damaged = [];
    /// <summary>Found damaged (by reads, or a check), not yet handed to the owner to journal (<see cref="TakeFoundDamaged"/>).</summary>
    private readonly List<(ChunkId Id, ChunkLocation At)> _foundDamaged = [];

    /// <summary>Whether the index holds <paramref name="id"/> at the place it was found damaged at. Under the lock.</summary>
    private bool IsDamaged(ChunkId id) =>
        _damaged.Count > 0 && _damaged.TryGetValue(id, out var at) && _index.TryGet(id, out var now) && now.Equals(at);

    /// <summary>A chunk a writer need not store: committed and not found damaged there, or about to be committed. Under the lock.</summary>
    private bool HasSound(ChunkId id) => Staged(id) || (_index.Contains(id) && !IsDamaged(id));

    /// <summary>
    /// Marks chunks damaged at the places a library check found no whole record of them (<see cref="VerifyReport.DamagedAt"/>),
    /// while the index still has them there (one stored again, or moved by a prune, since is sound); marked already: passed over.
    /// </summary>
    /// <returns>the marks made (also handed to the owner to journal by <see cref="TakeFoundDamaged"/>)</returns>
    public IReadOnlyList<(ChunkId Id, ChunkLocation At)> MarkDamaged(IEnumerable<(ChunkId Id, ChunkLocation At)> found)
    {
        lock (_lock)
        {
            var made = new List<(ChunkId, ChunkLocation)>();
            foreach (var (id, at) in found)
                if (_index.TryGet(id, out var now) && now.Equals(at) && Mark(id, at)) made.Add((id, at));
            _foundDamaged.AddRange(made);
            return made;
        }
    }

    /// <summary>The marks the owner journaled before (its recovery): those whose chunk is still at that place hold again.</summary>
    public void RecoveredDamaged(IEnumerable<(ChunkId Id, ChunkLocation At)> marks)
    {
        lock (_lock)
            foreach (var (id, at) in marks)
                if (_index.TryGet(id, out var now) && now.Equals(at)) Mark(id, at);
    }

    /// <summary>The marks that hold (their chunk still at the damaged place): what the owner's snapshot keeps.</summary>
    public IReadOnlyList<(ChunkId Id, ChunkLocation At)> Damaged
    {
        get
        {
            lock (_lock)
            {
                foreach (var stale in _damaged.Where(d => !(_index.TryGet(d.Key, out var now) && now.Equals(d.Value))).Select(d => d.Key).ToList()) _damaged.Remove(stale);
                return _damaged.Select(d => (d.Key, d.Value)).ToList();
            }
        }
    }

    /// <summary>Chunks found damaged since the last call (by reads for restores, verifies and copies, or a check): marked already, for the owner to journal.</summary>
    public IReadOnlyList<(ChunkId Id, ChunkLocation At)> TakeFoundDamaged()
    {
        lock (_lock)
        {
            if (_foundDamaged.Count == 0) return [];
            var found = _foundDamaged.ToList();
            _foundDamaged.Clear();
            return found;
        }
    }

    /// <summary>A read found <paramref name="id"/>'s record at <paramref name="at"/> damaged. Under the lock.</summary>
    private void FoundDamaged(ChunkId id, ChunkLocation at)
    {
        // (A library that keeps its own index, the engine CLI's, has nobody to take them: its marks last while it is open,
        // and what waits to be taken is bounded as the marks are.)
        if (_index.TryGet(id, out var now) && now.Equals(at) && Mark(id, at)) _foundDamaged.Add((id, at));
    }

    private bool Mark(ChunkId id, ChunkLocation at)
    {
        if (_damaged.TryGetValue(id, out var was) && was.Equals(at)) return false;
        if (_damaged.Count >= MaxDamaged && !_damaged.ContainsKey(id)) return false;
        _damaged[id] = at;
        return true;
    }
}
