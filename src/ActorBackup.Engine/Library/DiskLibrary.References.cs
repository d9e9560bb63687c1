using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

// What each snapshot references (refs/SNAPSHOT.ref), kept with the volumes so that a prune needs no key.
public sealed partial class DiskLibrary
{
    /// <summary>At most this many ids wait for a commit (32 bytes each): a bound on what a session can make the library hold.</summary>
    public const int MaxStagedReferences = 64 * 1024 * 1024;

    private readonly Dictionary<string, List<ChunkId>> _stagedReferences = [];
    private long _stagedCount;

    public string ReferencesDir => Path.Combine(Root, "refs");

    /// <summary>The lists, whole or as deltas on shared bases (<see cref="ReferenceStore"/>).</summary>
    private ReferenceStore References { get; }

    /// <summary>
    /// The reference lists here that cannot be read (or whose base cannot), with the reason: a prune stops at them
    /// (a library check reports them).
    /// </summary>
    public List<(string Snapshot, string Reason)> DamagedReferences() => References.Damaged();

    void Codec.IChunkSink.AddReferences(string snapshot, IReadOnlyList<ChunkId> ids) => AddReferences(snapshot, ids);

    /// <summary>Ids that snapshot <paramref name="snapshot"/> references, written to refs/ at the next commit (may come in parts).</summary>
    public void AddReferences(string snapshot, IReadOnlyList<ChunkId> ids)
    {
        if (!ReferenceList.IsValidSnapshotId(snapshot)) throw new ArgumentException($"'{snapshot}' is not a snapshot id (letters, digits, '-', '_'; at most 64)");
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_closed, this); // closed (opened again as another object): nothing staged here is ever committed
            if (_stagedCount + ids.Count > MaxStagedReferences)
                throw new InvalidOperationException($"library {Id}: more than {MaxStagedReferences} chunk references wait for a commit; commit first");
            if (!_stagedReferences.TryGetValue(snapshot, out var list)) _stagedReferences[snapshot] = list = [];
            list.AddRange(ids);
            _stagedCount += ids.Count;
        }
    }

    /// <summary>
    /// Under the lock, at a commit: every staged list becomes its file, durably, before the commit is. A part that
    /// cannot join its list (the list, or the base it is a delta on, is damaged) is dropped and the list marked
    /// incomplete, durably (<see cref="ReferenceStore.MarkIncomplete"/>): the commit goes on (the chunks are stored; it
    /// is the list that is damaged, and a write failure would break the library for every job), and the list stays
    /// damaged whatever it reads as later: it stops this library's prunes, which name it, as a library check does
    /// (<see cref="DamagedReferences"/>), until its snapshot is deleted.
    /// </summary>
    private void WriteStagedReferences()
    {
        var written = false;
        foreach (var (snapshot, ids) in _stagedReferences.ToList())
        {
            // A snapshot's list may come in parts, over several connections and commits: a part already written joins the rest.
            try
            {
                References.Add(snapshot, ids); // sorted where it is
            }
            catch (InvalidDataException e)
            {
                References.MarkIncomplete(snapshot, e.Message); // the part dropped: see the summary
            }
            _listsWritten?.Add(snapshot); // live for a prune under way (DiskLibrary.Prune)
            _stagedReferences.Remove(snapshot);
            _stagedCount -= ids.Count;
            written = true;
        }
        if (written) Posix.Posix.SyncDirectory(ReferencesDir); // the lists' names are on disk before the commit is answered
    }

    /// <summary>
    /// The live records carrying <paramref name="flag"/> (snapshot manifests, say), found without the key: a sealed
    /// volume's footer lists its records with their flags; the open one is scanned. For a rebuild of the catalog.
    /// </summary>
    public IReadOnlyList<ChunkId> FindRecords(RecordFlags flag)
    {
        List<VolumeEntry> volumes;
        lock (_lock)
        {
            FlushWriters();
            volumes = _manifest.Volumes.Where(v => v.State is not (VolumeState.Recycle or VolumeState.Error) && v.Records > 0).Select(Clone).ToList();
        }
        var found = new List<ChunkId>();
        foreach (var v in volumes)
        {
            List<RecordInfo> records;
            try
            {
                using var reader = new VolumeReader(VolumePath(v.Number));
                _medium.Reading(v.Number, 0, reader.Length);
                records = reader.ReadTrailer() is { } t ? FooterOrScan(reader, t.FooterOffset, t.Count) : reader.Scan().Records;
            }
            catch (Exception e) when (e is IOException or VolumeCorruptException)
            {
                continue; // a damaged or missing volume: verify names it
            }
            lock (_lock)
                foreach (var r in records)
                    if ((r.Flags & flag) != 0 && TryGetLocationLocked(r.Id, out var at) && at.Volume == v.Number && at.Offset == r.Offset) found.Add(r.Id);
        }
        return found;
    }

    /// <summary>A sealed volume's records from its footer, or record by record when the footer is damaged (the records may not be).</summary>
    private static List<RecordInfo> FooterOrScan(VolumeReader reader, long footerOffset, int count)
    {
        try
        {
            return reader.ReadFooter(footerOffset, count);
        }
        catch (VolumeCorruptException)
        {
            return reader.Scan().Records;
        }
    }

    /// <summary>The snapshots whose reference lists here name any of <paramref name="ids"/> (what a damaged chunk takes with it).</summary>
    public IReadOnlyList<string> SnapshotsReferencing(IReadOnlyCollection<ChunkId> ids)
    {
        var wanted = ids.ToHashSet();
        if (wanted.Count == 0) return [];
        return References.Referencing(References.Snapshots(), wanted).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The snapshots whose reference list this library holds (a whole copy of a snapshot has one).</summary>
    public IEnumerable<string> SnapshotsReferenced() => References.Snapshots();

    /// <summary>Whether snapshot <paramref name="snapshot"/>'s reference list is here.</summary>
    public bool HasReferences(string snapshot) => ReferenceList.IsValidSnapshotId(snapshot) && File.Exists(References.PathOf(snapshot));

    /// <summary>
    /// Snapshot <paramref name="snapshot"/>'s ids, sorted: FileNotFoundException when it has no list here,
    /// InvalidDataException when its list (or the base it is a delta on) is damaged.
    /// </summary>
    public ChunkId[] ReadReferences(string snapshot) => References.Read(snapshot);
}
