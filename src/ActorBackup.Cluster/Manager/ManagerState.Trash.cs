using System.Collections.Immutable;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

// Deleted snapshots held for the deletion delay (actorbackup.manager.deletion-delay): out of the catalog (no restore,
// no retention, no copy takes them), their data kept by every prune, until the delay passes (SnapshotsPurged) or an
// operator brings them back (SnapshotsUndeleted). Copies that a copy rule's retention lets go are held the same way.
// What a stolen operator key or a retention cut short by one deletes can be had back within the delay, as from a
// recycle bin; only whoever sets the delay on the manager's node shortens it.
public sealed partial record ManagerState
{
    /// <summary>Deleted snapshots held, by id (<see cref="TrashedSnapshot"/>: the manifest, why, and what to give back).</summary>
    public ImmutableSortedDictionary<string, TrashedSnapshot> Trash { get; init; } = Named<TrashedSnapshot>();

    /// <summary>Copies of snapshots in the catalog that copy retention let go, held: by <see cref="HeldKey"/>.</summary>
    public ImmutableSortedDictionary<string, CopyTrashed> HeldCopies { get; init; } = Named<CopyTrashed>();

    /// <summary>Snapshots an operator brought back: retention no longer deletes them (it would, at once, for the rule that did).</summary>
    public ImmutableHashSet<string> Undeleted { get; init; } = ImmutableHashSet.Create<string>(StringComparer.Ordinal);

    private static string HeldKey(string snapshot, string library) => snapshot + "\n" + library;

    /// <summary>The deleted snapshots out of the catalog into the trash, with their verify and copies (to come back whole).</summary>
    private ManagerState Trashed(SnapshotsTrashed d)
    {
        var ids = d.Snapshots.ToHashSet(StringComparer.Ordinal);
        var trash = Trash;
        foreach (var s in Snapshots.Where(s => ids.Contains(s.Id)))
            trash = trash.SetItem(s.Id, new TrashedSnapshot
            {
                Manifest = s.ToByteString(), DeletedUnixMs = d.UnixMs, Reason = d.Reason, Verified = Verified.Contains(s.Id), ByRetention = d.ByRetention,
                Copies = { Copies.GetValueOrDefault(s.Id) ?? [] }, Suspect = Suspects.GetValueOrDefault(s.Id), LastVerify = Verifications.GetValueOrDefault(s.Id),
            });
        return (this with
        {
            Snapshots = Snapshots.RemoveAll(s => ids.Contains(s.Id)), Verified = Verified.Except(ids), Copies = Copies.RemoveRange(ids), Trash = trash,
            Suspects = Suspects.RemoveRange(ids), Undeleted = Undeleted.Except(ids), Holds = Holds.RemoveRange(ids), Verifications = Verifications.RemoveRange(ids),
        }).WithChains();
    }

    /// <summary>A copy let go by its rule's retention, held: no longer the snapshot's, its data kept.</summary>
    private ManagerState HeldCopy(CopyTrashed c) => this with
    {
        Copies = (Copies.GetValueOrDefault(c.Snapshot) ?? []).Remove(c.Library) is { Count: > 0 } left ? Copies.SetItem(c.Snapshot, left) : Copies.Remove(c.Snapshot),
        HeldCopies = HeldCopies.SetItem(HeldKey(c.Snapshot, c.Library), c),
    };

    /// <summary>Held snapshots, and held copies of these ids, back as they were (a snapshot in its place in the catalog).</summary>
    private ManagerState Untrashed(IEnumerable<string> ids)
    {
        var state = this;
        foreach (var id in ids)
        {
            if (state.Trash.TryGetValue(id, out var held))
            {
                state = state.WithSnapshot(SnapshotManifest.Parser.ParseFrom(held.Manifest)) with
                {
                    Verified = held.Verified ? state.Verified.Add(id) : state.Verified,
                    Copies = held.Copies.Count > 0 ? state.Copies.SetItem(id, held.Copies.ToImmutableSortedSet(StringComparer.Ordinal)) : state.Copies,
                    Trash = state.Trash.Remove(id),
                    Suspects = held.Suspect is { } suspect ? state.Suspects.SetItem(id, suspect) : state.Suspects,
                    Verifications = held.LastVerify is { } last ? state.Verifications.SetItem(id, last) : state.Verifications,
                };
            }
            foreach (var copy in state.HeldCopies.Values.Where(c => c.Snapshot == id).ToList())
                state = state with
                {
                    Copies = state.Copies.SetItem(id, (state.Copies.GetValueOrDefault(id) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(copy.Library)),
                    HeldCopies = state.HeldCopies.Remove(HeldKey(id, copy.Library)),
                };
        }
        return state.WithChains();
    }

    /// <summary>Held snapshots and copies past the delay: let go as a deletion (a snapshot) or a dropped copy is.</summary>
    private ManagerState Purged(SnapshotsPurged p)
    {
        var trashed = p.Snapshots.Where(Trash.ContainsKey).ToHashSet(StringComparer.Ordinal);
        // A trashed snapshot's held copies go with it (Untrashed gives them back to it first).
        var state = Untrashed(trashed).WithoutSnapshots(trashed);
        var pending = state.PendingDeletions;
        var held = state.HeldCopies;
        // (The same hold: a copy made again since and let go again is held anew, from then.)
        foreach (var copy in p.Copies.Where(c => held.TryGetValue(HeldKey(c.Snapshot, c.Library), out var h) && h.UnixMs == c.UnixMs))
        {
            pending = pending.SetItem(copy.Library, (pending.GetValueOrDefault(copy.Library) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(copy.Snapshot));
            held = held.Remove(HeldKey(copy.Snapshot, copy.Library));
        }
        return state with { PendingDeletions = pending, HeldCopies = held };
    }

    /// <summary>The held snapshots and copies on <paramref name="library"/> (held there, copied there, or spanning it): a prune keeps their data.</summary>
    private IEnumerable<string> HeldOn(string library) =>
        Trash.Where(t => t.Value.Copies.Contains(library) || ManifestOf(t.Value) is var m && (m.Library == library || m.Spans.Contains(library))).Select(t => t.Key)
            .Concat(HeldCopies.Values.Where(c => c.Library == library).Select(c => c.Snapshot));

    private static SnapshotManifest ManifestOf(TrashedSnapshot t) => SnapshotManifest.Parser.ParseFrom(t.Manifest);

    /// <summary>
    /// The held snapshots and copies whose delay (<paramref name="delay"/>, the manager's setting now) has passed at
    /// <paramref name="now"/>: purged, their data let go at each library's next prune; null when none is due.
    /// </summary>
    public SnapshotsPurged? DecidePurge(DateTimeOffset now, TimeSpan delay)
    {
        var before = now.ToUnixTimeMilliseconds() - (long)delay.TotalMilliseconds;
        var due = Trash.Where(t => t.Value.DeletedUnixMs <= before).Select(t => t.Key).ToList();
        var copies = HeldCopies.Values.Where(c => c.UnixMs <= before && !due.Contains(c.Snapshot)).ToList();
        return due.Count == 0 && copies.Count == 0 ? null : new SnapshotsPurged { Snapshots = { due }, Copies = { copies }, UnixMs = now.ToUnixTimeMilliseconds() };
    }

    /// <summary>
    /// An operator's undelete: every snapshot named (an id, or a unique prefix of one) must be held, or have held copies,
    /// or none comes back. What comes back is no longer deleted by retention (<see cref="Undeleted"/>): it would be again at
    /// once, for the rule that deleted it; an operator's delete takes it.
    /// </summary>
    public (SnapshotDeletion Answer, Decision Decision) DecideUndelete(UndeleteSnapshots cmd, string by, DateTimeOffset now)
    {
        if (cmd.Snapshots.Count == 0) return (new SnapshotDeletion(), Reject("name at least one deleted snapshot: 'abk snapshot list --deleted' shows them"));
        var held = Trash.Keys.Concat(HeldCopies.Values.Select(c => c.Snapshot)).Distinct().ToList();
        var (found, problems) = ByPrefix(cmd.Snapshots, held, "deleted snapshots", asked =>
            asked.Length > 0 && Snapshots.Exists(s => s.Id.StartsWith(asked, StringComparison.Ordinal))
                ? $"snapshot {asked} is in the catalog, not deleted"
                : $"no deleted snapshot {asked} is held (its delay passed and it was purged, or it was never deleted): 'abk snapshot list --deleted' shows those held");
        if (problems.Count > 0) return (new SnapshotDeletion(), Reject(string.Join("; ", problems) + "; nothing was brought back"));
        var e = new SnapshotsUndeleted { UnixMs = now.ToUnixTimeMilliseconds(), By = by, Snapshots = { found } };
        var back = Untrashed(found);
        var answer = new SnapshotDeletion { Applied = true };
        answer.Snapshots.AddRange(found.Select(id => back.InfoOf(back.Snapshots.First(s => s.Id == id))));
        return (answer, new Decision([e], null));
    }

    /// <summary>
    /// Each of <paramref name="asked"/> (an id, or a unique prefix of one) among <paramref name="ids"/> (<paramref name="kind"/>),
    /// each once: the ids found, and why the others are none (<paramref name="none"/>) or more than one.
    /// </summary>
    private static (List<string> Found, List<string> Problems) ByPrefix(IEnumerable<string> asked, IEnumerable<string> ids, string kind, Func<string, string> none)
    {
        var found = new List<string>();
        var problems = new List<string>();
        foreach (var prefix in asked)
        {
            var matches = ids.Where(id => prefix.Length > 0 && id.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            if (matches.Count == 0) problems.Add(none(prefix));
            else if (matches.Count > 1) problems.Add($"{prefix} names {matches.Count} {kind}: give more of the id");
            else if (!found.Contains(matches[0])) found.Add(matches[0]);
        }
        return (found, problems);
    }

    /// <summary>The held snapshots and copies as a list shows them (<paramref name="delay"/>: when each one's data goes), oldest deletion first.</summary>
    public IEnumerable<SnapshotInfo> TrashInfos(TimeSpan delay, string client)
    {
        var snapshots = Trash.Values.Select(t =>
        {
            var info = Info(ManifestOf(t));
            info.Verified = t.Verified;
            info.Copies.AddRange(t.Copies);
            info.DeletedUnixMs = t.DeletedUnixMs;
            info.DeletedReason = t.Reason;
            return info;
        });
        // A snapshot's held copies in one line (the pager keys by id); a trashed snapshot's go with it (back or purged) and are not listed apart.
        var copies = HeldCopies.Values.Where(c => !Trash.ContainsKey(c.Snapshot)).GroupBy(c => c.Snapshot)
            .Select(g => (Copies: g.ToList(), Snapshot: Snapshots.FirstOrDefault(s => s.Id == g.Key))).Where(x => x.Snapshot is not null).Select(x =>
            {
                var info = Info(x.Snapshot!);
                info.DeletedUnixMs = x.Copies.Min(c => c.UnixMs);
                info.DeletedReason = string.Join("; ", x.Copies.Select(c => $"its copy on {c.Library}: {c.Reason}"));
                return info;
            });
        return snapshots.Concat(copies).Where(i => client == "" || i.Client == client).OrderBy(i => i.DeletedUnixMs).Select(i =>
        {
            i.PurgeAfterUnixMs = i.DeletedUnixMs + (long)delay.TotalMilliseconds;
            return i;
        });
    }
}
