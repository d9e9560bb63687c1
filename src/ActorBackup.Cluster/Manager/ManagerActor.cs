using ActorBackup.Engine.Trees;
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
/// decisions themselves are in <see cref="ManagerState"/>. Live progress is not persisted.
/// </summary>
public sealed class ManagerActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;
    public const int SnapshotEvery = 200;
    private readonly IActorRef _mediaRegion;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ManagerState _state = new();
    private readonly Dictionary<string, IActorRef> _clientRefs = [];
    private readonly Dictionary<string, IndexReport> _libraryReports = [];
    private readonly Dictionary<string, JobProgress> _progress = [];
    private readonly Dictionary<string, HashSet<IActorRef>> _watchers = [];
    private int _eventsSinceSnapshot;
    /// <summary>Clients with jobs that were open when this manager recovered and that have not registered since.</summary>
    private HashSet<string>? _unsettledClients;
    /// <summary>Open jobs that a client, registering since the recovery, said it still runs.</summary>
    private readonly HashSet<string> _claimed = [];
    private static readonly TimeSpan SettleAfter = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ScheduleEvery = TimeSpan.FromSeconds(1);

    public override string PersistenceId => "manager";

    /// <summary>Queued jobs being started: their JobStarted is being persisted, so they count as running.</summary>
    private readonly HashSet<string> _starting = [];
    /// <summary>Why each queued job waits, as the last dispatch found.</summary>
    private IReadOnlyDictionary<string, string> _waiting = new Dictionary<string, string>();
    private readonly QueueLimits _limits;

    public static Props Props(IActorRef mediaRegion, QueueLimits? limits = null) =>
        Akka.Actor.Props.Create(() => new ManagerActor(mediaRegion, limits ?? new QueueLimits()));

    public ManagerActor(IActorRef mediaRegion, QueueLimits limits)
    {
        _mediaRegion = mediaRegion;
        _limits = limits;
        Recover<SnapshotOffer>(o => { if (o.Snapshot is ManagerSnapshot s) _state = _state.Apply(s); });
        Recover<IMessage>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            Timers.StartPeriodicTimer("schedule", ScheduleTick.Instance, ScheduleEvery);
            // Every known client registers again now (after a fail-over their actors are still where they
            // were), saying which jobs it still runs. Open jobs that no client claims end INTERRUPTED once
            // every client with open jobs has answered, or after SettleAfter.
            foreach (var client in _state.Clients.Values.Where(c => c.Address != ""))
                Context.ActorSelection(client.Address).Tell(new RegistrationRequest());
            var open = _state.Jobs.Values.Where(j => !ManagerState.IsFinal(j.State)).ToList();
            if (open.Count == 0) return;
            _unsettledClients = open.Select(j => j.Client).ToHashSet();
            Timers.StartSingleTimer("settle", new SettleTimeout(), SettleAfter);
        });

        Command<RegisterClient>(m =>
        {
            _clientRefs[m.Id] = Sender;
            Context.Watch(Sender);
            if (!_state.Clients.TryGetValue(m.Id, out var known) || known.Address != m.Address)
                Persist(new ClientRegistered { Id = m.Id, Address = m.Address, UnixMs = Now() }, Applied);
            Sender.Tell(new Registered { Id = m.Id });
            if (_unsettledClients is null) return;
            _claimed.UnionWith(m.RunningJobs);
            if (_unsettledClients.Remove(m.Id) && _unsettledClients.Count == 0) SettleRecoveredJobs();
        });
        Command<SettleTimeout>(_ => SettleRecoveredJobs());
        Command<RegisterLibrary>(m =>
        {
            if (!_state.Libraries.TryGetValue(m.Id, out var known) || known.Node != m.Node || known.Streams != m.Streams)
                Persist(new LibraryRegistered { Id = m.Id, Node = m.Node, Kind = m.Kind, UnixMs = Now(), Streams = m.Streams }, e =>
                {
                    Applied(e);
                    DispatchWaiting();
                });
            Sender.Tell(new Registered { Id = m.Id });
        });
        Command<IndexReport>(r => _libraryReports[r.Library] = r);
        Command<Terminated>(t =>
        {
            foreach (var (id, _) in _clientRefs.Where(kv => kv.Value.Equals(t.ActorRef)).ToList())
            {
                _clientRefs.Remove(id);
                var lost = _state.Jobs.Values.Where(j => j.Client == id && !ManagerState.IsFinal(j.State) && j.State != JobState.Queued).ToList();
                foreach (var job in lost)
                    End(job.Id, JobState.Failed, $"client {id} vanished while the job ran (node down or stopped); run it again");
            }
        });

        Command<StartBackup>(m =>
        {
            Reply(_state.DecideStartBackup(m, Loads(), DateTimeOffset.UtcNow));
        });
        Command<StartRestore>(m =>
        {
            Reply(_state.DecideStartRestore(m, DateTimeOffset.UtcNow));
        });
        Command<ScheduleTick>(_ =>
        {
            DispatchWaiting(); // clients and libraries come and go: what waited may start now
            foreach (var decision in _state.DecideDueSlots(DateTimeOffset.UtcNow, Loads()))
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
        Command<SetJobPriority>(m => PersistDecision(_state.DecideSetPriority(m), (sender, _) =>
        {
            DispatchWaiting();
            sender.Tell(WithProgress(_state.Job(m.Job)!));
        }));
        Command<DefineBackupSet>(m => PersistSet(_state.DecideDefineSet(m, DateTimeOffset.UtcNow)));
        Command<EnableBackupSet>(m => PersistSet(_state.DecideEnableSet(m, DateTimeOffset.UtcNow)));
        Command<RemoveBackupSet>(m => PersistSet(_state.DecideRemoveSet(m, DateTimeOffset.UtcNow)));
        Command<GetBackupSet>(m =>
            Sender.Tell(_state.BackupSets.TryGetValue(m.Name, out var set) ? _state.SetInfo(set, DateTimeOffset.UtcNow) : new CommandRejected { Reason = _state.UnknownSet(m.Name) }));
        Command<ListBackupSets>(_ =>
        {
            var list = new BackupSetList();
            list.Sets.AddRange(_state.BackupSets.Values.Select(s => _state.SetInfo(s, DateTimeOffset.UtcNow)));
            Sender.Tell(list);
        });
        Command<RunBackupSet>(m =>
        {
            Reply(_state.DecideRunSet(m, Loads(), DateTimeOffset.UtcNow));
        });
        Command<JobProgress>(p =>
        {
            _progress[p.Job] = p;
            if (_watchers.TryGetValue(p.Job, out var ws)) foreach (var w in ws) w.Tell(p);
        });
        Command<JobFinished>(f =>
        {
            // The client hears back (the job as recorded) once the end is persisted: a client that shuts down
            // waits for that before its node goes.
            var client = Sender;
            var job = _state.Job(f.Job);
            if (job is null || ManagerState.IsFinal(job.State))
            {
                client.Tell(job is null ? new JobInfo { Id = f.Job } : WithProgress(job));
                return;
            }
            var outcome = f.Outcome != JobState.Unspecified ? f.Outcome : f.Ok ? JobState.Succeeded : f.Interrupted ? JobState.Interrupted : JobState.Failed;
            if (outcome != JobState.Succeeded)
            {
                End(f.Job, outcome, f.Reason, errors: f.Errors, replyTo: client);
                return;
            }
            if (job.Kind == JobKind.Backup)
            {
                var manifest = SnapshotManifest.Parser.ParseFrom(f.Manifest);
                Persist(new SnapshotRecorded { Manifest = f.Manifest }, e =>
                {
                    Applied(e);
                    End(f.Job, JobState.Succeeded, "", manifest.Id, manifest.Errors.Count, client);
                });
            }
            else End(f.Job, JobState.Succeeded, "", errors: f.Errors, replyTo: client);
        });
        Command<CancelJob>(m =>
        {
            var job = _state.Job(m.Job);
            if (job is null) Sender.Tell(new CommandRejected { Reason = $"no job {m.Job}: list them with 'abk job list'" });
            else if (ManagerState.IsFinal(job.State)) Sender.Tell(new CommandRejected { Reason = $"job {m.Job} already ended ({job.State.ToString().ToLowerInvariant()})" });
            else
            {
                if (_clientRefs.TryGetValue(job.Client, out var client)) client.Tell(new CancelAssignment { Job = m.Job });
                else End(m.Job, JobState.Cancelled, "cancelled by an operator");
                Sender.Tell(WithProgress(job));
            }
        });
        Command<WatchJob>(m =>
        {
            var job = _state.Job(m.Job);
            if (job is null)
            {
                Sender.Tell(new CommandRejected { Reason = $"no job {m.Job}: list them with 'abk job list'" });
                return;
            }
            if (ManagerState.IsFinal(job.State))
            {
                Sender.Tell(WithProgress(job));
                return;
            }
            if (!_watchers.TryGetValue(m.Job, out var set)) _watchers[m.Job] = set = [];
            set.Add(Sender);
            if (_progress.TryGetValue(m.Job, out var p)) Sender.Tell(p);
        });
        Command<GetJob>(m =>
        {
            var job = _state.Job(m.Job);
            Sender.Tell(job is null ? new CommandRejected { Reason = $"no job {m.Job}: list them with 'abk job list'" } : WithProgress(job));
        });
        Command<ListJobs>(m =>
        {
            var list = new JobList();
            list.Jobs.AddRange(_state.Jobs.Values.Reverse().Take(m.Limit > 0 ? m.Limit : 50).Reverse().Select(WithProgress));
            Sender.Tell(list);
        });
        Command<ListSnapshots>(m =>
        {
            var list = new SnapshotList();
            list.Snapshots.AddRange(_state.Snapshots.Where(s => m.Client == "" || s.Client == m.Client).Select(ManagerState.Info));
            Sender.Tell(list);
        });
        Command<GetSnapshot>(m =>
        {
            try
            {
                var s = _state.FindSnapshot(m.Snapshot);
                Sender.Tell(new SnapshotDetail { Info = ManagerState.Info(s), Manifest = s.ToByteString() });
            }
            catch (KeyNotFoundException e)
            {
                Sender.Tell(new CommandRejected { Reason = e.Message });
            }
        });
        Command<ListClients>(_ =>
        {
            var list = new ClientList();
            list.Clients.AddRange(_state.Clients.Values.Select(c => new ClientInfo { Id = c.Id, Address = c.Address, Reachable = _clientRefs.ContainsKey(c.Id), RegisteredUnixMs = c.UnixMs }));
            Sender.Tell(list);
        });
        Command<ListLibraries>(_ =>
        {
            var list = new LibraryList();
            foreach (var l in _state.Libraries.Values)
            {
                _libraryReports.TryGetValue(l.Id, out var r);
                list.Libraries.Add(new LibraryInfo
                {
                    Id = l.Id, Node = l.Node, Kind = l.Kind, Reachable = IsReachable(l.Node), ActiveSessions = _state.ActiveJobsOn(l.Id),
                    BytesStored = r?.BytesStored ?? 0, Chunks = r?.Chunks ?? 0, FreeBytes = r?.FreeBytes ?? 0, Volumes = r?.Volumes ?? 0,
                });
            }
            Sender.Tell(list);
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("manager snapshot failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private List<ManagerState.LibraryLoad> Loads() =>
        _state.Libraries.Values.Select(l => new ManagerState.LibraryLoad(l.Id, IsReachable(l.Node), _state.ActiveJobsOn(l.Id),
            _libraryReports.TryGetValue(l.Id, out var r) ? r.FreeBytes : 0, _state.RecentJobsOn(l.Id, DateTimeOffset.UtcNow))).ToList();

    private bool IsReachable(string node)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.ToString() == node);
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
            Sender.Tell(new CommandRejected { Reason = decision.Rejection });
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
        PersistDecision(decision, (sender, e) => sender.Tell(e is BackupSetDefined d ? _state.SetInfo(_state.BackupSets[d.Set.Name], DateTimeOffset.UtcNow) : e));

    /// <summary>Persists a new job (QUEUED), answers with its id, and starts what the queue allows.</summary>
    private void Reply(ManagerState.Decision decision) =>
        PersistDecision(decision, (sender, _) =>
        {
            sender.Tell(new JobAccepted { Job = decision.Job!.Id });
            DispatchWaiting();
        });

    /// <summary>Starts the queued jobs that the limits allow now (ManagerState.DecideDispatch), and notes why the others wait.</summary>
    private void DispatchWaiting()
    {
        var plan = _state.DecideDispatch(_limits, _starting, _clientRefs.Keys.ToHashSet(), DateTimeOffset.UtcNow);
        _waiting = plan.Waiting;
        foreach (var m in plan.Missed)
        {
            _starting.Add(m.Job); // being ended: not decided on again before its JobEnded is applied
            End(m.Job, m.State, m.Reason);
        }
        foreach (var job in plan.Start)
        {
            _starting.Add(job.Id);
            if (job.Kind == JobKind.Restore) Dispatch(job, new RestoreAssignment { Job = job, Manifest = _state.FindSnapshot(job.Snapshot).ToByteString() });
            else DispatchBackup(job);
        }
    }

    private void DispatchBackup(JobInfo job)
    {
        var parent = _state.ParentFor(job.Client, job.BackupSet, job.Level);
        Dispatch(job, new BackupAssignment { Job = job, ParentManifest = parent?.ToByteString() ?? ByteString.Empty });
    }

    private void Dispatch(JobInfo job, IMessage assignment)
    {
        if (!_clientRefs.TryGetValue(job.Client, out var client))
        {
            _starting.Remove(job.Id);
            End(job.Id, JobState.Failed, $"client {job.Client} is not connected: start its node, then run the job again");
            return;
        }
        Persist(new JobStarted { Job = job.Id, Library = job.Library, UnixMs = Now() }, e =>
        {
            Applied(e);
            _starting.Remove(job.Id);
            client.Tell(assignment);
        });
    }

    private sealed record SettleTimeout;

    /// <summary>Look for due schedule slots (rules may have seconds).</summary>
    private sealed record ScheduleTick
    {
        public static readonly ScheduleTick Instance = new();
    }

    private void SettleRecoveredJobs()
    {
        if (_unsettledClients is null) return;
        if (_unsettledClients.Count > 0) _log.Warning("clients {0} did not answer since the manager started: their open jobs end interrupted", string.Join(", ", _unsettledClients));
        _unsettledClients = null;
        foreach (var e in _state.InterruptedJobs(DateTimeOffset.UtcNow, _claimed).ToList()) End(e.Job, e.State, e.Reason);
        _claimed.Clear();
    }

    private void End(string jobId, JobState state, string reason, string snapshot = "", int errors = 0, IActorRef? replyTo = null)
    {
        Persist(new JobEnded { Job = jobId, State = state, Reason = reason, UnixMs = Now(), Snapshot = snapshot, Errors = errors }, e =>
        {
            Applied(e);
            var job = WithProgress(_state.Job(jobId)!);
            if (state == JobState.Succeeded) _log.Info("job {0} ({1} of {2}) succeeded", jobId, job.Kind, job.Client);
            else _log.Warning("job {0} ({1} of {2}) ended {3}: {4}", jobId, job.Kind, job.Client, state, reason);
            if (_watchers.Remove(jobId, out var ws)) foreach (var w in ws) w.Tell(job);
            replyTo?.Tell(job);
            _progress.Remove(jobId);
            _starting.Remove(jobId);
            DispatchWaiting(); // a stream, a client slot or a cell slot is free again
        });
    }

    /// <summary>The job as an operator sees it: with its live progress, or, while it waits, why.</summary>
    private JobInfo WithProgress(JobInfo job)
    {
        var waiting = job.State == JobState.Queued && _waiting.TryGetValue(job.Id, out var why) ? why : null;
        if (!_progress.TryGetValue(job.Id, out var p) && waiting is null) return job;
        var copy = job.Clone();
        if (p is not null) copy.Progress = p;
        if (waiting is not null) copy.Reason = "waiting: " + waiting;
        return copy;
    }

    private void Applied(IMessage e)
    {
        _state = _state.Apply(e);
        if (++_eventsSinceSnapshot < SnapshotEvery) return;
        _eventsSinceSnapshot = 0;
        SaveSnapshot(_state.ToSnapshot());
    }
}
