using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

/// <summary>How many jobs may run at once: in the whole cell, and per client (0: no limit). Per library: its streams.</summary>
public sealed record QueueLimits(int MaxJobs = 0, int MaxJobsPerClient = 0);

// The job queue: every job is QUEUED first and starts when the limits allow, higher priority first, then older.
public sealed partial record ManagerState
{
    /// <summary>What to start now, why each other queued job waits, and the scheduled jobs whose window closed (they end MISSED).</summary>
    public sealed record DispatchPlan(IReadOnlyList<JobInfo> Start, IReadOnlyDictionary<string, string> Waiting, IReadOnlyList<JobEnded> Missed);

    public static int PriorityOf(int requested) => requested == 0 ? DefaultPriority : requested;

    /// <param name="starting">jobs already being started (their JobStarted not yet applied): they count as running</param>
    /// <param name="connected">the clients connected now; a scheduled job waits for its client until its window closes. Null: all.</param>
    public DispatchPlan DecideDispatch(QueueLimits limits, IReadOnlySet<string> starting, IReadOnlySet<string>? connected = null, DateTimeOffset? now = null)
    {
        var missed = new List<JobEnded>();
        string? waitingBefore(JobInfo j) => connected is not null && !connected.Contains(j.Client) ? $"client {j.Client} was offline" : null;
        bool Busy(JobInfo j) => j.State is JobState.Running or JobState.Committing || starting.Contains(j.Id);
        var running = Jobs.Values.Where(Busy).ToList();
        var total = running.Count;
        var perLibrary = running.GroupBy(j => j.Library).ToDictionary(g => g.Key, g => g.Count());
        var perClient = running.GroupBy(j => j.Client).ToDictionary(g => g.Key, g => g.Count());
        var start = new List<JobInfo>();
        var waiting = new Dictionary<string, string>();
        foreach (var job in Jobs.Values.Where(j => j.State == JobState.Queued && !starting.Contains(j.Id))
                     .OrderByDescending(j => PriorityOf(j.Priority)).ThenBy(j => j.QueuedUnixMs).ThenBy(j => long.Parse(j.Id)))
        {
            if (job.WindowEndUnixMs > 0 && now is { } at && at.ToUnixTimeMilliseconds() > job.WindowEndUnixMs)
            {
                missed.Add(new JobEnded
                {
                    Job = job.Id, State = JobState.Missed, UnixMs = at.ToUnixTimeMilliseconds(),
                    Reason = $"not started by the end of its window ({DateTimeOffset.FromUnixTimeMilliseconds(job.WindowEndUnixMs):u}): " +
                             (waitingBefore(job) ?? "it waited in the queue"),
                });
                continue;
            }
            var streams = Libraries.TryGetValue(job.Library, out var lib) && lib.Streams > 0 ? lib.Streams : Media.LibraryDeclaration.DefaultStreams;
            var onLibrary = perLibrary.GetValueOrDefault(job.Library);
            var ofClient = perClient.GetValueOrDefault(job.Client);
            string? why = null;
            if (job.WindowEndUnixMs > 0 && connected is not null && !connected.Contains(job.Client)) why = $"client {job.Client} is offline";
            else if (limits.MaxJobs > 0 && total >= limits.MaxJobs) why = $"cell: {total} of {limits.MaxJobs} jobs running";
            else if (onLibrary >= streams) why = $"{job.Library}: {onLibrary} of {streams} streams busy";
            else if (limits.MaxJobsPerClient > 0 && ofClient >= limits.MaxJobsPerClient) why = $"client {job.Client}: {ofClient} of {limits.MaxJobsPerClient} jobs running";
            if (why is not null)
            {
                waiting[job.Id] = why;
                continue;
            }
            start.Add(job);
            total++;
            perLibrary[job.Library] = onLibrary + 1;
            perClient[job.Client] = ofClient + 1;
        }
        return new DispatchPlan(start, waiting, missed);
    }

    public Decision DecideSetPriority(SetJobPriority cmd)
    {
        var job = Job(cmd.Job);
        if (job is null) return Reject($"no job {cmd.Job}: list them with 'abk job list'");
        if (job.State != JobState.Queued) return Reject($"job {cmd.Job} is {job.State.ToString().ToLowerInvariant()}: only a waiting job can be moved in the queue");
        if (cmd.Priority is < 1 or > 10) return Reject($"priority {cmd.Priority} is out of range: 1 (lowest) to 10 (highest)");
        return new Decision([new JobPriorityChanged { Job = cmd.Job, Priority = cmd.Priority }], null, job);
    }
}
