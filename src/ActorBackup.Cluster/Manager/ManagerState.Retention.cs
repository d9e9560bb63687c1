using System.Collections.Immutable;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

// The catalog's side of the data lifecycle: snapshots deleted by an operator or by their policy's retention.
// A deleted snapshot leaves the catalog at once; its chunks stay in the library until a prune.
public sealed partial record ManagerState
{
    private ManagerState WithoutSnapshots(IReadOnlySet<string> ids)
    {
        // Each library's next prune lets the deleted snapshots' chunks go.
        var pending = PendingDeletions;
        foreach (var s in Snapshots.Where(s => ids.Contains(s.Id)))
            foreach (var library in LibrariesOf(s))
                pending = pending.SetItem(library, (pending.GetValueOrDefault(library) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(s.Id));
        return (this with
        {
            Snapshots = Snapshots.RemoveAll(s => ids.Contains(s.Id)), Verified = Verified.Except(ids), PendingDeletions = pending, Copies = Copies.RemoveRange(ids),
        }).WithChains();
    }

    /// <summary>The schedule clock of the cell's own prunes (actorbackup.manager.prune-schedule), kept with the sets' clocks.</summary>
    public const string PruneClock = "@prune";

    /// <summary>
    /// The scheduled prune of every library, when a slot of <paramref name="cron"/> (UTC) passed since the last
    /// one acted on: one job per library, each slot once (the slot is journaled with the jobs), after a downtime
    /// one prune, not one per missed slot. The first look only starts the clock. Empty when nothing is due.
    /// </summary>
    public IReadOnlyList<IMessage> DecideScheduledPrune(string cron, DateTimeOffset now)
    {
        if (cron == "" || ParseCron(cron, out _) is not { } rule) return [];
        if (!SetClocks.TryGetValue(PruneClock, out var clock))
            return [new SlotMissed { Set = PruneClock, SlotUnixMs = now.ToUnixTimeMilliseconds(), Reason = "the prune schedule starts now" }];
        var after = DateTimeOffset.FromUnixTimeMilliseconds(clock.LastSlotUnixMs).UtcDateTime;
        if (rule.GetNextOccurrence(after, TimeZoneInfo.Utc) is not { } first || first > now.UtcDateTime) return [];
        var slot = rule.GetOccurrences(first, now.UtcDateTime, TimeZoneInfo.Utc, fromInclusive: true, toInclusive: true).Last();
        var slotMs = new DateTimeOffset(slot, TimeSpan.Zero).ToUnixTimeMilliseconds();
        var decision = DecidePrune(new StartPrune { Origin = JobOrigin.Schedule }, now);
        if (decision.Rejection is not null) return [new SlotMissed { Set = PruneClock, SlotUnixMs = slotMs, Reason = decision.Rejection }];
        foreach (var q in decision.Events.Cast<JobQueued>())
        {
            q.Job.BackupSet = PruneClock;
            q.Job.SlotUnixMs = slotMs;
        }
        return decision.Events;
    }

    /// <summary>Prune jobs: one for the library named, or one for each registered library.</summary>
    public Decision DecidePrune(StartPrune cmd, DateTimeOffset now)
    {
        if (cmd.Library != "" && !Libraries.ContainsKey(cmd.Library))
            return Reject($"unknown library '{cmd.Library}': known are {(Libraries.Count == 0 ? "none yet" : string.Join(", ", Libraries.Keys))}");
        if (cmd.Priority is < 0 or > 10) return Reject($"priority {cmd.Priority} is out of range: 1 (lowest) to 10 (highest)");
        var libraries = cmd.Library != "" ? [cmd.Library] : Libraries.Keys.ToList();
        if (libraries.Count == 0) return Reject("no library is registered: start a node with the media role");
        var events = new List<Google.Protobuf.IMessage>();
        var next = NextJob;
        JobInfo? first = null;
        foreach (var library in libraries)
        {
            var job = new JobInfo
            {
                Id = (next++).ToString(), Kind = JobKind.Prune, State = JobState.Queued, Library = library, LibraryPinned = true, DryRun = cmd.DryRun,
                QueuedUnixMs = now.ToUnixTimeMilliseconds(), Priority = PriorityOf(cmd.Priority), Origin = cmd.Origin == JobOrigin.Unspecified ? JobOrigin.Integrator : cmd.Origin,
            };
            first ??= job;
            events.Add(new JobQueued { Job = job });
        }
        return new Decision(events, null, first);
    }

    /// <summary>What a prune of <paramref name="library"/> is told: the catalog's snapshots there, and those deleted since its last prune.</summary>
    public PruneLibrary PruneRequest(JobInfo job, double threshold, TimeSpan orphansAfter)
    {
        var r = new PruneLibrary
        {
            Library = job.Library, Job = job.Id, Attempt = job.Attempt, DryRun = job.DryRun, CompactThreshold = threshold, OrphanAfterSeconds = (long)orphansAfter.TotalSeconds,
        };
        r.Keep.AddRange(Snapshots.Where(s => LibrariesOf(s).Contains(job.Library)).Select(s => s.Id));
        r.Deleted.AddRange(PendingDeletions.GetValueOrDefault(job.Library) ?? []);
        return r;
    }

    /// <summary>Snapshots that a job which has not ended reads (a restore; later a copy or a verify): not deleted under it.</summary>
    public IReadOnlySet<string> SnapshotsInUse() =>
        Jobs.Values.Where(j => !IsFinal(j.State) && j.Kind != JobKind.Backup && j.Snapshot != "").Select(j => j.Snapshot).ToHashSet();

    /// <summary>An operator's delete: every snapshot named must exist and be free, or nothing is deleted.</summary>
    public (SnapshotDeletion Answer, Decision Decision) DecideDeleteSnapshots(DeleteSnapshots cmd, DateTimeOffset now)
    {
        if (cmd.Snapshots.Count == 0) return (new SnapshotDeletion(), Reject("name at least one snapshot: 'abk snapshot list' shows them"));
        var found = new List<SnapshotManifest>();
        var problems = new List<string>();
        var inUse = SnapshotsInUse();
        foreach (var id in cmd.Snapshots)
        {
            SnapshotManifest s;
            try
            {
                s = FindSnapshot(id);
            }
            catch (KeyNotFoundException unknown)
            {
                problems.Add(unknown.Message);
                continue;
            }
            if (inUse.Contains(s.Id))
                problems.Add($"snapshot {s.Id} is read by job {Jobs.Values.First(j => !IsFinal(j.State) && j.Snapshot == s.Id).Id}: wait for it, or cancel it");
            else if (found.All(f => f.Id != s.Id)) found.Add(s);
        }
        if (problems.Count > 0) return (new SnapshotDeletion(), Reject(string.Join("; ", problems) + "; nothing was deleted"));
        var answer = new SnapshotDeletion { Applied = !cmd.DryRun };
        answer.Snapshots.AddRange(found.Select(InfoOf));
        if (cmd.DryRun) return (answer, new Decision([], null));
        var e = new SnapshotsDeleted { Reason = "deleted by an operator", UnixMs = now.ToUnixTimeMilliseconds() };
        e.Snapshots.AddRange(found.Select(s => s.Id));
        return (answer, new Decision([e], null));
    }

    /// <summary>
    /// What the retention of each set's policy deletes now (null: nothing): every snapshot that no rule keeps
    /// and no running job reads. <paramref name="only"/>: just the group of that snapshot (after a backup).
    /// </summary>
    public SnapshotsDeleted? DecideRetention(DateTimeOffset now, SnapshotManifest? only = null)
    {
        var inUse = SnapshotsInUse();
        var go = new List<string>();
        var policies = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var group in Groups(only))
        {
            var (policy, rules, zone) = RetentionOf(group.First());
            if (!rules.Limits) continue;
            foreach (var v in Retention.Evaluate(group, rules, zone, s => Verified.Contains(s.Id)))
                if (!v.Keep && !inUse.Contains(v.Snapshot.Id))
                {
                    go.Add(v.Snapshot.Id);
                    policies.Add($"'{policy.Name}' ({rules})");
                }
        }
        if (go.Count == 0) return null;
        var e = new SnapshotsDeleted { Reason = $"retention of storage polic{(policies.Count > 1 ? "ies" : "y")} {string.Join(", ", policies)}", UnixMs = now.ToUnixTimeMilliseconds(), ByRetention = true };
        var gone = go.ToHashSet();
        e.Snapshots.AddRange(Snapshots.Where(x => gone.Contains(x.Id)).Select(x => x.Id)); // oldest first, as the catalog lists them
        return e;
    }

    /// <summary>Every snapshot with the rules that keep it (none: retention deletes it when no job reads it).</summary>
    public IReadOnlyDictionary<string, RetentionVerdict> RetentionVerdicts()
    {
        var verdicts = new Dictionary<string, RetentionVerdict>();
        foreach (var group in Groups(null))
        {
            var (_, rules, zone) = RetentionOf(group.First());
            foreach (var v in Retention.Evaluate(group, rules, zone, s => Verified.Contains(s.Id))) verdicts[v.Snapshot.Id] = v;
        }
        return verdicts;
    }

    /// <summary>The snapshots by client and set (retention's unit), or only the group of one snapshot.</summary>
    private IEnumerable<List<SnapshotManifest>> Groups(SnapshotManifest? only) =>
        Snapshots.Where(s => only is null || (s.Client == only.Client && s.BackupSet == only.BackupSet))
            .GroupBy(s => SetKey(s.Client, s.BackupSet)).Select(g => g.ToList());

    /// <summary>A snapshot's retention: its set's policy (else the policy of the job that made it, else default), in its set's time zone.</summary>
    private (StoragePolicy Policy, RetentionRules Rules, TimeZoneInfo Zone) RetentionOf(SnapshotManifest s)
    {
        var set = BackupSets.TryGetValue(s.BackupSet, out var d) && d.Client == s.Client ? d : null;
        var policy = PolicyOf(set?.Policy ?? s.Policy) ?? PolicyOf(DefaultPolicy)!;
        return (policy, RulesOf(policy.Retention), Zone(set?.TimeZone ?? "") ?? TimeZoneInfo.Utc);
    }

    public static RetentionRules RulesOf(RetentionRule? r) => r is null ? RetentionRules.KeepEverything
        : new RetentionRules(r.Last, TimeSpan.FromSeconds(r.WithinSeconds), r.Daily, r.Weekly, r.Monthly, r.Yearly, r.Minimum);

    /// <summary>What is wrong with a retention rule, or null.</summary>
    public static string? InvalidRetention(RetentionRule? r)
    {
        if (r is null) return null;
        int[] counts = [r.Last, r.Daily, r.Weekly, r.Monthly, r.Yearly, r.Minimum];
        if (counts.Any(c => c is < 0 or > 100_000)) return "retention counts are 0 (no such rule) to 100000";
        if (r.WithinSeconds is < 0 or > 100L * 366 * 86400) return "retention 'within' is 0 (no such rule) to 100 years";
        return null;
    }

    /// <summary>The snapshot as operators see it, with whether a verify passed, the policy it is kept by and its copies.</summary>
    public SnapshotInfo InfoOf(SnapshotManifest m)
    {
        var info = Info(m);
        info.Verified = Verified.Contains(m.Id);
        info.Policy = RetentionOf(m).Policy.Name;
        info.Copies.AddRange(Copies.GetValueOrDefault(m.Id) ?? []);
        return info;
    }

    /// <summary>Every library that holds the snapshot whole: its own, then its copies.</summary>
    public IReadOnlyList<string> LibrariesOf(SnapshotManifest s) => Copies.TryGetValue(s.Id, out var copies) ? [s.Library, .. copies] : [s.Library];

    /// <summary>The copy jobs a new snapshot's policy asks for (each copy rule: the first library of its pool that does not hold it).</summary>
    public IReadOnlyList<JobQueued> DecideCopiesAfter(SnapshotManifest m, DateTimeOffset now)
    {
        var policy = RetentionOf(m).Policy;
        var jobs = new List<JobQueued>();
        var holding = LibrariesOf(m).ToHashSet();
        var next = NextJob;
        foreach (var rule in policy.Copies)
        {
            if (rule.FullsOnly && m.Level != Level.Full) continue;
            if (rule.Libraries.FirstOrDefault(l => !holding.Contains(l) && Libraries.ContainsKey(l)) is not { } target) continue;
            holding.Add(target);
            jobs.Add(new JobQueued { Job = CopyJob((next++).ToString(), m, target, JobOrigin.Policy, 0, now) });
        }
        return jobs;
    }

    public Decision DecideStartCopy(StartCopy cmd, DateTimeOffset now)
    {
        SnapshotManifest snapshot;
        try
        {
            snapshot = FindSnapshot(cmd.Snapshot);
        }
        catch (KeyNotFoundException e)
        {
            return Reject(e.Message);
        }
        if (!Libraries.ContainsKey(cmd.Library))
            return Reject($"unknown library '{cmd.Library}': known are {(Libraries.Count == 0 ? "none yet" : string.Join(", ", Libraries.Keys))}");
        if (LibrariesOf(snapshot).Contains(cmd.Library)) return Reject($"library {cmd.Library} holds snapshot {snapshot.Id} already");
        if (cmd.Priority is < 0 or > 10) return Reject($"priority {cmd.Priority} is out of range: 1 (lowest) to 10 (highest)");
        var job = CopyJob(NextJob.ToString(), snapshot, cmd.Library, cmd.Origin == JobOrigin.Unspecified ? JobOrigin.Integrator : cmd.Origin, cmd.Priority, now);
        return new Decision([new JobQueued { Job = job }], null, job);
    }

    private JobInfo CopyJob(string id, SnapshotManifest snapshot, string target, JobOrigin origin, int priority, DateTimeOffset now) => new()
    {
        Id = id, Kind = JobKind.Copy, State = JobState.Queued, Library = target, LibraryPinned = true, Snapshot = snapshot.Id, SourceLibrary = snapshot.Library,
        BackupSet = snapshot.BackupSet, QueuedUnixMs = now.ToUnixTimeMilliseconds(), Origin = origin,
        Priority = PriorityOf(priority != 0 ? priority : BackupSets.GetValueOrDefault(snapshot.BackupSet)?.Priority ?? 0),
    };

    /// <summary>
    /// After a verify found damaged chunks on its library: a heal job (a copy of just those chunks from another
    /// library holding the snapshot, over the damaged records), or null when no other library holds it.
    /// </summary>
    public JobInfo? DecideHeal(JobInfo verify, VerifyReport report, DateTimeOffset now)
    {
        if (report.BadIds.Count == 0 || Snapshots.FirstOrDefault(s => s.Id == verify.Snapshot) is not { } snapshot) return null;
        if (LibrariesOf(snapshot).FirstOrDefault(l => l != verify.Library && Libraries.ContainsKey(l)) is not { } source) return null;
        var job = CopyJob(NextJob.ToString(), snapshot, verify.Library, JobOrigin.Policy, MaxPriority, now);
        job.SourceLibrary = source;
        job.Heal.AddRange(report.BadIds);
        return job;
    }

    /// <summary>
    /// Manifests a client read from a library's volumes (a catalog rebuilt after the manager's journal was lost):
    /// those the catalog lacks are recorded; damaged or foreign ones are skipped.
    /// </summary>
    public (CatalogRebuilt Answer, IReadOnlyList<SnapshotRecorded> Events) DecideRecordSnapshots(RecordSnapshots cmd)
    {
        var answer = new CatalogRebuilt { Library = cmd.Library };
        var known = Snapshots.Select(s => s.Id).ToHashSet();
        var found = new List<SnapshotManifest>();
        foreach (var bytes in cmd.Manifests)
        {
            SnapshotManifest m;
            try
            {
                m = SnapshotManifest.Parser.ParseFrom(bytes);
            }
            catch (Google.Protobuf.InvalidProtocolBufferException)
            {
                continue;
            }
            if (!ReferenceList.IsValidSnapshotId(m.Id) || m.RootTree.Length != Engine.Hashing.ChunkId.Size) continue;
            answer.Found++;
            if (known.Add(m.Id)) found.Add(m);
        }
        var events = found.OrderBy(m => m.FinishedUnixMs).Select(m => new SnapshotRecorded { Manifest = m.ToByteString() }).ToList();
        answer.Added = events.Count;
        answer.AddedIds.AddRange(found.OrderBy(m => m.FinishedUnixMs).Select(m => m.Id));
        return (answer, events);
    }

    /// <summary>A snapshot is its tier library's now; the library it left lets its chunks go at its next prune.</summary>
    private ManagerState WithMove(SnapshotMoved m)
    {
        var at = Snapshots.FindIndex(s => s.Id == m.Snapshot);
        if (at < 0) return this;
        var moved = Snapshots[at].Clone();
        moved.Library = m.To;
        var copies = (Copies.GetValueOrDefault(m.Snapshot) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Remove(m.To).Remove(m.From);
        var pending = PendingDeletions.SetItem(m.From, (PendingDeletions.GetValueOrDefault(m.From) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(m.Snapshot));
        return (this with
        {
            Snapshots = Snapshots.SetItem(at, moved), Copies = copies.Count > 0 ? Copies.SetItem(m.Snapshot, copies) : Copies.Remove(m.Snapshot), PendingDeletions = pending,
        }).WithChains();
    }

    /// <summary>
    /// Tiering, looked at every minute: each snapshot older than its policy's tier rule allows on a library that
    /// is not of the tier gets a copy job to the tier (read back before it counts); one whose tier copy exists
    /// already moves at once. Never two moves of a snapshot at a time.
    /// </summary>
    public (IReadOnlyList<JobQueued> Jobs, IReadOnlyList<SnapshotMoved> Moves) DecideTiering(DateTimeOffset now)
    {
        var jobs = new List<JobQueued>();
        var moves = new List<SnapshotMoved>();
        // Not while a copy of it runs, nor while a restore or verify reads it: it might be reading the library it leaves.
        var busy = SnapshotsInUse();
        var next = NextJob;
        foreach (var s in Snapshots)
        {
            var tier = RetentionOf(s).Policy.Tier;
            if (tier is null || tier.Libraries.Count == 0 || tier.Libraries.Contains(s.Library) || busy.Contains(s.Id)) continue;
            if (now.ToUnixTimeMilliseconds() - s.FinishedUnixMs < tier.AfterSeconds * 1000) continue;
            if (tier.Libraries.FirstOrDefault(l => Copies.GetValueOrDefault(s.Id)?.Contains(l) == true) is { } copied)
            {
                moves.Add(new SnapshotMoved { Snapshot = s.Id, From = s.Library, To = copied, UnixMs = now.ToUnixTimeMilliseconds() });
                continue;
            }
            if (tier.Libraries.FirstOrDefault(Libraries.ContainsKey) is not { } target) continue;
            var job = CopyJob((next++).ToString(), s, target, JobOrigin.Policy, 0, now);
            job.TierMove = true;
            jobs.Add(new JobQueued { Job = job });
        }
        return (jobs, moves);
    }

    /// <summary>Whether a job other than <paramref name="except"/> that has not ended reads the snapshot (a restore, a verify, a copy).</summary>
    public bool ReadByAnother(string snapshot, string except) =>
        Jobs.Values.Any(j => !IsFinal(j.State) && j.Kind != JobKind.Backup && j.Snapshot == snapshot && j.Id != except);

    /// <summary>Jobs that a media agent runs itself (the manager asks the agent, not a client, whether it still does).</summary>
    public static bool RunsOnMedia(JobInfo job) => job.Kind is JobKind.Prune or JobKind.Copy || (job.Kind == JobKind.Verify && job.Snapshot == "");
}
