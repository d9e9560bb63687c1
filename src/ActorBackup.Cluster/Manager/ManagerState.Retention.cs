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
            foreach (var library in LibrariesOf(s).Concat(s.Spans))
                pending = pending.SetItem(library, (pending.GetValueOrDefault(library) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(s.Id));
        return (this with
        {
            Snapshots = Snapshots.RemoveAll(s => ids.Contains(s.Id)), Verified = Verified.Except(ids), PendingDeletions = pending, Copies = Copies.RemoveRange(ids),
            Suspects = Suspects.RemoveRange(ids), Undeleted = Undeleted.Except(ids), Holds = Holds.RemoveRange(ids), Verifications = Verifications.RemoveRange(ids),
        }).WithChains();
    }

    /// <summary>
    /// The slot of a cell schedule (a clock kept with the sets' clocks) that is due now: the newest slot of
    /// <paramref name="cron"/> (UTC) passed since the one last acted on (after a downtime one, not one per missed
    /// slot), or null. A clock not started yet starts now: <paramref name="start"/> is the event that starts it.
    /// </summary>
    private long? DueSlot(string clockName, Cronos.CronExpression cron, DateTimeOffset now, string what, out SlotMissed? start)
    {
        start = null;
        if (!SetClocks.TryGetValue(clockName, out var clock))
        {
            start = new SlotMissed { Set = clockName, SlotUnixMs = now.ToUnixTimeMilliseconds(), Reason = $"the {what} schedule starts now" };
            return null;
        }
        if (ClockWentBack(clock, now) is { } back)
        {
            start = new SlotMissed { Set = clockName, SlotUnixMs = now.ToUnixTimeMilliseconds(), Reason = $"the {what} schedule: {back}" };
            return null;
        }
        var after = DateTimeOffset.FromUnixTimeMilliseconds(clock.LastSlotUnixMs).UtcDateTime;
        if (cron.GetNextOccurrence(after, TimeZoneInfo.Utc) is not { } first || first > now.UtcDateTime) return null;
        var slot = cron.GetOccurrences(first, now.UtcDateTime, TimeZoneInfo.Utc, fromInclusive: true, toInclusive: true).Last();
        return new DateTimeOffset(slot, TimeSpan.Zero).ToUnixTimeMilliseconds();
    }

    /// <summary>How far ahead of now a schedule clock's last slot may be before the manager's clock is taken to have gone back.</summary>
    public static readonly TimeSpan ClockBackTolerance = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Why a schedule clock starts again from now: its last slot lies ahead of now by more than <see cref="ClockBackTolerance"/>
    /// (the manager ran it while its clock was ahead: a host booted with its clock a year off, a fail-over to one hours
    /// ahead). No slot after it would come until real time caught up, and nothing would say so. Null: it did not.
    /// </summary>
    private static string? ClockWentBack(SetClock clock, DateTimeOffset now)
    {
        var ahead = TimeSpan.FromMilliseconds(clock.LastSlotUnixMs - now.ToUnixTimeMilliseconds());
        return ahead <= ClockBackTolerance ? null
            : $"the manager's clock went back: the last slot it ran is dated {DateTimeOffset.FromUnixTimeMilliseconds(clock.LastSlotUnixMs):yyyy-MM-dd HH:mm} UTC, " +
              $"{(ahead.TotalDays >= 1 ? $"{ahead.TotalDays:F0} days" : $"{ahead.TotalHours:F1} hours")} from now; the schedule goes on from now " +
              "(check the clocks of the nodes that may run the manager: NTP)";
    }

    /// <summary>The schedule clock of the cell's own prunes (actorbackup.manager.prune-schedule), kept with the sets' clocks.</summary>
    public const string PruneClock = "@prune";

    /// <summary>
    /// The scheduled prune of every library, when a slot of <paramref name="cron"/> (UTC) passed since the last
    /// one acted on: one job per library that has no prune not ended yet, each slot once (the slot is journaled with the jobs), after a downtime
    /// one prune, not one per missed slot. The first look only starts the clock. Empty when nothing is due.
    /// </summary>
    public IReadOnlyList<IMessage> DecideScheduledPrune(string cron, DateTimeOffset now)
    {
        if (cron == "" || ParseCron(cron, out _) is not { } rule) return [];
        if (DueSlot(PruneClock, rule, now, "prune", out var start) is not { } slotMs) return start is null ? [] : [start];
        // A library whose prune of an earlier slot (or an operator's) has not ended gets none more: a library down for a
        // day would find a prune of every hourly slot queued (each but the first refused as "being pruned", then FAILED).
        // An operator's dry run counts too: the media agent runs one prune of a library at a time (a second beside it is
        // refused, tried again and ends FAILED).
        var busy = OpenJobsOf(JobKind.Prune, j => true);
        if (Libraries.Count > 0 && Libraries.Keys.All(busy.ContainsKey))
            return [new SlotMissed { Set = PruneClock, SlotUnixMs = slotMs, Reason = $"every library's prune has not ended yet: {Pending(busy)}" }];
        var decision = DecidePrune(new StartPrune { Origin = JobOrigin.Schedule }, now, Libraries.Keys.Where(l => !busy.ContainsKey(l)).ToList());
        if (decision.Rejection is not null) return [new SlotMissed { Set = PruneClock, SlotUnixMs = slotMs, Reason = decision.Rejection }];
        foreach (var q in decision.Events.Cast<JobQueued>())
        {
            q.Job.BackupSet = PruneClock;
            q.Job.SlotUnixMs = slotMs;
        }
        return decision.Events;
    }

    /// <summary>The schedule clock of the cell's library checks (actorbackup.manager.check-schedule).</summary>
    public const string CheckClock = "@check";

    /// <summary>
    /// The library checks due by <paramref name="cron"/> (UTC): at each slot, once (one after a downtime), every
    /// registered library's media agent (but one whose check has not ended yet) reads every record of every volume back (as abk verify --library does).
    /// </summary>
    public IReadOnlyList<IMessage> DecideScheduledChecks(string cron, DateTimeOffset now)
    {
        if (cron == "" || ParseCron(cron, out _) is not { } rule) return [];
        if (DueSlot(CheckClock, rule, now, "library check", out var start) is not { } slotMs) return start is null ? [] : [start];
        if (Libraries.Count == 0) return [new SlotMissed { Set = CheckClock, SlotUnixMs = slotMs, Reason = "no library is registered" }];
        // A library whose check has not ended (a tape library's takes hours of drive time) is not checked again beside it.
        var busy = OpenJobsOf(JobKind.Verify, j => j.Snapshot == "");
        if (Libraries.Keys.All(busy.ContainsKey))
            return [new SlotMissed { Set = CheckClock, SlotUnixMs = slotMs, Reason = $"every library's check has not ended yet: {Pending(busy)}" }];
        var next = NextJob;
        return Libraries.Keys.Where(l => !busy.ContainsKey(l)).Select(library => (IMessage)new JobQueued
        {
            Job = new JobInfo
            {
                Id = (next++).ToString(), Kind = JobKind.Verify, State = JobState.Queued, Library = library, LibraryPinned = true, QueuedUnixMs = now.ToUnixTimeMilliseconds(),
                Priority = PriorityOf(0), Origin = JobOrigin.Schedule, BackupSet = CheckClock, SlotUnixMs = slotMs,
            },
        }).ToList();
    }

    /// <summary>The libraries with a job of <paramref name="kind"/> that has not ended (queued or running), each with the first such job.</summary>
    private Dictionary<string, string> OpenJobsOf(JobKind kind, Func<JobInfo, bool> also)
    {
        var open = new Dictionary<string, string>();
        foreach (var j in Jobs.Values)
            if (j.Kind == kind && !IsFinal(j.State) && also(j)) open.TryAdd(j.Library, j.Id);
        return open;
    }

    private static string Pending(Dictionary<string, string> open) =>
        string.Join(", ", open.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} (job {o.Value})"));

    /// <summary>The schedule clock of a policy's verifies (its VerifyRule), kept with the sets' clocks.</summary>
    public static string VerifyClock(string policy) => "@verify:" + policy;

    /// <summary>How much newer than a set's newest verified snapshot its newest may be before a sampling schedule reads it whole.</summary>
    public static readonly TimeSpan WholeVerifyEvery = TimeSpan.FromDays(7);

    /// <summary>
    /// The verifies due by the policies' verify schedules: at each slot (once, across restarts; one after a
    /// downtime), the newest snapshot of each client and set under the policy that has not passed a verify and
    /// that no job reads now. The jobs carry the slot (their set is the clock), or a SlotMissed says why none ran.
    /// </summary>
    public IReadOnlyList<IMessage> DecideScheduledVerifies(DateTimeOffset now)
    {
        var events = new List<IMessage>();
        var next = NextJob;
        IReadOnlySet<string>? busy = null;
        foreach (var policy in AllPolicies())
        {
            if (policy.Verify is not { Schedule: not "" } rule || ParseCron(rule.Schedule, out _) is not { } cron) continue;
            // A sample proves less than a whole read: the newest snapshot is sampled again at each slot.
            var clockName = VerifyClock(policy.Name);
            if (DueSlot(clockName, cron, now, "verify", out var start) is not { } slotMs)
            {
                if (start is not null) events.Add(start);
                continue;
            }
            busy ??= SnapshotsInUse();
            var sampled = rule.SharePercent is > 0 and < 100;
            // Per client and set: the newest snapshot, and the newest full while it has not passed a whole verify
            // (retention deletes nothing older until one has). A full not verified yet is read whole even when the
            // policy samples; a sample draws again at every slot.
            // A removed client's snapshots are not verified on a schedule (no node of it runs the job; an operator names one).
            // A sample never marks a snapshot verified, and retention deletes nothing newer than the newest verified one: the
            // newest is read whole once the set's newest verified snapshot is a week older than it (a set of incrementals
            // after one full would otherwise keep everything for good).
            var whole = new HashSet<string>(StringComparer.Ordinal);
            var due = Snapshots.Where(s => RetentionOf(s).Policy.Name == policy.Name && Clients.ContainsKey(s.Client))
                .GroupBy(s => (s.Client, s.BackupSet))
                .SelectMany(g =>
                {
                    var newest = g.MaxBy(s => s.FinishedUnixMs)!;
                    var verifiedMs = g.Where(s => Verified.Contains(s.Id)).Select(s => (long?)s.FinishedUnixMs).Max();
                    if (verifiedMs is null || newest.FinishedUnixMs - verifiedMs > (long)WholeVerifyEvery.TotalMilliseconds) whole.Add(newest.Id);
                    return new[] { newest, g.Where(s => s.Level == Level.Full).MaxBy(s => s.FinishedUnixMs) };
                })
                .OfType<SnapshotManifest>().DistinctBy(s => s.Id)
                .Where(s => (!Verified.Contains(s.Id) || sampled) && !busy.Contains(s.Id)) // a verify of it that has not ended reads it too
                .OrderBy(s => s.FinishedUnixMs).ToList();
            if (due.Count == 0)
            {
                events.Add(new SlotMissed { Set = clockName, SlotUnixMs = slotMs, Reason = "the newest snapshot and the newest full of every set have passed a verify, or are being verified" });
                continue;
            }
            foreach (var s in due)
                events.Add(new JobQueued
                {
                    Job = new JobInfo
                    {
                        Id = (next++).ToString(), Kind = JobKind.Verify, State = JobState.Queued, Client = s.Client, Library = s.Library, LibraryPinned = true,
                        Snapshot = s.Id, QueuedUnixMs = now.ToUnixTimeMilliseconds(), Priority = PriorityOf(0), BackupSet = clockName, SlotUnixMs = slotMs,
                        Origin = JobOrigin.Schedule,
                        VerifySharePercent = !sampled || (s.Level == Level.Full && !Verified.Contains(s.Id)) || whole.Contains(s.Id) ? 0 : rule.SharePercent,
                    },
                });
        }
        return events;
    }

    /// <summary>The schedule clock of a policy's copy rule with a schedule, kept with the sets' clocks.</summary>
    public static string CopyClock(string policy, CopyRule rule) => $"@copy:{policy}:{string.Join("+", rule.Libraries)}";

    /// <summary>
    /// Copies made on a schedule (a copy rule's cron, UTC): at each slot, once, every snapshot of the policy that the
    /// rule takes (all, or fulls) and that has no copy on the rule's libraries yet gets a copy job to the first of
    /// them that is registered. The jobs carry the slot (their set is the clock), or a SlotMissed says why none ran.
    /// </summary>
    public IReadOnlyList<IMessage> DecideScheduledCopies(DateTimeOffset now)
    {
        var events = new List<IMessage>();
        var next = NextJob;
        IReadOnlySet<string>? copying = null;
        foreach (var policy in AllPolicies())
            foreach (var rule in policy.Copies.Where(r => r.Schedule != ""))
            {
                if (ParseCron(rule.Schedule, out _) is not { } cron) continue;
                var clockName = CopyClock(policy.Name, rule);
                if (DueSlot(clockName, cron, now, "copy", out var start) is not { } slotMs)
                {
                    if (start is not null) events.Add(start);
                    continue;
                }
                copying ??= Jobs.Values.Where(j => j.Kind == JobKind.Copy && !IsFinal(j.State)).Select(j => j.Snapshot + "\n" + j.Library).ToHashSet();
                var target = rule.Libraries.FirstOrDefault(Libraries.ContainsKey);
                var taken = Snapshots.Where(s => RetentionOf(s).Policy.Name == policy.Name && (!rule.FullsOnly || s.Level == Level.Full)).ToList();
                // A copy with a retention of its own is made only of what that retention keeps: else it would drop
                // the copy again, and the next slot make it again.
                if (rule.Retention is not null && RulesOf(rule.Retention).Limits)
                {
                    var kept = taken.GroupBy(s => (s.Client, s.BackupSet))
                        .SelectMany(g => Retention.Evaluate(g, RulesOf(rule.Retention), RetentionOf(g.First()).Zone, x => Verified.Contains(x.Id), now))
                        .Where(v => v.Keep).Select(v => v.Snapshot.Id).ToHashSet();
                    taken = taken.Where(s => kept.Contains(s.Id)).ToList();
                }
                var due = target is null ? [] : taken.Where(s => !LibrariesOf(s).Any(rule.Libraries.Contains) && !copying.Contains(s.Id + "\n" + target)).ToList();
                if (due.Count == 0)
                {
                    events.Add(new SlotMissed
                    {
                        Set = clockName, SlotUnixMs = slotMs,
                        Reason = target is null ? $"none of {string.Join(", ", rule.Libraries)} is registered" : "every snapshot the copy takes has one, or is being copied",
                    });
                    continue;
                }
                foreach (var s in due)
                {
                    var job = CopyJob((next++).ToString(), s, target!, JobOrigin.Schedule, 0, now);
                    job.BackupSet = clockName;
                    job.SlotUnixMs = slotMs;
                    events.Add(new JobQueued { Job = job });
                }
            }
        return events;
    }

    /// <summary>Prune jobs: one for the library named, or one for each registered library.</summary>
    /// <param name="only">the libraries to prune when the command names none (the schedule's: those not being pruned); null: every one</param>
    public Decision DecidePrune(StartPrune cmd, DateTimeOffset now, IReadOnlyList<string>? only = null)
    {
        if (cmd.Library != "" && !Libraries.ContainsKey(cmd.Library))
            return Reject(UnknownLibrary(cmd.Library));
        if (InvalidPriority(cmd.Priority) is { } priority) return Reject(priority);
        if (cmd.Retire.Count > 0 && cmd.Library == "") return Reject("name the library whose volumes to retire: abk volume retire LIBRARY VOLUME...");
        if (cmd.Retire.Any(v => v == 0)) return Reject("volume 0 is not a volume: 'abk volume list LIBRARY' shows their numbers");
        if (cmd.DropUnknown && cmd.Library == "") return Reject("name the library whose unknown reference lists to drop: abk prune LIBRARY --drop-unknown");
        var libraries = cmd.Library != "" ? [cmd.Library] : only ?? Libraries.Keys.ToList();
        if (libraries.Count == 0) return Reject("no library is registered: start a node with the media role");
        var events = new List<Google.Protobuf.IMessage>();
        var next = NextJob;
        JobInfo? first = null;
        foreach (var library in libraries)
        {
            var job = new JobInfo
            {
                Id = (next++).ToString(), Kind = JobKind.Prune, State = JobState.Queued, Library = library, LibraryPinned = true, DryRun = cmd.DryRun, DropUnknown = cmd.DropUnknown,
                QueuedUnixMs = now.ToUnixTimeMilliseconds(), Priority = PriorityOf(cmd.Priority), Origin = cmd.Origin == JobOrigin.Unspecified ? JobOrigin.Integrator : cmd.Origin,
            };
            job.Retire.AddRange(cmd.Retire.Distinct());
            first ??= job;
            events.Add(new JobQueued { Job = job });
        }
        return new Decision(events, null, first);
    }

    /// <summary>
    /// Tape cartridges with errors, as their media agents report them (volumes in the Error state): a prune job
    /// that retires them (their readable live chunks copied to other cartridges, then out of service), queued by
    /// the cell itself, one library at a time. A volume that a prune job named before, whatever became of it, is
    /// not named again: a chunk that could not be read kept it in service and that job said what to do (heal from
    /// a copy, then abk volume retire). Empty when there is nothing to retire.
    /// </summary>
    public IReadOnlyList<Google.Protobuf.IMessage> DecideRetireDamaged(IEnumerable<IndexReport> reports, DateTimeOffset now)
    {
        foreach (var r in reports.Where(r => r.VolumesInError.Count > 0).OrderBy(r => r.Library, StringComparer.Ordinal))
        {
            if (!Libraries.TryGetValue(r.Library, out var library) || library.Kind != "tape") continue;
            var named = Jobs.Values.Where(j => j.Kind == JobKind.Prune && j.Library == r.Library).SelectMany(j => j.Retire).ToHashSet();
            var retire = r.VolumesInError.Where(v => v != 0 && !named.Contains(v)).Distinct().Order().ToList();
            if (retire.Count == 0) continue;
            var decision = DecidePrune(new StartPrune { Library = r.Library, Origin = JobOrigin.Maintenance, Retire = { retire } }, now);
            if (decision.Rejection is null) return decision.Events;
        }
        return [];
    }

    /// <summary>The snapshots the catalog keeps on <paramref name="library"/> (held there, or spanning it): what a prune of it keeps.</summary>
    public IEnumerable<string> KeptOn(string library) =>
        Snapshots.Where(s => LibrariesOf(s).Contains(library) || s.Spans.Contains(library)).Select(s => s.Id).Concat(HeldOn(library));

    /// <summary>
    /// What a prune of <paramref name="library"/> is told: the catalog's snapshots there, and those deleted since its
    /// last prune, but for a snapshot a copy job that has not ended writes there (a copy again of one dropped there
    /// before): its list there may be the new copy's, written before the prune began, whose end has not reached the
    /// manager yet. That list stays (the catalog keeps it once the copy is recorded; else a later prune deletes it).
    /// </summary>
    public PruneLibrary PruneRequest(JobInfo job, double threshold, TimeSpan orphansAfter, DateTimeOffset? now = null)
    {
        var arriving = Jobs.Values.Where(j => j.Kind == JobKind.Copy && !IsFinal(j.State) && j.Library == job.Library).Select(j => j.Snapshot).ToHashSet(StringComparer.Ordinal);
        var r = new PruneLibrary
        {
            Library = job.Library, Job = job.Id, Attempt = job.Attempt, DryRun = job.DryRun, CompactThreshold = threshold, OrphanAfterSeconds = (long)orphansAfter.TotalSeconds,
            Drive = job.Drive, DropUnknown = job.DropUnknown, AskedUnixMs = (now ?? DateTimeOffset.UtcNow).ToUnixTimeMilliseconds(),
        };
        r.Keep.AddRange(KeptOn(job.Library));
        // At most a part's worth of deletions a prune: its report names each one it handled, and a report must fit in one
        // message. The rest go in the next; to this one their lists are unknown (removed once old, as a failed backup's,
        // or kept), and counted so that they do not read as a catalog that lost its journal. (Not kept: a held-back
        // snapshot without a list, made before lists or swept before, would fail the prune as a kept one missing its list.)
        var deleting = (PendingDeletions.GetValueOrDefault(job.Library) ?? []).Where(s => !arriving.Contains(s)).ToList();
        r.Deleted.AddRange(deleting.Take(Media.KeepPages.PageSize));
        r.DeletionsHeldBack = Math.Max(0, deleting.Count - Media.KeepPages.PageSize);
        r.Retire.AddRange(job.Retire);
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
            else if (HoldOn(s.Id, now) is { } hold)
                problems.Add($"snapshot {s.Id} is {Describe(hold)}; a hold is not lifted before its end");
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
    /// A snapshot that its primary's rules let go but a copy with retention of its own keeps is not deleted:
    /// <see cref="DecideCopyRetention"/> moves it to that copy.
    /// </summary>
    public SnapshotsDeleted? DecideRetention(DateTimeOffset now, SnapshotManifest? only = null) => RetentionOutcome(now, only).Deleted;

    /// <summary>
    /// Retention per copy: a copy rule with a retention of its own keeps its copies by that (per client and set,
    /// over the snapshots that have a copy there). Copies it lets go are dropped from the catalog
    /// (<see cref="CopyDropped"/>: that library's next prune frees them); a snapshot whose primary's rules let it
    /// go while such a copy keeps it moves to that copy (<see cref="SnapshotMoved"/>), and one that only such a
    /// copy held goes when that copy's rules let it go.
    /// </summary>
    public IReadOnlyList<IMessage> DecideCopyRetention(DateTimeOffset now) => RetentionOutcome(now, null).Changes;

    /// <summary>How far a client's clock may be from the manager's (<see cref="BadTimes"/>).</summary>
    public static readonly TimeSpan ClockTolerance = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Why a backup's snapshot is not recorded for the times its client gave it, or null. The catalog orders and keeps
    /// snapshots by those times (retention's last-N, its days and weeks, `latest`, the parents of the next backups): a
    /// client whose clock is behind (a dead RTC battery, a VM reverted) would have each new snapshot sort as the oldest
    /// and be deleted at once by retention, while its jobs said succeeded; one ahead, a snapshot that counted as the
    /// newest for as long. So a snapshot that began well before the manager started its job, or ended well after the
    /// manager's now, is refused with what to do (its data is let go by the library's prunes).
    /// </summary>
    public static string? BadTimes(JobInfo job, SnapshotManifest manifest, DateTimeOffset now)
    {
        var tolerance = (long)ClockTolerance.TotalMilliseconds;
        // The client's times are its bytes: kept within the years a clock can show, so that no difference overflows.
        var started = Math.Clamp(manifest.StartedUnixMs, 0, MaxUnixMs);
        var finished = Math.Clamp(manifest.FinishedUnixMs, 0, MaxUnixMs);
        var off = job.StartedUnixMs > 0 && started < job.StartedUnixMs - tolerance ? started - job.StartedUnixMs
            : finished > now.ToUnixTimeMilliseconds() + tolerance ? finished - now.ToUnixTimeMilliseconds()
            : 0;
        if (off == 0) return null;
        var span = TimeSpan.FromMilliseconds(Math.Abs(off));
        var by = span.TotalDays >= 2 ? $"{span.TotalDays:F0} days" : span.TotalHours >= 2 ? $"{span.TotalHours:F0} hours" : $"{span.TotalMinutes:F0} minutes";
        return $"the clock of client {job.Client} is {by} {(off < 0 ? "behind" : "ahead of")} the manager's: its snapshot is not recorded (the catalog keeps " +
               $"snapshots by their times: one stamped {(off < 0 ? "in the past would be deleted by retention at once" : "in the future would count as the newest for as long")}); " +
               $"set that host's clock right (NTP) and run the backup again; if every client's backups are refused so, it is the manager node's clock " +
               $"that is off (it says {now:yyyy-MM-dd HH:mm} UTC)";
    }

    /// <summary>The last millisecond of year 9999: the latest time a manifest may carry.</summary>
    private const long MaxUnixMs = 253402300799999;

    /// <summary>
    /// Why the manifest a client node sent for backup <paramref name="job"/> is not this job's snapshot, or null: a
    /// client host (one compromised, or a bug) must not record a snapshot in another client's or set's name (retention
    /// would then delete that client's own snapshots, and its restores take this one as its latest), under an id the
    /// catalog has (two snapshots under one id; a refusal would let the first one's data go), or one no library can hold.
    /// Checked before its times (<see cref="BadTimes"/>), whose refusal lets the manifest's id go in its libraries.
    /// </summary>
    public string? ForeignManifest(JobInfo job, SnapshotManifest manifest)
    {
        string? why = !ReferenceList.IsValidSnapshotId(manifest.Id) ? $"its snapshot id '{Shown(manifest.Id)}' is not one (letters, digits, '-', '_'; at most 64)"
            : Snapshots.Exists(s => s.Id == manifest.Id) || Trash.ContainsKey(manifest.Id) || PendingDeletions.Values.Any(ids => ids.Contains(manifest.Id)) ? $"its snapshot id {manifest.Id} is one the catalog has already"
            : manifest.RootTree.Length != Engine.Hashing.ChunkId.Size ? "it names no root tree"
            : manifest.Client != job.Client ? $"it is of client '{Shown(manifest.Client)}', not of the job's client {job.Client}"
            : manifest.BackupSet != job.BackupSet ? $"it is of backup set '{Shown(manifest.BackupSet)}', not of the job's set {job.BackupSet}"
            : manifest.Library != job.Library ? $"it is stored in library '{Shown(manifest.Library)}', not in the job's library {job.Library}"
            : manifest.Job != job.Id ? $"it was made by job '{Shown(manifest.Job)}', not by job {job.Id}"
            : manifest.Policy != job.Policy ? $"it is under storage policy '{Shown(manifest.Policy)}', not the job's {job.Policy}"
            : null;
        return why is null ? null
            : $"the snapshot client {job.Client} sent for job {job.Id} is not recorded: {why}; run the backup again, and if it is refused again, " +
              $"check the ActorBackup build and the host of client {job.Client}";

        static string Shown(string s) => s.Length <= 80 ? s : s[..80] + "...";
    }

    /// <summary>
    /// What lets the data of a snapshot refused for its times (<see cref="BadTimes"/>) go: it is in its library (and
    /// those it spans) already, committed by its client, but not in the catalog; marked as let go there, a prune frees
    /// it (not counted among the lists the catalog does not know) and a catalog rebuild does not bring it back.
    /// </summary>
    public IReadOnlyList<IMessage> DecideRefusedSnapshot(JobInfo job, SnapshotManifest manifest, string reason, DateTimeOffset now) =>
        manifest.Spans.Prepend(manifest.Library != "" ? manifest.Library : job.Library).Where(l => l != "").Distinct()
            .Select(l => (IMessage)new CopyDropped { Snapshot = manifest.Id, Library = l, Reason = reason, UnixMs = now.ToUnixTimeMilliseconds() }).ToList();

    /// <summary>
    /// Whether a copy job reads back every record it wrote before it counts: a tier move (its source copy goes next),
    /// and a copy into a library whose copies a retention of their own keeps (the primary's retention may then leave
    /// that copy the snapshot's only home, as a tier move would).
    /// </summary>
    public bool CopyReadsBack(JobInfo job) =>
        job.TierMove || Snapshots.FirstOrDefault(s => s.Id == job.Snapshot) is { } x && RetainedCopyOn(RetentionOf(x).Policy, job.Library) is not null;

    /// <summary>The copy rule of <paramref name="policy"/> with a retention of its own that covers <paramref name="library"/>, or null.</summary>
    private static CopyRule? RetainedCopyOn(StoragePolicy policy, string library) =>
        policy.Copies.FirstOrDefault(c => c.Retention is not null && RulesOf(c.Retention).Limits && c.Libraries.Contains(library));

    private (SnapshotsDeleted? Deleted, IReadOnlyList<IMessage> Changes) RetentionOutcome(DateTimeOffset now, SnapshotManifest? only)
    {
        // Read by a job, brought back by an operator (the rule that deleted it would at once again), or held: not deleted.
        var inUse = SnapshotsInUse().Union(Undeleted).Union(HeldAt(now)).ToHashSet(StringComparer.Ordinal);
        var go = new List<string>();
        var policies = new SortedSet<string>(StringComparer.Ordinal);
        var changes = new List<IMessage>();
        var nowMs = now.ToUnixTimeMilliseconds();
        foreach (var group in Groups(only))
        {
            if (SuspectIn(group) is not null) continue; // held whole until an operator clears it (Suspicion)
            var (policy, rules, zone) = RetentionOf(group.First());
            bool IsVerified(SnapshotManifest x) => Verified.Contains(x.Id);
            // What each copy rule with its own retention keeps, over the snapshots it holds a copy of.
            var copyKeeps = new Dictionary<CopyRule, HashSet<string>>();
            foreach (var rule in policy.Copies.Where(c => c.Retention is not null && RulesOf(c.Retention).Limits))
            {
                var held = group.Where(x => LibrariesOf(x).Any(rule.Libraries.Contains)).ToList();
                var verdicts = Retention.Evaluate(held, RulesOf(rule.Retention), zone, IsVerified, now);
                copyKeeps[rule] = verdicts.Where(v => v.Keep).Select(v => v.Snapshot.Id).ToHashSet();
                foreach (var v in verdicts.Where(v => !v.Keep && !inUse.Contains(v.Snapshot.Id)))
                    foreach (var library in LibrariesOf(v.Snapshot).Where(rule.Libraries.Contains).Where(l => l != v.Snapshot.Library))
                        changes.Add(new CopyDropped
                        {
                            Snapshot = v.Snapshot.Id, Library = library, UnixMs = nowMs,
                            Reason = $"retention of the copy on {library} of storage policy '{policy.Name}' ({RulesOf(rule.Retention)})",
                        });
            }
            // The snapshot's own library: the primary's rules, or, once only a retained copy holds it, that copy's.
            foreach (var x in group)
            {
                var ownRule = RetainedCopyOn(policy, x.Library);
                if (ownRule is not null)
                {
                    if (copyKeeps[ownRule].Contains(x.Id) || inUse.Contains(x.Id)) continue;
                    // Where it lives on: a copy not let go in this same pass.
                    var others = LibrariesOf(x).Where(l => l != x.Library && !changes.Any(c => c is CopyDropped d && d.Snapshot == x.Id && d.Library == l)).ToList();
                    if (others.Count > 0) changes.Add(new SnapshotMoved { Snapshot = x.Id, From = x.Library, To = others[0], UnixMs = nowMs });
                    else
                    {
                        go.Add(x.Id);
                        policies.Add($"'{policy.Name}' (its copy on {x.Library}: {RulesOf(ownRule.Retention)})");
                    }
                }
            }
            if (!rules.Limits) continue;
            var primary = group.Where(x => RetainedCopyOn(policy, x.Library) is null).ToList();
            foreach (var v in Retention.Evaluate(primary, rules, zone, IsVerified, now))
            {
                if (v.Keep || inUse.Contains(v.Snapshot.Id)) continue;
                // A copy with its own retention that keeps it: the snapshot lives on there.
                var keptCopy = (Copies.GetValueOrDefault(v.Snapshot.Id) ?? []).FirstOrDefault(l => RetainedCopyOn(policy, l) is { } r && copyKeeps[r].Contains(v.Snapshot.Id));
                if (keptCopy is not null)
                {
                    changes.Add(new SnapshotMoved { Snapshot = v.Snapshot.Id, From = v.Snapshot.Library, To = keptCopy, UnixMs = nowMs });
                    continue;
                }
                go.Add(v.Snapshot.Id);
                policies.Add($"'{policy.Name}' ({rules})");
            }
        }
        var gone = go.ToHashSet();
        // A snapshot that goes takes its copies with it: no drop or move of it besides.
        var kept = changes.Where(c => c switch { CopyDropped d => !gone.Contains(d.Snapshot), SnapshotMoved m => !gone.Contains(m.Snapshot), _ => true }).ToList();
        if (gone.Count == 0) return (null, kept);
        var e = new SnapshotsDeleted { Reason = $"retention of storage polic{(policies.Count > 1 ? "ies" : "y")} {string.Join(", ", policies)}", UnixMs = nowMs, ByRetention = true };
        e.Snapshots.AddRange(Snapshots.Where(x => gone.Contains(x.Id)).Select(x => x.Id)); // oldest first, as the catalog lists them
        return (e, kept);
    }

    /// <summary>Every snapshot with the rules that keep it (none: retention deletes it when no job reads it).</summary>
    public IReadOnlyDictionary<string, RetentionVerdict> RetentionVerdicts(DateTimeOffset now)
    {
        var verdicts = new Dictionary<string, RetentionVerdict>();
        foreach (var group in Groups(null))
        {
            if (SuspectIn(group) is { } suspect)
            {
                foreach (var s in group) verdicts[s.Id] = new RetentionVerdict(s, true, [$"held: snapshot {suspect.Snapshot} of its set is suspect (abk snapshot clear-suspect once checked)"]);
                continue;
            }
            var (policy, rules, zone) = RetentionOf(group.First());
            bool IsVerified(SnapshotManifest s) => Verified.Contains(s.Id);
            // Copies kept by a retention of their own: judged by it, over the snapshots with a copy there.
            var copyKeeps = new Dictionary<string, List<string>>(); // snapshot -> "its copy on lib2: weekly ..."
            foreach (var rule in policy.Copies.Where(c => c.Retention is not null && RulesOf(c.Retention).Limits))
            {
                var held = group.Where(x => LibrariesOf(x).Any(rule.Libraries.Contains)).ToList();
                foreach (var v in Retention.Evaluate(held, RulesOf(rule.Retention), zone, IsVerified, now))
                {
                    var where = LibrariesOf(v.Snapshot).First(rule.Libraries.Contains);
                    if (v.Keep) (copyKeeps.TryGetValue(v.Snapshot.Id, out var l) ? l : copyKeeps[v.Snapshot.Id] = []).AddRange(v.Reasons.Select(r => $"its copy on {where}: {r}"));
                    if (v.Snapshot.Library == where) verdicts[v.Snapshot.Id] = v with { Reasons = v.Reasons.Select(r => $"its copy on {where}: {r}").ToList() };
                }
            }
            foreach (var v in Retention.Evaluate(group.Where(x => RetainedCopyOn(policy, x.Library) is null), rules, zone, IsVerified, now))
                verdicts[v.Snapshot.Id] = copyKeeps.TryGetValue(v.Snapshot.Id, out var more) ? v with { Keep = true, Reasons = [.. v.Reasons, .. more] } : v;
            foreach (var s in group)
            {
                if (HoldOn(s.Id, now) is { } hold) Kept(s, Describe(hold));
                if (Undeleted.Contains(s.Id)) Kept(s, "brought back by an operator (abk snapshot delete to let it go)");
            }
        }
        return verdicts;

        // Kept whatever the rules say, for this reason too.
        void Kept(SnapshotManifest s, string reason) =>
            verdicts[s.Id] = verdicts.TryGetValue(s.Id, out var v) ? v with { Keep = true, Reasons = [.. v.Reasons, reason] } : new RetentionVerdict(s, true, [reason]);
    }

    /// <summary>
    /// The snapshots by client and set (retention's unit), or only the group(s) of one snapshot's set. Those of a set
    /// no longer defined (removed, renamed, or never: a backup of paths) are grouped by the policy each was made under
    /// too, so that each is judged by its own policy, not by the one its set's oldest snapshot had.
    /// </summary>
    private IEnumerable<List<SnapshotManifest>> Groups(SnapshotManifest? only) =>
        Snapshots.Where(s => only is null || (s.Client == only.Client && s.BackupSet == only.BackupSet))
            .GroupBy(s => (SetKey(s.Client, s.BackupSet), BackupSets.TryGetValue(s.BackupSet, out var d) && d.Client == s.Client ? "" : s.Policy))
            .Select(g => g.ToList());

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
        if (Verifications.GetValueOrDefault(m.Id) is { } last)
            (info.LastVerifyUnixMs, info.LastVerifyJob, info.LastVerifyOk) = (last.UnixMs, last.Job, last.Ok);
        info.Suspect = Suspects.GetValueOrDefault(m.Id)?.Reason ?? "";
        if (Holds.GetValueOrDefault(m.Id) is { } hold)
            (info.HeldUntilUnixMs, info.HoldReason) = (hold.UntilUnixMs, hold.Reason + (hold.By == "" ? "" : $" ({hold.By})"));
        info.Policy = RetentionOf(m).Policy.Name;
        info.Copies.AddRange(Copies.GetValueOrDefault(m.Id) ?? []);
        return info;
    }

    /// <summary>
    /// The snapshot backup <paramref name="job"/> recorded, if it did: of its client, naming it, begun after the job's
    /// attempt started (as BadTimes holds a recorded one to). A snapshot of an older job of the same id (a catalog
    /// rebuilt after the manager's journal was lost, when job ids began again) is not.
    /// </summary>
    public SnapshotManifest? RecordedBy(JobInfo job) =>
        job is { Kind: JobKind.Backup, StartedUnixMs: > 0 }
            ? Snapshots.FirstOrDefault(s => s.Job == job.Id && s.Client == job.Client && s.StartedUnixMs >= job.StartedUnixMs - (long)ClockTolerance.TotalMilliseconds)
            : null;

    /// <summary>Every library that holds the snapshot whole: its own, then its copies.</summary>
    public IReadOnlyList<string> LibrariesOf(SnapshotManifest s) => Copies.TryGetValue(s.Id, out var copies) ? [s.Library, .. copies] : [s.Library];

    /// <summary>
    /// The copy jobs a new snapshot's policy asks for (each copy rule: the first library of its pool that does not hold
    /// it). Asked again (a backup's end taken up again after the manager stopped halfway), it queues only those still
    /// lacking: a library with a copy job of the snapshot not yet ended counts as holding it.
    /// </summary>
    public IReadOnlyList<JobQueued> DecideCopiesAfter(SnapshotManifest m, DateTimeOffset now)
    {
        var policy = RetentionOf(m).Policy;
        var jobs = new List<JobQueued>();
        var holding = LibrariesOf(m).Concat(Jobs.Values.Where(j => j is { Kind: JobKind.Copy } && j.Snapshot == m.Id && !IsFinal(j.State)).Select(j => j.Library)).ToHashSet();
        var next = NextJob;
        foreach (var rule in policy.Copies)
        {
            if (rule.FullsOnly && m.Level != Level.Full) continue;
            if (rule.Schedule != "") continue; // made at the rule's slots (DecideScheduledCopies)
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
            return Reject(UnknownLibrary(cmd.Library));
        if (LibrariesOf(snapshot).Contains(cmd.Library)) return Reject($"library {cmd.Library} holds snapshot {snapshot.Id} already");
        if (InvalidPriority(cmd.Priority) is { } priority) return Reject(priority);
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
        // A spanning snapshot's damaged chunk may live in a library it spans: a heal writes into one library, whose
        // reference list would not name it; such damage is reported, and a restore reads the chunk from a copy.
        if (snapshot.Spans.Count > 0) return null;
        if (LibrariesOf(snapshot).FirstOrDefault(l => l != verify.Library && Libraries.ContainsKey(l)) is not { } source) return null;
        var job = CopyJob(NextJob.ToString(), snapshot, verify.Library, JobOrigin.Policy, MaxPriority, now);
        job.SourceLibrary = source;
        job.Heal.AddRange(report.BadIds);
        return job;
    }

    /// <summary>The most lists without a known snapshot a rebuild's answer names (it goes to the shell whole).</summary>
    public const int MaxUnaccountedSaid = 1000;

    /// <summary>
    /// Manifests a client read from a library's volumes (a catalog rebuilt after the manager's journal was lost):
    /// those the catalog lacks are recorded; damaged or foreign ones are skipped.
    /// </summary>
    public (CatalogRebuilt Answer, IReadOnlyList<Google.Protobuf.IMessage> Events) DecideRecordSnapshots(RecordSnapshots cmd)
    {
        var answer = new CatalogRebuilt { Library = cmd.Library };
        var known = Snapshots.Select(s => s.Id).ToHashSet();
        var found = new List<SnapshotManifest>();
        // A manifest found in a library other than the one it names was copied (or moved) there: that library holds
        // the snapshot too, and its prunes keep it. Only with the snapshot's reference list there (a copy writes it
        // last: a copy that failed left chunks and maybe the manifest, not a whole snapshot); not for a library the
        // snapshot spans (it holds a part), nor one the catalog is letting it go from (a tier move, a dropped copy).
        var copies = new List<Google.Protobuf.IMessage>();
        var referenced = cmd.Referenced.ToHashSet(StringComparer.Ordinal);
        var leaving = PendingDeletions.GetValueOrDefault(cmd.Library) ?? [];
        var recordedById = new Dictionary<string, SnapshotManifest>(StringComparer.Ordinal);
        foreach (var s in Snapshots) recordedById.TryAdd(s.Id, s); // (a catalog from before ids were checked could name one twice)
        // Deleted (by an operator or retention) and waiting for a library's prune to let its data go: not brought
        // back (a prune that runs meanwhile may have swept it, leaving the catalog a snapshot without data).
        var deleted = PendingDeletions.Values.SelectMany(ids => ids).Where(id => !recordedById.ContainsKey(id)).ToHashSet(StringComparer.Ordinal);
        deleted.UnionWith(Trash.Keys); // held deleted: brought back by an undelete, not a rebuild
        void CopyIfElsewhere(string id, string home, IEnumerable<string> spans, IEnumerable<string> holders)
        {
            if (home != cmd.Library && referenced.Contains(id) && !leaving.Contains(id) && !spans.Contains(cmd.Library) && !holders.Contains(cmd.Library))
                copies.Add(new SnapshotCopied { Snapshot = id, Library = cmd.Library, Job = "catalog-rebuild" });
        }
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
            if (deleted.Contains(m.Id)) continue;
            if (known.Add(m.Id))
            {
                found.Add(m);
                CopyIfElsewhere(m.Id, m.Library, m.Spans, []);
            }
            else if (recordedById.TryGetValue(m.Id, out var recorded)) CopyIfElsewhere(m.Id, recorded.Library, recorded.Spans, LibrariesOf(recorded));
        }
        var events = found.OrderBy(m => m.FinishedUnixMs).Select(m => (Google.Protobuf.IMessage)new SnapshotRecorded { Manifest = m.ToByteString() }).ToList();
        answer.Added = events.Count;
        var copied = copies.DistinctBy(c => ((SnapshotCopied)c).Snapshot).ToList();
        answer.CopiesRecorded = copied.Count;
        events.AddRange(copied); // after the snapshots they name are recorded
        answer.AddedIds.AddRange(found.OrderBy(m => m.FinishedUnixMs).Select(m => m.Id).Take(MaxUnaccountedSaid)); // the answer fits one message (Added counts them all)
        // Lists here whose manifests are elsewhere (a backup that spanned into another library): not known yet, so the
        // library is not caught up (its prunes keep unknown lists), or a prune would take a spanned snapshot's data.
        answer.Unaccounted.AddRange(referenced.Where(id => !known.Contains(id) && !deleted.Contains(id)).Order(StringComparer.Ordinal).Take(MaxUnaccountedSaid));
        return (answer, events);
    }

    /// <summary>A snapshot is its tier library's now; the library it left lets its chunks go at its next prune.</summary>
    private ManagerState WithMove(SnapshotMoved m)
    {
        var at = Snapshots.FindIndex(s => s.Id == m.Snapshot);
        if (at < 0) return this;
        var moved = Snapshots[at].Clone();
        moved.Library = m.To;
        // It is whole where it moves: the libraries it spanned let their part go at their next prune.
        var spanned = moved.Spans.ToList();
        moved.Spans.Clear();
        var copies = (Copies.GetValueOrDefault(m.Snapshot) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Remove(m.To).Remove(m.From);
        var pending = PendingDeletions;
        foreach (var library in spanned.Prepend(m.From).Where(l => l != m.To))
            pending = pending.SetItem(library, (pending.GetValueOrDefault(library) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(m.Snapshot));
        return (this with
        {
            Snapshots = Snapshots.SetItem(at, moved), Copies = copies.Count > 0 ? Copies.SetItem(m.Snapshot, copies) : Copies.Remove(m.Snapshot), PendingDeletions = pending,
        }).WithChains();
    }

    /// <summary>
    /// Tiering, looked at every minute: each snapshot older than its policy's tier rule allows on a library that
    /// is not of the tier gets a copy job to the tier (read back before it counts); one whose tier copy exists
    /// already moves at once when a tier move read that copy back, else gets a copy job to it (which reads it back). Never two moves of a snapshot at a time. A snapshot whose move failed is tried again
    /// after <see cref="TierRetryAfter"/>, doubled for each failure in a row up to <see cref="TierRetryAtMost"/>
    /// (a copy that cannot succeed, an unreadable chunk say, is not read again and again every look).
    /// </summary>
    public (IReadOnlyList<JobQueued> Jobs, IReadOnlyList<SnapshotMoved> Moves) DecideTiering(DateTimeOffset now)
    {
        var jobs = new List<JobQueued>();
        var moves = new List<SnapshotMoved>();
        // Not while a copy of it runs, nor while a restore or verify reads it: it might be reading the library it leaves.
        var busy = SnapshotsInUse();
        var next = NextJob;
        Dictionary<string, (int Failures, long LastMs)>? failed = null;
        HashSet<(string, string)>? readBack = null;
        foreach (var s in Snapshots)
        {
            var policy = RetentionOf(s).Policy;
            var tier = policy.Tier;
            if (tier is null || tier.Libraries.Count == 0 || tier.Libraries.Contains(s.Library) || busy.Contains(s.Id)) continue;
            // One that lives on a copy with a retention of its own (its primary let it go) is that copy's: moved to the
            // tier, it would leave the copy's library and be judged by the primary's rules again, which let it go.
            if (RetainedCopyOn(policy, s.Library) is not null) continue;
            if (now.ToUnixTimeMilliseconds() - s.FinishedUnixMs < tier.AfterSeconds * 1000) continue;
            failed ??= FailedTierMoves();
            if (failed.TryGetValue(s.Id, out var f) && now.ToUnixTimeMilliseconds() < f.LastMs + (long)TierRetryWait(f.Failures).TotalMilliseconds) continue;
            string? target;
            if (tier.Libraries.FirstOrDefault(l => Copies.GetValueOrDefault(s.Id)?.Contains(l) == true) is { } copied)
            {
                // The fast copy goes once it moved: only on a tier copy a tier move read back whole (a copy rule's, or a
                // rebuild's, was never read back: a copy job to it reads it back, sending only what is missing or damaged).
                readBack ??= ReadBack();
                if (readBack.Contains((s.Id, copied)))
                {
                    moves.Add(new SnapshotMoved { Snapshot = s.Id, From = s.Library, To = copied, UnixMs = now.ToUnixTimeMilliseconds() });
                    continue;
                }
                target = Libraries.ContainsKey(copied) ? copied : null;
            }
            else target = tier.Libraries.FirstOrDefault(Libraries.ContainsKey);
            if (target is null) continue;
            var job = CopyJob((next++).ToString(), s, target, JobOrigin.Policy, 0, now);
            job.TierMove = true;
            jobs.Add(new JobQueued { Job = job });
        }
        return (jobs, moves);
    }

    /// <summary>The copies (snapshot, library) a tier move's copy job that succeeded read back whole (as far as the jobs kept go back): one walk of the jobs a look.</summary>
    private HashSet<(string, string)> ReadBack() =>
        Jobs.Values.Where(j => j.Kind == JobKind.Copy && j.TierMove && j.State == JobState.Succeeded).Select(j => (j.Snapshot, j.Library)).ToHashSet();

    /// <summary>How long after a failed tier move the snapshot is tried again (the first wait; doubled for each failure in a row).</summary>
    public static readonly TimeSpan TierRetryAfter = TimeSpan.FromMinutes(10);

    /// <summary>The longest wait between two tries of a tier move that keeps failing.</summary>
    public static readonly TimeSpan TierRetryAtMost = TimeSpan.FromDays(1);

    /// <summary>The wait after <paramref name="failures"/> failed tier moves in a row.</summary>
    public static TimeSpan TierRetryWait(int failures) =>
        TimeSpan.FromTicks(Math.Min(TierRetryAtMost.Ticks, TierRetryAfter.Ticks << Math.Min(Math.Max(0, failures - 1), 20)));

    /// <summary>Per snapshot, its tier moves that failed since its last one that did not (as far as the jobs kept go back), and when the last ended.</summary>
    private Dictionary<string, (int Failures, long LastMs)> FailedTierMoves()
    {
        var failed = new Dictionary<string, (int Failures, long LastMs)>(StringComparer.Ordinal);
        foreach (var j in Jobs.Values.Where(j => j.Kind == JobKind.Copy && j.TierMove && IsFinal(j.State)).OrderBy(j => j.FinishedUnixMs))
        {
            if (j.State is JobState.Failed or JobState.Interrupted)
                failed[j.Snapshot] = (failed.GetValueOrDefault(j.Snapshot).Failures + 1, j.FinishedUnixMs);
            else failed.Remove(j.Snapshot);
        }
        return failed;
    }

    /// <summary>Whether a job other than <paramref name="except"/> that has not ended reads the snapshot (a restore, a verify, a copy).</summary>
    public bool ReadByAnother(string snapshot, string except) =>
        Jobs.Values.Any(j => !IsFinal(j.State) && j.Kind != JobKind.Backup && j.Snapshot == snapshot && j.Id != except);

    /// <summary>Jobs that a media agent runs itself (the manager asks the agent, not a client, whether it still does).</summary>
    public static bool RunsOnMedia(JobInfo job) => job.Kind is JobKind.Prune or JobKind.Copy || (job.Kind == JobKind.Verify && job.Snapshot == "");
}
