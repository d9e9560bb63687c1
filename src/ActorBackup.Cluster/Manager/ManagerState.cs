using System.Collections.Immutable;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

/// <summary>What the manager knows, rebuilt from its journal: Apply(event) -> state, and the decisions taken
/// on it (Decide...) -> events or a rejection. No actors, no I/O.</summary>
public sealed partial record ManagerState
{
    public ImmutableSortedDictionary<string, ClientRegistered> Clients { get; init; } = Named<ClientRegistered>();
    public ImmutableSortedDictionary<string, LibraryRegistered> Libraries { get; init; } = Named<LibraryRegistered>();
    public ImmutableSortedDictionary<long, JobInfo> Jobs { get; init; } = ImmutableSortedDictionary<long, JobInfo>.Empty;
    public ImmutableList<SnapshotManifest> Snapshots { get; init; } = ImmutableList<SnapshotManifest>.Empty;
    public long NextJob { get; init; } = 1;
    public ImmutableSortedDictionary<string, BackupSetDefinition> BackupSets { get; init; } = Named<BackupSetDefinition>();
    /// <summary>Per set: the last slot of its schedule acted on, so that a slot runs once, restarts included.</summary>
    public ImmutableSortedDictionary<string, SetClock> SetClocks { get; init; } = Named<SetClock>();
    /// <summary>Per client and set: the library of its newest snapshot (<see cref="ChainLibrary"/>).</summary>
    private ImmutableDictionary<string, string> Chains { get; init; } = ImmutableDictionary<string, string>.Empty;
    /// <summary>Storage policies defined by operators ("default" is built in until one is defined).</summary>
    public ImmutableSortedDictionary<string, StoragePolicy> Policies { get; init; } = Named<StoragePolicy>();
    /// <summary>Snapshots whose last verify passed (retention deletes nothing newer than the newest verified one).</summary>
    public ImmutableHashSet<string> Verified { get; init; } = ImmutableHashSet<string>.Empty;
    /// <summary>Per library: snapshots deleted since its last prune (their reference lists go at the next one).</summary>
    public ImmutableSortedDictionary<string, ImmutableSortedSet<string>> PendingDeletions { get; init; } = Named<ImmutableSortedSet<string>>();
    /// <summary>The libraries an operator disabled (abk library disable), with the reason given: they take no new job.</summary>
    public ImmutableSortedDictionary<string, string> DisabledLibraries { get; init; } = Named<string>();
    /// <summary>The certificates an operator revoked (abk cert revoke), by serial number (<see cref="DecideRevoke"/>).</summary>
    public ImmutableSortedDictionary<string, CertificateRevoked> Revoked { get; init; } = Named<CertificateRevoked>();
    /// <summary>Per snapshot: the further libraries that hold a whole copy of it.</summary>
    public ImmutableSortedDictionary<string, ImmutableSortedSet<string>> Copies { get; init; } = Named<ImmutableSortedSet<string>>();

    /// <summary>Keyed by name, compared by ordinal: the culture-aware default costs microseconds a lookup, and the schedule tick looks every set up each second.</summary>
    private static ImmutableSortedDictionary<string, T> Named<T>() => ImmutableSortedDictionary.Create<string, T>(StringComparer.Ordinal);

    /// <summary>Whether <paramref name="job"/> is one <paramref name="query"/> asks for (abk job list --client --set --state --kind --since).</summary>
    public static bool Listed(JobInfo job, ListJobs query) =>
        (query.Client == "" || job.Client == query.Client) && (query.Set == "" || job.BackupSet == query.Set)
        && (query.States.Count == 0 || query.States.Contains(job.State)) && (query.Kinds.Count == 0 || query.Kinds.Contains(job.Kind))
        && (query.SinceUnixMs <= 0 || !IsFinal(job.State) || job.QueuedUnixMs >= query.SinceUnixMs || job.FinishedUnixMs >= query.SinceUnixMs);

    public static bool IsFinal(JobState s) => s is JobState.Succeeded or JobState.Failed or JobState.Cancelled or JobState.Interrupted or JobState.Missed;

    public ManagerState Apply(object e) => e switch
    {
        ClientRegistered c => this with { Clients = Clients.SetItem(c.Id, c) },
        ClientRemoved c => this with { Clients = Clients.Remove(c.Id) },
        CertificateRevoked r => this with { Revoked = Revoked.SetItem(r.Serial, r) },
        LibraryRegistered l => this with { Libraries = Libraries.SetItem(l.Id, l) },
        JobQueued q => (this with { Jobs = Jobs.SetItem(long.Parse(q.Job.Id), q.Job.Clone()), NextJob = Math.Max(NextJob, long.Parse(q.Job.Id) + 1) })
            .WithClock(q.Job.SlotUnixMs > 0 ? q.Job.BackupSet : null, q.Job.SlotUnixMs, ""),
        JobStarted s => WithJob(s.Job, j =>
        {
            j.State = JobState.Running;
            j.Library = s.Library;
            j.Drive = s.Drive;
            j.SourceDrive = s.SourceDrive;
            j.StartedUnixMs = s.UnixMs;
            if (s.Level != BackupLevel.LevelDefault) j.Level = s.Level;
        }),
        JobRetried r => WithJob(r.Job, j =>
        {
            j.State = JobState.Queued;
            j.Attempt++;
            j.Reason = r.Reason;
            j.NotBeforeUnixMs = r.NotBeforeUnixMs;
            j.StartedUnixMs = 0;
            j.Drive = 0; // its drive is free for the next job
            j.SourceDrive = 0;
            if (r.AvoidLibrary != "" && !j.AvoidLibraries.Contains(r.AvoidLibrary)) j.AvoidLibraries.Add(r.AvoidLibrary);
            if (!j.LibraryPinned) j.Library = "";
        }),
        JobCommitting c => WithJob(c.Job, j => j.State = JobState.Committing),
        JobPriorityChanged p => WithJob(p.Job, j => j.Priority = p.Priority),
        LibraryEnabled l => this with { DisabledLibraries = l.Enabled ? DisabledLibraries.Remove(l.Library) : DisabledLibraries.SetItem(l.Library, l.Reason) },
        JobsForgotten f => this with { Jobs = Jobs.RemoveRange(f.Jobs.Select(long.Parse)) },
        JobEnded x => WithJob(x.Job, j =>
        {
            j.State = x.State;
            j.Reason = x.Reason;
            j.FinishedUnixMs = x.UnixMs;
            j.Errors = x.Errors;
            if (x.Snapshot != "") j.Snapshot = x.Snapshot;
            if (x.Verify is not null) j.Verify = x.Verify;
            if (x.Prune is not null) j.Prune = x.Prune;
            if (x.Copy is not null) j.Copy = x.Copy;
            if (x.Progress is not null) j.Progress = x.Progress;
        }).Owing(Job(x.Job) is { Kind: JobKind.Backup, Origin: JobOrigin.Schedule } ended && x.State is JobState.Failed or JobState.Missed or JobState.Interrupted
            ? (ended.BackupSet, ended.Level) : null),
        SnapshotRecorded r => Recorded(SnapshotManifest.Parser.ParseFrom(r.Manifest)),
        SnapshotsDeleted d => WithoutSnapshots(d.Snapshots.ToHashSet()),
        SnapshotsTrashed t => Trashed(t),
        CopyTrashed c => HeldCopy(c),
        SnapshotsPurged p => Purged(p),
        // (Only a snapshot that was trashed is no longer retention's: one whose held copy came back is, as before.)
        SnapshotsUndeleted u => Untrashed(u.Snapshots) with { Undeleted = Undeleted.Union(u.Snapshots.Where(Trash.ContainsKey)) },
        SnapshotSuspect x => this with { Suspects = Suspects.SetItem(x.Snapshot, x) },
        SuspectCleared c => this with { Suspects = Suspects.RemoveRange(c.Snapshots) },
        SnapshotsHeld h => Held(h),
        SnapshotMoved m => WithMove(m),
        CopyDropped d => this with
        {
            Copies = (Copies.GetValueOrDefault(d.Snapshot) ?? []).Remove(d.Library) is { Count: > 0 } left ? Copies.SetItem(d.Snapshot, left) : Copies.Remove(d.Snapshot),
            PendingDeletions = PendingDeletions.SetItem(d.Library, (PendingDeletions.GetValueOrDefault(d.Library) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(d.Snapshot)),
        },
        // A copy replaces what a copy dropped from that library before left to delete there (its list is the new one's
        // now). A copy of a snapshot deleted meanwhile (its retention and the copy ended in the same moments): nothing
        // to keep, and its data there goes at that library's next prune.
        SnapshotCopied c when Snapshots.Exists(m => m.Id == c.Snapshot) => this with
        {
            Copies = Copies.SetItem(c.Snapshot, (Copies.GetValueOrDefault(c.Snapshot) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(c.Library)),
            HeldCopies = HeldCopies.Remove(HeldKey(c.Snapshot, c.Library)), // a copy there again: no longer held
            PendingDeletions = PendingDeletions.GetValueOrDefault(c.Library) is { } leaving && leaving.Contains(c.Snapshot)
                ? leaving.Remove(c.Snapshot) is { Count: > 0 } left ? PendingDeletions.SetItem(c.Library, left) : PendingDeletions.Remove(c.Library)
                : PendingDeletions,
        },
        SnapshotCopied c => this with
        {
            PendingDeletions = PendingDeletions.SetItem(c.Library, (PendingDeletions.GetValueOrDefault(c.Library) ?? ImmutableSortedSet.Create<string>(StringComparer.Ordinal)).Add(c.Snapshot)),
        },
        LibraryPruned p when PendingDeletions.TryGetValue(p.Library, out var pending) => this with
        {
            PendingDeletions = pending.Except(p.Snapshots) is { Count: > 0 } left ? PendingDeletions.SetItem(p.Library, left) : PendingDeletions.Remove(p.Library),
        },
        SnapshotVerified v => this with
        {
            Verified = v.Ok ? Verified.Add(v.Snapshot) : Verified.Remove(v.Snapshot),
            Verifications = Snapshots.Exists(s => s.Id == v.Snapshot) ? Verifications.SetItem(v.Snapshot, v) : Verifications,
        },
        BackupSetDefined d => (this with { BackupSets = BackupSets.SetItem(d.Set.Name, d.Set.Clone()) })
            // A new set, one enabled again, or one whose schedule or time zone changed (abk apply, set add over it)
            // starts its schedule now: no slot from before runs (the new rules' slots since the set's last run would
            // otherwise run at once, a full among them, or a second run the same night).
            .WithClock(!BackupSets.TryGetValue(d.Set.Name, out var before) || (before.Disabled && !d.Set.Disabled)
                || !before.Schedules.Equals(d.Set.Schedules) || before.TimeZone != d.Set.TimeZone ? d.Set.Name : null, d.UnixMs, "", keepDeferral: true),
        BackupSetRemoved r => this with { BackupSets = BackupSets.Remove(r.Name), SetClocks = SetClocks.Remove(r.Name) },
        SlotMissed m => WithClock(m.Set, m.SlotUnixMs, m.Reason).Owing((m.Set, m.Level)),
        SlotDeferred d when SetClocks.TryGetValue(d.Set, out var clock) => this with
        {
            SetClocks = SetClocks.SetItem(d.Set, new SetClock(clock) { DeferredUntilUnixMs = d.UntilUnixMs, DeferredSlotUnixMs = d.SlotUnixMs, DeferredLevel = d.Level }),
        },
        PolicyDefined p => this with { Policies = Policies.SetItem(p.Policy.Name, p.Policy.Clone()) },
        PolicyRemoved p => this with { Policies = Policies.Remove(p.Name) },
        DefinitionsApplied d => ApplyDefinitions(d),
        ManagerSnapshot s => FromSnapshot(s),
        _ => this,
    };

    /// <summary>The catalog stays oldest first: a snapshot recorded late (a catalog rebuilt from the media) goes to its place.</summary>
    private ManagerState WithSnapshot(SnapshotManifest m)
    {
        if (Snapshots.Count == 0 || Snapshots[^1].FinishedUnixMs <= m.FinishedUnixMs)
            return this with { Snapshots = Snapshots.Add(m), Chains = Chains.SetItem(SetKey(m.Client, m.BackupSet), m.Library) };
        var at = Snapshots.Count;
        while (at > 0 && Snapshots[at - 1].FinishedUnixMs > m.FinishedUnixMs) at--;
        return (this with { Snapshots = Snapshots.Insert(at, m) }).WithChains();
    }

    private ManagerState WithJob(string id, Action<JobInfo> change)
    {
        if (!long.TryParse(id, out var n) || !Jobs.TryGetValue(n, out var job)) return this;
        var copy = job.Clone();
        change(copy);
        return this with { Jobs = Jobs.SetItem(n, copy) };
    }

    public JobInfo? Job(string id) => long.TryParse(id, out var n) && Jobs.TryGetValue(n, out var j) ? j : null;

    public ManagerSnapshot ToSnapshot()
    {
        var s = new ManagerSnapshot { NextJob = NextJob };
        s.Clients.AddRange(Clients.Values);
        s.Libraries.AddRange(Libraries.Values);
        s.Jobs.AddRange(Jobs.Values);
        s.Snapshots.AddRange(Snapshots.Select(m => m.ToByteString()));
        s.BackupSets.AddRange(BackupSets.Values);
        s.SetClocks.AddRange(SetClocks.Values);
        s.Policies.AddRange(Policies.Values);
        s.Verified.AddRange(Verified.Order(StringComparer.Ordinal));
        s.PendingDeletions.AddRange(PendingDeletions.Select(kv => new LibraryPruned { Library = kv.Key, Snapshots = { kv.Value } }));
        s.Copies.AddRange(Copies.SelectMany(kv => kv.Value.Select(l => new SnapshotCopied { Snapshot = kv.Key, Library = l })));
        s.DisabledLibraries.AddRange(DisabledLibraries.Select(kv => new LibraryEnabled { Library = kv.Key, Reason = kv.Value }));
        s.Revoked.AddRange(Revoked.Values);
        s.Trash.AddRange(Trash.Values);
        s.Suspects.AddRange(Suspects.Values);
        s.HeldCopies.AddRange(HeldCopies.Values);
        s.Undeleted.AddRange(Undeleted.Order(StringComparer.Ordinal));
        s.Holds.AddRange(Holds.Values);
        s.Verifications.AddRange(Verifications.Values);
        return s;
    }

    private static ManagerState FromSnapshot(ManagerSnapshot s) => new ManagerState
    {
        Clients = s.Clients.ToImmutableSortedDictionary(c => c.Id, c => c, StringComparer.Ordinal),
        Libraries = s.Libraries.ToImmutableSortedDictionary(l => l.Id, l => l, StringComparer.Ordinal),
        Jobs = s.Jobs.ToImmutableSortedDictionary(j => long.Parse(j.Id), j => j),
        Snapshots = s.Snapshots.Select(b => SnapshotManifest.Parser.ParseFrom(b)).ToImmutableList(),
        NextJob = s.NextJob,
        BackupSets = s.BackupSets.ToImmutableSortedDictionary(b => b.Name, b => b, StringComparer.Ordinal),
        SetClocks = s.SetClocks.ToImmutableSortedDictionary(c => c.Set, c => c, StringComparer.Ordinal),
        Policies = s.Policies.ToImmutableSortedDictionary(p => p.Name, p => p, StringComparer.Ordinal),
        Verified = s.Verified.ToImmutableHashSet(),
        PendingDeletions = s.PendingDeletions.ToImmutableSortedDictionary(p => p.Library, p => p.Snapshots.ToImmutableSortedSet(StringComparer.Ordinal), StringComparer.Ordinal),
        Copies = s.Copies.GroupBy(c => c.Snapshot).ToImmutableSortedDictionary(g => g.Key, g => g.Select(c => c.Library).ToImmutableSortedSet(StringComparer.Ordinal), StringComparer.Ordinal),
        DisabledLibraries = s.DisabledLibraries.ToImmutableSortedDictionary(d => d.Library, d => d.Reason, StringComparer.Ordinal),
        Revoked = s.Revoked.ToImmutableSortedDictionary(r => r.Serial, r => r, StringComparer.Ordinal),
        Trash = s.Trash.ToImmutableSortedDictionary(t => SnapshotManifest.Parser.ParseFrom(t.Manifest).Id, t => t, StringComparer.Ordinal),
        Suspects = s.Suspects.ToImmutableSortedDictionary(x => x.Snapshot, x => x, StringComparer.Ordinal),
        HeldCopies = s.HeldCopies.ToImmutableSortedDictionary(c => HeldKey(c.Snapshot, c.Library), c => c, StringComparer.Ordinal),
        Undeleted = s.Undeleted.ToImmutableHashSet(StringComparer.Ordinal),
        Holds = s.Holds.ToImmutableSortedDictionary(h => h.Snapshot, h => h, StringComparer.Ordinal),
        Verifications = s.Verifications.ToImmutableSortedDictionary(v => v.Snapshot, v => v, StringComparer.Ordinal),
    }.WithChains();

    private ManagerState WithChains() =>
        this with { Chains = Snapshots.Aggregate(ImmutableDictionary<string, string>.Empty, (c, m) => c.SetItem(SetKey(m.Client, m.BackupSet), m.Library)) };

    /// <param name="keepDeferral">a run deferred to after <paramref name="slotUnixMs"/> stays deferred (a set whose schedule
    /// changed: the run moved is still to come; one deferred to a time that passed while the set was disabled is not)</param>
    private ManagerState WithClock(string? set, long slotUnixMs, string missed, bool keepDeferral = false) =>
        set is null ? this : this with
        {
            SetClocks = SetClocks.SetItem(set, SetClocks.TryGetValue(set, out var was) && keepDeferral && was.DeferredUntilUnixMs > slotUnixMs
                ? new SetClock(was) { LastSlotUnixMs = slotUnixMs, LastMissed = missed }
                : new SetClock
                {
                    Set = set, LastSlotUnixMs = slotUnixMs, LastMissed = missed,
                    OwedLevel = was?.OwedLevel ?? BackupLevel.LevelDefault, // what a run owes outlives the slot
                }),
        };

    /// <summary>A full or differential of a set's schedule made no snapshot: its next scheduled runs owe that level.</summary>
    private ManagerState Owing((string Set, BackupLevel Level)? owed) =>
        owed is not { } o || Rank(o.Level) <= Rank(BackupLevel.LevelIncremental) || !SetClocks.TryGetValue(o.Set, out var clock) || Rank(clock.OwedLevel) >= Rank(o.Level) ? this
            : this with { SetClocks = SetClocks.SetItem(o.Set, new SetClock(clock) { OwedLevel = o.Level }) };

    /// <summary>A snapshot in the catalog (its manifest parsed once: every one is replayed at recovery), and what its set owed paid.</summary>
    private ManagerState Recorded(SnapshotManifest m) => WithSnapshot(m).Paid(m).JobsAbove(m.Job);

    /// <summary>New jobs are numbered above a recorded snapshot's job (a catalog rebuilt after the journal was lost brings back jobs of ids the new journal would give again).</summary>
    private ManagerState JobsAbove(string job) => long.TryParse(job, out var id) && id >= NextJob && id < int.MaxValue ? this with { NextJob = id + 1 } : this; // (a manifest's bytes: a huge id would wrap the numbering)

    /// <summary>A snapshot of a set at the level its schedule owed, or above: owed no more.</summary>
    private ManagerState Paid(SnapshotManifest m) =>
        SetClocks.TryGetValue(m.BackupSet, out var clock) && clock.OwedLevel != BackupLevel.LevelDefault
        && BackupSets.TryGetValue(m.BackupSet, out var set) && set.Client == m.Client // (another client's backup may name a set of that name)
        && Rank(FromEngineLevel(m.Level)) >= Rank(clock.OwedLevel)
            ? this with { SetClocks = SetClocks.SetItem(m.BackupSet, new SetClock(clock) { OwedLevel = BackupLevel.LevelDefault }) }
            : this;

    // ---- decisions ----------------------------------------------------------------------------------------

    /// <summary>What the manager knows of a library right now (from the media agents' reports).</summary>
    /// <param name="Unusable">why its media agent takes no sessions now (out of space, say); null: it does</param>
    /// <param name="Full">why it takes no new backups (down to its reserve of free space); null: it does. Reads go on.</param>
    /// <param name="Reads">unusable for writes, its reads go on (its disk full, its journal failing): restores and verifies still go there</param>
    public sealed record LibraryLoad(string Id, bool Reachable, int ActiveJobs, ulong FreeBytes, int RecentJobs = 0, string? Unusable = null, string? Full = null, bool Reads = false);

    /// <summary>
    /// Media selection: among the reachable registered libraries, the one with the fewest running jobs, then
    /// the fewest jobs in the last <see cref="RecentWindow"/>, then the most free space, then the id (so the
    /// choice is stable). Two concurrent backups therefore land on two libraries when two are eligible, and
    /// back-to-back ones take turns.
    /// </summary>
    public static string? ChooseLibrary(IEnumerable<LibraryLoad> loads) =>
        loads.Where(l => l.Reachable).OrderBy(l => l.ActiveJobs).ThenBy(l => l.RecentJobs).ThenByDescending(l => l.FreeBytes)
            .ThenBy(l => l.Id, StringComparer.Ordinal).FirstOrDefault()?.Id;

    public static readonly TimeSpan RecentWindow = TimeSpan.FromMinutes(10);

    /// <summary>The jobs running on <paramref name="library"/> now, writing or reading (a copy from it); a queued job holds no session
    /// there yet. What the load the queue is given says (<see cref="JobsOnLibraries"/> also counts spans, for the operator).</summary>
    public int ActiveJobsOn(string library) => HoldingDrives.Count(j => j.Library == library || j.SourceLibrary == library);

    /// <summary>
    /// Per library, the jobs running on it (as <see cref="ActiveJobsOn"/>) and those reading a snapshot that spans into it
    /// from its home (a restore, verify or copy reading a whole copy elsewhere reads none of its spans): what abk library
    /// list and disable say. One pass over the catalog, whatever the number of libraries.
    /// </summary>
    public Dictionary<string, int> JobsOnLibraries()
    {
        var running = HoldingDrives.ToList();
        var reading = running.Where(j => j.Snapshot != "").Select(j => j.Snapshot).ToHashSet(StringComparer.Ordinal);
        var homes = new Dictionary<string, SnapshotManifest>(StringComparer.Ordinal);
        if (reading.Count > 0)
            foreach (var s in Snapshots)
                if (reading.Contains(s.Id)) homes.TryAdd(s.Id, s);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var j in running)
        {
            var on = new HashSet<string>(StringComparer.Ordinal) { j.Library };
            if (j.SourceLibrary != "") on.Add(j.SourceLibrary);
            if (homes.TryGetValue(j.Snapshot, out var home) && home.Library == (j.Kind == JobKind.Copy ? j.SourceLibrary : j.Library)) on.UnionWith(home.Spans);
            foreach (var l in on) counts[l] = counts.GetValueOrDefault(l) + 1;
        }
        return counts;
    }

    public int RecentJobsOn(string library, DateTimeOffset now) =>
        Jobs.Values.Count(j => j.Library == library && j.Kind == JobKind.Backup && j.QueuedUnixMs >= (now - RecentWindow).ToUnixTimeMilliseconds());

    public sealed record Decision(IReadOnlyList<IMessage> Events, string? Rejection, JobInfo? Job = null);

    /// <summary>The most paths, and the most excludes, one job takes; the longest of each (a path is at most PATH_MAX); all of them together.</summary>
    public const int MaxJobPaths = 1000, MaxPathLength = 4096, MaxJobPathChars = 256 * 1024;

    /// <summary>
    /// Why a job's paths or excludes are more than it takes: a job is kept in the journal, in every job list and in
    /// every notice of its end, and megabytes of patterns from a portal's form would make each of those too large to send.
    /// </summary>
    /// <param name="more">paths beside the job's own among <paramref name="paths"/> (a restore's target)</param>
    private static string? TooLarge(IEnumerable<string> paths, IEnumerable<string> excludes, int more)
    {
        var (p, e) = (paths.ToList(), excludes.ToList());
        if (p.Count > MaxJobPaths + more || e.Count > MaxJobPaths)
            return $"a job takes at most {MaxJobPaths:N0} paths and {MaxJobPaths:N0} excludes (this one has {p.Count - more:N0} and {e.Count:N0}): define a backup set, or exclude whole folders";
        if (p.Concat(e).FirstOrDefault(x => x.Length > MaxPathLength) is { } longest)
            return $"a path or pattern is at most {MaxPathLength:N0} characters (one has {longest.Length:N0}: {longest[..60]}...)";
        var chars = p.Concat(e).Sum(x => (long)x.Length);
        return chars > MaxJobPathChars ? $"a job's paths and excludes are at most {MaxJobPathChars / 1024:N0} KiB together (these are {chars / 1024:N0} KiB): define a backup set, or exclude whole folders" : null;
    }

    public Decision DecideStartBackup(StartBackup cmd, IReadOnlyList<LibraryLoad> loads, DateTimeOffset now)
    {
        if (cmd.Paths.Count == 0) return Reject("a backup needs at least one path");
        if (InvalidPriority(cmd.Priority) is { } priority) return Reject(priority);
        if (InvalidMaxRun(cmd.MaxRunSeconds) is { } maxRun) return Reject(maxRun);
        if (BadMarkers(cmd.ExcludeIfPresent) is { } marker) return Reject(marker);
        if (TooLarge(cmd.Paths, cmd.Excludes, 0) is { } large) return Reject(large);
        if (cmd.BackupSet.Length > 255 || cmd.BackupSet.Any(char.IsControl))
            return Reject("a backup's set name is at most 255 characters, none of them a control character");
        var paths = NormalPaths(cmd.Paths); // as a set's are checked: in the one form they are kept in
        if (paths.Any(p => !p.StartsWith('/'))) return Reject($"paths must be absolute on the client: {string.Join(", ", paths.Where(p => !p.StartsWith('/')))}");
        var client = ResolveClient(cmd.Client, out var why);
        if (client is null) return Reject(why!);
        // A backup of other paths under a defined set's name (an operator's) is that set's in all but its paths: its
        // policy (pool and retention) unless one is given, its excludes too, its options, its priority unless one is given.
        var named = cmd.BackupSet != "" && BackupSets.TryGetValue(cmd.BackupSet, out var definedSet) && definedSet.Client == client ? definedSet : null;
        var policyName = cmd.Policy != "" ? cmd.Policy : named?.Policy ?? "";
        var policy = PolicyOf(policyName);
        if (policy is null) return Reject(UnknownPolicy(policyName));
        if (cmd.Library != "")
        {
            if (!Libraries.ContainsKey(cmd.Library)) return Reject(UnknownLibrary(cmd.Library));
            if (loads.FirstOrDefault(l => l.Id == cmd.Library) is { Reachable: false }) return Reject($"library '{cmd.Library}' is not reachable now: its node is down; pick another or wait");
            if (Disabled(cmd.Library) is { } off) return Reject($"{off}, or pick another");
        }
        else if (Pool(policy).Count == 0) return Reject("no library is reachable: start a node with the media role and a library");
        else if (!Pool(policy).Any(id => loads.FirstOrDefault(l => l.Id == id) is not { Reachable: false }))
            return Reject($"no library is reachable{(policy.Libraries.Count > 0 ? $" of storage policy '{policy.Name}' ({string.Join(", ", policy.Libraries)})" : "")}: " +
                          "start their nodes ('abk cluster show'), or wait");
        var job = new JobInfo
        {
            Id = NextJob.ToString(), Kind = JobKind.Backup, State = JobState.Queued, Client = client,
            // The library of a pool is chosen when the job starts (DecideDispatch): the one free then.
            Library = cmd.Library, LibraryPinned = cmd.Library != "", Policy = policy.Name, ChunkKib = policy.ChunkKib, Compression = policy.Compression,
            Level = cmd.Level, QueuedUnixMs = now.ToUnixTimeMilliseconds(), OneFileSystem = cmd.OneFileSystem || named?.OneFileSystem == true, Atime = cmd.Atime || named?.Atime == true,
            Origin = cmd.Origin == JobOrigin.Unspecified ? JobOrigin.Integrator : cmd.Origin, Priority = PriorityOf(cmd.Priority != 0 ? cmd.Priority : named?.Priority ?? 0),
            BackupSet = cmd.BackupSet != "" ? cmd.BackupSet : string.Join(",", paths),
            MaxRunSeconds = cmd.MaxRunSeconds > 0 ? cmd.MaxRunSeconds : named?.MaxRunSeconds ?? 0,
        };
        job.Paths.AddRange(paths);
        job.Excludes.AddRange(cmd.Excludes.Union(named?.Excludes ?? []));
        job.ExcludeIfPresent.AddRange(cmd.ExcludeIfPresent.Union(named?.ExcludeIfPresent ?? []));
        if (named is { } set)
        {
            job.PreCommand = set.PreCommand;
            job.PostCommand = set.PostCommand;
            job.CommandTimeoutSeconds = set.CommandTimeoutSeconds;
            job.PrivateKeys = set.PrivateKeys;
        }
        var parent = ParentFor(client, job.BackupSet, job.Level, now);
        if (parent is null && job.Level != BackupLevel.LevelFull) job.Level = BackupLevel.LevelFull; // nothing to compare with: full
        else if (job.Level == BackupLevel.LevelDefault) job.Level = BackupLevel.LevelIncremental;
        return new Decision([new JobQueued { Job = job }], null, job);
    }

    /// <summary>The longest a maximum run time may be (a year: beyond it, it is no limit, and milliseconds of it overflow nothing).</summary>
    public static readonly TimeSpan LongestMaxRun = TimeSpan.FromDays(366);

    /// <summary>What is wrong with the names that mark a folder to leave out (at most 100, each a file name), or null.</summary>
    public static string? BadMarkers(IReadOnlyCollection<string> markers) =>
        markers.Count > 100 ? "at most 100 --exclude-if-present names"
        : markers.Select(Engine.Archive.BackupSet.BadMarker).FirstOrDefault(b => b is not null);

    /// <summary>What is wrong with a maximum run time in seconds (0: none), or null.</summary>
    public static string? InvalidMaxRun(long seconds) =>
        seconds < 0 ? "a maximum run time cannot be negative (0: no limit)"
        : seconds > LongestMaxRun.TotalSeconds ? $"a maximum run time is at most {LongestMaxRun.TotalDays:0} days (0: no limit)"
        : null;

    /// <summary>
    /// Why a backup's running attempt is stopped at <paramref name="nowMs"/> (past its maximum run time, counted from the
    /// attempt's start), or null: what the job's end says, FAILED and not retried (a second attempt would run as long).
    /// (A stop that comes while the client commits the snapshot ends it too: its commit is part of its run.)
    /// </summary>
    public static string? Overran(JobInfo job, long nowMs) =>
        job is { MaxRunSeconds: > 0, StartedUnixMs: > 0, State: JobState.Running } && nowMs - job.StartedUnixMs >= job.MaxRunSeconds * 1000
            ? $"stopped after running {StallWatch.Describe(TimeSpan.FromMilliseconds(nowMs - job.StartedUnixMs))}, past its maximum run time of " +
              $"{StallWatch.Describe(TimeSpan.FromSeconds(job.MaxRunSeconds))} (max-run-time); not retried: give it longer, or see what made it slow ('abk job show')" +
              (job.Kind == JobKind.Backup && job.Level == BackupLevel.LevelFull
                  ? "; a full reads every file, and its set's next backups are fulls until one completes (a first full above all): give the set a longer --max-run-time until one has"
                  : "")
            : null;

    public Decision DecideStartRestore(StartRestore cmd, DateTimeOffset now)
    {
        if (cmd.Target == "" || !cmd.Target.StartsWith('/')) return Reject("a restore needs an absolute target folder on the client (--to DIR)");
        if (InvalidPriority(cmd.Priority) is { } priority) return Reject(priority);
        if (TooLarge(cmd.Paths.Append(cmd.Target), cmd.Excludes, 1) is { } large) return Reject(large);
        if (!Enum.IsDefined(cmd.Overwrite)) return Reject($"overwrite policy {(int)cmd.Overwrite} is not one this manager knows: always, if-changed, if-newer or never");
        if (cmd.Overwrite != RestoreOverwrite.OverwriteAlways && !cmd.Force)
            return Reject("--overwrite says what becomes of what is already in the target folder, and only --force lets a restore write into one " +
                          "that holds something: give --force too");
        try
        {
            _ = new Engine.Archive.ExcludeMatcher(cmd.Excludes);
        }
        catch (ArgumentException e)
        {
            return Reject(e.Message);
        }
        if (LatestOfWhom(cmd.Snapshot, cmd.Client) is { } whom) return Reject(whom);
        if (ReadingJob(LatestHolding(cmd, now), cmd.Client, now, out var snapshot, out var client) is { } why) return Reject(why);
        // A dry run writes nothing: it meets no other restore, and none waits for it.
        if (!cmd.DryRun && Restoring(client, cmd.Target, cmd.Paths) is { } running)
            return Reject($"restore job {running.Id} writes into {running.Target} on {client} and has not ended: two restores into one tree would mix " +
                          "their files; wait for it (abk job show " + running.Id + "), or restore into another folder");
        var job = new JobInfo
        {
            Id = NextJob.ToString(), Kind = JobKind.Restore, State = JobState.Queued, Client = client, Library = snapshot.Library, LibraryPinned = true,
            Snapshot = snapshot.Id, Target = cmd.Target, QueuedUnixMs = now.ToUnixTimeMilliseconds(), Force = cmd.Force, NumericOwner = cmd.NumericOwner, Sparse = cmd.Sparse,
            Overwrite = cmd.Overwrite, DryRun = cmd.DryRun,
            // Someone waits for a restore: by default it goes before the backups queued beside it (they have a window
            // to run in; a restore has none, and would sort after every one of them).
            Priority = cmd.Priority == 0 ? DefaultRestorePriority : PriorityOf(cmd.Priority),
        };
        job.Paths.AddRange(cmd.Paths);
        job.Excludes.AddRange(cmd.Excludes);
        return new Decision([new JobQueued { Job = job }], null, job);
    }

    /// <summary>
    /// The snapshot a restore names: 'latest' with paths is the newest snapshot (of its --client, when given) whose backed-up
    /// paths hold them all (a host with an /etc set and a /home set: `restore latest /etc/fstab` takes the newest of
    /// /etc's, not the /home backup that ran last); none holding them: the newest, whose restore then says nothing matches.
    /// A glob is held by any snapshot.
    /// </summary>
    public string LatestHolding(StartRestore cmd, DateTimeOffset? now = null)
    {
        if (cmd.Snapshot is not ("" or "latest") || cmd.Paths.Count == 0) return cmd.Snapshot;
        // Only * and ? make a glob here: a name may hold [ or { itself ("/photos/[2019] trip"), taken as the path it reads.
        var asked = cmd.Paths.Where(p => p.IndexOfAny(['*', '?']) < 0).Select(Normal).ToList();
        bool Holds(SnapshotManifest s) => asked.All(p => s.Paths.Select(Normal).Any(b => Overlap(p, b)));
        var snapshots = NotAhead(Snapshots.Where(s => (cmd.Client == "" || s.Client == cmd.Client) && Holds(s)).ToList(), now);
        if (snapshots.Count > 0) return snapshots[^1].Id;
        return cmd.Snapshot;
    }

    /// <summary>
    /// Whether a snapshot is one <paramref name="m"/> lists: of its client, its set, and a path its backed-up paths hold
    /// (or lie below); the path made once for a whole catalog.
    /// </summary>
    public static Func<SnapshotManifest, bool> Lister(ListSnapshots m)
    {
        var path = m.Path == "" ? "" : Normal(m.Path);
        return s => (m.Client == "" || s.Client == m.Client) && (m.BackupSet == "" || s.BackupSet == m.BackupSet)
                    && (path == "" || s.Paths.Any(b => Overlap(path, Normal(b))));
    }

    /// <summary>An absolute path as the engine reads it (escapes read back), without empty, "." and ".." steps.</summary>
    private static string Normal(string path)
    {
        var steps = new List<string>();
        foreach (var step in Engine.Posix.PosixNames.Parse(path).Split('/'))
            if (step == "..") { if (steps.Count > 0) steps.RemoveAt(steps.Count - 1); }
            else if (step is not ("" or ".")) steps.Add(step);
        return "/" + string.Join('/', steps);
    }

    /// <summary>Whether one of two normal paths is the other or holds it.</summary>
    private static bool Overlap(string a, string b) =>
        a == b || a == "/" || b == "/" || a.StartsWith(b + "/", StringComparison.Ordinal) || b.StartsWith(a + "/", StringComparison.Ordinal);

    /// <summary>
    /// Where a restore writes: below its target, each path asked for (a glob: its steps before the first wildcard), or the
    /// whole target. Two restores into / of /etc/fstab and of /home/ann write different trees.
    /// </summary>
    private static IEnumerable<string> Writes(string target, IEnumerable<string> paths)
    {
        var root = Normal(target);
        var list = paths.ToList();
        if (list.Count == 0) return [root];
        return list.Select(p =>
        {
            var wild = p.IndexOfAny(['*', '?', '[', '{']);
            var slash = wild < 0 ? -1 : p[..wild].LastIndexOf('/');
            return Normal(root + "/" + (wild < 0 ? p : slash > 0 ? p[..slash] : ""));
        });
    }

    /// <summary>A restore on <paramref name="client"/> not ended that writes where one into <paramref name="target"/> of <paramref name="paths"/> would.</summary>
    private JobInfo? Restoring(string client, string target, IEnumerable<string> paths)
    {
        var mine = Writes(target, paths).ToList();
        return Jobs.Values.FirstOrDefault(j => j.Kind == JobKind.Restore && !j.DryRun && !IsFinal(j.State) && j.Client == client
                                               && Writes(j.Target, j.Paths).Any(w => mine.Any(m => Overlap(w, m))));
    }

    /// <summary>Whether <paramref name="cmd"/> restores a snapshot onto another host than the one that made it (only an operator may).</summary>
    public bool RestoresElsewhere(StartRestore cmd)
    {
        if (cmd.Client == "") return false;
        try
        {
            return FindSnapshot(cmd.Snapshot, cmd.Client).Client != cmd.Client;
        }
        catch (KeyNotFoundException)
        {
            return false; // refused as unknown by DecideStartRestore
        }
    }

    /// <summary>A job that reads a snapshot (restore, verify): the snapshot, and its client unless another is named; or why not.</summary>
    private string? ReadingJob(string snapshotId, string requestedClient, DateTimeOffset now, out SnapshotManifest snapshot, out string client)
    {
        client = "";
        // A client named that the cell does not know (a typo) is said as such, before "it has no snapshot".
        if (requestedClient != "" && !Clients.ContainsKey(requestedClient))
        {
            snapshot = null!;
            return UnknownClient(requestedClient);
        }
        try
        {
            snapshot = FindSnapshot(snapshotId, requestedClient, now);
        }
        catch (KeyNotFoundException e)
        {
            snapshot = null!;
            return e.Message;
        }
        client = requestedClient != "" ? requestedClient : snapshot.Client;
        return Clients.ContainsKey(client) ? null
            : requestedClient == "" ? $"snapshot {snapshot.Id} is of client {client}, which is not registered now (removed, or its node never connected to this manager): " +
                                      "name the host to run it on with --client HOST"
            : UnknownClient(client);
    }

    /// <summary>
    /// `abk client remove HOST`: a decommissioned host off the list. Not while backup sets are defined on it or a job of
    /// it has not ended (remove or move them first), nor while its node is connected (it would register again at once).
    /// </summary>
    /// <param name="connected">whether the client's node is connected to the manager now</param>
    public Decision DecideRemoveClient(RemoveClient cmd, bool connected, DateTimeOffset now)
    {
        if (!Clients.ContainsKey(cmd.Client)) return Reject(UnknownClient(cmd.Client));
        if (BackupSets.Values.Where(s => s.Client == cmd.Client).Select(s => s.Name).ToList() is { Count: > 0 } sets)
            return Reject($"client {cmd.Client} has backup sets ({string.Join(", ", sets)}): remove them first (abk set remove NAME), or give them to another client (abk apply)");
        if (Jobs.Values.Where(j => j.Client == cmd.Client && !IsFinal(j.State)).Select(j => j.Id).ToList() is { Count: > 0 } open)
            return Reject($"client {cmd.Client} has jobs not ended ({string.Join(", ", open.Take(10))}): wait for them or cancel them (abk job cancel JOB)");
        if (connected)
            return Reject($"client {cmd.Client}'s node is connected: stop it (or take the client role off its node) first, or it registers again at once");
        var snapshots = Snapshots.Count(s => s.Client == cmd.Client);
        return new Decision([new ClientRemoved { Id = cmd.Client, UnixMs = now.ToUnixTimeMilliseconds(), Snapshots = snapshots }], null);
    }

    /// <summary>A client neither registered nor named by a job or snapshot the manager keeps (a typo, not a host gone).</summary>
    public bool UnknownToCatalog(string client) =>
        !Clients.ContainsKey(client) && !Jobs.Values.Any(j => j.Client == client) && !Snapshots.Any(s => s.Client == client);

    /// <summary>What an operator reads for a client the cell does not know (a typo): the ones it knows.</summary>
    public string UnknownClient(string id) => $"unknown client '{id}': known are {(Clients.Count == 0 ? "none yet" : Some(Clients.Keys, "abk client list"))}";

    /// <summary>The first 20 of <paramref name="names"/> and how many more (a cell of thousands of hosts named them all in one refusal).</summary>
    internal static string Some(IEnumerable<string> names, string listing)
    {
        var all = names.ToList();
        return string.Join(", ", all.Take(20)) + (all.Count > 20 ? $" and {all.Count - 20:N0} more ('{listing}')" : "");
    }

    /// <summary>What an operator reads for a library the cell does not know (a typo): the ones it knows.</summary>
    public string UnknownLibrary(string id) =>
        $"unknown library '{id}': known are {(Libraries.Count == 0 ? "none yet (start a node with the media role)" : string.Join(", ", Libraries.Keys))}";

    public Decision DecideStartVerify(StartVerify cmd, DateTimeOffset now)
    {
        if (InvalidPriority(cmd.Priority) is { } priority) return Reject(priority);
        if (cmd.Snapshot == "" && cmd.Library != "")
        {
            // The library itself, media side: every record of every volume read back and checked, no key.
            if (!Libraries.ContainsKey(cmd.Library)) return Reject(UnknownLibrary(cmd.Library));
            if (cmd.Client != "") return Reject("a check of a library runs on its media agent, on no client: leave --client out (or name a SNAPSHOT to verify it on a client)");
            var check = new JobInfo
            {
                Id = NextJob.ToString(), Kind = JobKind.Verify, State = JobState.Queued, Library = cmd.Library, LibraryPinned = true,
                QueuedUnixMs = now.ToUnixTimeMilliseconds(), Priority = PriorityOf(cmd.Priority), Origin = cmd.Origin == JobOrigin.Unspecified ? JobOrigin.Integrator : cmd.Origin,
            };
            return new Decision([new JobQueued { Job = check }], null, check);
        }
        if (ReadingJob(cmd.Snapshot, cmd.Client, now, out var snapshot, out var client) is { } why) return Reject(why);
        if (cmd.SharePercent is < 0 or > 100) return Reject($"share {cmd.SharePercent}%: give 1 to 100 (the share of the file chunks read back)");
        var job = new JobInfo
        {
            VerifySharePercent = cmd.SharePercent == 100 ? 0 : cmd.SharePercent,
            Id = NextJob.ToString(), Kind = JobKind.Verify, State = JobState.Queued, Client = client, Library = snapshot.Library, LibraryPinned = true,
            Snapshot = snapshot.Id, QueuedUnixMs = now.ToUnixTimeMilliseconds(), Priority = PriorityOf(cmd.Priority), BackupSet = snapshot.BackupSet,
            Origin = cmd.Origin == JobOrigin.Unspecified ? JobOrigin.Integrator : cmd.Origin,
        };
        return new Decision([new JobQueued { Job = job }], null, job);
    }

    private static Decision Reject(string reason) => new([], reason);

    private string? ResolveClient(string requested, out string? why)
    {
        why = null;
        if (requested != "")
        {
            if (Clients.ContainsKey(requested)) return requested;
            why = UnknownClient(requested);
            return null;
        }
        if (Clients.Count == 1) return Clients.Keys.First();
        why = Clients.Count == 0 ? "no client has registered: start a node with the client role" : $"several clients are registered ({string.Join(", ", Clients.Keys)}): name one with --client";
        return null;
    }

    /// <summary>
    /// Incremental: the newest snapshot of the set; differential: the newest full one; full: none. With
    /// <paramref name="library"/>, only snapshots on that library count (a parent's chunks must be where the job writes).
    /// </summary>
    /// A snapshot stamped ahead of <paramref name="now"/> (made while a clock was ahead) is no parent: its times would make
    /// the backup trust what changed in them (a full is made rather than compare with it).
    public SnapshotManifest? ParentFor(string client, string backupSet, BackupLevel level, DateTimeOffset now, string? library = null) =>
        Engine.Catalog.SnapshotCatalog.ParentFor(Snapshots.Where(s => !Engine.Catalog.Retention.Ahead(s, now) && (library is null || s.Library == library)), backupSet, client, ToEngineLevel(level));

    /// <summary>
    /// The catalog's snapshots but those stamped ahead of <paramref name="now"/> (Retention.Ahead: made while a clock was
    /// ahead, set right since), which are not the newest of anything; all of them when there is no now, or only such.
    /// </summary>
    private IReadOnlyList<SnapshotManifest> NotAhead(DateTimeOffset? now) => NotAhead(Snapshots, now);

    /// <summary><see cref="NotAhead(DateTimeOffset?)"/> of <paramref name="oldestFirst"/> (one client's, say: all of them when they are all ahead).</summary>
    private static IReadOnlyList<SnapshotManifest> NotAhead(IReadOnlyList<SnapshotManifest> oldestFirst, DateTimeOffset? now)
    {
        if (oldestFirst.Count == 0 || !Engine.Catalog.Retention.Ahead(oldestFirst[^1], now)) return oldestFirst; // the last is the newest
        var fit = oldestFirst.Where(s => !Engine.Catalog.Retention.Ahead(s, now)).ToList();
        return fit.Count > 0 ? fit : oldestFirst;
    }

    /// <summary>The library holding a set's newest snapshot: where its chain continues.</summary>
    public string? ChainLibrary(string client, string backupSet) => Chains.GetValueOrDefault(SetKey(client, backupSet));

    /// <summary>A backup set of a client as one key (set names are per client).</summary>
    private static string SetKey(string client, string backupSet) => client + "\n" + backupSet;

    /// <summary>
    /// A snapshot by id, unique prefix or 'latest'. With <paramref name="client"/> (a restore's or a verify's
    /// --client), 'latest' is that client's newest snapshot, not the cell's: `abk restore latest --client web1` must
    /// not put another host's newest data onto web1; another host's snapshot goes there only named by its id.
    /// </summary>
    /// With <paramref name="now"/>, 'latest' is not one stamped ahead of it (<see cref="NotAhead"/>).
    public SnapshotManifest FindSnapshot(string idOrPrefix, string client = "", DateTimeOffset? now = null) =>
        client != "" && idOrPrefix is "" or "latest"
            ? FindSnapshotOf(client, idOrPrefix, $"client {client} has no snapshot yet: to restore another host's snapshot onto it, name that snapshot's id (abk snapshot list)", now)
            : Engine.Catalog.SnapshotCatalog.Find(idOrPrefix is "" or "latest" ? NotAhead(now) : Snapshots, idOrPrefix, "list them with 'abk snapshot list'");

    /// <summary>
    /// Why a restore of 'latest' without a client is refused: the catalog holds snapshots of several hosts, and a restore
    /// runs on its snapshot's host, so the newest of the cell would roll back whichever host backed up last (abk names
    /// the host it runs on; a program gives <c>client</c>). Null when one host's snapshots are all there is, or it names one.
    /// </summary>
    public string? LatestOfWhom(string snapshot, string client)
    {
        if (client != "" || snapshot is not ("" or "latest") || Snapshots.Count == 0) return null;
        var first = Snapshots[0].Client;
        var hosts = Snapshots.Any(s => s.Client != first) ? Snapshots.Select(s => s.Client).Distinct().Count() : 1;
        return hosts == 1 ? null
            : $"'latest' of which host? the catalog holds snapshots of {hosts} clients, and a restore runs on its snapshot's host: give --client HOST " +
              "(the host to restore onto, whose newest snapshot it takes), or the snapshot's id (abk snapshot list)";
    }

    /// <summary>A snapshot of <paramref name="client"/>'s alone, by id, unique prefix or 'latest'; <paramref name="none"/> when it has none.</summary>
    public SnapshotManifest FindSnapshotOf(string client, string idOrPrefix, string none, DateTimeOffset? now = null) =>
        Engine.Catalog.SnapshotCatalog.Find(NotAhead(Snapshots.Where(s => s.Client == client).ToList(), idOrPrefix is "" or "latest" ? now : null), s => s.Id, idOrPrefix,
            "list them with 'abk snapshot list'", none, " of client " + client);

    /// <summary>
    /// Jobs that were open when the manager stopped and that no client has since said it is still running
    /// (<paramref name="claimed"/>): recorded as interrupted, never silently lost.
    /// </summary>
    public IEnumerable<JobEnded> InterruptedJobs(DateTimeOffset now, IReadOnlySet<string> claimed) =>
        // A queued job never started: it stays in the queue and starts when the limits allow.
        // A prune or copy runs on its media agent, which its child asks (JobLost when it no longer runs it): not ended here.
        Jobs.Values.Where(j => !IsFinal(j.State) && j.State != JobState.Queued && !RunsOnMedia(j) && !claimed.Contains(j.Id)).Select(j => new JobEnded
        {
            Job = j.Id, State = JobState.Interrupted, UnixMs = now.ToUnixTimeMilliseconds(),
            Reason = "the manager stopped while the job ran; nothing of it was recorded as a snapshot; run it again",
        });

    public static Level ToEngineLevel(BackupLevel level) => level switch
    {
        BackupLevel.LevelFull => Level.Full,
        BackupLevel.LevelDifferential => Level.Differential,
        _ => Level.Incremental,
    };

    public static BackupLevel FromEngineLevel(Level level) => level switch
    {
        Level.Full => BackupLevel.LevelFull,
        Level.Differential => BackupLevel.LevelDifferential,
        _ => BackupLevel.LevelIncremental,
    };

    public static SnapshotInfo Info(SnapshotManifest m) => new()
    {
        Id = m.Id, Client = m.Client, BackupSet = m.BackupSet, Level = FromEngineLevel(m.Level), Parent = m.Parent,
        FinishedUnixMs = m.FinishedUnixMs, Library = m.Library, Files = m.Stats?.Files ?? 0, Bytes = m.Stats?.Bytes ?? 0,
        BytesStored = m.Stats?.BytesStored ?? 0, Errors = m.ErrorCount, Job = m.Job, Paths = { m.Paths }, Spans = { m.Spans },
    };
}
