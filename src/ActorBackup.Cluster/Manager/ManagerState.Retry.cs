using Google.Protobuf;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

// Failed attempts: a job that failed on a fault another attempt may get past goes back to the queue.
public sealed partial record ManagerState
{
    /// <summary>
    /// How an interrupted attempt ends (its node stopped, or the manager did, while it ran; nothing of it recorded): a
    /// scheduled backup is queued again like one that failed on a transient fault (after the backoff, up to the policy's
    /// retries: the slot is not lost to a restart), and so is a restore (it goes on where it stopped: its client's
    /// claim on the target is kept by job, and a new job would be refused the target it half filled without --force);
    /// anything else, or a job with no attempt left, ends INTERRUPTED.
    /// </summary>
    public IMessage DecideInterrupted(JobInfo job, string reason, DateTimeOffset now, TimeSpan backoff)
    {
        var interrupted = new JobEnded { Job = job.Id, State = JobState.Interrupted, Reason = reason, UnixMs = now.ToUnixTimeMilliseconds() };
        if (job.Kind != JobKind.Restore && (job.Kind != JobKind.Backup || job.Origin != JobOrigin.Schedule)) return interrupted;
        return DecideFailure(job, JobFault.FaultTransient, reason, now, backoff) is JobRetried retried ? retried : interrupted;
    }

    /// <summary>
    /// How a failed attempt ends: a library fault sends the job to another library of its pool at once; a
    /// transient one (the data plane or a node lost) tries again after <paramref name="backoff"/>, doubled with
    /// each attempt; both up to the policy's retries. Anything else, or no attempt left, ends the job FAILED.
    /// </summary>
    public IMessage DecideFailure(JobInfo job, JobFault fault, string reason, DateTimeOffset now, TimeSpan backoff)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        JobEnded Failed(string why) => new() { Job = job.Id, State = JobState.Failed, Reason = why, UnixMs = nowMs };
        if (fault == JobFault.FaultNone) return Failed(reason);
        var policy = PolicyOfJob(job);
        var retries = RetriesOf(policy);
        if (job.Attempt >= retries)
            return Failed(job.Attempt == 0 ? reason : $"{reason} (attempt {job.Attempt + 1} of {retries + 1}; no attempt left)");
        if (fault == JobFault.FaultLibrary)
        {
            // Another library of the pool, if there is one it has not failed on: at once. The same library again
            // would fail the same way (out of space, say): the job fails with what to do.
            var others = job.LibraryPinned || job.Kind != JobKind.Backup ? [] : Pool(policy).Where(l => l != job.Library && !job.AvoidLibraries.Contains(l)).ToList();
            if (others.Count == 0) return Failed(reason);
            return new JobRetried
            {
                // "Not before" now: at once, and the time a wait for another library of the pool counts from.
                Job = job.Id, UnixMs = nowMs, AvoidLibrary = job.Library, NotBeforeUnixMs = nowMs,
                Reason = $"attempt {job.Attempt + 1} failed on library {job.Library}, trying {string.Join(" or ", others)}: {reason}",
            };
        }
        var delay = TimeSpan.FromTicks(backoff.Ticks * (1L << Math.Min(job.Attempt, 16)));
        return new JobRetried
        {
            Job = job.Id, UnixMs = nowMs, NotBeforeUnixMs = nowMs + (long)delay.TotalMilliseconds,
            Reason = $"attempt {job.Attempt + 1} of {retries + 1} failed: {reason}",
        };
    }
}
