using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// How many jobs may run at once: in the whole cell, and per client (0: no limit); per library: its drives.
/// A job that failed on a transient fault waits <see cref="RetryBackoff"/> before its second attempt, twice as long before the third...
/// <see cref="KeepJobsPerSet"/>: how many ended jobs of each backup set (restores: of each client) the history keeps (0: 100).
/// <see cref="PriorityAging"/>: a waiting job gains one priority level per this much waiting (zero: no aging), so
/// that a stream of high-priority work cannot hold a low-priority job back forever.
/// <see cref="JobProbe"/>: how often a running job's client is asked whether it still runs it (zero: 30 s).
/// <see cref="PruneThreshold"/>: a prune compacts a volume when at least this share of it is dead.
/// <see cref="PruneSchedule"/>: a cron rule (UTC) at whose slots every library is pruned; empty: only when asked.
/// <see cref="CheckSchedule"/>: a cron rule (UTC) at whose slots every library's volumes are checked (abk verify --library).
/// </summary>
public sealed record QueueLimits(int MaxJobs = 0, int MaxJobsPerClient = 0, TimeSpan RetryBackoff = default, int KeepJobsPerSet = 0, TimeSpan PriorityAging = default,
    TimeSpan JobProbe = default, double PruneThreshold = 0.2, TimeSpan PruneOrphansAfter = default, string PruneSchedule = "", string CheckSchedule = "",
    TimeSpan ClientOfflineWait = default, TimeSpan? StallTimeout = null, TimeSpan? LibrariesSettle = null)
{
    /// <summary>How long a running backup, restore or verify may report figures that do not move before its attempt is
    /// taken for lost (<see cref="StallWatch"/>): 30 minutes unless set; zero: never.</summary>
    public TimeSpan Stall => StallTimeout ?? TimeSpan.FromMinutes(30);

    /// <summary>
    /// How long a deleted snapshot (an operator's delete, or retention's) is held before its data may go
    /// (actorbackup.manager.deletion-delay; ManagerState.Trash): zero, at once (at the next prune).
    /// </summary>
    public TimeSpan DeletionDelay { get; init; }

    /// <summary>When a recorded backup is suspect of a mass change (actorbackup.manager.suspect-new-share).</summary>
    public Suspicion Suspicion { get; init; } = new();

    /// <summary>How long a job without a start window waits queued for its client's node to connect (default an hour), counting no attempt.</summary>
    public TimeSpan OfflineWait => ClientOfflineWait > TimeSpan.Zero ? ClientOfflineWait : TimeSpan.FromHours(1);

    /// <summary>A reference list that the catalog neither keeps nor deleted counts as live this long (a backup not yet recorded).</summary>
    public TimeSpan OrphansAfter => PruneOrphansAfter > TimeSpan.Zero ? PruneOrphansAfter : DefaultOrphansAfter;

    /// <summary>
    /// How old a reference list the catalog neither keeps nor deleted must be before a prune lets it go: a week, time
    /// for a manager database restored from an older backup to get the snapshots made since back (abk catalog rebuild).
    /// </summary>
    public static readonly TimeSpan DefaultOrphansAfter = TimeSpan.FromDays(7);
    public TimeSpan Probe => JobProbe > TimeSpan.Zero ? JobProbe : TimeSpan.FromSeconds(30);
    public TimeSpan Backoff => RetryBackoff > TimeSpan.Zero ? RetryBackoff : TimeSpan.FromSeconds(30);
    public int KeepJobs => KeepJobsPerSet > 0 ? KeepJobsPerSet : 100;
}

// The job queue: every job is QUEUED first and starts when the limits allow, higher priority first, then older.
public sealed partial record ManagerState
{
    /// <summary>What to start now, why each other queued job waits, and the scheduled jobs whose window closed (they end MISSED).</summary>
    public sealed record DispatchPlan(IReadOnlyList<JobInfo> Start, IReadOnlyDictionary<string, string> Waiting, IReadOnlyList<JobEnded> Missed);

    public static int PriorityOf(int requested) => requested == 0 ? DefaultPriority : Math.Clamp(requested, 1, MaxPriority);

    /// <summary>Why a priority a command asks for is refused (0: the default, else 1 to <see cref="MaxPriority"/>), or null.</summary>
    public static string? InvalidPriority(int requested) =>
        requested is < 0 or > MaxPriority ? $"priority {requested} is out of range: 1 (lowest) to {MaxPriority} (highest)" : null;

    /// <param name="starting">jobs already being started (their JobStarted not yet applied), with the library and
    /// drive each was given: they count as running there</param>
    /// <param name="connected">the clients connected now; a job waits for its client until its window closes, or, without
    /// one, for <see cref="QueueLimits.OfflineWait"/>. Null: all.</param>
    /// <param name="loads">what the media agents last said of their libraries; null: every library reachable and usable</param>
    /// <returns>the jobs to start now, each with the library it writes to, the drive of it it holds, and its final level</returns>
    /// <param name="registering">clients a manager that just started waits to hear from (they ran or were given jobs
    /// under the one before): their jobs wait for them instead of failing as not connected</param>
    /// <param name="offlineSince">when the manager saw each client not connected first (since it last was): a job waits
    /// for its client from then, its queueing or its attempt's time, whichever is latest</param>
    public DispatchPlan DecideDispatch(QueueLimits limits, IReadOnlyDictionary<string, StartingJob> starting, IReadOnlySet<string>? connected = null, DateTimeOffset? now = null,
        IReadOnlyList<LibraryLoad>? loads = null, IReadOnlySet<string>? registering = null, IReadOnlyDictionary<string, long>? offlineSince = null)
    {
        var missed = new List<JobEnded>();
        string? waitingBefore(JobInfo j) => connected is not null && !connected.Contains(j.Client) ? $"client {j.Client} was offline" : null;
        bool Busy(JobInfo j) => j.State is JobState.Running or JobState.Committing || starting.ContainsKey(j.Id);
        // A job being started is still QUEUED in the state, and a pool's job has no library there yet.
        string LibraryOf(JobInfo j) => starting.TryGetValue(j.Id, out var chosen) && chosen.Library != "" ? chosen.Library : j.Library;
        int DriveOf(JobInfo j) => starting.TryGetValue(j.Id, out var chosen) && chosen.Library != "" ? chosen.Drive : j.Drive;
        int SourceDriveOf(JobInfo j) => starting.TryGetValue(j.Id, out var chosen) && chosen.Library != "" ? chosen.SourceDrive : j.SourceDrive;
        var nowMs = now?.ToUnixTimeMilliseconds();
        // One pass over the jobs (an immutable sorted map is slow to walk): what runs, what waits, and how
        // long each set's newest succeeded backup took (the estimate of its next).
        var running = new List<JobInfo>();
        var queued = new List<JobInfo>();
        var took = new Dictionary<string, long>();
        foreach (var j in Jobs.Values) // oldest first: the newest duration wins
        {
            if (Busy(j)) running.Add(j);
            else if (j.State == JobState.Queued) queued.Add(j);
            else if (nowMs is not null && j is { Kind: JobKind.Backup, State: JobState.Succeeded, StartedUnixMs: > 0 } && j.FinishedUnixMs > j.StartedUnixMs)
                took[SetKey(j.Client, j.BackupSet)] = j.FinishedUnixMs - j.StartedUnixMs;
        }
        var total = running.Count;
        var perLibrary = running.GroupBy(LibraryOf).ToDictionary(g => g.Key, g => g.Count());
        var perClient = running.GroupBy(j => j.Client).ToDictionary(g => g.Key, g => g.Count());
        var drivesTaken = running.GroupBy(LibraryOf).ToDictionary(g => g.Key, g => g.Select(DriveOf).Where(d => d > 0).ToHashSet());
        HashSet<int> TakenIn(string library) => drivesTaken.TryGetValue(library, out var taken) ? taken : drivesTaken[library] = [];
        // A copy from a tape library holds a drive of it too, where it reads.
        foreach (var j in running)
            if (SourceDriveOf(j) is > 0 and var read && j.SourceLibrary != "")
            {
                perLibrary[j.SourceLibrary] = perLibrary.GetValueOrDefault(j.SourceLibrary) + 1;
                TakenIn(j.SourceLibrary).Add(read);
            }
        var libraries = new LibraryView(this, loads, perLibrary, nowMs, limits.OfflineWait);
        var start = new List<JobInfo>();
        var waiting = new Dictionary<string, string>(queued.Count);
        // The order: priority (raised by waiting, with aging); among equals, the job whose window leaves it the
        // least slack (its end minus how long the set's last run took) first; then the oldest.
        long Estimate(JobInfo j) => took.Count == 0 ? 0 : took.GetValueOrDefault(SetKey(j.Client, j.BackupSet));
        var agingMs = nowMs is not null && limits.PriorityAging >= TimeSpan.FromMilliseconds(1) ? (long)limits.PriorityAging.TotalMilliseconds : 0;
        var order = new QueueKey[queued.Count];
        for (var i = 0; i < queued.Count; i++)
        {
            var j = queued[i];
            var effective = PriorityOf(j.Priority) + (agingMs > 0 ? (int)Math.Min(MaxPriority, Math.Max(0, nowMs!.Value - j.QueuedUnixMs) / agingMs) : 0);
            var latestStart = j.WindowEndUnixMs > 0 ? j.WindowEndUnixMs - Estimate(j) : long.MaxValue;
            order[i] = new QueueKey(-effective, latestStart, j.QueuedUnixMs, long.Parse(j.Id), i);
        }
        Array.Sort(order);
        var clientFull = new Dictionary<(string, int), string>();
        foreach (var key in order)
        {
            var job = queued[key.Index];
            // A scheduled run of a set removed since (abk set remove, apply --prune), given to another client or disabled runs
            // no more: its paths and commands are the ones the operator took away (and it would hold back the slots of a set
            // added again by that name). An operator's run of the set (abk set run), asked for explicitly, is left to run.
            if (job.Kind == JobKind.Backup && job.Origin == JobOrigin.Schedule && job.BackupSet != "" && GoneSet(job) is { } gone)
            {
                missed.Add(new JobEnded { Job = job.Id, State = JobState.Cancelled, UnixMs = nowMs ?? 0, Reason = $"backup set {job.BackupSet} {gone} before this scheduled run started" });
                continue;
            }
            if (job.WindowEndUnixMs > 0 && nowMs > job.WindowEndUnixMs)
            {
                // A job that ran and failed, waiting for its next attempt, failed: said with its last attempt's reason
                // (MISSED would hide the failure from whoever watches for FAILED).
                missed.Add(job.Attempt > 0
                    ? new JobEnded
                    {
                        Job = job.Id, State = JobState.Failed, UnixMs = nowMs.Value,
                        Reason = $"{job.Reason}; no time was left in its window ({DateTimeOffset.FromUnixTimeMilliseconds(job.WindowEndUnixMs):u}) " +
                                 $"for attempt {job.Attempt + 1}",
                    }
                    : new JobEnded
                    {
                        Job = job.Id, State = JobState.Missed, UnixMs = nowMs.Value,
                        Reason = $"not started by the end of its window ({DateTimeOffset.FromUnixTimeMilliseconds(job.WindowEndUnixMs):u}): " +
                                 (waitingBefore(job) ?? (libraries.Choose(job).Why is { } waitedFor ? $"it waited for {waitedFor}" : "it waited in the queue")),
                    });
                continue;
            }
            var ofClient = perClient.GetValueOrDefault(job.Client);
            string? why = null, library = null;
            if (job.NotBeforeUnixMs > 0 && nowMs < job.NotBeforeUnixMs)
                why = $"attempt {job.Attempt + 1} at {DateTimeOffset.FromUnixTimeMilliseconds(job.NotBeforeUnixMs):u}, after: {job.Reason}";
            else if (job.WindowEndUnixMs > 0 && connected is not null && !connected.Contains(job.Client)) why = $"client {job.Client} is offline";
            else if (registering is not null && job.Client != "" && registering.Contains(job.Client) && connected?.Contains(job.Client) != true)
                why = $"client {job.Client} has not registered with the manager since it started";
            else if (connected is not null && job.Client != "" && !RunsOnMedia(job) && !connected.Contains(job.Client))
            {
                // Not started (it would fail at once and spend an attempt: a client down for minutes lost every retry in
                // one): it waits for the client's node, as a job with a window does inside it, up to the offline wait.
                var deadline = Math.Max(Math.Max(job.QueuedUnixMs, job.NotBeforeUnixMs), offlineSince?.GetValueOrDefault(job.Client) ?? 0)
                               + (long)limits.OfflineWait.TotalMilliseconds;
                if (nowMs > deadline)
                {
                    missed.Add(new JobEnded
                    {
                        Job = job.Id, State = JobState.Failed, UnixMs = nowMs.Value,
                        Reason = $"client {job.Client} was not connected for {limits.OfflineWait.TotalMinutes:F0} min (until {DateTimeOffset.FromUnixTimeMilliseconds(deadline):u}): " +
                                 $"start its node (abk client list shows it), then run the job again" + (job.Attempt > 0 ? $"; its last attempt: {job.Reason}" : ""),
                    });
                    continue;
                }
                why = $"client {job.Client} is offline (the job waits for it until {DateTimeOffset.FromUnixTimeMilliseconds(deadline):u})";
            }
            else if (limits.MaxJobs > 0 && total >= limits.MaxJobs) why = $"cell: {total} of {limits.MaxJobs} jobs running";
            else if (limits.MaxJobsPerClient > 0 && job.Client != "" && ofClient >= limits.MaxJobsPerClient)
            {
                if (!clientFull.TryGetValue((job.Client, ofClient), out why))
                    clientFull[(job.Client, ofClient)] = why = $"client {job.Client}: {ofClient} of {limits.MaxJobsPerClient} jobs running";
            }
            else (library, why) = libraries.Choose(job);
            var source = ReadsOnDrive(job.Kind, job.SourceLibrary) && job.SourceLibrary != library ? job.SourceLibrary : "";
            if (why is null && source != "" && perLibrary.GetValueOrDefault(source) >= DrivesOf(source))
                why = $"{source}: {perLibrary.GetValueOrDefault(source)} of {DrivesOf(source)} drives busy (the copy reads it)";
            else if (why is null && source != "" && libraries.HeldFor(source, job.Id) is { } sourceHeld) why = sourceHeld;
            if (why is not null || library is null)
            {
                // A copy from a tape library needs a drive there and one in its target at once: each freed drive went to
                // a job that needs one library only, and the copy waited for good. Once it has waited an hour, the last free
                // drive of each is held for it in this pass (lower-ranked jobs do not take it), when drives are all it
                // waits for (not space, a library unreachable or disabled, the cell's limit).
                if (ReadsOnDrive(job.Kind, job.SourceLibrary) && job.SourceLibrary != job.Library && nowMs - Math.Max(job.QueuedUnixMs, job.NotBeforeUnixMs) > (long)CopyHoldsAfter.TotalMilliseconds
                    && !(limits.MaxJobs > 0 && total >= limits.MaxJobs) && libraries.WaitsForDrivesOnly(job)
                    && (perLibrary.GetValueOrDefault(job.Library) >= DrivesOf(job.Library) || perLibrary.GetValueOrDefault(job.SourceLibrary) >= DrivesOf(job.SourceLibrary)))
                {
                    libraries.Hold(job.Library, job.Id);
                    libraries.Hold(job.SourceLibrary, job.Id);
                }
                why ??= "no library";
                // Say so when the window can no longer be met, going by how long the set's last run took.
                if (job.WindowEndUnixMs > 0 && nowMs + Estimate(job) > job.WindowEndUnixMs && Estimate(job) > 0)
                    why += $"; its last run took {TimeSpan.FromMilliseconds(Estimate(job)):g}, more than is left of its window";
                waiting[job.Id] = why;
                continue;
            }
            var chosen = job.Clone();
            chosen.Library = library;
            var taken = TakenIn(library);
            chosen.Drive = FreeDrive(taken);
            taken.Add(chosen.Drive);
            if (source != "")
            {
                var reads = TakenIn(source);
                chosen.SourceDrive = FreeDrive(reads);
                reads.Add(chosen.SourceDrive);
                perLibrary[source] = perLibrary.GetValueOrDefault(source) + 1;
            }
            if (chosen.Kind == JobKind.Backup)
            {
                // Incremental and differential need a parent on the library written to: without one there, a full.
                if (chosen.Level != BackupLevel.LevelFull && ParentFor(chosen.Client, chosen.BackupSet, chosen.Level, now ?? DateTimeOffset.UtcNow, library) is null) chosen.Level = BackupLevel.LevelFull;
                else if (chosen.Level == BackupLevel.LevelDefault) chosen.Level = BackupLevel.LevelIncremental;
            }
            start.Add(chosen);
            total++;
            perLibrary[library] = perLibrary.GetValueOrDefault(library) + 1;
            perClient[job.Client] = ofClient + 1;
        }
        return new DispatchPlan(start, waiting, missed);
    }

    public const int MaxPriority = 10;

    /// <summary>How long a copy that needs a drive in two libraries waits before the last free drive of each is held for it.</summary>
    public static readonly TimeSpan CopyHoldsAfter = TimeSpan.FromHours(1);

    /// <summary>How a queued scheduled run of a set no longer stands: the set removed, given to another client, or disabled; null: it stands.</summary>
    private string? GoneSet(JobInfo job) => !BackupSets.TryGetValue(job.BackupSet, out var set) ? "was removed"
        : set.Client != job.Client ? $"was given to client {set.Client}"
        : set.Disabled ? "was disabled" : null;

    /// <summary>A queued job's place: higher effective priority, then least slack, then older, then lower id.</summary>
    private readonly record struct QueueKey(int NegPriority, long LatestStart, long QueuedMs, long Id, int Index) : IComparable<QueueKey>
    {
        public int CompareTo(QueueKey o)
        {
            var c = NegPriority.CompareTo(o.NegPriority);
            if (c == 0) c = LatestStart.CompareTo(o.LatestStart);
            if (c == 0) c = QueuedMs.CompareTo(o.QueuedMs);
            return c != 0 ? c : Id.CompareTo(o.Id);
        }
    }

    /// <summary>The libraries as one dispatch sees them: reachable, usable, and how many of their drives are taken.</summary>
    /// <param name="wait">how long a backup waits for a library of its pool that is unreachable now (its node down for a
    /// patch, say) rather than go to one that is full or that it failed on (and spend its attempts there in seconds)</param>
    private sealed class LibraryView(ManagerState state, IReadOnlyList<LibraryLoad>? loads, Dictionary<string, int> perLibrary, long? nowMs, TimeSpan wait)
    {
        private readonly Dictionary<string, LibraryLoad>? _loads = loads?.ToDictionary(l => l.Id);

        private LibraryLoad Load(string id) => _loads is null ? new LibraryLoad(id, true, 0, 0) : _loads.GetValueOrDefault(id) ?? new LibraryLoad(id, false, 0, 0);

        private int Drives(string id) => state.DrivesOf(id);

        private readonly Dictionary<(string, int), string> _busy = [];

        /// <summary>Libraries whose free drives this pass keeps for a job ranked above those still to come (a copy waiting
        /// for a drive in two libraries at once), with that job.</summary>
        private readonly Dictionary<string, string> _held = [];

        public void Hold(string library, string job) => _held.TryAdd(library, job);

        /// <summary>Why <paramref name="job"/> may not take a free drive of <paramref name="library"/>: its last free one is held for
        /// another (one drive a library: the copy needs no more); or null.</summary>
        public string? HeldFor(string library, string job) =>
            _held.TryGetValue(library, out var holder) && holder != job && perLibrary.GetValueOrDefault(library) + 1 >= Drives(library)
                ? $"{library}: its free drive is held for job {holder} (a copy that waits for a drive here and in another library at once)"
                : null;

        /// <summary>Whether a copy waits for drives alone: its target can take it but for drives (reachable, enabled, with room),
        /// and its source can be read but for drives.</summary>
        public bool WaitsForDrivesOnly(JobInfo copy) =>
            Unfit(copy.Library) is null && Load(copy.Library).Full is null && Unfit(copy.SourceLibrary) is null && SpanOff(copy.Snapshot, copy.SourceLibrary) is null;

        /// <summary>Why the library cannot take one more job now: its drives busy, or its last free one held for a copy (<see cref="HeldFor"/>);
        /// or null (the busy text made once per library and count).</summary>
        private string? Full(string id)
        {
            var n = perLibrary.GetValueOrDefault(id);
            var drives = Drives(id);
            if (n < drives) return _held.Count == 0 ? null : HeldFor(id, "");
            if (!_busy.TryGetValue((id, n), out var why)) _busy[(id, n)] = why = $"{id}: {n} of {drives} drives busy";
            return why;
        }

        /// <param name="reading">for a job that only reads there (a restore, a verify): a library that cannot write but reads is fit</param>
        private string? Unfit(string id, bool reading = false) => !state.Libraries.ContainsKey(id) ? $"library {id} is not registered"
            : state.Disabled(id) is { } off ? off
            : Load(id) switch
            {
                { Reachable: false } => $"library {id} is unreachable",
                { Unusable: not null, Reads: true } when reading => null,
                { Unusable: { } why } => why,
                _ => null,
            };

        /// <summary>Why the part of <paramref name="snapshot"/> held on <paramref name="library"/> cannot be read now: a library it
        /// spans into there is disabled (a restore, verify or copy would read it); null when none is.</summary>
        private string? SpanOff(string snapshot, string library) =>
            snapshot == "" || state.DisabledLibraries.IsEmpty ? null
            : Home(snapshot) is { Spans.Count: > 0 } spanning && spanning.Library == library
                ? spanning.Spans.Select(state.Disabled).FirstOrDefault(off => off is not null) : null;

        /// <summary>The catalog's snapshots by id, made once a pass when first asked (a look per job scanned the whole catalog).</summary>
        private Dictionary<string, Engine.Trees.SnapshotManifest>? _homes;

        private Engine.Trees.SnapshotManifest? Home(string snapshot)
        {
            if (_homes is null)
            {
                _homes = new Dictionary<string, Engine.Trees.SnapshotManifest>(StringComparer.Ordinal);
                foreach (var s in state.Snapshots) _homes.TryAdd(s.Id, s);
            }
            return _homes.GetValueOrDefault(snapshot);
        }

        /// <summary>The library the job writes to or reads from now, or why it waits.</summary>
        public (string? Library, string? Why) Choose(JobInfo job)
        {
            // A copy reads its source (and the libraries that snapshot spans there): a disabled one is read by no new job either.
            if (job.Kind == JobKind.Copy && job.SourceLibrary != "" && (state.Disabled(job.SourceLibrary) ?? SpanOff(job.Snapshot, job.SourceLibrary)) is { } sourceOff)
                return (null, sourceOff);
            if (job.Kind is JobKind.Restore or JobKind.Verify && state.Copies.ContainsKey(job.Snapshot))
            {
                // A snapshot with copies is read from the first library holding it that can take the job, one a
                // job already failed on last: a lost or broken library does not stop a restore.
                var holders = state.Snapshots.FirstOrDefault(s => s.Id == job.Snapshot) is { } snapshot ? state.LibrariesOf(snapshot) : [job.Library];
                // One that can also write first: one that only reads (its disk full) is the last resort.
                string? firstWhy = null;
                foreach (var reading in (bool[])[false, true])
                    foreach (var l in holders.OrderBy(l => job.AvoidLibraries.Contains(l)))
                    {
                        var why = Unfit(l, reading) ?? Full(l) ?? SpanOff(job.Snapshot, l);
                        if (why is null) return (l, null);
                        firstWhy ??= why;
                    }
                return (null, firstWhy);
            }
            // A prune runs on a library that cannot write (a full disk) too: giving space back is what it is for;
            // and so does a check of the library's volumes (to say what is damaged or missing).
            if (job.Kind == JobKind.Prune || (job.Kind == JobKind.Verify && job.Snapshot == ""))
                return (state.Disabled(job.Library) ?? (Load(job.Library).Reachable && state.Libraries.ContainsKey(job.Library) ? Full(job.Library) : Unfit(job.Library))) is { } blocked
                    ? (null, blocked) : (job.Library, null);
            if (job.Kind == JobKind.Copy && Load(job.Library).Full is { } full) return (null, full); // a copy writes into its library
            if (job.LibraryPinned || job.Kind != JobKind.Backup)
                return (Unfit(job.Library, reading: job.Kind is JobKind.Restore or JobKind.Verify) ?? Full(job.Library) ?? (job.Kind is JobKind.Restore or JobKind.Verify ? SpanOff(job.Snapshot, job.Library) : null)) is { } why
                    ? (null, why) : (job.Library, null);
            var policy = state.PolicyOfJob(job);
            var pool = state.Pool(policy);
            var reachable = pool.Where(id => state.Libraries.ContainsKey(id) && Load(id).Reachable && state.Disabled(id) is null).ToList();
            // A library down to its reserve takes no new backup (a running one goes on in the next of the pool).
            var fit = reachable.Where(id => Unfit(id) is null && Load(id).Full is null).ToList();
            // A library of the pool that is unreachable now and that the job has not failed on is waited for (from the
            // job's queueing or its last attempt, up to the wait) before one that cannot take it or that it failed on
            // is tried: the job would fail there again, and spend its attempts in seconds while the other is patched.
            var down = pool.Where(id => state.Libraries.ContainsKey(id) && !Load(id).Reachable && state.Disabled(id) is null && !job.AvoidLibraries.Contains(id)).ToList();
            var until = Math.Max(job.QueuedUnixMs, job.NotBeforeUnixMs) + (long)wait.TotalMilliseconds;
            string? WaitForDown(IEnumerable<string> others) => down.Count > 0 && !(nowMs > until)
                ? $"{string.Join("; ", others)}; the job waits for {string.Join(", ", down)} (unreachable now) until {DateTimeOffset.FromUnixTimeMilliseconds(until):u}, then tries the others"
                : null;
            if (fit.Count == 0 && reachable.Count > 0 && WaitForDown(reachable.Select(id => Unfit(id) ?? Load(id).Full ?? id)) is { } waitsEmpty) return (null, waitsEmpty);
            // When every reachable library says it cannot take a job (out of space, say), one is tried all the
            // same: it may have room again by now, and else the job fails with its reason instead of waiting unseen.
            if (fit.Count == 0) fit = reachable;
            // A library this job already failed on is a last resort.
            var preferred = fit.Where(id => !job.AvoidLibraries.Contains(id)).ToList();
            if (preferred.Count == 0 && fit.Count > 0 && WaitForDown(fit.Select(id => $"it failed on {id} before")) is { } waitsTried) return (null, waitsTried);
            if (preferred.Count > 0) fit = preferred;
            if (fit.Count == 0)
                return (null, pool.Count == 0 ? "no library is registered" :
                    $"no library of storage policy '{policy.Name}' can take it now: {string.Join("; ", pool.Select(id => Unfit(id)))}");
            string pick;
            if (policy.Choice == LibraryChoice.FillFirst) pick = fit.FirstOrDefault(id => Full(id) is null) ?? fit[0]; // the first that can take it now
            else if (state.ChainLibrary(job.Client, job.BackupSet) is { } chain && fit.Contains(chain)) pick = chain; // the set's chain and its dedup stay together
            else
            {
                var free = fit.Where(id => Full(id) is null).Select(Load).ToList();
                if (free.Count == 0) return (null, string.Join("; ", fit.Select(Full)));
                pick = ChooseLibrary(free.Select(l => l with { ActiveJobs = perLibrary.GetValueOrDefault(l.Id), Reachable = true }))!;
            }
            return Full(pick) is { } busy ? (null, busy) : (pick, null);
        }
    }

    /// <summary>
    /// Whether a library's report replaces the one the manager holds: an older one of the same node (passed on again
    /// later) does not undo a newer one, but one older by a minute or more is that node's clock gone back (NTP after it
    /// booted ahead), taken: kept out, the manager held the library's state of before (unavailable, full) for the step.
    /// </summary>
    public static bool Replaces(IndexReport? had, IndexReport report) =>
        had is null || had.Node != report.Node || had.UnixMs <= report.UnixMs || had.UnixMs - report.UnixMs >= 60_000;

    /// <summary>What a job id the history does not hold says: a typo, or an ended job forgotten (DecideCompaction).</summary>
    public static string NoJob(string id) =>
        $"no job {id}: list them with 'abk job list' (the history forgets ended jobs beyond the newest 100 of each backup set, and of each client's restores: actorbackup.manager.keep-jobs-per-set)";

    /// <summary>
    /// The ended jobs beyond the newest <paramref name="keep"/> of their backup set and client (restores: of
    /// their client), so that the history does not grow forever; null when there are none. Open jobs always stay.
    /// </summary>
    public JobsForgotten? DecideCompaction(int keep, DateTimeOffset now)
    {
        // A prune that retired volumes is kept: it is what says they were named (DecideRetireDamaged names each once).
        var forget = Jobs.Values.Where(j => IsFinal(j.State) && j.Retire.Count == 0)
            .GroupBy(j => j.Kind == JobKind.Restore ? "restore\n" + j.Client : SetKey(j.Client, j.BackupSet))
            .SelectMany(g => g.OrderByDescending(j => long.Parse(j.Id)).Skip(keep))
            .Select(j => j.Id).ToList();
        if (forget.Count == 0) return null;
        var e = new JobsForgotten { UnixMs = now.ToUnixTimeMilliseconds() };
        e.Jobs.AddRange(forget.OrderBy(long.Parse));
        return e;
    }

    public Decision DecideSetPriority(SetJobPriority cmd)
    {
        var job = Job(cmd.Job);
        if (job is null) return Reject(NoJob(cmd.Job));
        if (job.State != JobState.Queued) return Reject($"job {cmd.Job} is {job.State.ToString().ToLowerInvariant()}: only a waiting job can be moved in the queue");
        if (cmd.Priority is < 1 or > 10) return Reject($"priority {cmd.Priority} is out of range: 1 (lowest) to 10 (highest)");
        return new Decision([new JobPriorityChanged { Job = cmd.Job, Priority = cmd.Priority }], null, job);
    }
}
