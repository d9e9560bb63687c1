using System.Collections.Immutable;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

// Deleted snapshots held for the deletion delay (actorbackup.manager.deletion-delay): out of the catalog (no restore,
// no retention, no copy takes them), their data kept by every prune, until the delay passes (SnapshotsPurged) or an
// operator brings them back (SnapshotsUndeleted). What a stolen operator key or a retention cut short by one deletes
// can be had back within the delay, as from a recycle bin; only whoever sets the delay on the manager's node shortens it.
public sealed partial record ManagerState
{
    /// <summary>Deleted snapshots held, by id (<see cref="TrashedSnapshot"/>: the manifest, why, and what to give back).</summary>
    public ImmutableSortedDictionary<string, TrashedSnapshot> Trash { get; init; } = Named<TrashedSnapshot>();

    /// <summary>The deleted snapshots out of the catalog into the trash, with their verify and copies (to come back whole).</summary>
    private ManagerState Trashed(SnapshotsDeleted d)
    {
        var ids = d.Snapshots.ToHashSet(StringComparer.Ordinal);
        var trash = Trash;
        foreach (var s in Snapshots.Where(s => ids.Contains(s.Id)))
            trash = trash.SetItem(s.Id, new TrashedSnapshot
            {
                Manifest = s.ToByteString(), DeletedUnixMs = d.UnixMs, Reason = d.Reason, Verified = Verified.Contains(s.Id), ByRetention = d.ByRetention,
                Copies = { Copies.GetValueOrDefault(s.Id) ?? [] },
            });
        return (this with
        {
            Snapshots = Snapshots.RemoveAll(s => ids.Contains(s.Id)), Verified = Verified.Except(ids), Copies = Copies.RemoveRange(ids), Trash = trash,
        }).WithChains();
    }

    /// <summary>Held snapshots back into the catalog as they were (in the order of their starts, where they were).</summary>
    private ManagerState Untrashed(IEnumerable<string> ids)
    {
        var state = this;
        foreach (var id in ids)
        {
            if (!state.Trash.TryGetValue(id, out var held)) continue;
            var manifest = SnapshotManifest.Parser.ParseFrom(held.Manifest);
            var at = state.Snapshots.FindIndex(s => s.StartedUnixMs > manifest.StartedUnixMs);
            state = state with
            {
                Snapshots = at < 0 ? state.Snapshots.Add(manifest) : state.Snapshots.Insert(at, manifest),
                Verified = held.Verified ? state.Verified.Add(id) : state.Verified,
                Copies = held.Copies.Count > 0 ? state.Copies.SetItem(id, held.Copies.ToImmutableSortedSet(StringComparer.Ordinal)) : state.Copies,
                Trash = state.Trash.Remove(id),
            };
        }
        return state.WithChains();
    }

    /// <summary>The held snapshots on <paramref name="library"/> (held there, copied there, or spanning it): a prune keeps their data.</summary>
    private IEnumerable<string> HeldOn(string library) =>
        Trash.Where(t => t.Value.Copies.Contains(library) || ManifestOf(t.Value) is var m && (m.Library == library || m.Spans.Contains(library))).Select(t => t.Key);

    private static SnapshotManifest ManifestOf(TrashedSnapshot t) => SnapshotManifest.Parser.ParseFrom(t.Manifest);

    /// <summary>
    /// The held snapshots whose delay (<paramref name="delay"/>, the manager's setting now) has passed at <paramref name="now"/>:
    /// purged, their data let go at each library's next prune; null when none is due.
    /// </summary>
    public SnapshotsPurged? DecidePurge(DateTimeOffset now, TimeSpan delay)
    {
        var due = Trash.Where(t => t.Value.DeletedUnixMs + (long)delay.TotalMilliseconds <= now.ToUnixTimeMilliseconds()).Select(t => t.Key).ToList();
        return due.Count == 0 ? null : new SnapshotsPurged { Snapshots = { due }, UnixMs = now.ToUnixTimeMilliseconds() };
    }

    /// <summary>An operator's undelete: every snapshot named (an id, or a unique prefix of one) must be held, or none comes back.</summary>
    public (SnapshotDeletion Answer, Decision Decision) DecideUndelete(UndeleteSnapshots cmd, string by, DateTimeOffset now)
    {
        if (cmd.Snapshots.Count == 0) return (new SnapshotDeletion(), Reject("name at least one deleted snapshot: 'abk snapshot list --deleted' shows them"));
        var found = new List<string>();
        var problems = new List<string>();
        foreach (var asked in cmd.Snapshots)
        {
            var matches = Trash.Keys.Where(id => id.StartsWith(asked, StringComparison.Ordinal)).ToList();
            if (asked.Length == 0 || matches.Count == 0)
                problems.Add(Snapshots.Exists(s => s.Id.StartsWith(asked, StringComparison.Ordinal)) && asked.Length > 0
                    ? $"snapshot {asked} is in the catalog, not deleted"
                    : $"no deleted snapshot {asked} is held (its delay passed and it was purged, or it was never deleted): 'abk snapshot list --deleted' shows those held");
            else if (matches.Count > 1) problems.Add($"{asked} names {matches.Count} deleted snapshots: give more of the id");
            else if (!found.Contains(matches[0])) found.Add(matches[0]);
        }
        if (problems.Count > 0) return (new SnapshotDeletion(), Reject(string.Join("; ", problems) + "; nothing was brought back"));
        var e = new SnapshotsUndeleted { UnixMs = now.ToUnixTimeMilliseconds(), By = by, Snapshots = { found } };
        var back = Untrashed(found);
        var answer = new SnapshotDeletion { Applied = true };
        answer.Snapshots.AddRange(found.Select(id => back.InfoOf(back.Snapshots.First(s => s.Id == id))));
        return (answer, new Decision([e], null));
    }

    /// <summary>The held snapshots as a list shows them (<paramref name="delay"/>: when each one's data goes), oldest deletion first.</summary>
    public IEnumerable<SnapshotInfo> TrashInfos(TimeSpan delay, string client) =>
        Trash.Values.OrderBy(t => t.DeletedUnixMs).Select(t =>
        {
            var m = ManifestOf(t);
            var info = Info(m);
            info.Verified = t.Verified;
            info.Copies.AddRange(t.Copies);
            info.DeletedUnixMs = t.DeletedUnixMs;
            info.DeletedReason = t.Reason;
            info.PurgeAfterUnixMs = t.DeletedUnixMs + (long)delay.TotalMilliseconds;
            return info;
        }).Where(i => client == "" || i.Client == client);
}
