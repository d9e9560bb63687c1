using ActorBackup.Engine.Trees;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// The manager (a cluster singleton, PersistenceId "manager"): clients, libraries, the job queue and history,
/// the snapshot catalog, and media selection. Every state change is persisted before it is acted on; the
/// decisions themselves are in <see cref="ManagerState"/>. Each job that has not ended has a child
/// <see cref="JobActor"/> that owns its watchers and, while it runs, its client (assignment, death watch,
/// liveness probe, cancel timeout). Live progress is not persisted.
/// </summary>
public sealed class ManagerActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;
    public const int SnapshotEvery = 200;
    private readonly IActorRef _mediaRegion;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    /// <summary>This node's certificates (null in a test's ActorSystem without trust): it signs assignments and tickets, and checks who signed what it is sent.</summary>
    private readonly Trust.NodeTrust? _trust = Trust.NodeTrust.Of(Context.System);
    private ManagerState _state = new();
    private readonly Dictionary<string, IActorRef> _clientRefs = [];
    private readonly Dictionary<string, IndexReport> _libraryReports = [];
    /// <summary>The last progress of each running job, for listings.</summary>
    private readonly Dictionary<string, JobProgress> _progress = [];
    /// <summary>When each running job's progress was last taken, and when one was last refused (the first logged).</summary>
    private readonly Dictionary<string, (DateTime At, DateTime RefusedAt)> _progressTaken = [];
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(1);
    /// <summary>The child of each job that has not ended.</summary>
    private readonly Dictionary<string, IActorRef> _jobActors = [];
    /// <summary>Backups told to stop for running past their maximum run time (by attempt), and why: their end is FAILED.</summary>
    private readonly Dictionary<string, (int Attempt, string Reason)> _overran = [];
    /// <summary>Running jobs an operator cancelled, by attempt: their end stays CANCELLED whatever their run time.</summary>
    private readonly Dictionary<string, int> _operatorCancels = [];
    private readonly SnapshotTurns _snapshotTurns = new(SnapshotEvery);
    private readonly Journal.JournalTrim _trim = new();
    /// <summary>Clients with jobs that were open when this manager recovered and that have not registered since.</summary>
    private HashSet<string>? _unsettledClients;
    /// <summary>Open jobs that a client, registering since the recovery, said it still runs.</summary>
    private readonly HashSet<string> _claimed = [];
    private static readonly TimeSpan SettleAfter = TimeSpan.FromSeconds(15);
    /// <summary>
    /// How long after the manager starts a due slot that cannot start (its library's node not joined again yet, after
    /// a restart of the cell) waits, instead of being recorded as missed: the night's backup is not lost to the order
    /// in which the nodes came back.
    /// </summary>
    private TimeSpan LibrariesSettle => _limits.LibrariesSettle ?? TimeSpan.FromMinutes(2);
    private readonly DateTime _started = DateTime.UtcNow;
    /// <summary>Ticks come just after each whole second, where cron slots fall: a slot starts within milliseconds, not up to a second late.</summary>
    private static readonly TimeSpan TickAfterSecond = TimeSpan.FromMilliseconds(5);
    /// <summary>Every so many schedule ticks, ended jobs beyond the history's limit are forgotten.</summary>
    private const int CompactEvery = 60;
    private long _ticks;

    public override string PersistenceId => "manager";

    /// <summary>Queued jobs being started: their JobStarted is being persisted, so they count as running.</summary>
    private readonly Dictionary<string, StartingJob> _starting = [];
    /// <summary>Why each queued job waits, as the last dispatch found.</summary>
    private IReadOnlyDictionary<string, string> _waiting = new Dictionary<string, string>();
    private readonly QueueLimits _limits;

    /// <summary>The DistributedPubSub topic of <see cref="JobEndedNotice"/>s.</summary>
    public const string JobEndedTopic = "actorbackup.job-ended";
    /// <summary>Where the manager tells every node the cell's revoked certificates (Trust/RevocationsActor).</summary>
    public const string RevocationsTopic = "actorbackup.revocations";

    /// <summary>The most jobs one list answers (`abk job list --limit`): a few hundred bytes each, well under a 4 MiB frame.</summary>
    public const int MaxJobsListed = 5000;
    private readonly IActorRef? _notices;

    /// <param name="notices">the DistributedPubSub mediator that job ends are published to; null: none</param>
    public static Props Props(IActorRef mediaRegion, QueueLimits? limits = null, IActorRef? notices = null) =>
        Akka.Actor.Props.Create(() => new ManagerActor(mediaRegion, limits ?? new QueueLimits(), notices));

    /// <summary>
    /// The manager as the cell singleton runs it: under a supervisor that starts it again, recovered from its journal,
    /// when it stops on a journal failure (Akka stops a persistent actor whose write or recovery failed: a PostgreSQL
    /// restart or fail-over would otherwise leave the cell without a manager until its node restarts), after 1 s,
    /// doubling to 30 s while the journal stays unreachable. <see cref="HandOffStop"/> (the singleton's hand-over) goes to the
    /// manager, which stops once the events it is writing are written; then the supervisor stops.
    /// </summary>
    public static Props Supervised(Props manager) =>
        Akka.Pattern.BackoffSupervisor.Props(Akka.Pattern.Backoff.OnStop(manager, "manager", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, maxNrOfRetries: -1)
            .WithAutoReset(TimeSpan.FromSeconds(60)) // the delay doubles until the manager has run a minute (a failed recovery can take longer than 1 s)
            .WithFinalStopMessage(m => m is HandOffStop)
            // Asked meanwhile: said so at once (abk, an integrator), not dropped to wait out a timeout.
            .WithReplyWhileStopped(new CommandRejected
            {
                Reason = "the manager is starting again after its journal (the catalog's database) failed, and tries every 30 s at most: " +
                         "check that database; the manager node's log says what failed",
                Transient = true,
            }));

    /// <summary>A journal write failed: Akka stops the manager (its supervisor starts it again). Said in the cell's words, and counted.</summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "the manager's journal (the catalog's database) did not take an event ({0}): the manager stops and starts again from its journal " +
                          "1 s to 30 s from now, until the database answers; nothing it answered before is lost. Check the database ({1})", @event.GetType().Name, cause.Message);
        Metrics.CellMetrics.JournalFailures.WithLabels("manager", "persist").Inc();
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <summary>The recovery from the journal failed: Akka stops the manager (its supervisor tries again). Said in the cell's words, and counted.</summary>
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _log.Error(reason, "the manager could not recover from its journal (the catalog's database): {0}; it tries again 1 s to 30 s from now. " +
                           "Check that the database answers, and the connection string the node was given", reason.Message);
        Metrics.CellMetrics.JournalFailures.WithLabels("manager", "recovery").Inc();
        base.OnRecoveryFailure(reason, message);
    }

    public ManagerActor(IActorRef mediaRegion, QueueLimits limits, IActorRef? notices)
    {
        _mediaRegion = mediaRegion;
        _limits = limits;
        _notices = notices;
        _audit = Context.ActorOf(Audit.AuditActor.Supervised(), "audit");
        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is not ManagerSnapshot s) return;
            _state = _state.Apply(s);
            _trim.Recovered(o.Metadata.SequenceNr, s.TrimmedUpTo);
        });
        Recover<IMessage>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            NextTick();
            Metrics.CellMetrics.ManagerActive.Set(1);
            PrecreateSeries();
            UpdateSetMetrics();
            // Refused on this node at once, whatever it heard before (a manager that moved here).
            LearnRevocations(_state.Revoked.Keys);
            foreach (var job in _state.Jobs.Values.Where(j => !ManagerState.IsFinal(j.State))) Supervise(job);
            // Every known client registers again now (after a fail-over their actors are still where they
            // were), saying which jobs it still runs. Open jobs that no client claims end INTERRUPTED once
            // every client with open jobs has answered, or after SettleAfter.
            foreach (var client in _state.Clients.Values.Where(c => c.Address != ""))
                Context.ActorSelection(client.Address).Tell(new RegistrationRequest());
            // Every known library says again what the queue and the retirements go by (down to its reserve, volumes in
            // error, drives due cleaning): a manager started on another node knows none of it, and an agent says it
            // again only when it changes (backups sent to a full library each lost an attempt meanwhile).
            foreach (var library in _state.Libraries.Keys) _mediaRegion.Tell(new GetLibraryStatus { Library = library });
            var open = _state.Jobs.Values.Where(j => !ManagerState.IsFinal(j.State)).ToList();
            // A running prune or copy is its media agent's: its child asks the agent whether it still runs it.
            foreach (var job in open.Where(j => ManagerState.RunsOnMedia(j) && j.State != JobState.Queued))
                _jobActors[job.Id].Tell(new JobActor.Attempt(job.Attempt, _mediaRegion, null, MediaProbe(job)));
            open.RemoveAll(j => ManagerState.RunsOnMedia(j));
            if (open.Count == 0) return;
            _unsettledClients = open.Select(j => j.Client).ToHashSet();
            Timers.StartSingleTimer("settle", new SettleTimeout(), SettleAfter);
        });

        // The singleton's hand-over (a rolling upgrade): the audit records not yet written would go with this actor (its
        // writer child stops with it), so it stops once they are written, 10 s at most.
        Command<HandOffStop>(_ =>
        {
            if (_auditUnwritten.Count == 0) Context.Stop(Self);
            else
            {
                _handingOver = true;
                AuditAgain(now: true); // those the writer lost (it restarted) too
                Timers.StartSingleTimer("hand-over", new HandOverNow(), HandOverWaitsForAudit);
            }
        });
        Command<HandOverNow>(_ =>
        {
            if (_auditUnwritten.Count > 0)
                _log.Error("the manager hands over with {0} audit records not written (the trail's journal did not take them in {1}): they are left out of the trail",
                    _auditUnwritten.Count, HandOverWaitsForAudit);
            Context.Stop(Self);
        });
        Command<RegisterClient>(m =>
        {
            // Only the node whose certificate names the client: another could take its jobs and snapshots.
            if (Refused(m, id => Trust.MessageSignature.IsClientNode(id, m.Id), $"the node of client {m.Id}")) return;
            // From the actor it names: a registration that another node got from the client and passes on does not
            // make that node the client's (the signature says who wrote it, not who delivers it).
            if (_trust is not null && Sender.Path.ToStringWithAddress(Akka.Cluster.Cluster.Get(Context.System).SelfAddress) != m.Address)
            {
                _log.Warning("RegisterClient of {0} refused: it names {1} but came from {2}", m.Id, m.Address, Sender);
                return;
            }
            // Another node up in the cell holds this client id (a cloned VM, a host reinstalled under the name while the old
            // one runs, a certificate issued twice): the two would take turns, each the other's jobs (a restore onto the
            // wrong host), one set's chain mixing two file systems. The first keeps it until it is gone.
            if (_clientRefs.TryGetValue(m.Id, out var holder) && !holder.Equals(Sender) && NodeOf(holder) is var held && NodeOf(Sender) is var claimant
                && held != claimant && IsReachable(held))
            {
                var refusal = $"client id {m.Id} is held by the node at {held}, which is up in the cell: two hosts with one client id would take " +
                              $"each other's jobs and mix their snapshots; give the node at {claimant} its own client id (actorbackup.client-id, and a " +
                              $"certificate issued for it), or take the other out (stop it, or abk cluster leave {held})";
                if (_claimedTwice.Add((m.Id, claimant.ToString()))) _log.Error("RegisterClient refused: {0}", refusal);
                Refuse(refusal);
                return;
            }
            _clientRefs[m.Id] = Sender;
            Context.Watch(Sender);
            if (!_state.Clients.TryGetValue(m.Id, out var known) || known.Address != m.Address)
                Persist(new ClientRegistered { Id = m.Id, Address = m.Address, UnixMs = Now() }, Applied);
            Sender.Tell(new Registered { Id = m.Id });
            if (_unsettledClients is null) return;
            _claimed.UnionWith(m.RunningJobs);
            // The jobs it still runs are its again: their children watch it from now on.
            foreach (var id in m.RunningJobs)
                if (_state.Job(id) is { State: JobState.Running or JobState.Committing } job && job.Client == m.Id && _jobActors.TryGetValue(id, out var child))
                    child.Tell(new JobActor.Attempt(job.Attempt, Sender, null));
            if (_unsettledClients.Remove(m.Id) && _unsettledClients.Count == 0) SettleRecoveredJobs();
        });
        Command<SettleTimeout>(_ => SettleRecoveredJobs());
        Command<RegisterLibrary>(m =>
        {
            // Only a media node whose certificate names the library: another could swallow its backups.
            if (Refused(m, id => Trust.MessageSignature.IsMediaNode(id, m.Id), $"a media node of library {m.Id}")) return;
            if (!_state.Libraries.TryGetValue(m.Id, out var known) || known.Node != m.Node || known.Drives != m.Drives || known.Kind != m.Kind)
                Persist(new LibraryRegistered { Id = m.Id, Node = m.Node, Kind = m.Kind, UnixMs = Now(), Drives = m.Drives }, e =>
                {
                    Applied(e);
                    DispatchWaiting();
                });
            Sender.Tell(new Registered { Id = m.Id });
        });
        Command<IndexReport>(r =>
        {
            if (Refused(r, id => Trust.MessageSignature.IsMediaNode(id, r.Library), $"a media node of library {r.Library}")) return;
            var had = _libraryReports.GetValueOrDefault(r.Library);
            if (!ManagerState.Replaces(had, r)) return;
            if (had is not null && had.Node == r.Node && had.UnixMs > r.UnixMs)
                _log.Warning("library {0}: a report dated {1:F0} s before the last one: its media node's clock went back; taken", r.Library, (had.UnixMs - r.UnixMs) / 1000.0);
            _libraryReports[r.Library] = r;
        });
        Command<RequestTicket>(m =>
        {
            // A read ticket only for the client whose node signed the request (ls, find, catalog rebuild on that client).
            if (_trust is not null && Trust.JobTickets.LookRefusal(m, Trust.MessageSignature.Signer(_trust, m, out var why), why) is { } refused)
            {
                _log.Warning("{0} (from {1})", refused, Sender);
                Refuse(refused);
                return;
            }
            var look = Trust.JobTickets.ForLook(m, DateTimeOffset.UtcNow);
            look.JournalSequence = LastSequenceNr;
            Sender.Tell(Trust.MessageSignature.Sign(look, _trust));
        });
        Command<Terminated>(t =>
        {
            // The jobs it ran hear it from their own children (JobLost).
            foreach (var (id, _) in _clientRefs.Where(kv => kv.Value.Equals(t.ActorRef)).ToList()) _clientRefs.Remove(id);
        });
        Command<JobActor.JobLost>(m =>
        {
            if (_state.Job(m.Job) is { State: JobState.Running or JobState.Committing } job && job.Attempt == m.Attempt)
                Failed(job, JobFault.FaultTransient, m.Reason);
        });
        Command<JobActor.CancelUnconfirmed>(m =>
        {
            if (_state.Job(m.Job) is not { State: JobState.Running or JobState.Committing } job || job.Attempt != m.Attempt) return;
            if (OverranAttempt(job) is { } overran)
                End(m.Job, JobState.Failed, $"{overran}; client {job.Client} did not confirm the stop in time, and nothing it writes from now on is recorded");
            else End(m.Job, JobState.Cancelled, $"cancelled by an operator; client {job.Client} did not confirm in time, and nothing it writes from now on is recorded");
        });

        Command<StartBackup>(m =>
        {
            if (Unsigned(m)) return;
            Reply(_state.DecideStartBackup(m, Loads(), DateTimeOffset.UtcNow));
        });
        Command<StartRestore>(m =>
        {
            if (Unsigned(m) || (_state.RestoresElsewhere(m) && OperatorOnly(m, "restore a snapshot onto another host's folders"))) return;
            if (OlderClient(m) is { } older)
            {
                Refuse(older);
                return;
            }
            Reply(_state.DecideStartRestore(m, DateTimeOffset.UtcNow));
        });
        Command<StartVerify>(m =>
        {
            if (!Unsigned(m)) Reply(_state.DecideStartVerify(m, DateTimeOffset.UtcNow));
        });
        Command<StartCopy>(m =>
        {
            if (!Unsigned(m)) Reply(_state.DecideStartCopy(m, DateTimeOffset.UtcNow));
        });
        Command<StartPrune>(m =>
        {
            if (OperatorOnly(m, "prune")) return;
            var decision = _state.DecidePrune(m, DateTimeOffset.UtcNow);
            var persisted = 0;
            PersistDecision(decision, (sender, _) =>
            {
                if (++persisted < decision.Events.Count) return;
                var accepted = new JobAccepted { Job = decision.Job!.Id };
                accepted.Also.AddRange(decision.Events.Skip(1).Select(e => ((JobQueued)e).Job.Id));
                sender.Tell(accepted);
                DispatchWaiting();
            });
        });
        Command<Audit.AuditActor.Written>(w =>
        {
            if (w.Origin != _auditOrigin) return;
            if (w.Refused is { } why)
                _log.Error("the audit trail's journal refused record {0} ({1}): it is left out of the trail", w.Ref,
                    _auditUnwritten.FirstOrDefault(u => u.Ref == w.Ref).Record?.Command ?? "?");
            // The writer journals this run's records in order, none left out but those let go (AuditActor): all up to this one are done with.
            while (_auditUnwritten.Count > 0 && _auditUnwritten.Peek().Ref <= w.Ref) _auditUnwritten.Dequeue();
            if (_handingOver && _auditUnwritten.Count == 0) Context.Stop(Self);
        });
        Command<ScheduleTick>(_ =>
        {
            NextTick();
            AuditAgain();
            if (_handingOver) return; // stopping: no job started, no schedule looked at (the next manager does)
            UpdateMetrics();
            StopOverran();
            if (_ticks % 10 == 0) UpdateSetMetrics();
            CleanIdleDrives();
            if (++_ticks % CompactEvery == 0 && _state.DecideCompaction(_limits.KeepJobs, DateTimeOffset.UtcNow) is { } forgotten)
                Persist(forgotten, Applied);
            // The decisions that queue jobs see each other's jobs before they are journaled (each takes the next
            // job ids): the events are applied to a look-ahead state as they are decided.
            var ahead = _state;
            IReadOnlyList<IMessage> Ahead(IReadOnlyList<IMessage> events)
            {
                foreach (var e in events) ahead = ahead.Apply(e);
                return events;
            }
            if (_ticks % TierEvery == 0) Ahead(ApplyTiering());
            // The cell's own schedules: their jobs are journaled with the slot, then dispatched.
            void Scheduled(IReadOnlyList<IMessage> events, Func<JobInfo, string> what)
            {
                if (Ahead(events).Count == 0) return;
                PersistAll(events, e =>
                {
                    Applied(e);
                    if (e is JobQueued q) _log.Info("job {0}: scheduled {1}", q.Job.Id, what(q.Job));
                    DispatchWaiting();
                });
            }
            var now = DateTimeOffset.UtcNow;
            Scheduled(ahead.DecideScheduledPrune(_limits.PruneSchedule, now), j => $"prune of library {j.Library}");
            Scheduled(ahead.DecideScheduledVerifies(now), j => $"verify of snapshot {j.Snapshot} ({j.BackupSet})");
            Scheduled(ahead.DecideScheduledChecks(_limits.CheckSchedule, now), j => $"check of library {j.Library}");
            Scheduled(ahead.DecideScheduledCopies(now), j => $"copy of snapshot {j.Snapshot} to {j.Library}");
            Scheduled(ahead.DecideRetireDamaged(_libraryReports.Values, now), j => $"retirement of cartridge volume {string.Join(", ", j.Retire)} of library {j.Library}, which has read errors");
            DispatchWaiting(); // clients and libraries come and go: what waited may start now
            // On the look-ahead state: the copies and verifies queued above hold their snapshots (SnapshotsInUse).
            Ahead(ApplyRetention(ahead));
            PurgeHeld();
            foreach (var decision in ahead.DecideDueSlots(DateTimeOffset.UtcNow, Loads(), settling: DateTime.UtcNow - _started < LibrariesSettle))
                PersistAll(decision.Events, e =>
                {
                    Applied(e);
                    switch (e)
                    {
                        case JobQueued q:
                            _log.Info("job {0}: slot {1:u} of backup set {2}", q.Job.Id, DateTimeOffset.FromUnixTimeMilliseconds(q.Job.SlotUnixMs), q.Job.BackupSet);
                            DispatchWaiting();
                            break;
                        case SlotMissed m:
                            _log.Warning("backup set {0}: the slot at {1:u} could not run: {2}", m.Set, DateTimeOffset.FromUnixTimeMilliseconds(m.SlotUnixMs), m.Reason);
                            break;
                    }
                });
        });
        Command<SetJobPriority>(m =>
        {
            if (Unsigned(m)) return;
            PersistDecision(_state.DecideSetPriority(m), (sender, _) =>
            {
                DispatchWaiting();
                sender.Tell(WithProgress(_state.Job(m.Job)!));
            });
        });
        Command<DefinePolicy>(m =>
        {
            if (!OperatorOnly(m, "change storage policies")) PersistPolicy(_state.DecideDefinePolicy(m, DateTimeOffset.UtcNow));
        });
        Command<RemovePolicy>(m =>
        {
            if (!OperatorOnly(m, "change storage policies")) PersistPolicy(_state.DecideRemovePolicy(m, DateTimeOffset.UtcNow));
        });
        Command<GetPolicy>(m =>
        {
            if (!Unsigned(m)) Sender.Tell(_state.PolicyOf(m.Name) is { } p ? _state.PolicyInfoOf(p) : new CommandRejected { Reason = _state.UnknownPolicy(m.Name) });
        });
        Command<ListPolicies>(m =>
        {
            if (Unsigned(m)) return;
            var list = new PolicyList();
            list.Policies.AddRange(_state.AllPolicies().Select(_state.PolicyInfoOf));
            Sender.Tell(list);
        });
        Command<ApplyFile>(m =>
        {
            // A definitions file is read here only as an operator's shell signed it (OperatorCommand); sent alone, refused.
            if (OperatorOnly(m, "apply definitions (backup sets run their commands on the cell's nodes)")) return;
            var apply = Definitions.DefinitionsFile.ToApply(m);
            if (apply is CommandRejected rejected) Refuse(rejected.Reason);
            else OnCommand(apply);
        });
        Command<ApplyDefinitions>(m =>
        {
            if (OperatorOnly(m, "apply definitions (backup sets run their commands on the cell's nodes)")) return;
            var (result, decision) = _state.DecideApply(m, DateTimeOffset.UtcNow);
            if (decision.Rejection is null && decision.Events.Count == 0) Sender.Tell(result); // a dry run, or nothing to change
            else PersistDecision(decision, (sender, _) => sender.Tell(result));
        });
        const string ChangeSets = "change backup sets (their commands run on the cell's nodes)";
        Command<DefineBackupSet>(m =>
        {
            if (!OperatorOnly(m, ChangeSets)) PersistSet(_state.DecideDefineSet(m, DateTimeOffset.UtcNow));
        });
        Command<DeferBackupSet>(m =>
        {
            if (!OperatorOnly(m, ChangeSets)) PersistSet(_state.DecideDefer(m, DateTimeOffset.UtcNow));
        });
        Command<EnableBackupSet>(m =>
        {
            if (!OperatorOnly(m, ChangeSets)) PersistSet(_state.DecideEnableSet(m, DateTimeOffset.UtcNow));
        });
        Command<RemoveBackupSet>(m =>
        {
            if (!OperatorOnly(m, ChangeSets)) PersistSet(_state.DecideRemoveSet(m, DateTimeOffset.UtcNow));
        });
        Command<CallerSigned>(CallerCommand);
        Command<CatalogLook>(LookFor);
        Command<GetBackupSet>(m =>
        {
            if (!Unsigned(m))
                Sender.Tell(_state.BackupSets.TryGetValue(m.Name, out var set) ? _state.SetInfo(set, DateTimeOffset.UtcNow) : new CommandRejected { Reason = _state.UnknownSet(m.Name) });
        });
        Command<ListBackupSets>(m =>
        {
            if (Unsigned(m)) return;
            var list = new BackupSetList();
            list.Sets.AddRange(_state.BackupSets.Values.Select(s => _state.SetInfo(s, DateTimeOffset.UtcNow)));
            Sender.Tell(list);
        });
        Command<RunBackupSet>(m =>
        {
            if (!Unsigned(m)) Reply(_state.DecideRunSet(m, Loads(), DateTimeOffset.UtcNow));
        });
        Command<JobProgress>(p =>
        {
            if (_state.Job(p.Job) is not { State: JobState.Running or JobState.Committing } job) return;
            // At most one a second a job is checked and taken (a client sends four): the signature check is the
            // manager's own thread's time, and a watch shows no finer than that.
            var now = Monotonic.Now; // a wall clock stepped back would drop every report for as long
            if (_progressTaken.TryGetValue(p.Job, out var taken) && (now - taken.At < ProgressEvery || now - taken.RefusedAt < ProgressEvery)) return;
            // Only from the node running the job, by its signature: another node cannot show an operator false progress.
            if (_trust is { } trust && Trust.JobSignature.Refusal(trust, job, p) is { } refused)
            {
                if (taken.RefusedAt == default) _log.Warning("refused progress of job {0} from {1} (said once a job): {2}", p.Job, Sender.Path.Address, refused);
                _progressTaken[p.Job] = (taken.At, now); // forged ones are checked at most once a second too
                return;
            }
            _progressTaken[p.Job] = (now, taken.RefusedAt);
            p.Signer = ByteString.Empty; // what watchers get: the figures (the signature is checked here)
            p.Signature = ByteString.Empty;
            _progress[p.Job] = p;
            if (_jobActors.TryGetValue(p.Job, out var child)) child.Tell(p);
        });
        Command<JobFinished>(f =>
        {
            // The client hears back (the job as recorded) once the end is persisted: a client that shuts down
            // waits for that before its node goes.
            var client = Sender;
            var job = _state.Job(f.Job);
            // Only from the node the job belongs to (its client, or the media node of its library), proven by signature.
            if (job is not null && _trust is { } trust && Trust.JobSignature.Refusal(trust, job, f) is { } refused)
            {
                _log.Warning("refused an end of job {0} from {1}: {2}", f.Job, client.Path.Address, refused);
                client.Tell(new CommandRejected { Reason = $"job {f.Job}: {refused}" });
                return;
            }
            // An earlier attempt's end, late (its client was thought gone and the job queued again): not this one's.
            if (job is null || ManagerState.IsFinal(job.State) || f.Attempt < job.Attempt)
            {
                Acknowledge(client, job is null ? new JobInfo { Id = f.Job } : WithProgress(job));
                return;
            }
            var outcome = f.Outcome != JobState.Unspecified ? f.Outcome : f.Ok ? JobState.Succeeded : f.Interrupted ? JobState.Interrupted : JobState.Failed;
            // What the job says it did at its end is more than its last report (every 250 ms) may have said.
            if (f.Files > 0 || f.Bytes > 0 || f.FilesKept > 0)
            {
                var last = _progress.GetValueOrDefault(f.Job)?.Clone() ?? new JobProgress { Job = f.Job };
                last.FilesDone = Math.Max(last.FilesDone, f.Files);
                last.BytesDone = Math.Max(last.BytesDone, f.Bytes);
                last.FilesKept = f.FilesKept;
                _progress[f.Job] = last;
            }
            if (job.Kind == JobKind.Prune && f.Prune is not null && outcome == JobState.Succeeded)
            {
                // The deleted snapshots it was given are gone from the library: the next prune is not told again.
                var pruned = new LibraryPruned { Library = job.Library, Job = job.Id, UnixMs = Now(), Snapshots = { f.Prune.DeletedHandled } };
                // The job's record (in every job list and notice) names the first 1,000 of them: it stays small.
                var shown = f.Prune.Clone();
                shown.DeletedHandledTotal = shown.DeletedHandled.Count;
                if (shown.DeletedHandled.Count > Engine.Verify.SnapshotVerifier.MaxReported)
                {
                    var first = shown.DeletedHandled.Take(Engine.Verify.SnapshotVerifier.MaxReported).ToList();
                    shown.DeletedHandled.Clear();
                    shown.DeletedHandled.AddRange(first);
                }
                if (job.DryRun || pruned.Snapshots.Count == 0) End(f.Job, JobState.Succeeded, "", replyTo: client, prune: shown);
                else Persist(pruned, e =>
                {
                    Applied(e);
                    End(f.Job, JobState.Succeeded, "", replyTo: client, prune: shown);
                });
                return;
            }
            if (job.Kind == JobKind.Copy && outcome == JobState.Succeeded && job.Heal.Count > 0)
            {
                End(f.Job, JobState.Succeeded, "", replyTo: client, copy: f.Copy); // healed: the library held the snapshot already
                return;
            }
            if (job.Kind == JobKind.Copy && outcome == JobState.Succeeded)
            {
                var source = _state.Snapshots.FirstOrDefault(s => s.Id == job.Snapshot)?.Library ?? job.SourceLibrary;
                // A tier move waits while another job reads the snapshot (maybe from the library it leaves): the copy
                // is recorded now, and the move made by the next look at the tiers.
                IMessage[] events = job.TierMove && !_state.ReadByAnother(job.Snapshot, job.Id)
                    ? [new SnapshotCopied { Snapshot = job.Snapshot, Library = job.Library, Job = job.Id, UnixMs = Now() },
                       new SnapshotMoved { Snapshot = job.Snapshot, From = source, To = job.Library, Job = job.Id, UnixMs = Now() }]
                    : [new SnapshotCopied { Snapshot = job.Snapshot, Library = job.Library, Job = job.Id, UnixMs = Now() }];
                PersistAllThen(events, () => End(f.Job, JobState.Succeeded, "", replyTo: client, copy: f.Copy), e =>
                {
                    if (e is SnapshotMoved moved) _log.Info("snapshot {0} moved to its tier, library {1}; {2} lets it go at its next prune", moved.Snapshot, moved.To, moved.From);
                });
                return;
            }
            if (job.Kind == JobKind.Verify && f.Verify is not null && job.Snapshot == "")
            {
                // A library check: of the reference lists that name a damaged chunk, those of snapshots in the catalog
                // (a deleted snapshot's list stays until the library's next prune).
                var known = _state.Snapshots.Select(s => s.Id).ToHashSet();
                var affected = f.Verify.SnapshotsAffected.Where(known.Contains).ToList();
                f.Verify.SnapshotsAffected.Clear();
                f.Verify.SnapshotsAffected.AddRange(affected);
                // Damaged reference lists: the media agent reports those of the snapshots the catalog keeps on the
                // library (VerifyLibrary.keep), at which a prune stops; the check fails on them.
                var lists = f.Verify.DamagedListsTotal;
                var why = string.Join("; ", new[]
                {
                    f.Reason,
                    affected.Count > 0 ? $"snapshots that need them: {string.Join(", ", affected)} (verify each: one with a copy elsewhere is healed)" : "",
                    lists > 0 ? $"{lists} reference lists damaged, of snapshots {string.Join(", ", f.Verify.DamagedLists.Select(l => l.Snapshot).Take(20))}{(lists > 20 ? ", ..." : "")}: a prune of {job.Library} stops at them until those snapshots are deleted" : "",
                }.Where(w => w != ""));
                End(f.Job, f.Ok && lists == 0 ? JobState.Succeeded : JobState.Failed, why, errors: f.Errors, replyTo: client, verify: f.Verify);
                return;
            }
            if (job.Kind == JobKind.Verify && f.Verify is not null)
            {
                // A verify that read everything: its verdict on the snapshot is recorded, good or bad; damage that
                // another library's copy can repair is healed from it (a copy job of just those chunks).
                var heal = f.Ok ? null : _state.DecideHeal(job, f.Verify, DateTimeOffset.UtcNow);
                var reason = f.Reason;
                if (heal is not null)
                {
                    f.Verify.HealedBy = heal.Id;
                    reason += $"; job {heal.Id} heals them from the copy on {heal.SourceLibrary} (verify again once it has)";
                }
                // A sample that found nothing wrong proves less than a whole read: the snapshot is not marked verified
                // (retention waits for a whole one); one that found damage marks it damaged all the same.
                var sampled = job.VerifySharePercent is > 0 and < 100;
                if (sampled && f.Ok)
                {
                    End(f.Job, JobState.Succeeded, reason, errors: f.Errors, replyTo: client, verify: f.Verify);
                    return;
                }
                Persist(new SnapshotVerified { Snapshot = job.Snapshot, Ok = f.Ok, UnixMs = Now(), Job = job.Id }, e =>
                {
                    Applied(e);
                    if (heal is not null)
                        Persist(new JobQueued { Job = heal }, q =>
                        {
                            Applied(q);
                            _log.Warning("job {0}: heals {1} damaged chunks of library {2} from {3}", heal.Id, heal.Heal.Count, heal.Library, heal.SourceLibrary);
                        });
                    End(f.Job, f.Ok ? JobState.Succeeded : JobState.Failed, reason, errors: f.Errors, replyTo: client, verify: f.Verify);
                });
                return;
            }
            if (outcome == JobState.Failed && f.Fault != JobFault.FaultNone)
            {
                Failed(job, f.Fault, f.Reason, client);
                return;
            }
            if (outcome == JobState.Interrupted)
            {
                Decided(job, _state.DecideInterrupted(job, f.Reason, DateTimeOffset.UtcNow, _limits.Backoff), client);
                return;
            }
            if (outcome == JobState.Cancelled && OverranAttempt(job) is { } overran)
            {
                End(f.Job, JobState.Failed, overran, errors: f.Errors, replyTo: client); // stopped by the manager, not an operator's cancel
                return;
            }
            if (outcome != JobState.Succeeded)
            {
                End(f.Job, outcome, f.Reason, errors: f.Errors, replyTo: client);
                return;
            }
            if (job.Kind == JobKind.Backup)
            {
                // The client node's bytes: a manifest that does not parse, or is not this job's, fails the job and
                // records nothing (thrown here, it would stop the manager, and the client would send it again).
                SnapshotManifest manifest;
                try
                {
                    manifest = SnapshotManifest.Parser.ParseFrom(f.Manifest);
                }
                catch (InvalidProtocolBufferException e)
                {
                    var unparsed = $"the snapshot client {job.Client} sent for job {job.Id} is not recorded: its manifest does not parse ({e.Message}); " +
                                   $"run the backup again, and if it is refused again, check the ActorBackup build and the host of client {job.Client}";
                    _log.Warning("job {0}: {1}", f.Job, unparsed);
                    End(f.Job, JobState.Failed, unparsed, replyTo: client);
                    return;
                }
                // The same end again (the manager stopped after recording the snapshot, before it recorded the job's
                // end; the client sends ends until they are taken): the job succeeded with that snapshot.
                if (_state.RecordedBy(job) is { } recorded && recorded.Id == manifest.Id)
                {
                    RecordedEnd(job, recorded, client);
                    return;
                }
                if (_state.ForeignManifest(job, manifest) is { } foreign)
                {
                    _log.Warning("job {0}: {1}", f.Job, foreign);
                    End(f.Job, JobState.Failed, foreign, replyTo: client);
                    return;
                }
                if (ManagerState.BadTimes(job, manifest, DateTimeOffset.UtcNow) is { } badTimes)
                {
                    _log.Warning("job {0}: {1}", f.Job, badTimes);
                    PersistAllThen(_state.DecideRefusedSnapshot(job, manifest, badTimes, DateTimeOffset.UtcNow), () => End(f.Job, JobState.Failed, badTimes, replyTo: client));
                    return;
                }
                // A mass change (ransomware encrypting the host?) is journaled with the snapshot, in one write: retention
                // holds the set's older snapshots from the start, and a manager stopping between two writes cannot lose it.
                var recordedEvent = new SnapshotRecorded { Manifest = f.Manifest };
                var suspect = _state.Apply(recordedEvent).DecideSuspect(manifest, _limits.Suspicion, DateTimeOffset.UtcNow);
                PersistAllThen(suspect is null ? [recordedEvent] : [recordedEvent, suspect], () => RecordedEnd(job, manifest, client), e =>
                {
                    if (e is SnapshotSuspect x) _log.Warning("snapshot {0} of client {1}, set {2}, is suspect: {3}", x.Snapshot, x.Client, x.BackupSet, x.Reason);
                });
            }
            else End(f.Job, JobState.Succeeded, f.Reason, errors: f.Errors, replyTo: client); // a restore's entries not restored, or chunks read from a copy
        });
        Command<EndRecorded>(m =>
        {
            if (_state.Job(m.Job) is { } job && !ManagerState.IsFinal(job.State) && job.Attempt == m.Attempt && _state.RecordedBy(job) is { } recorded)
                RecordedEnd(job, recorded, m.ReplyTo);
        });
        Command<CancelJob>(m =>
        {
            if (Unsigned(m)) return;
            var job = _state.Job(m.Job);
            if (job is null) Refuse(ManagerState.NoJob(m.Job));
            else if (ManagerState.IsFinal(job.State)) Refuse($"job {m.Job} already ended ({job.State.ToString().ToLowerInvariant()})");
            else if (ManagerState.RunsOnMedia(job) && job.State != JobState.Queued)
                Refuse($"job {m.Job} ({job.Kind.ToString().ToLowerInvariant()}) runs on the media agent of {job.Library} and cannot be stopped halfway; it ends by itself");
            else if (_state.RecordedBy(job) is { } recorded)
            {
                // Its snapshot is recorded (its end is being taken up again): it succeeded, and is not cancelled.
                RecordedEnd(job, recorded, null);
                Sender.Tell(WithProgress(job));
            }
            else
            {
                // A running job stops on its client, which reports it CANCELLED (its child ends it anyway when the
                // client does not confirm); a queued one, or one whose client is away, ends here.
                if (job.State != JobState.Queued && _clientRefs.ContainsKey(job.Client) && _jobActors.TryGetValue(m.Job, out var child))
                {
                    _operatorCancels[m.Job] = job.Attempt;
                    child.Tell(m);
                }
                else End(m.Job, JobState.Cancelled, job.State == JobState.Queued ? "cancelled by an operator before it started" : "cancelled by an operator");
                // Answered once what End journals is (CANCELLED, not the job as it was), after any persist it started.
                var sender = Sender;
                DeferAsync(m, _ => sender.Tell(WithProgress(_state.Job(m.Job) ?? job)));
            }
        });
        Command<WatchJob>(m =>
        {
            if (Unsigned(m)) return;
            var job = _state.Job(m.Job);
            if (job is null)
            {
                Refuse(ManagerState.NoJob(m.Job));
                return;
            }
            if (ManagerState.IsFinal(job.State))
            {
                Sender.Tell(WithProgress(job));
                return;
            }
            // A queued job's watcher also hears it as it is now: why it waits (the watch is given again every 30 s).
            if (_jobActors.TryGetValue(m.Job, out var child)) child.Tell(new JobActor.Watch(Sender));
            if (child is null || (m.WithState && job.State == JobState.Queued)) Sender.Tell(WithProgress(job));
        });
        Command<GetJob>(m =>
        {
            if (Unsigned(m)) return;
            var job = _state.Job(m.Job);
            Sender.Tell(job is null ? new CommandRejected { Reason = ManagerState.NoJob(m.Job) } : WithProgress(job));
        });
        Command<ListJobs>(m =>
        {
            if (Unsigned(m)) return;
            var list = new JobList();
            list.Jobs.AddRange(_state.Jobs.Values.Reverse().Where(j => ManagerState.Listed(j, m)).Take(m.Limit > 0 ? Math.Min(m.Limit, MaxJobsListed) : 50).Reverse().Select(WithProgress));
            Sender.Tell(list);
        });
        Command<ListSnapshots>(m =>
        {
            if (Unsigned(m)) return;
            var list = new SnapshotList();
            if (m.Deleted)
            {
                // The deleted snapshots held (the deletion delay), paged as the catalog's are.
                var held = SnapshotPages.Page<SnapshotInfo>(_state.TrashInfos(_limits.DeletionDelay, m.Client).ToList(), i => i.Id, m, out var moreHeld);
                if (held is null) Refuse(SnapshotPages.Changed);
                else Sender.Tell(new SnapshotList { Snapshots = { held }, More = moreHeld });
                return;
            }
            var verdicts = m.Why ? _state.RetentionVerdicts(DateTimeOffset.UtcNow) : null;
            var of = SnapshotPages.Page<SnapshotManifest>(m.Client == "" && m.BackupSet == "" && m.Path == "" ? _state.Snapshots : _state.Snapshots.Where(ManagerState.Lister(m)).ToList(),
                s => s.Id, m, out var more);
            if (of is null)
            {
                Refuse(SnapshotPages.Changed);
                return;
            }
            list.More = more;
            list.Snapshots.AddRange(of.Select(s =>
            {
                var info = _state.InfoOf(s);
                if (verdicts?.GetValueOrDefault(s.Id) is { } v) info.KeptBecause.AddRange(v.Reasons);
                return info;
            }));
            Sender.Tell(list);
        });
        Command<GetSnapshot>(m =>
        {
            if (Unsigned(m)) return;
            try
            {
                var s = _state.FindSnapshot(m.Snapshot);
                var info = _state.InfoOf(s);
                info.Problems.AddRange(s.Errors.Select(e => new FileProblem { Path = e.Path, Reason = e.Reason }));
                Sender.Tell(new SnapshotDetail { Info = info, Manifest = s.ToByteString() });
            }
            catch (KeyNotFoundException e)
            {
                Refuse(e.Message);
            }
        });
        Command<Protocol.DeleteSnapshots>(m =>
        {
            if (OperatorOnly(m, "delete snapshots")) return;
            var (answer, decision) = _state.DecideDeleteSnapshots(m, DateTimeOffset.UtcNow);
            foreach (var deleted in decision.Events.OfType<SnapshotsDeleted>()) deleted.Reason = _authorizedCaller == "" ? deleted.Reason : "deleted by " + _authorizedCaller;
            if (decision.Rejection is null && decision.Events.Count == 0) Sender.Tell(answer); // a dry run
            else PersistDecision(decision with { Events = decision.Events.Select(Held).ToList() }, (sender, e) =>
            {
                if (e is SnapshotsTrashed t)
                    _log.Warning("snapshots {0} {1}; held until {2:u} (abk snapshot undelete)", string.Join(", ", t.Snapshots), t.Reason,
                        DateTimeOffset.FromUnixTimeMilliseconds(t.UnixMs) + _limits.DeletionDelay);
                else _log.Warning("snapshots {0} {1}", string.Join(", ", ((SnapshotsDeleted)e).Snapshots), ((SnapshotsDeleted)e).Reason);
                sender.Tell(answer);
            });
        });
        Command<HoldSnapshots>(m =>
        {
            if (OperatorOnly(m, "hold snapshots")) return;
            var (answer, decision) = _state.DecideHold(m, _authorizedCaller, DateTimeOffset.UtcNow);
            PersistDecision(decision, (sender, e) =>
            {
                var held = (SnapshotsHeld)e;
                _log.Warning("snapshots {0} held until {1:yyyy-MM-dd HH:mm}Z{2}: {3}", string.Join(", ", held.Snapshots), DateTimeOffset.FromUnixTimeMilliseconds(held.UntilUnixMs),
                    held.By == "" ? "" : " by " + held.By, held.Reason);
                sender.Tell(answer);
            });
        });
        Command<ListAudit>(m =>
        {
            // An operator's or an auditor's (separation of duties: one who reads what the operators did, and changes nothing).
            if (_trust is not null && !(ReferenceEquals(m, _authorized) && _authorizedRole is Protocol.Trust.CellRole.Operator or Protocol.Trust.CellRole.Auditor))
            {
                _log.Warning("ListAudit refused (from {0}): not signed by an operator or an auditor", Sender);
                Refuse("only an operator or an auditor may read the audit trail: give it with abk and such a certificate ('actorbackup ca issue --role auditor ...')");
                return;
            }
            _audit.Tell(new Audit.AuditActor.Read(m, Sender));
        });
        Command<ClearSuspect>(m =>
        {
            if (OperatorOnly(m, "clear suspect snapshots (their sets' retention goes on)")) return;
            var (answer, decision) = _state.DecideClearSuspect(m, _authorizedCaller, DateTimeOffset.UtcNow);
            PersistDecision(decision, (sender, e) =>
            {
                _log.Warning("suspect snapshots {0} cleared{1}: their sets' retention goes on", string.Join(", ", ((SuspectCleared)e).Snapshots),
                    _authorizedCaller == "" ? "" : " by " + _authorizedCaller);
                sender.Tell(answer);
            });
        });
        Command<UndeleteSnapshots>(m =>
        {
            if (OperatorOnly(m, "bring deleted snapshots back")) return;
            var (answer, decision) = _state.DecideUndelete(m, _authorizedCaller, DateTimeOffset.UtcNow);
            PersistDecision(decision, (sender, e) =>
            {
                _log.Warning("snapshots {0} brought back into the catalog{1}", string.Join(", ", ((SnapshotsUndeleted)e).Snapshots), _authorizedCaller == "" ? "" : " by " + _authorizedCaller);
                sender.Tell(answer);
            });
        });
        Command<RecordSnapshotsPart>(p =>
        {
            if (_rebuildParts.Add(p, Environment.TickCount64) is { } dropped) _log.Warning("{0}", dropped);
        });
        Command<RecordSnapshots>(m =>
        {
            if (_trust is not null && Trust.RebuildProof.Refusal(_trust, m, DateTimeOffset.UtcNow, _nonces) is { } refused)
            {
                _log.Warning("{0} (from {1})", refused, Sender);
                if (m.Parts > 0) _rebuildParts.Take(m, Environment.TickCount64, out _); // let go of its parts
                Refuse(refused);
                AuditedRebuild(m, refused);
                return;
            }
            if (m.Parts > 0)
            {
                // Its manifests came in parts just before it (Manager/RebuildParts).
                if (_rebuildParts.Take(m, Environment.TickCount64, out var lost) is not { } manifests)
                {
                    _log.Warning("catalog rebuild of {0}: {1}", m.Library, lost);
                    Refuse(lost);
                    AuditedRebuild(m, lost);
                    return;
                }
                m = m.Clone();
                m.Manifests.AddRange(manifests);
                (m.Complete, m.Parts) = (m.PartsComplete, 0);
            }
            var (answer, events) = _state.DecideRecordSnapshots(m);
            AuditedRebuild(m, null);
            // Every manifest there read (none named in the problems) and every list there a known snapshot's: the catalog
            // knows what the library holds again. A spanned backup's list here whose manifest is in another library keeps
            // it from that until the other library is rebuilt too (its prunes keep every list the catalog does not know).
            var whole = m.Complete && answer.Unaccounted.Count == 0;
            // Those lists wait for the rebuild of the library holding their manifests: once it records them, this one is
            // caught up too (kept in memory: a manager started again meanwhile needs this library rebuilt again).
            if (m.Complete && answer.Unaccounted.Count is > 0 and < ManagerState.MaxUnaccountedSaid) _unaccounted[m.Library] = answer.Unaccounted.ToHashSet(StringComparer.Ordinal);
            else _unaccounted.Remove(m.Library);
            if (events.Count == 0)
            {
                if (whole) CatalogCaughtUp(m.Library);
                AccountedFor();
                Sender.Tell(answer);
                return;
            }
            var sender = Sender;
            PersistAllThen(events, () =>
            {
                _log.Warning("catalog: {0} snapshots found in library {1} were missing and are back: {2}; {3} recorded as copies held there", answer.Added, m.Library,
                    string.Join(", ", answer.AddedIds), answer.CopiesRecorded);
                if (whole) CatalogCaughtUp(m.Library);
                AccountedFor();
                sender.Tell(answer);
            });
        });
        Command<ListClients>(_ =>
        {
            var list = new ClientList();
            list.Clients.AddRange(_state.Clients.Values.Select(c => new ClientInfo { Id = c.Id, Address = c.Address, Reachable = _clientRefs.ContainsKey(c.Id), RegisteredUnixMs = c.UnixMs }));
            Sender.Tell(list);
        });
        Command<ListDrives>(m =>
        {
            if (Unsigned(m)) return;
            var (drives, rejection) = _state.DecideDriveList(m.Library);
            Sender.Tell(drives is null ? new CommandRejected { Reason = rejection } : drives);
        });
        Command<ChangeTape>(m =>
        {
            if (OperatorOnly(m, "change a tape library's cartridges")) return;
            if (_state.DecideChangeTape(m) is { } refused)
            {
                Refuse(refused);
                return;
            }
            m.Signer = Google.Protobuf.ByteString.Empty;
            m.Signature = Google.Protobuf.ByteString.Empty;
            // Signed by this manager node: the media agent takes changer commands from nobody else; it answers the caller.
            _takenAs = $"sent to the media agent of library {m.Library}, which does it or refuses it";
            _mediaRegion.Tell(_trust is null ? m : Trust.MessageSignature.Sign(m, _trust), Sender);
        });
        Command<RemoveClient>(m =>
        {
            if (OperatorOnly(m, "remove a client")) return;
            PersistDecision(_state.DecideRemoveClient(m, ClientConnected(m.Client), DateTimeOffset.UtcNow), (sender, e) =>
            {
                _log.Info("client {0} removed ({1} snapshots of it stay in the catalog)", m.Client, ((ClientRemoved)e).Snapshots);
                sender.Tell(e);
            });
        });
        Command<RevokeCertificate>(m =>
        {
            if (OperatorOnly(m, "revoke a certificate")) return;
            var own = _trust is null ? "" : Protocol.Trust.RevokedCertificates.SerialOf(_trust.Certificate);
            PersistDecision(_state.DecideRevoke(m, DateTimeOffset.UtcNow, own, _authorizedSerial), (sender, e) =>
            {
                var revoked = (CertificateRevoked)e;
                _log.Warning("certificate {0}{1} revoked{2}", revoked.Serial, revoked.Subject == "" ? "" : $" ({revoked.Subject})", revoked.Reason == "" ? "" : $": {revoked.Reason}");
                LearnRevocations([revoked.Serial]);
                _signedRevocations = null;
                _notices?.Tell(new Akka.Cluster.Tools.PublishSubscribe.Publish(RevocationsTopic, SignedRevocations()));
                sender.Tell(e);
            });
        });
        Command<ListRevocations>(_ => Sender.Tell(SignedRevocations()));
        Command<SetLibraryEnabled>(m =>
        {
            if (OperatorOnly(m, "disable or enable a library")) return;
            PersistDecision(_state.DecideSetLibraryEnabled(m, DateTimeOffset.UtcNow), (sender, e) =>
            {
                var changed = (LibraryEnabled)e;
                _log.Info("library {0} {1}", changed.Library, changed.Enabled ? "enabled" : $"disabled ({changed.Reason})");
                sender.Tell(LibraryInfoOf(_state.Libraries[changed.Library], _state.JobsOnLibraries()));
                DispatchWaiting();
            });
        });
        Command<ListLibraries>(_ =>
        {
            var list = new LibraryList();
            var jobs = _state.JobsOnLibraries();
            list.Libraries.AddRange(_state.Libraries.Values.Select(l => LibraryInfoOf(l, jobs)));
            Sender.Tell(list);
        });
        Command<SaveSnapshotSuccess>(s =>
        {
            // The journal does not grow for ever (JournalTrim).
            if (_trim.Saved(s.Metadata.SequenceNr) is { } trim)
            {
                DeleteMessages(trim.Events);
                DeleteSnapshots(new SnapshotSelectionCriteria(trim.Snapshots));
            }
            if (_snapshotTurns.Answered()) SaveState();
        });
        Command<SaveSnapshotFailure>(f =>
        {
            _log.Warning("manager snapshot failed: {0}", f.Cause.Message);
            if (_snapshotTurns.Answered()) SaveState();
        });
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("older manager snapshots could not be deleted: {0}", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning("older manager events could not be deleted: {0}", f.Cause.Message));
    }

    private LibraryInfo LibraryInfoOf(LibraryRegistered l, Dictionary<string, int> jobsOn)
    {
        _libraryReports.TryGetValue(l.Id, out var r);
        return new LibraryInfo
        {
            Id = l.Id, Node = l.Node, Kind = l.Kind, Reachable = IsReachable(l.Node), ActiveSessions = jobsOn.GetValueOrDefault(l.Id),
            BytesStored = r?.BytesStored ?? 0, Chunks = r?.Chunks ?? 0, FreeBytes = r?.FreeBytes ?? 0, Volumes = r?.Volumes ?? 0, Unavailable = r?.Unavailable ?? "", Problem = r?.CleaningProblem ?? "",
            Disabled = _state.DisabledLibraries.GetValueOrDefault(l.Id) ?? "",
        };
    }

    /// <summary>Counts the time spent in each message's handling (actorbackup_manager_busy_seconds_total).</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return base.AroundReceive(receive, message);
        }
        finally
        {
            Metrics.CellMetrics.ManagerBusy.Inc(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private List<ManagerState.LibraryLoad> Loads() =>
        _state.Libraries.Values.Select(l =>
        {
            _libraryReports.TryGetValue(l.Id, out var r);
            return new ManagerState.LibraryLoad(l.Id, IsReachable(l.Node), _state.ActiveJobsOn(l.Id), r?.FreeBytes ?? 0, _state.RecentJobsOn(l.Id, DateTimeOffset.UtcNow),
                r is { Unavailable: not "" } ? r.Unavailable : null, r is { Full: not "" } ? r.Full : null, r is { Unavailable: not "", Reads: true });
        }).ToList();

    /// <summary>
    /// Whether the client's node is connected: registered with this manager, or (a manager that just took over, whose
    /// clients are registering again) a member of the cell with the client role at the address the client registered from.
    /// </summary>
    private bool ClientConnected(string client)
    {
        if (_clientRefs.ContainsKey(client)) return true;
        if (!_state.Clients.TryGetValue(client, out var known) || !ActorPath.TryParse(known.Address, out var path)) return false;
        // Another client registered from that address since (the node's client-id renamed): this one is not there any more.
        if (_clientRefs.Keys.Any(other => _state.Clients.TryGetValue(other, out var o) && o.Address == known.Address)) return false;
        return Akka.Cluster.Cluster.Get(Context.System).State.Members.Any(m =>
            m.Address == path.Address && m.HasRole("client") && m.Status is MemberStatus.Up or MemberStatus.Joining or MemberStatus.WeaklyUp);
    }

    /// <summary>
    /// Below the first build whose client knows a restore's excludes, overwrite policy and dry run (1.20261207.1538-266163f;
    /// an older one ignores them: a plain restore). A minute before it: a version with a commit after it sorts below its bare number.
    /// </summary>
    public static readonly Akka.Util.AppVersion RestoreChoicesSince = Akka.Util.AppVersion.Create("1.20261207.1537");

    /// <summary>
    /// Why a restore with --exclude, --overwrite or --dry-run is refused: the node of the client that would run it is of an
    /// older build (a cell upgraded manager first, as README says), which would run it as a plain forced restore, over
    /// what the operator meant to keep or only to look at. Null when it is not, or cannot be told.
    /// </summary>
    private string? OlderClient(StartRestore m)
    {
        if (m.Excludes.Count == 0 && m.Overwrite == RestoreOverwrite.OverwriteAlways && !m.DryRun) return null;
        try
        {
            return OlderClient(m.Client != "" ? m.Client : _state.FindSnapshot(_state.LatestHolding(m, DateTimeOffset.UtcNow), "", DateTimeOffset.UtcNow).Client, true);
        }
        catch (KeyNotFoundException)
        {
            return null; // refused as unknown by DecideStartRestore
        }
    }

    /// <summary>The same for a restore of <paramref name="client"/> that has such <paramref name="choices"/>, as it starts (its node may have joined since, on an older build).</summary>
    private string? OlderClient(string client, bool choices)
    {
        if (!choices || !_state.Clients.TryGetValue(client, out var known) || !ActorPath.TryParse(known.Address, out var path)) return null;
        Akka.Cluster.Cluster cluster;
        try
        {
            cluster = Akka.Cluster.Cluster.Get(Context.System);
        }
        catch (Akka.Configuration.ConfigurationException)
        {
            return null; // no cluster (a test's manager): one build
        }
        var member = cluster.State.Members.FirstOrDefault(x => x.Address == path.Address);
        // The same build as this node's, or this node's own not known (built outside a git clone: 1.0.0): no telling.
        if (member is null || member.AppVersion.Equals(cluster.SelfMember.AppVersion) || cluster.SelfMember.AppVersion.CompareTo(RestoreChoicesSince) < 0) return null;
        return member.AppVersion.CompareTo(RestoreChoicesSince) >= 0 ? null
            : $"client {client}'s node runs build {member.AppVersion}{(member.AppVersion.Equals(Akka.Util.AppVersion.Create("1.0.0")) ? " (built outside a git clone: its build cannot be told)" : "")}, " +
              $"older than the first that knows a restore's --exclude, --overwrite and --dry-run ({RestoreChoicesSince}): it would run a plain restore; " +
              "upgrade that node first (README, \"Upgrading a cell\"), or restore without them";
    }

    private static bool IsReachable(string node) => IsReachable(m => m.Address.ToString() == node);

    /// <summary>Whether the member at <paramref name="address"/> is up and reachable (a client id's holder that is not may be replaced).</summary>
    private static bool IsReachable(Address address) => IsReachable(m => m.Address == address);

    private static bool IsReachable(Func<Member, bool> which)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var member = cluster.State.Members.FirstOrDefault(which);
        return member is { Status: MemberStatus.Up } && !cluster.State.Unreachable.Contains(member);
    }

    /// <summary>
    /// A decision taken: a rejection goes back to the sender as it is; events are persisted and applied, then
    /// <paramref name="then"/> runs for each with the sender of the command.
    /// </summary>
    private void PersistDecision(ManagerState.Decision decision, Action<IActorRef, IMessage> then)
    {
        if (decision.Rejection is not null)
        {
            Refuse(decision.Rejection);
            return;
        }
        var sender = Sender;
        PersistAll(decision.Events, e =>
        {
            Applied(e);
            then(sender, e);
        });
    }

    /// <summary>Persists a backup set decision and answers with the set as it now is (or its removal).</summary>
    private void PersistSet(ManagerState.Decision decision) =>
        PersistDecision(decision, (sender, e) => sender.Tell(e switch
        {
            BackupSetDefined d => _state.SetInfo(_state.BackupSets[d.Set.Name], DateTimeOffset.UtcNow),
            SlotDeferred d => _state.SetInfo(_state.BackupSets[d.Set], DateTimeOffset.UtcNow),
            _ => e,
        }));

    /// <summary>Persists a policy decision and answers with the policy as it now is (or its removal).</summary>
    private void PersistPolicy(ManagerState.Decision decision) =>
        PersistDecision(decision, (sender, e) => sender.Tell(e is PolicyDefined d ? _state.PolicyInfoOf(d.Policy) : e));

    /// <summary>Persists a new job (QUEUED), answers with its id, and starts what the queue allows.</summary>
    private void Reply(ManagerState.Decision decision)
    {
        // Who asked, kept with the job (a restore sends data somewhere: whose command it was stays in its history).
        if (_authorizedCaller != "")
            foreach (var queued in decision.Events.OfType<JobQueued>()) queued.Job.RequestedBy = _authorizedCaller;
        PersistDecision(decision, (sender, _) =>
        {
            sender.Tell(new JobAccepted { Job = decision.Job!.Id });
            DispatchWaiting();
        });
    }

    /// <summary>When this manager first saw each known client not connected (since it last was): its jobs wait for it from then.</summary>
    private readonly Dictionary<string, long> _offlineSince = [];

    /// <summary>Starts the queued jobs that the limits allow now (ManagerState.DecideDispatch), and notes why the others wait.</summary>
    private void DispatchWaiting()
    {
        if (_handingOver) return; // stopping to hand over: the next manager starts what waits
        var now = DateTimeOffset.UtcNow;
        foreach (var client in _state.Clients.Keys)
            if (_clientRefs.ContainsKey(client)) _offlineSince.Remove(client);
            else _offlineSince.TryAdd(client, now.ToUnixTimeMilliseconds());
        var plan = _state.DecideDispatch(_limits, _starting, _clientRefs.Keys.ToHashSet(), now, Loads(), _unsettledClients, _offlineSince);
        _waiting = plan.Waiting;
        foreach (var m in plan.Missed)
        {
            _starting[m.Job] = new(""); // being ended: not decided on again before its JobEnded is applied
            End(m.Job, m.State, m.Reason);
        }
        foreach (var job in plan.Start)
        {
            // A job that reads a snapshot no longer in the catalog ends with the reason (a throw here, in a persist
            // handler, would stop the manager again at each recovery).
            if (job.Kind is JobKind.Restore or JobKind.Verify or JobKind.Copy && job.Snapshot != "" && !_state.Snapshots.Exists(s => s.Id == job.Snapshot))
            {
                _starting[job.Id] = new(""); // being ended
                End(job.Id, JobState.Failed, $"snapshot {job.Snapshot} is no longer in the catalog (deleted since the job was queued): nothing was read");
                continue;
            }
            // Its client's node came back (or was first seen) on a build that would ignore the restore's choices.
            if (job.Kind == JobKind.Restore && OlderClient(job.Client, job.Excludes.Count > 0 || job.Overwrite != RestoreOverwrite.OverwriteAlways || job.DryRun) is { } older)
            {
                _starting[job.Id] = new(""); // being ended
                End(job.Id, JobState.Failed, older + "; nothing was written");
                continue;
            }
            _starting[job.Id] = new(job.Library, job.Drive, job.SourceDrive, job.SourceDrive > 0 ? job.SourceLibrary : ""); // the library and drives chosen: taken from now on
            switch (job.Kind)
            {
                case JobKind.Restore:
                    var restored = _state.FindSnapshot(job.Snapshot);
                    var fallback = _state.LibrariesOf(restored).Where(l => l != job.Library && _state.Disabled(l) is null).ToList();
                    Dispatch(job, new RestoreAssignment
                    {
                        Job = job, Manifest = restored.ToByteString(), Fallback = { fallback },
                        Ticket = Ticket(job, read: [job.Library, .. restored.Library == job.Library ? restored.Spans : [], .. fallback]),
                    });
                    break;
                case JobKind.Verify when job.Snapshot == "":
                    DispatchToMedia(job, new VerifyLibrary { Library = job.Library, Job = job.Id, Attempt = job.Attempt, Drive = job.Drive, Keep = { _state.KeptOn(job.Library) } });
                    break;
                case JobKind.Verify:
                    var verified = _state.FindSnapshot(job.Snapshot);
                    Dispatch(job, new VerifyAssignment
                    {
                        Job = job, Manifest = verified.ToByteString(), Ticket = Ticket(job, read: [job.Library, .. verified.Library == job.Library ? verified.Spans : []]),
                    });
                    break;
                case JobKind.Prune:
                    var prune = _state.PruneRequest(job, _limits.PruneThreshold, _limits.OrphansAfter);
                    prune.JournalSequence = LastSequenceNr;
                    DispatchToMedia(job, prune);
                    break;
                case JobKind.Copy:
                    // A snapshot that spans libraries is read from all of them when copied from its own.
                    var spans = _state.Snapshots.FirstOrDefault(s => s.Id == job.Snapshot && s.Library == job.SourceLibrary)?.Spans ?? [];
                    DispatchToMedia(job, new CopySnapshot
                    {
                        Library = job.Library, Job = job.Id, Attempt = job.Attempt, Snapshot = job.Snapshot, SourceLibrary = job.SourceLibrary, Heal = { job.Heal }, ReadBack = _state.CopyReadsBack(job),
                        SourceSpans = { spans }, Ticket = Ticket(job, read: [job.SourceLibrary, .. spans], holderLibrary: job.Library),
                    });
                    break;
                case JobKind.Backup or JobKind.Unspecified:
                    DispatchBackup(job);
                    break;
                default: // a kind a newer build recorded (a journal it wrote, read after going back to this one)
                    End(job.Id, JobState.Failed, $"job {job.Id} is of a kind this build does not know ({(int)job.Kind}): a newer build " +
                                                 "queued it; run that build again (README, \"Upgrading a cell\")");
                    break;
            }
        }
    }

    private void DispatchBackup(JobInfo job)
    {
        var parent = _state.ParentFor(job.Client, job.BackupSet, job.Level, DateTimeOffset.UtcNow, job.Library);
        var spanTo = _state.SpanTargets(job);
        var assignment = new BackupAssignment
        {
            Job = job, ParentManifest = parent?.ToByteString() ?? ByteString.Empty, SpanTo = { spanTo },
            // It writes into its library and those it may span into, and reads its parent's trees.
            Ticket = Ticket(job, read: parent is null ? [] : [parent.Library, .. parent.Spans], write: [job.Library, .. spanTo]),
        };
        // What the catalog holds of the client: it forgets the file indexes of the others (one a backup piled up).
        var own = _state.Snapshots.Where(s => s.Client == job.Client).Select(s => s.Id).Take(MaxClientSnapshotsSent + 1).ToList();
        if (own.Count <= MaxClientSnapshotsSent)
        {
            assignment.ClientSnapshots.AddRange(own);
            assignment.ClientSnapshotsAsOfUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        }
        Dispatch(job, assignment);
    }

    /// <summary>At most this many snapshot ids go with a backup's assignment (about 1 MiB: the message stays well within a remote frame).</summary>
    public const int MaxClientSnapshotsSent = 20_000;

    /// <summary>The signed ticket of <paramref name="job"/>'s attempt: the sessions it may open (JobTickets).</summary>
    /// <summary>A job's ticket, signed, stamped with the journal's sequence number (Media/JournalWatch: a media agent sees a journal that went back).</summary>
    private JobTicket Ticket(JobInfo job, IEnumerable<string> read, IEnumerable<string>? write = null, string holderLibrary = "")
    {
        var ticket = Trust.JobTickets.For(job, read, write ?? [], DateTimeOffset.UtcNow, holderLibrary);
        ticket.JournalSequence = LastSequenceNr;
        return Trust.MessageSignature.Sign(ticket, _trust);
    }

    /// <summary>A catalog rebuild of <paramref name="library"/> is recorded: its media agent's prunes let unknown lists go again (Media/JournalWatch).</summary>
    private void CatalogCaughtUp(string library)
    {
        var caughtUp = new CatalogCaughtUp { Library = library, JournalSequence = LastSequenceNr };
        _mediaRegion.Tell(_trust is null ? caughtUp : Trust.MessageSignature.Sign(caughtUp, _trust), Self);
    }

    /// <param name="target">who runs it: the job's client unless given (a prune: the media region)</param>
    /// <param name="probe">what the job's child asks the target now and then (default: the client's RegistrationRequest)</param>
    /// <param name="before">sent to <paramref name="target"/> just before the assignment (Media/KeepPages parts)</param>
    private void Dispatch(JobInfo job, IMessage assignment, IActorRef? target = null, IMessage? probe = null, IReadOnlyList<IMessage>? before = null)
    {
        if (target is null && !_clientRefs.TryGetValue(job.Client, out target))
        {
            Failed(job, JobFault.FaultTransient, $"client {job.Client} is not connected: start its node");
            return;
        }
        Persist(new JobStarted { Job = job.Id, Library = job.Library, Drive = job.Drive, SourceDrive = job.SourceDrive, UnixMs = Now(), Level = job.Kind == JobKind.Backup ? job.Level : BackupLevel.LevelDefault }, e =>
        {
            Metrics.CellMetrics.QueueWait.Observe(Math.Max(0, e.UnixMs - job.QueuedUnixMs) / 1000.0);
            Applied(e);
            _starting.Remove(job.Id);
            // Signed: its client (or media agent) takes an assignment only from a manager node.
            _jobActors[job.Id].Tell(new JobActor.Attempt(job.Attempt, target, Trust.MessageSignature.Sign(assignment, _trust), probe, before));
        });
    }

    /// <summary>The signed command being handled, taken from a CallerSigned, and the role of the certificate that signed it.</summary>
    private IMessage? _authorized;
    private Protocol.Trust.CellRole _authorizedRole;
    /// <summary>The serial number of the certificate that signed the command being handled (empty: none).</summary>
    private string _authorizedSerial = "";
    /// <summary>Who signed the command being handled, as its certificate names it (empty: a test's, unsigned).</summary>
    private string _authorizedCaller = "";
    private readonly Trust.CallerNonces _nonces = new();

    /// <summary>What the manager takes inside a CallerSigned: operator-only and job commands, and a program's looks at the catalog.</summary>
    private static readonly IReadOnlySet<string> SignedHere = Protocol.Trust.OperatorCommands.Signed.Concat(Protocol.Trust.OperatorCommands.CatalogLooks).ToHashSet();

    /// <summary>
    /// A command as the caller's shell or program signed it (an operator-only command, a job command, a look): checked
    /// (CallerSignatures), then handled as if sent alone, narrowed to what its signer may do (Authorized).
    /// </summary>
    private void CallerCommand(CallerSigned signed)
    {
        IMessage? command;
        var refusal = "";
        Protocol.Trust.CellIdentity? caller = null;
        if (_trust is null) command = ProtocolTypes.Parse(signed.Type, signed.Body.Span); // a test's ActorSystem without trust
        else command = Trust.CallerSignatures.Open(_trust, signed, DateTimeOffset.UtcNow, _nonces, out refusal, out caller, SignedHere);
        var serial = caller is null ? "" : SerialOf(signed.Signer);
        _authorizedSerial = command is RevokeCertificate ? serial : "";
        _authorizedCaller = caller?.ToString() ?? "";
        _refused = null;
        _takenAs = null;
        try
        {
            Authorized(command, caller, refusal);
        }
        finally
        {
            _authorizedSerial = "";
            Audited(signed, command, caller, serial, command is null ? refusal : _refused);
        }
    }

    /// <summary>The audit trail's writer (Audit/AuditActor), behind its supervisor.</summary>
    private readonly IActorRef _audit;

    /// <summary>Why the command being handled was refused, as its handler answered (null: taken, or not answered yet).</summary>
    private string? _refused;

    /// <summary>What became of the command being handled when it was not decided here (null: "taken").</summary>
    private string? _takenAs;

    /// <summary>Refused records this minute, per signer serial ("" for commands without a valid signature): a flood of refusals does not fill the trail.</summary>
    private readonly Dictionary<string, int> _refusedAudited = new(StringComparer.Ordinal);
    private long _refusedMinute;

    /// <summary>Refused records a signer may leave a minute; past it, the log says how many were left out.</summary>
    public const int RefusedAuditsPerMinute = 60;

    /// <summary>This manager's run, in the records it sends (with _auditRef, their number): the writer journals a record sent again once.</summary>
    private readonly string _auditOrigin = Guid.NewGuid().ToString("N")[..16];
    private long _auditRef;

    /// <summary>Records sent, not yet answered written: sent again at the next tick once 10 s old (the writer was down), at most 10,000 kept.</summary>
    private readonly Queue<(long Ref, AuditRecord Record, long SentMs)> _auditUnwritten = new();
    public const int MaxUnwrittenAudits = 10_000;

    /// <summary>Parts of catalog rebuilds' manifests waiting for their RecordSnapshots (Manager/RebuildParts).</summary>
    private readonly RebuildParts _rebuildParts = new();

    /// <summary>A hand-over asked for while audit records were unwritten: the manager stops once they are (<see cref="HandOverWaitsForAudit"/> at most).</summary>
    private bool _handingOver;
    private sealed record HandOverNow;
    public static readonly TimeSpan HandOverWaitsForAudit = TimeSpan.FromSeconds(10);

    /// <param name="now">send them all again at once, however recently sent (a hand-over)</param>
    private void AuditAgain(bool now = false)
    {
        var at = Environment.TickCount64;
        if (_auditUnwritten.Count == 0 || (!now && at - _auditUnwritten.Peek().SentMs < 10_000)) return;
        var again = _auditUnwritten.ToList();
        _auditUnwritten.Clear();
        foreach (var (reference, record, _) in again)
        {
            _auditUnwritten.Enqueue((reference, record, at));
            _audit.Tell(new Audit.AuditActor.Write(record, _auditOrigin, reference, again[0].Ref));
        }
    }

    private void Record(AuditRecord record)
    {
        if (_auditUnwritten.Count >= MaxUnwrittenAudits)
        {
            var lost = _auditUnwritten.Dequeue();
            _log.Error("the audit trail's journal has not taken {0} records: record {1} ({2} by {3}) is left out of it", MaxUnwrittenAudits, lost.Ref,
                lost.Record.Command, lost.Record.Caller);
        }
        var reference = ++_auditRef;
        _auditUnwritten.Enqueue((reference, record, Environment.TickCount64));
        _audit.Tell(new Audit.AuditActor.Write(record, _auditOrigin, reference, _auditUnwritten.Peek().Ref)); // those before the oldest kept were let go
    }

    /// <summary>
    /// A command taken inside a CallerSigned, into the audit trail: who signed it, what it asked, taken or refused and
    /// why, and the node that relayed it; for an operator-only command or a restore, the signed bytes too (its proof).
    /// Refused ones: at most 60 a minute per signer (a flood of them is in the log). Not a look at the catalog. The set
    /// commands and file texts in what it asked are masked (the trail is never trimmed): then no signed bytes either.
    /// </summary>
    private void Audited(CallerSigned signed, IMessage? command, Protocol.Trust.CellIdentity? caller, string serial, string? refused)
    {
        // A program's looks at the catalog (a job polled every few seconds) are not actions: not in the trail.
        if (Protocol.Trust.OperatorCommands.CatalogLooks.Contains(signed.Type)) return;
        var now = DateTimeOffset.UtcNow;
        if (refused is not null && _trust is not null)
        {
            var minute = now.ToUnixTimeSeconds() / 60;
            if (minute != _refusedMinute)
            {
                foreach (var (who, count) in _refusedAudited.Where(kv => kv.Value > RefusedAuditsPerMinute))
                    _log.Warning("audit trail: {0} refused commands of {1} in a minute left out of it", count - RefusedAuditsPerMinute, who == "" ? "callers without a valid signature" : "certificate " + who);
                _refusedMinute = minute;
                _refusedAudited.Clear();
            }
            var seen = _refusedAudited[serial] = _refusedAudited.GetValueOrDefault(serial) + 1;
            if (seen > RefusedAuditsPerMinute) return;
        }
        var type = command?.Descriptor.Name ?? Audit.AuditTrail.Cut(signed.Type, Audit.AuditTrail.MaxName);
        var masked = false;
        var what = command is null ? "" : Audit.AuditTrail.What(command, out masked);
        // The proof: an operator-only command's, or a restore's (data leaving) that was taken; not one whose commands are masked.
        var proof = Audit.AuditTrail.KeepsProof(command, masked, refused is not null) && signed.CalculateSize() <= Audit.AuditTrail.MaxSigned;
        Record(new AuditRecord
        {
            UnixMs = now.ToUnixTimeMilliseconds(), Caller = caller?.ToString() ?? "", Serial = serial, Command = type, What = what,
            Outcome = refused is null ? _takenAs ?? "taken" : Audit.AuditTrail.Cut("refused: " + refused, Audit.AuditTrail.MaxOutcome),
            Node = NodeOf(Sender).ToString(), Signed = proof ? signed.ToByteString() : Google.Protobuf.ByteString.Empty,
        });
    }

    /// <summary>
    /// A catalog rebuild's findings, into the audit trail as the operator's signed RebuildCatalog they answer (it changes
    /// the catalog; it reaches the manager from the client node that read the library, not through CallerCommand).
    /// </summary>
    private void AuditedRebuild(RecordSnapshots m, string? refused)
    {
        if (m.Caller is null || _trust is null) return;
        var caller = Protocol.Trust.SignedMessages.Signer(_trust.Ca, m.Caller, out _);
        IMessage? command = null;
        try
        {
            command = ProtocolTypes.Parse(m.Caller.Type, m.Caller.Body.Span);
        }
        catch (InvalidProtocolBufferException)
        {
            // Recorded by its type alone.
        }
        _takenAs = $"taken: {m.Manifests.Count} manifests found in library {m.Library} offered to the catalog";
        Audited(m.Caller, command, caller, caller is null ? "" : SerialOf(m.Caller.Signer), refused);
        _takenAs = null;
    }

    /// <summary>Answers the command being handled with its refusal (and notes it for the audit trail).</summary>
    private void Refuse(string reason)
    {
        _refused ??= reason;
        Sender.Tell(new CommandRejected { Reason = reason });
    }

    private static string SerialOf(Google.Protobuf.ByteString der)
    {
        try
        {
            using var cert = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(der.Span);
            return Protocol.Trust.RevokedCertificates.SerialOf(cert);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return "";
        }
    }

    /// <summary>
    /// A look at the catalog that a node makes for the caller whose signed command it relays (or a client node for the
    /// caller of a find): answered as that caller may see, whatever node asks (Trust.LookSignatures.Shell; no nonce,
    /// as one command may need several looks).
    /// </summary>
    private void LookFor(CatalogLook m)
    {
        IMessage? look = null;
        Protocol.Trust.CellIdentity? caller = null;
        string refusal;
        if (!Protocol.Trust.OperatorCommands.CatalogLooks.Contains(m.Type)) refusal = $"a {m.Type} is not a look at the catalog";
        else if (_trust is not null && m.Caller is null) refusal = $"the {m.Type} comes without its caller's signed command: ask with abk (and a certificate of the cell)";
        else if (_trust is not null && (caller = Trust.LookSignatures.Shell(_trust, m.Caller!, m.Type, DateTimeOffset.UtcNow, Protocol.Trust.OperatorCommands.LookWindow, out refusal)) is null) { }
        else
        {
            refusal = "";
            try
            {
                look = ProtocolTypes.Parse(m.Type, m.Body.Span);
            }
            catch (InvalidProtocolBufferException e)
            {
                refusal = $"the {m.Type} does not parse: {e.Message}";
            }
        }
        Authorized(look, caller, refusal);
    }

    /// <summary>
    /// Handles <paramref name="command"/> for <paramref name="caller"/> (null: a test's ActorSystem without trust), narrowed
    /// to what its certificate may do (a job command: JobCallers.Narrow; a look: JobCallers.NarrowLook), or answers
    /// <paramref name="refusal"/> when it is null.
    /// </summary>
    private void Authorized(IMessage? command, Protocol.Trust.CellIdentity? caller, string refusal)
    {
        if (command is not null && caller is not null)
        {
            var name = command.Descriptor.Name;
            var narrowed = Protocol.Trust.OperatorCommands.Jobs.Contains(name) ? JobCallers.Narrow(caller, command, _state)
                : Protocol.Trust.OperatorCommands.CatalogLooks.Contains(name) ? JobCallers.NarrowLook(caller, command, _state)
                : null;
            if (narrowed is not null)
            {
                command = null;
                refusal = narrowed;
            }
        }
        switch (command)
        {
            case null:
                _log.Warning("{0} (from {1})", refusal, Sender);
                Refuse(refusal);
                return;
            case ApplyFile f: // the file as the operator sent it, read here
                command = Definitions.DefinitionsFile.ToApply(f);
                if (command is CommandRejected rejected)
                {
                    Refuse(rejected.Reason);
                    return;
                }
                break;
            case StartPrune p:
                p.Origin = JobOrigin.Operator;
                break;
        }
        _authorized = command;
        _authorizedRole = caller?.Role ?? Protocol.Trust.CellRole.Operator;
        try
        {
            OnCommand(command);
        }
        finally
        {
            _authorized = null;
        }
    }

    /// <summary>
    /// Whether job command or look <paramref name="m"/> is refused (answered and logged): it did not come inside a
    /// CallerSigned (or a look inside a CatalogLook) that the certificate of an operator, an integrator or a client host
    /// signed. In a test's ActorSystem without trust, taken.
    /// </summary>
    private bool Unsigned(IMessage m)
    {
        if (_trust is null || ReferenceEquals(m, _authorized)) return false;
        var reason = $"a {m.Descriptor.Name} is taken only as its caller signed it: abk signs it with its certificate (an abk older than this cell does not: " +
                     "use the one built with it); a program sends it inside a CallerSigned that its integrator certificate signed (docs/integrators.md)";
        _log.Warning("{0} refused (from {1}): unsigned", m.Descriptor.Name, Sender);
        Refuse(reason);
        return true;
    }

    /// <summary>Client ids refused to a second node while a first held them (each said once in the log).</summary>
    private readonly HashSet<(string Client, string Node)> _claimedTwice = [];

    /// <summary>The cluster address of the node <paramref name="actor"/> is on (this node's for a local one, whose path has no host).</summary>
    private static Address NodeOf(IActorRef actor) =>
        actor.Path.Address.HasLocalScope ? Akka.Cluster.Cluster.Get(Context.System).SelfAddress : actor.Path.Address;


    /// <summary>Per library rebuilt whole but for lists whose manifests are in another library: those snapshots.</summary>
    private readonly Dictionary<string, HashSet<string>> _unaccounted = new(StringComparer.Ordinal);

    /// <summary>A library whose lists a later rebuild (of another library) accounted for is caught up now.</summary>
    private void AccountedFor()
    {
        if (_unaccounted.Count == 0) return;
        var known = _state.Snapshots.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var (library, ids) in _unaccounted.ToList())
        {
            ids.RemoveWhere(known.Contains);
            if (ids.Count > 0) continue;
            _unaccounted.Remove(library);
            _log.Info("catalog: every list in library {0} is a known snapshot's now (the libraries its spanned backups went on to were rebuilt)", library);
            CatalogCaughtUp(library);
        }
    }

    /// <summary>The cell's revoked certificates, signed by this manager node: the only list a node takes.</summary>
    private Revocations SignedRevocations() => _signedRevocations ??= Trust.MessageSignature.Sign(_state.RevocationList(), _trust);

    /// <summary>The list as last signed; null once it changed (every node asks for it now and then: signed once).</summary>
    private Revocations? _signedRevocations;

    /// <summary>This node refuses <paramref name="serials"/> from now on (its other nodes hear the list signed).</summary>
    private void LearnRevocations(IEnumerable<string> serials)
    {
        try
        {
            _trust?.Learn(serials);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Refused in this process all the same; the file keeps them refused at the next start before the list comes.
            _log.Error("the revoked certificates could not be written to this node's certs folder: {0}", e.Message);
        }
    }

    /// <summary>
    /// Whether <paramref name="m"/>, which only an operator may give, is refused (answered and logged): it did not
    /// come inside a CallerSigned an operator's certificate signed. In a test's ActorSystem without trust, taken.
    /// </summary>
    private bool OperatorOnly(IMessage m, string what)
    {
        if (_trust is null || (ReferenceEquals(m, _authorized) && _authorizedRole == Protocol.Trust.CellRole.Operator)) return false;
        var reason = $"only an operator may {what}: give it with abk and an operator certificate (a program sends it inside a CallerSigned that an operator certificate signed: docs/integrators.md)";
        _log.Warning("{0} refused (from {1}): {2}", m.Descriptor.Name, Sender, reason);
        Refuse(reason);
        return true;
    }

    /// <summary>Whether <paramref name="m"/> is refused: not signed by a certificate of the cell that <paramref name="allowed"/> accepts (logged).</summary>
    private bool Refused(IMessage m, Func<Protocol.Trust.CellIdentity, bool> allowed, string expected)
    {
        if (Trust.MessageSignature.Refusal(_trust, m, allowed, expected) is not { } refused) return false;
        _log.Warning("{0} (from {1})", refused, Sender);
        return true;
    }

    /// <summary>
    /// A job its library's media agent runs itself (prune, copy, library check); its child asks the agent whether it still
    /// does. Snapshot lists too long for one message go in parts before it (Media/KeepPages).
    /// </summary>
    private void DispatchToMedia(JobInfo job, IMessage assignment) => Dispatch(job, assignment, _mediaRegion, MediaProbe(job), Media.KeepPages.Split(assignment));

    private static GetLibraryStatus MediaProbe(JobInfo job) => new() { Library = job.Library };

    private sealed record SettleTimeout;

    /// <summary>How many schedule ticks (seconds) between two looks at the policies' tier rules.</summary>
    private const int TierEvery = 10;

    /// <summary>Snapshots old enough for their policy's tier get a copy job there, or move when the copy exists (ManagerState.DecideTiering).</summary>
    /// <returns>the events it journals</returns>
    private IReadOnlyList<IMessage> ApplyTiering()
    {
        var (jobs, moves) = _state.DecideTiering(DateTimeOffset.UtcNow);
        if (jobs.Count + moves.Count == 0) return [];
        var events = moves.Cast<IMessage>().Concat(jobs).ToList();
        PersistAll(events, e =>
        {
            Applied(e);
            if (e is JobQueued q) _log.Info("job {0}: snapshot {1} moves to its tier, library {2}", q.Job.Id, q.Job.Snapshot, q.Job.Library);
            if (e is SnapshotMoved m) _log.Info("snapshot {0} moved to its tier, library {1}", m.Snapshot, m.To);
            DispatchWaiting();
        });
        return events;
    }

    /// <summary>When retention looks again: the catalog changed, a job let go of a snapshot it held, or 10 minutes passed.</summary>
    private readonly RetentionWatch _retentionWatch = new();

    /// <summary>
    /// Deletes from the catalog what the policies' retention no longer keeps (ManagerState.DecideRetention), deciding on
    /// <paramref name="state"/>: the state with the jobs queued in this tick but not journaled yet, which hold their snapshots.
    /// </summary>
    private IReadOnlyList<IMessage> ApplyRetention(ManagerState state)
    {
        var seen = ((object)state.Snapshots, (object)state.Policies, (object)state.BackupSets, (object)state.Verified, (object)state.Copies, (object)state.Suspects, (object)state.Undeleted);
        var now = DateTimeOffset.UtcNow;
        if (!_retentionWatch.Due(seen, state.SnapshotsInUse, now)) return [];
        var changes = state.DecideCopyRetention(now).Select(Held).ToList();
        if (state.DecideRetention(now) is { } deleted) changes.Add(Held(deleted));
        if (changes.Count == 0) return [];
        PersistAll(changes, e =>
        {
            Applied(e);
            switch (e)
            {
                case SnapshotsDeleted d: _log.Info("snapshots {0} deleted: {1}", string.Join(", ", d.Snapshots), d.Reason); break;
                case SnapshotsTrashed t: _log.Info("snapshots {0} deleted: {1}; held for {2} (abk snapshot undelete)", string.Join(", ", t.Snapshots), t.Reason, _limits.DeletionDelay); break;
                case CopyTrashed c: _log.Info("the copy of snapshot {0} on {1} goes: {2}; held for {3}", c.Snapshot, c.Library, c.Reason, _limits.DeletionDelay); break;
                case CopyDropped c: _log.Info("the copy of snapshot {0} on {1} goes: {2}", c.Snapshot, c.Library, c.Reason); break;
                case SnapshotMoved m: _log.Info("snapshot {0} lives on in its copy on {1}: its primary's retention let it go from {2}", m.Snapshot, m.To, m.From); break;
            }
        });
        return changes;
    }

    /// <summary>
    /// A deletion (of snapshots, or of a copy by its rule's retention) held for the deletion delay when there is one:
    /// the snapshots to the trash, the copy held, their data kept. Anything else as it is.
    /// </summary>
    private IMessage Held(IMessage e) => _limits.DeletionDelay <= TimeSpan.Zero ? e : e switch
    {
        SnapshotsDeleted d => new SnapshotsTrashed { Snapshots = { d.Snapshots }, Reason = d.Reason, UnixMs = d.UnixMs, ByRetention = d.ByRetention },
        CopyDropped c => new CopyTrashed { Snapshot = c.Snapshot, Library = c.Library, Reason = c.Reason, UnixMs = c.UnixMs },
        _ => e,
    };

    /// <summary>Held snapshots whose deletion delay passed: purged (their data goes at each library's next prune).</summary>
    private void PurgeHeld()
    {
        if ((_state.Trash.Count == 0 && _state.HeldCopies.Count == 0) || _state.DecidePurge(DateTimeOffset.UtcNow, _limits.DeletionDelay) is not { } purged) return;
        Persist(purged, e =>
        {
            Applied(e);
            _log.Info("deleted snapshots {0} purged: their deletion delay ({1}) passed; their data goes at the next prune",
                string.Join(", ", e.Snapshots.Concat(e.Copies.Select(c => $"{c.Snapshot} (its copy on {c.Library})"))), _limits.DeletionDelay);
        });
    }

    /// <summary>
    /// Running backups past their maximum run time (ManagerState.Overran) are told to stop, once an attempt: the client
    /// confirms (its end is then FAILED, not CANCELLED, and not retried), or the job's child gives up waiting for it.
    /// </summary>
    private void StopOverran()
    {
        var nowMs = Now();
        foreach (var (id, child) in _jobActors.ToList())
        {
            if (_state.Job(id) is not { } job || ManagerState.Overran(job, nowMs) is not { } reason) continue;
            if (_overran.TryGetValue(id, out var told) && told.Attempt == job.Attempt) continue;
            if (_operatorCancels.TryGetValue(id, out var cancelled) && cancelled == job.Attempt) continue; // an operator's cancel under way: it stays one
            // A client not connected (a manager just started, before its clients registered again) may have finished in
            // time and be sending its end: told once it is back. (One that never comes back ends as any attempt of an
            // absent client does: interrupted when the manager settles, and tried again.)
            if (!_clientRefs.ContainsKey(job.Client)) continue;
            _overran[id] = (job.Attempt, reason);
            _log.Warning("job {0} ({1} of {2}): {3}", id, job.Kind, job.Client, reason);
            child.Tell(new JobActor.Stop(reason));
        }
    }

    /// <summary>
    /// Why the job's running attempt was stopped for its run time, or null: as this manager told it, or (a manager that
    /// took over since) as the job's persisted start and limit say now.
    /// </summary>
    private string? OverranAttempt(JobInfo job) =>
        _overran.TryGetValue(job.Id, out var told) && told.Attempt == job.Attempt ? told.Reason
        : _operatorCancels.TryGetValue(job.Id, out var cancelled) && cancelled == job.Attempt ? null
        : ManagerState.Overran(job, Now());

    private void NextTick()
    {
        var now = DateTimeOffset.UtcNow;
        var delay = TimeSpan.FromMilliseconds(1000 - now.Millisecond) + TickAfterSecond;
        Timers.StartSingleTimer("schedule", ScheduleTick.Instance, delay);
    }

    /// <summary>Look for due schedule slots (rules may have seconds).</summary>
    /// <summary>When the manager last asked each tape library to clean its due drives: asked again only once it had time to answer.</summary>
    private readonly Dictionary<string, long> _cleaningAsked = [];

    /// <summary>Tape libraries with drives due for cleaning and no job: their media agents clean them now (ManagerState.DecideCleaning).</summary>
    private void CleanIdleDrives()
    {
        var now = Now();
        foreach (var library in _state.DecideCleaning(_libraryReports.Values, _starting.Values.SelectMany(s => new[] { s.Library, s.SourceLibrary }).Where(l => l != "")))
        {
            // A refusal (no cleaning cartridge, all worn out) is tried again every 10 minutes, not every second.
            var wait = _libraryReports[library].CleaningProblem != "" ? 600_000 : 30_000;
            if (_cleaningAsked.TryGetValue(library, out var at) && now - at < wait) continue;
            _cleaningAsked[library] = now;
            _log.Info("library {0}: drive {1} due for cleaning and no job runs there: cleaning now", library, string.Join(", ", _libraryReports[library].DrivesDueCleaning));
            var clean = new CleanDueDrives { Library = library };
            _mediaRegion.Tell(_trust is null ? clean : Trust.MessageSignature.Sign(clean, _trust), Self); // its IndexReport answers
        }
    }

    private sealed record ScheduleTick
    {
        public static readonly ScheduleTick Instance = new();
    }

    private void SettleRecoveredJobs()
    {
        if (_unsettledClients is null) return;
        if (_unsettledClients.Count > 0) _log.Warning("clients {0} did not answer since the manager started: their open jobs end interrupted", string.Join(", ", _unsettledClients));
        _unsettledClients = null;
        foreach (var e in _state.InterruptedJobs(DateTimeOffset.UtcNow, _claimed).ToList())
            Decided(_state.Job(e.Job)!, _state.DecideInterrupted(_state.Job(e.Job)!, e.Reason, DateTimeOffset.UtcNow, _limits.Backoff), null);
        _claimed.Clear();
    }

    /// <summary>
    /// Tells the node that sent a job's end what the manager recorded, signed: its client lets go of the end it keeps
    /// only on a manager node's signature (any node could claim a manager's address as a message's sender).
    /// </summary>
    private void Acknowledge(IActorRef? client, JobInfo job) => client?.Tell(Trust.MessageSignature.Sign(job.Clone(), _trust));

    /// <summary>A failed attempt: queued again for another attempt when the fault allows (ManagerState.DecideFailure), or ended FAILED.</summary>
    private void Failed(JobInfo job, JobFault fault, string reason, IActorRef? replyTo = null) =>
        Decided(job, _state.DecideFailure(job, fault, reason, DateTimeOffset.UtcNow, _limits.Backoff), replyTo);

    /// <summary>
    /// A backup whose snapshot is recorded: the policy's second copies it lacks are queued, then the job ends
    /// succeeded. Each step is its own journal write, so this is also what a backup whose end was cut short after its
    /// snapshot was recorded (the manager stopped, its journal failed) comes to, however that end is taken up again:
    /// the client's end sent again, the attempt taken for lost or interrupted (<see cref="Decided"/>).
    /// </summary>
    private void RecordedEnd(JobInfo job, SnapshotManifest manifest, IActorRef? replyTo) =>
        PersistAllThen(_state.DecideCopiesAfter(manifest, DateTimeOffset.UtcNow), () => End(job.Id, JobState.Succeeded, manifest.DescribeErrors(), manifest.Id, manifest.ErrorCount, replyTo), q =>
        {
            var copy = ((JobQueued)q).Job;
            _log.Info("job {0}: copy of snapshot {1} to library {2}", copy.Id, copy.Snapshot, copy.Library);
            DispatchWaiting();
        });

    /// <summary>A backup whose snapshot is recorded, to be ended succeeded (<see cref="Decided"/>). Local only.</summary>
    private sealed record EndRecorded(string Job, int Attempt, IActorRef? ReplyTo);

    /// <summary>An attempt's end as decided (DecideFailure, DecideInterrupted): the job ended, or queued again for another attempt.</summary>
    private void Decided(JobInfo job, IMessage decision, IActorRef? replyTo)
    {
        if (_state.RecordedBy(job) is { } recorded)
        {
            // Its snapshot was recorded before its end was (the manager stopped between the two, or its client went
            // before the end it sent again was taken): it succeeded, and runs no second time. As a command of its own:
            // several settled in one pass would each take the same next job id for their copies.
            _log.Info("job {0}: its snapshot {1} is recorded: it succeeded", job.Id, recorded.Id);
            Self.Tell(new EndRecorded(job.Id, job.Attempt, replyTo));
            return;
        }
        // An attempt an operator cancelled that ended otherwise (its client lost meanwhile): cancelled, not tried again.
        if (decision is JobRetried && _operatorCancels.TryGetValue(job.Id, out var cancelled) && cancelled == job.Attempt)
        {
            End(job.Id, JobState.Cancelled, $"cancelled by an operator; {((JobRetried)decision).Reason}", replyTo: replyTo);
            return;
        }
        // An attempt this manager stopped for its maximum run time is not tried again, however it ended (lost,
        // interrupted), and its end says why. (Only one told: a client's own end judged by the clock now would count a
        // manager's downtime as its run time.)
        var overran = job.Kind == JobKind.Backup && _overran.TryGetValue(job.Id, out var told) && told.Attempt == job.Attempt ? told.Reason : null;
        if (decision is JobEnded ended)
        {
            End(job.Id, ended.State, overran is null ? ended.Reason : $"{overran}; {ended.Reason}", replyTo: replyTo);
            return;
        }
        if (overran is not null)
        {
            End(job.Id, JobState.Failed, $"{overran}; {((JobRetried)decision).Reason}", replyTo: replyTo);
            return;
        }
        Persist(decision, e =>
        {
            Applied(e);
            _log.Warning("job {0}: {1}", job.Id, ((JobRetried)e).Reason);
            EndSessions(job, jobEnded: false);
            Acknowledge(replyTo, WithProgress(_state.Job(job.Id)!)); // the client's node may be waiting to stop
            _progress.Remove(job.Id);
            _progressTaken.Remove(job.Id);
            _starting.Remove(job.Id);
            DispatchWaiting();
        });
    }

    /// <summary>
    /// Persists <paramref name="events"/>, each applied (and given to <paramref name="each"/>), then runs <paramref name="then"/>
    /// once the last is written; at once when there are none.
    /// </summary>
    private void PersistAllThen(IReadOnlyList<IMessage> events, Action then, Action<IMessage>? each = null)
    {
        if (events.Count == 0)
        {
            then();
            return;
        }
        var left = events.Count;
        PersistAll(events, e =>
        {
            Applied(e);
            each?.Invoke(e);
            if (--left == 0) then();
        });
    }

    private void End(string jobId, JobState state, string reason, string snapshot = "", int errors = 0, IActorRef? replyTo = null, VerifyReport? verify = null,
        PruneReport? prune = null, CopyReport? copy = null)
    {
        // Its last figures stay with it (abk job show of an ended restore said nothing of what it did), without their signature.
        var final = _progress.GetValueOrDefault(jobId)?.Clone();
        if (final is not null)
        {
            final.Signer = Google.Protobuf.ByteString.Empty;
            final.Signature = Google.Protobuf.ByteString.Empty;
            // A short job may end before its first report: its time from its start.
            if (final.Seconds <= 0 && _state.Job(jobId) is { StartedUnixMs: > 0 } started) final.Seconds = Math.Max(0, Now() - started.StartedUnixMs) / 1000.0;
        }
        Persist(new JobEnded { Job = jobId, State = state, Reason = reason, UnixMs = Now(), Snapshot = snapshot, Errors = errors, Verify = verify, Prune = prune, Copy = copy, Progress = final }, e =>
        {
            Applied(e);
            var job = WithProgress(_state.Job(jobId)!);
            if (state == JobState.Succeeded) _log.Info("job {0} ({1} of {2}) succeeded", jobId, job.Kind, job.Client);
            else _log.Warning("job {0} ({1} of {2}) ended {3}: {4}", jobId, job.Kind, job.Client, state, reason);
            if (_jobActors.Remove(jobId, out var child)) child.Tell(new JobActor.Closed(job));
            _overran.Remove(jobId);
            _operatorCancels.Remove(jobId);
            EndSessions(job, jobEnded: true);
            Acknowledge(replyTo, job);
            _progress.Remove(jobId);
            _progressTaken.Remove(jobId);
            _starting.Remove(jobId);
            DispatchWaiting(); // a stream, a client slot or a cell slot is free again
        });
    }

    /// <summary>
    /// A job ended (<paramref name="jobEnded"/>) or its attempt was given up: its library closes whatever sessions it
    /// left open, and so do the libraries a backup may have spanned into and those its snapshot spans (a restore's
    /// reads, a copy's source); none opens one again under that attempt's ticket.
    /// </summary>
    private void EndSessions(JobInfo job, bool jobEnded)
    {
        if (job.Library == "" || job.Kind is JobKind.Prune || job is { Kind: JobKind.Verify, Snapshot: "" }) return;
        var snapshot = _state.Snapshots.FirstOrDefault(s => s.Id == job.Snapshot && (job.Kind != JobKind.Copy || s.Library == job.SourceLibrary));
        var reads = snapshot is null ? [] : snapshot.Spans.Concat(_state.LibrariesOf(snapshot)); // spans, and a restore's fallbacks
        // A copy's sessions are on its source libraries; a client job's on its library, those it may span into and those it read.
        var libraries = job.Kind == JobKind.Copy ? reads.Prepend(job.SourceLibrary) : _state.SpanTargets(job, evenDisabled: true).Concat(reads).Prepend(job.Library);
        foreach (var library in libraries.Distinct())
            _mediaRegion.Tell(Trust.MessageSignature.Sign(new EndJobSessions { Library = library, Job = job.Id, Attempt = job.Attempt, JobEnded = jobEnded }, _trust));
    }

    private static readonly JobState[] States = Enum.GetValues<JobState>().Where(s => s != JobState.Unspecified).ToArray();

    /// <summary>The jobs-by-state and queue gauges, from the state (each second, with the schedule tick).</summary>
    private void UpdateMetrics()
    {
        var counts = new int[States.Max(s => (int)s) + 1];
        foreach (var j in _state.Jobs.Values) counts[(int)j.State]++;
        foreach (var s in States) Metrics.CellMetrics.Jobs.WithLabels(s.ToString().ToLowerInvariant()).Set(counts[(int)s]);
        Metrics.CellMetrics.QueueLength.Set(counts[(int)JobState.Queued]);
    }

    private static readonly JobKind[] Kinds = Enum.GetValues<JobKind>().Where(k => k != JobKind.Unspecified).ToArray();

    private static string Label(JobKind kind) => kind.ToString().ToLowerInvariant();

    private void CountEnd(JobInfo job)
    {
        Metrics.CellMetrics.JobsEnded.WithLabels(Label(job.Kind), job.State.ToString().ToLowerInvariant()).Inc();
        if (job.Errors > 0) Metrics.CellMetrics.JobErrors.WithLabels(Label(job.Kind), job.Client).Inc(job.Errors);
        if (job.Verify is { BadChunks: > 0 } found) Metrics.CellMetrics.VerifyDamage.WithLabels(job.Library).Inc(found.BadChunks);
        // By id: the catalog is in the order of the snapshots' ends as their clients stamped them, so a backup recorded
        // last need not be the last one there (two ending together, a client's clock a little behind).
        if (job.Kind != JobKind.Backup || job.Snapshot == "" || _state.Snapshots.LastOrDefault(s => s.Id == job.Snapshot) is not { } snapshot) return;
        Metrics.CellMetrics.BytesRead.WithLabels(job.Client).Inc(snapshot.Stats?.BytesRead ?? 0);
        Metrics.CellMetrics.BytesStored.WithLabels(job.Client, job.Library).Inc(snapshot.Stats?.BytesStored ?? 0);
    }

    /// <summary>
    /// Every series an alert may ask for an increase of, at 0 from the manager's start: a labelled counter appears only at
    /// its first increase, which increase() over a window cannot see (the first failed backup after a fail-over).
    /// </summary>
    private void PrecreateSeries()
    {
        foreach (var kind in Kinds)
        foreach (var state in States.Where(ManagerState.IsFinal))
            Metrics.CellMetrics.JobsEnded.WithLabels(Label(kind), state.ToString().ToLowerInvariant());
    }

    /// <summary>The sets and libraries whose series this manager exports: one removed loses its series.</summary>
    private readonly HashSet<string> _setSeries = new(StringComparer.Ordinal), _librarySeries = new(StringComparer.Ordinal);

    /// <summary>Each set's newest snapshot, each library's disabled flag, every client's and set's counters at 0 (every 10 s: one pass over the catalog).</summary>
    private void UpdateSetMetrics()
    {
        var newest = new Dictionary<(string Client, string Set), long>();
        foreach (var s in _state.Snapshots)
            if (!newest.TryGetValue((s.Client, s.BackupSet), out var at) || s.FinishedUnixMs > at) newest[(s.Client, s.BackupSet)] = s.FinishedUnixMs;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var openSince = new Dictionary<(string Client, string Set), long>();
        foreach (var j in _state.Jobs.Values)
            if (j.Kind == JobKind.Backup && !ManagerState.IsFinal(j.State) && (!openSince.TryGetValue((j.Client, j.BackupSet), out var since) || j.QueuedUnixMs < since))
                openSince[(j.Client, j.BackupSet)] = j.QueuedUnixMs;
        foreach (var set in _state.BackupSets.Values)
        {
            Metrics.CellMetrics.SetLastSnapshot.WithLabels(set.Name).Set(newest.GetValueOrDefault((set.Client, set.Name)) / 1000.0);
            Metrics.CellMetrics.SetBackupOpen.WithLabels(set.Name).Set(openSince.TryGetValue((set.Client, set.Name), out var queued) ? Math.Max(0, now - queued) / 1000.0 : 0);
            Metrics.CellMetrics.SetSuspect.WithLabels(set.Name).Set(_state.Suspects.Values.Count(x => x.Client == set.Client && x.BackupSet == set.Name));
            if (_setSeries.Add(set.Name)) Metrics.CellMetrics.SlotsMissed.WithLabels(set.Name); // at 0 from its definition
        }
        foreach (var gone in _setSeries.Where(s => !_state.BackupSets.ContainsKey(s)).ToList())
        {
            _setSeries.Remove(gone);
            Metrics.CellMetrics.SetLastSnapshot.RemoveLabelled(gone);
            Metrics.CellMetrics.SetBackupOpen.RemoveLabelled(gone);
            Metrics.CellMetrics.SetSuspect.RemoveLabelled(gone);
            Metrics.CellMetrics.SlotsMissed.RemoveLabelled(gone);
        }
        foreach (var client in _state.Clients.Keys) // a client registered since: at 0 from then on
        foreach (var kind in (JobKind[])[JobKind.Backup, JobKind.Restore])
            Metrics.CellMetrics.JobErrors.WithLabels(Label(kind), client);
        foreach (var library in _state.Libraries.Keys)
        {
            Metrics.CellMetrics.LibraryDisabled.WithLabels(library).Set(_state.DisabledLibraries.ContainsKey(library) ? 1 : 0);
            Metrics.CellMetrics.VerifyDamage.WithLabels(library); // at 0 from the start
            _librarySeries.Add(library);
        }
        foreach (var gone in _librarySeries.Where(l => !_state.Libraries.ContainsKey(l)).ToList())
        {
            _librarySeries.Remove(gone);
            Metrics.CellMetrics.LibraryDisabled.RemoveLabelled(gone);
            Metrics.CellMetrics.VerifyDamage.RemoveLabelled(gone);
        }
    }

    /// <summary>
    /// A scheduled slot that could not queue its backup: the set's on-failure command runs as for a failed backup, with
    /// ABK_STATE=MISSED, no job (ABK_JOB empty) and the reason in the JSON on its stdin.
    /// </summary>
    private void RunMissedCommand(BackupSetDefinition set, SlotMissed missed)
    {
        if (set.OnFailure == "") return;
        var job = new JobInfo
        {
            Kind = JobKind.Backup, BackupSet = set.Name, Client = set.Client, State = JobState.Missed, Reason = missed.Reason,
            SlotUnixMs = missed.SlotUnixMs, Level = missed.Level, Origin = JobOrigin.Schedule,
        };
        RunHook(job, set, "on-failure", set.OnFailure);
    }

    /// <summary>
    /// The set's on-success or on-failure command, on this node, off the actor's thread; its outcome is logged. For the
    /// set's backups only: a verify or restore of one of its snapshots carries the set's name too, and is no backup.
    /// </summary>
    private void RunSetCommand(JobInfo job)
    {
        if (job.Kind != JobKind.Backup || !_state.BackupSets.TryGetValue(job.BackupSet, out var set) || set.Client != job.Client) return;
        var (what, command) = job.State == JobState.Succeeded ? ("on-success", set.OnSuccess) : ("on-failure", set.OnFailure);
        if (command != "") RunHook(WithProgress(job), set, what, command);
    }

    private void RunHook(JobInfo job, BackupSetDefinition set, string what, string command)
    {
        var log = _log;
        var timeout = Hooks.HookCommand.Timeout(set.CommandTimeoutSeconds);
        _ = Task.Run(async () =>
        {
            var r = await Hooks.HookCommand.ForJob(job, command, job.State.ToString().ToUpperInvariant(), timeout);
            var about = job.Id == "" ? $"the missed slot at {DateTimeOffset.FromUnixTimeMilliseconds(job.SlotUnixMs):u}" : $"job {job.Id}";
            if (r.Ok) log.Info("{0}: the {1} command of set {2} ran", about, what, set.Name);
            else log.Warning("{0}: {1}", about, r.Describe($"the {what} command of set {set.Name}", timeout));
        });
    }

    /// <summary>The job as an operator sees it: with its live progress, or, while it waits, why.</summary>
    private JobInfo WithProgress(JobInfo job)
    {
        var waiting = job.State == JobState.Queued && _waiting.TryGetValue(job.Id, out var why) ? why : null;
        // A backup whose snapshot is suspect says so wherever its job is shown (abk exits 3, a hook gets ABK_OUTCOME=suspect).
        var suspect = job.Kind == JobKind.Backup && job.Snapshot != "" && _state.Suspects.TryGetValue(job.Snapshot, out var s) ? s.Reason : null;
        if (!_progress.TryGetValue(job.Id, out var p) && waiting is null && suspect is null) return job;
        var copy = job.Clone();
        if (suspect is not null) copy.Suspect = suspect;
        if (p is not null) copy.Progress = p;
        // A retry waiting for a library still says why its last attempt failed.
        if (waiting is not null) copy.Reason = "waiting: " + waiting + (job.Attempt > 0 && !waiting.Contains(job.Reason) ? "; " + job.Reason : "");
        return copy;
    }

    /// <summary>The child of a job that has not ended.</summary>
    private void Supervise(JobInfo job)
    {
        if (!_jobActors.ContainsKey(job.Id))
            _jobActors[job.Id] = Context.ActorOf(JobActor.Props(job.Id, job.Client, _limits.Probe, _limits.Stall), JobActor.NameOf(job.Id));
    }

    protected override void PostStop()
    {
        Metrics.CellMetrics.ManagerActive.Set(0);
        // The manager's series go with it: a node that stays up without it would serve them frozen (an alert on a set's
        // snapshot age firing from this node's last values).
        foreach (var set in _setSeries)
        {
            Metrics.CellMetrics.SetLastSnapshot.RemoveLabelled(set);
            Metrics.CellMetrics.SetBackupOpen.RemoveLabelled(set);
            Metrics.CellMetrics.SlotsMissed.RemoveLabelled(set);
        }
        foreach (var library in _librarySeries) Metrics.CellMetrics.LibraryDisabled.RemoveLabelled(library);
        base.PostStop();
    }

    private void Applied(IMessage e)
    {
        _state = _state.Apply(e);
        switch (e)
        {
            case JobQueued q:
                Supervise(q.Job);
                break;
            case JobRetried r when _jobActors.TryGetValue(r.Job, out var child):
                child.Tell(new JobActor.Requeued(_state.Job(r.Job)!.Attempt - 1));
                break;
            // Every end, whichever path decided it (a client's report, a window missed, a set removed, a node gone).
            case JobEnded ended when _state.Job(ended.Job) is { } job:
                _notices?.Tell(new Akka.Cluster.Tools.PublishSubscribe.Publish(JobEndedTopic, Trust.MessageSignature.Sign(new JobEndedNotice { Job = WithProgress(job) }, _trust)));
                CountEnd(job);
                RunSetCommand(job);
                break;
            // A set defined or removed, a client registered: their series at once, not at the next 10 s look.
            case ClientRemoved removed: // its series go with it (a cell that decommissions hosts for years would serve them all for ever)
                Metrics.CellMetrics.ForgetClient(removed.Id);
                UpdateSetMetrics();
                break;
            case BackupSetDefined or BackupSetRemoved or ClientRegistered or DefinitionsApplied:
                UpdateSetMetrics();
                break;
            case SlotMissed { Reason.Length: > 0 } missed when _state.BackupSets.TryGetValue(missed.Set, out var set):
                Metrics.CellMetrics.SlotsMissed.WithLabels(set.Name).Inc();
                RunMissedCommand(set, missed);
                break;
        }
        if (_snapshotTurns.Journaled()) SaveState();
    }

    /// <summary>A snapshot of the state, with how far the journal was trimmed (SnapshotTurns says when).</summary>
    private void SaveState()
    {
        var snapshot = _state.ToSnapshot();
        snapshot.TrimmedUpTo = _trim.TrimmedUpTo;
        SaveSnapshot(snapshot);
    }
}
