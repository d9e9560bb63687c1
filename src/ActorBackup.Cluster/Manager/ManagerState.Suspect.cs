using System.Collections.Immutable;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

// Suspect snapshots (Suspicion): a backup that changed far more of its set than the set's recent ones. Retention
// deletes nothing of that client's set while one is not cleared, so that the snapshots from before the change (the
// last good ones, if it was ransomware) stay however many encrypted backups follow.
public sealed partial record ManagerState
{
    /// <summary>Suspect snapshots not cleared yet, by id.</summary>
    public ImmutableSortedDictionary<string, SnapshotSuspect> Suspects { get; init; } = Named<SnapshotSuspect>();

    /// <summary>The suspicion a recorded snapshot raises (<paramref name="suspicion"/>, the manager's setting), or null.</summary>
    public SnapshotSuspect? DecideSuspect(SnapshotManifest recorded, Suspicion suspicion, DateTimeOffset now)
    {
        var earlier = Snapshots.Where(s => s.Client == recorded.Client && s.BackupSet == recorded.BackupSet && s.Id != recorded.Id && s.StartedUnixMs < recorded.StartedUnixMs).ToList();
        // Each library deduplicates on its own: the set's first backup into a library (a pool's fill-first moving on, a
        // backup moved off a library that failed) is all new there without anything changing. (Only an exemption: a
        // set whose older snapshots tiered away keeps its whole history as the baseline.)
        if (!earlier.Exists(s => s.Library == recorded.Library || s.Spans.Contains(recorded.Library))) return null;
        return suspicion.Of(recorded, earlier) is { } reason
            ? new SnapshotSuspect { Snapshot = recorded.Id, Reason = reason, UnixMs = now.ToUnixTimeMilliseconds(), Client = recorded.Client, BackupSet = recorded.BackupSet }
            : null;
    }

    /// <summary>The suspect snapshot that holds a group's retention (the group's first), or null.</summary>
    private SnapshotSuspect? SuspectIn(IEnumerable<SnapshotManifest> group) =>
        Suspects.Count == 0 ? null : group.Select(s => Suspects.GetValueOrDefault(s.Id)).FirstOrDefault(s => s is not null);

    /// <summary>An operator's clear: every snapshot named (an id or a unique prefix) must be suspect, or none is cleared.</summary>
    public (SnapshotDeletion Answer, Decision Decision) DecideClearSuspect(ClearSuspect cmd, string by, DateTimeOffset now)
    {
        if (cmd.Snapshots.Count == 0) return (new SnapshotDeletion(), Reject("name at least one suspect snapshot: 'abk snapshot list' marks them"));
        var (found, problems) = ByPrefix(cmd.Snapshots, Suspects.Keys, "suspect snapshots", asked => $"snapshot {asked} is not suspect: 'abk snapshot list' marks those that are");
        if (problems.Count > 0) return (new SnapshotDeletion(), Reject(string.Join("; ", problems) + "; nothing was cleared"));
        var e = new SuspectCleared { Snapshots = { found }, UnixMs = now.ToUnixTimeMilliseconds(), By = by };
        var after = Apply(e);
        var answer = new SnapshotDeletion { Applied = true };
        answer.Snapshots.AddRange(found.Select(id => after.Snapshots.FirstOrDefault(s => s.Id == id) is { } s ? after.InfoOf(s) : new SnapshotInfo { Id = id }));
        return (answer, new Decision([e], null));
    }
}
