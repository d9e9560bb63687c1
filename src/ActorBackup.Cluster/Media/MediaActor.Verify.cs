using ActorBackup.Engine.Library;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorBackup.Cluster.Media;

// `abk verify --library LIB`: every record of every volume read back and its checksum checked, no key needed;
// the indexed chunks no whole record holds are named with the snapshots that need them (from the reference lists).
public sealed partial class MediaActor
{
    /// <param name="Final">the error is not one a later attempt gets past (a volume of a newer build's format): not retried</param>
    private sealed record LibraryChecked(VerifyLibrary Request, IActorRef ReplyTo, VerifyReport Report, string? Error, bool Final = false);

    /// <summary>Library checks running here: job, and the newest attempt asked (the one its end answers).</summary>
    private readonly Dictionary<string, int> _checks = [];

    private void VerifyCommands()
    {
        Command<VerifyLibrary>(m =>
        {
            if (!FromManager(m)) return;
            if (_keepPages.Whole(m, Sender, out var why) is not { } whole)
            {
                _log.Warning("library {0}: check (job {1}): {2}", _declaration.Id, m.Job, why);
                Sender.Tell(Signed(new JobFinished { Job = m.Job, Attempt = m.Attempt, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultTransient, Reason = why }));
                return;
            }
            m = whole;
            var library = _library;
            if (library is null)
            {
                Sender.Tell(Signed(new JobFinished { Job = m.Job, Attempt = m.Attempt, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultLibrary,
                    Reason = _unavailable ?? $"library {_declaration.Id} is not open" }));
                return;
            }
            if (_checks.TryGetValue(m.Job, out var running))
            {
                // The same job asked again (the manager thought this agent lost it: a long journal write held its probes
                // back): the check that runs answers for the newest attempt, whose end the manager takes.
                if (m.Attempt > running) _checks[m.Job] = m.Attempt;
                return;
            }
            _checks[m.Job] = m.Attempt;
            var replyTo = Sender;
            var id = _declaration.Id;
            var job = m.Job;
            var drive = m.Drive;
            LongRunning(() =>
            {
                using var served = Engine.Tape.TapeMedium.WorkingFor(job, drive); // on tape, read in the drive the job holds
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var r = library.Verify();
                library.MarkDamaged(r.DamagedAt); // writers store them again (the marks journaled at the next health look)
                var keep = m.Keep.ToHashSet(StringComparer.Ordinal);
                var lists = library.DamagedReferences().Where(d => keep.Contains(d.Snapshot)).ToList();
                var report = new VerifyReport
                {
                    Chunks = r.Records, Bytes = r.Bytes, BadChunks = r.Unreadable.Count, DamagedFiles = r.Damage.Count,
                    Damaged = { r.Damage.Select(d => d.ToString()).Concat(r.IndexProblems).Take(Engine.Verify.SnapshotVerifier.MaxReported) },
                    SnapshotsAffected = { library.SnapshotsReferencing(r.Unreadable) },
                    DamagedLists = { lists.Take(Engine.Verify.SnapshotVerifier.MaxReported).Select(d => new DamagedList { Snapshot = d.Snapshot, Reason = d.Reason }) },
                    DamagedListsTotal = lists.Count,
                };
                report.Seconds = clock.Elapsed.TotalSeconds;
                return (object)new LibraryChecked(m, replyTo, report, null);
            }).PipeTo(Self, failure: e => new LibraryChecked(m, replyTo, new VerifyReport(), $"library {id} could not be checked: {Why(e)}",
                Final: e is Engine.Volumes.NewerFormatException || e.InnerException is Engine.Volumes.NewerFormatException));
        });
        Command<LibraryChecked>(c =>
        {
            var attempt = _checks.Remove(c.Request.Job, out var newest) ? Math.Max(newest, c.Request.Attempt) : c.Request.Attempt;
            var r = c.Report;
            var ok = c.Error is null && r.BadChunks == 0 && r.DamagedFiles == 0; // damaged lists: the manager judges (it knows the catalog)
            var reason = c.Error ?? (ok ? "" : $"library {_declaration.Id}: {r.DamagedFiles} damaged places in its volumes, {r.BadChunks} indexed chunks unreadable" +
                (r.BadChunks > 0 ? ": backups of hosts that still have their data store them again, and 'abk verify SNAPSHOT' of each snapshot named heals it from another library that holds it" : ""));
            (_manager ?? c.ReplyTo).Tell(Signed(new JobFinished
            {
                Job = c.Request.Job, Attempt = attempt, Ok = ok, Outcome = ok ? JobState.Succeeded : JobState.Failed, Reason = reason,
                Fault = c.Error is null || c.Final ? JobFault.FaultNone : JobFault.FaultTransient, Verify = r,
            }));
        });
    }
}
