using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Crypto;
using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Hooks;
using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Find;
using ActorBackup.Protocol;
using Akka;
using Akka.Actor;
using Akka.Event;
using Google.Protobuf;

namespace ActorBackup.Cluster.Client;

/// <summary>
/// The client of this host (/user/client): registers with the manager, and runs the backups and restores
/// the manager assigns, through the engine, on threads of their own. Chunks go to the media agent the
/// manager picked over the data plane; progress goes to the manager.
/// </summary>
public sealed partial class ClientActor : ReceiveActor, IWithTimers
{
    private sealed record Tick;
    /// <summary>
    /// From coordinated shutdown (tests send it too): stop every running job, report it interrupted (CANCELLED if an
    /// operator cancelled it), answer Done when the manager has them.
    /// </summary>
    internal sealed record InterruptAll;
    /// <summary>A job or a backup's background index ended: when this client runs nothing else, the node gives memory back (<see cref="TrimMemory"/>).</summary>
    private sealed record JobsMayBeOver;
    private readonly ClientSettings _settings;
    /// <summary>Why the manager last refused this node's registration; null once registered.</summary>
    private string? _refusal;
    /// <summary>The keys this node holds: the cell key (every client's) or its own client's keyring (Engine/Crypto/KeyRing).</summary>
    private readonly KeyRing _ring;
    private readonly IActorRef _manager;
    private readonly IActorRef _media;
    private readonly DataPlaneSessions _dataPlane = DataPlaneSessions.Get(Context.System);
    private readonly RestoreClaims _restoreClaims;
    /// <summary>For what a job's thread sends (Context is the actor's only).</summary>
    private readonly ActorSystem _system = Context.System;
    /// <summary>This node's certificates (null in a test's ActorSystem without trust): it signs what it sends the manager and checks what the manager sends.</summary>
    private readonly Trust.NodeTrust? _trust;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    /// <summary>The jobs running here, each with the attempt it is (the manager retries a job under the same id).</summary>
    private readonly Dictionary<string, (int Attempt, CancellationTokenSource Cts)> _running = [];
    /// <summary>
    /// The running jobs the manager cancelled (read by their threads), with why (empty: an operator's cancel; else the
    /// manager's own, a stalled attempt): they end CANCELLED even when the node stops meanwhile. Taken for interrupted, a
    /// restore would be queued again and go on over the target the operator stopped.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _cancelledByOperator = new();
    /// <summary>
    /// Each job's end as sent to the manager, signed, until the manager answers that it recorded it (JobInfo): sent again
    /// whenever a manager asks who runs what or registers this client (a manager that failed over before it recorded
    /// the end would otherwise end the job INTERRUPTED, and a committed snapshot would be left out of the catalog).
    /// Until then the job counts as running here.
    /// </summary>
    private readonly Dictionary<string, (JobFinished End, long FirstTick, int Sends)> _unacknowledged = [];
    /// <summary>
    /// An end a manager that answers does not acknowledge (one that refuses it) is let go once it was sent this many times
    /// (it is sent when a manager registers this client or asks who runs what: every 30 s while one is up) and
    /// <see cref="KeepUnacknowledged"/> has passed (a monotonic clock). A manager down for a night does not count: its
    /// ends were not sent, and are when it is back (before, an hour from the end dropped them unsent, the snapshot
    /// left out of the catalog); nor does one that starts again every 30 s on a journal that fails each write (a day).
    /// </summary>
    private const int KeepSends = 120;
    internal static TimeSpan KeepUnacknowledged { get; set; } = TimeSpan.FromHours(24); // a test sets it to nothing
    /// <summary>Per job, a later attempt waiting for the earlier one, cancelled, to end here (never both at once).</summary>
    private readonly Dictionary<string, (JobInfo Job, Func<CancellationToken, JobFinished> Run, bool Cancelled)> _next = [];
    private volatile bool _shuttingDown;
    private IActorRef? _shutdownWaiter;
    private bool _registered;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="trust">the certificate it acts with; default: its node's (a benchmark runs many clients in one node, each with its own)</param>
    public static Props Props(ClientSettings settings, KeyRing ring, IActorRef manager, IActorRef media, Trust.NodeTrust? trust = null) =>
        Akka.Actor.Props.Create(() => new ClientActor(settings, ring, manager, media, trust));

    public ClientActor(ClientSettings settings, KeyRing ring, IActorRef manager, IActorRef media, Trust.NodeTrust? trust = null)
    {
        _trust = trust ?? Trust.NodeTrust.Of(Context.System);
        _settings = settings;
        _ring = ring;
        _manager = manager;
        _media = media;
        _restoreClaims = new RestoreClaims(settings.RestoreClaimsDir != "" ? settings.RestoreClaimsDir
            : Path.Combine(Path.GetTempPath(), $"actorbackup-restores-{Environment.ProcessId}-{settings.ClientId}"));
        _fileIndexes = new Lazy<FileIndexStore>(() => new FileIndexStore(settings.FileIndexDir != "" ? settings.FileIndexDir
            : Path.Combine(Path.GetTempPath(), $"actorbackup-file-index-{Environment.ProcessId}-{settings.ClientId}")));

        Receive<Tick>(_ =>
        {
            // Register until acknowledged, and again now and then: a new manager (after fail-over) learns of us.
            _manager.Tell(Registration());
            Timers.StartSingleTimer("register", new Tick(), _registered ? TimeSpan.FromSeconds(30) : _refusal is not null ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(2));
        });
        Receive<Registered>(_ =>
        {
            _registered = true;
            _refusal = null;
            SendUnacknowledged();
        });
        // The manager refused the registration (another node up in the cell holds this client id): said once, asked again
        // every 5 s (taken once the other is gone).
        Receive<CommandRejected>(r =>
        {
            if (!r.Reason.StartsWith($"client id {_settings.ClientId} is held by ", StringComparison.Ordinal))
            {
                // A job's end it would not take, say; a manager starting again (transient) answers every report so meanwhile.
                if (r.Transient) _log.Debug("client {0}: the manager answered: {1}", _settings.ClientId, r.Reason);
                else _log.Warning("client {0}: the manager refused: {1}", _settings.ClientId, r.Reason);
                return;
            }
            if (r.Reason != _refusal) _log.Error("client {0}: the manager refused this node's registration: {1}", _settings.ClientId, r.Reason);
            _refusal = r.Reason;
            _registered = false; // asked again every 5 s, not 30 (a manager that took it before, after a fail-over)
        });
        Receive<RegistrationRequest>(_ =>
        {
            Sender.Tell(Registration());
            SendUnacknowledged();
        });
        // Assignments and cancels only from a manager node (signed): another node of the cell cannot make this host
        // back up, restore over its files, or stop.
        Receive<BackupAssignment>(a => FromManager(a), a =>
        {
            // The catalog's snapshots of this client as this job's assignment says: its index build sweeps by them.
            if (a.ClientSnapshotsAsOfUnixMs > 0 && a.ClientSnapshots.Count > 0)
            {
                // An assignment that does not run here (one already ended, sent again) leaves its entry: a few at most.
                if (_catalogOwn.Count >= 16)
                    foreach (var gone in _catalogOwn.Keys.Where(k => !_running.ContainsKey(k.Job) && !_next.ContainsKey(k.Job)).ToList()) _catalogOwn.Remove(gone);
                _catalogOwn[(a.Job.Id, a.Job.Attempt)] = (a.ClientSnapshots.ToHashSet(), a.ClientSnapshotsAsOfUnixMs);
            }
            Start(a.Job, token => RunBackup(a, token));
        });
        Receive<RestoreAssignment>(a => FromManager(a), a => Start(a.Job, token => RunRestore(a, token)));
        Receive<VerifyAssignment>(a => FromManager(a), a => Start(a.Job, token => RunVerify(a, token)));
        Receive<CancelAssignment>(c => FromManager(c), c =>
        {
            if (_running.TryGetValue(c.Job, out var run))
            {
                _cancelledByOperator[c.Job] = c.Reason;
                run.Cts.Cancel();
            }
            if (_next.TryGetValue(c.Job, out var next)) _next[c.Job] = next with { Cancelled = true }; // it starts cancelled, and says so
        });
        Receive<IMessage>(m => m is BackupAssignment or RestoreAssignment or VerifyAssignment or CancelAssignment, _ => { }); // refused above
        // A job's end, from its own thread here (a JobFinished from elsewhere is not taken: this actor signs what it
        // forwards, so a peer could otherwise end this client's jobs in its name).
        Receive<Ended>(e =>
        {
            var f = e.Finished;
            // f.Attempt is the attempt that ran (stamped by Start): a later attempt of the job may run here by now.
            var ran = _running.TryGetValue(f.Job, out var run) && run.Attempt == f.Attempt;
            if (ran)
            {
                _running.Remove(f.Job);
                _cancelledByOperator.TryRemove(f.Job, out _); // a later attempt waiting carries its own (_next's Cancelled)
                run.Cts.Dispose();
            }
            var own = _catalogOwn.Remove((f.Job, f.Attempt), out var listed) ? listed : ((HashSet<string>, long)?)null;
            if (f.Ok && !f.Manifest.IsEmpty) IndexInBackground(f.Manifest, own); // a backup's snapshot: ready for abk find (then JobsMayBeOver)
            else Self.Tell(new JobsMayBeOver());
            // Kept until the manager has recorded it (a node that shuts down waits for that too), signed anew at each
            // send. An earlier attempt's late end does not take the place of a later one's.
            if (!_unacknowledged.TryGetValue(f.Job, out var kept) || kept.End.Attempt <= f.Attempt) _unacknowledged[f.Job] = (f, Environment.TickCount64, 1);
            _manager.Tell(Signed(f));
            // A later attempt that waited for this one to stop starts now.
            if (ran && _next.Remove(f.Job, out var next)) Start(next.Job, next.Run, next.Cancelled);
        });
        Receive<JobsMayBeOver>(_ =>
        {
            if (_running.Count == 0) TrimMemory();
        });
        Receive<JobInfo>(j => // the manager has recorded how the job ended
        {
            // Only a manager node's, by its signature: another node of the cell cannot make this client forget an end it
            // keeps (it could claim a manager's address as the sender).
            if (Trust.MessageSignature.NotFromManager(_trust, j) is { } refused)
            {
                _log.Warning("client {0}: a job's record from {1} is not taken: {2}", _settings.ClientId, Sender, refused);
                return;
            }
            // The manager's record: an end it took, or one it no longer wants (the job ended otherwise, or is unknown).
            if (_unacknowledged.TryGetValue(j.Id, out var kept)
                && (j.State == JobState.Unspecified || Manager.ManagerState.IsFinal(j.State) || j.Attempt > kept.End.Attempt))
                _unacknowledged.Remove(j.Id);
            ReplyWhenStopped();
        });
        // Looks into this client's data only for a request its shell signed (OperatorCommands.Looks): another node
        // of the cell cannot read this host's listings, nor rebuild the catalog, in nobody's name.
        Receive<RebuildCatalog>(m =>
        {
            var requester = Sender;
            if (RebuildRefused(m) is { } refused) Reject(requester, refused);
            // Its own thread, as a find's: it waits for the media agent's and the manager's answers and reads the
            // library's manifests, which a thread-pool thread must not (the actors' dispatcher runs on that pool).
            else if (!_rebuilds.TryRun(() => RebuildCatalog(m, requester)))
                Reject(requester, $"client {_settings.ClientId} runs {MaxRebuilds} catalog rebuilds already: try again when one ends");
        });
        Receive<RequestClientKey>(m => GrantKey(m, Sender));
        Receive<ListTree>(m =>
        {
            var requester = Sender;
            if (LookRefused(m.Caller, ListSnapshotTree.Descriptor.Name, out var caller, out var signed) is { } refused) Reject(requester, refused);
            else if (Paced(m, requester, out var paced) is { } busy) Reject(requester, busy);
            // Its own thread: a paced listing waits for its pages to be taken, a thread-pool thread must not.
            else Task.Factory.StartNew(() => ListTree(m, requester, paced, caller, signed as ListSnapshotTree), TaskCreationOptions.LongRunning);
        });
        Receive<TreePagesTaken>(m =>
        {
            // Only from the listing's requester: another node that learnt its id neither speeds nor stops it.
            if (_listings.TryGetValue(m.Listing, out var listing) && listing.Requester.Equals(Sender)) listing.Taken(m);
        });
        Receive<SearchFileIndex>(m =>
        {
            var requester = Sender;
            if (FindRefused(m, out var caller) is { } refused) Reject(requester, refused);
            // Its own thread: it waits for the manager's answers and for its turn at the file index (one find at a
            // time), which a thread-pool thread must not (the actors' dispatcher runs on that pool).
            else if (!_finds.TryRun(() => Find(m, requester, caller)))
                Reject(requester, $"client {_settings.ClientId} runs {MaxFinds} finds already (one at a time, the others wait): try again when one ends");
        });
        Receive<InterruptAll>(_ =>
        {
            _shuttingDown = true;
            _shutdownWaiter = Sender;
            foreach (var run in _running.Values) run.Cts.Cancel();
            ReplyWhenStopped();
        });
    }

    /// <summary>The listings of this actor stop with it (one restarted would no longer hear their requesters).</summary>
    protected override void PostStop()
    {
        foreach (var listing in _listings.Values) listing.Taken(new TreePagesTaken { Done = true });
        base.PostStop();
    }

    protected override void PreStart()
    {
        Self.Tell(new Tick());
        // On SIGTERM or a leave, running jobs end as INTERRUPTED before the node goes (the manager, maybe on
        // this very node, is still there in this phase). Should the manager not answer in time, its next
        // start marks them interrupted instead.
        var self = Self;
        CoordinatedShutdown.Get(Context.System).AddTask(CoordinatedShutdown.PhaseServiceRequestsDone, "interrupt-client-jobs",
            () => self.Ask<Done>(new InterruptAll(), TimeSpan.FromSeconds(20)).ContinueWith(_ => Done.Instance));
    }

    private RegisterClient Registration()
    {
        var m = new RegisterClient { Id = _settings.ClientId, Address = Self.Path.ToStringWithAddress(Akka.Cluster.Cluster.Get(Context.System).SelfAddress) };
        m.RunningJobs.AddRange(_running.Keys.Union(_unacknowledged.Keys).Union(_next.Keys));
        return Trust.MessageSignature.Sign(m, _trust);
    }

    /// <summary>Why a look into this client's data is refused (no shell signed it, or not lately); null when it may go on, and in a test's ActorSystem without trust.</summary>
    private string? LookRefused(CallerSigned? proof, string type, out Protocol.Trust.CellIdentity? caller, out IMessage? signed)
    {
        caller = null;
        signed = null;
        if (_trust is null) return null;
        caller = Trust.LookSignatures.Caller(_trust, proof, type, DateTimeOffset.UtcNow, out signed, out var refusal);
        return caller is null ? refusal : null;
    }

    private string? RebuildRefused(RebuildCatalog m)
    {
        if (LookRefused(m.Caller, Protocol.RebuildCatalog.Descriptor.Name, out var caller, out var signed) is { } refused) return refused;
        if (caller is null) return null;
        if (caller.Role != Protocol.Trust.CellRole.Operator) return $"{caller} may not rebuild the catalog: that takes an operator certificate";
        return signed is RebuildCatalog rc && rc.Library != m.Library ? $"the rebuild was signed for library {rc.Library}, not {m.Library}" : null;
    }

    private string? FindRefused(SearchFileIndex m, out Protocol.Trust.CellIdentity? caller)
    {
        if (LookRefused(m.Caller, FindFiles.Descriptor.Name, out caller, out var signed) is { } refused) return refused;
        return caller is null ? null : Trust.LookSignatures.FindRefusal(caller, (FindFiles)signed!, m);
    }

    private void Reject(IActorRef requester, string reason)
    {
        _log.Warning("client {0}: {1} (from {2})", _settings.ClientId, reason, Sender);
        requester.Tell(new CommandRejected { Reason = reason });
    }

    /// <summary>Whether <paramref name="m"/> is signed by a manager node; if not, it is logged and dropped.</summary>
    private bool FromManager(IMessage m)
    {
        if (Trust.MessageSignature.NotFromManager(_trust, m) is not { } refused) return true;
        _log.Warning("client {0}: {1} (from {2})", _settings.ClientId, refused, Sender);
        return false;
    }

    /// <summary>
    /// A look into libraries that is no job (ls, find, a catalog rebuild): a read ticket from the manager, asked for
    /// with this node's signature (the manager gives it only to the client named in its certificate). Off the actor's thread.
    /// </summary>
    private JobTicket LookTicket(string purpose, IEnumerable<string> libraries)
    {
        if (_trust is null) return new JobTicket { Job = purpose }; // a test's ActorSystem without trust: no media agent checks
        var request = Trust.MessageSignature.Sign(new RequestTicket { Client = _settings.ClientId, Read = { libraries.Distinct() }, Purpose = purpose }, _trust);
        return _manager.Ask<object>(request, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult() switch
        {
            JobTicket t => t,
            CommandRejected r => throw new IOException($"the manager gave no ticket to read {string.Join(", ", request.Read)}: {r.Reason}"),
            var other => throw new IOException($"the manager answered a ticket request with {other.GetType().Name}"),
        };
    }

    private static int _trimming;
    /// <summary>Collections made by TrimMemory in this process (tests wait for one).</summary>
    internal static int MemoryTrims;

    /// <summary>The heap below which a trim compacts it whole and gives memory back (a pause of tens of milliseconds).</summary>
    public const long AggressiveTrimBelow = 1L << 30;

    /// <summary>
    /// Gives the memory a job's garbage made the node hold back to the system, once this client runs no job: one
    /// aggressive, compacting collection of every generation on a pool thread (a pause of tens of milliseconds while
    /// nothing of this client runs), while the heap is under <see cref="AggressiveTrimBelow"/>. The GC otherwise keeps the heap a backup or a restore grew to, and the next job
    /// starts from there: the node's peak memory is what it holds between jobs plus what the job adds.
    /// </summary>
    private void TrimMemory()
    {
        if (Interlocked.Exchange(ref _trimming, 1) == 1) return;
        var log = _log;
        Task.Run(() =>
        {
            try
            {
                var pause = GC.GetTotalPauseDuration();
                var held = Environment.WorkingSet;
                // Aggressive (compacting, giving memory back) only while the heap is small: on a node whose heap also holds
                // a large media agent index (GBs), a blocking compaction of it could pause the node past the cluster's
                // heartbeats; there the GC decides (Optimized).
                var heap = GC.GetGCMemoryInfo().HeapSizeBytes;
                if (heap < AggressiveTrimBelow) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                else GC.Collect(GC.MaxGeneration, GCCollectionMode.Optimized, blocking: false);
                Interlocked.Increment(ref MemoryTrims);
                log.Debug("memory given back: {0} MiB held before, {1} MiB after; the collection paused the node {2:F0} ms",
                    held >> 20, Environment.WorkingSet >> 20, (GC.GetTotalPauseDuration() - pause).TotalMilliseconds);
            }
            finally
            {
                Volatile.Write(ref _trimming, 0);
            }
        });
    }

    /// <summary>
    /// Each end the manager has not yet said it recorded, sent again (taking it twice is harmless: it answers with the job
    /// as recorded); one a manager that answers has not taken in <see cref="KeepSends"/> sends and <see cref="KeepUnacknowledged"/> is let go.
    /// </summary>
    private void SendUnacknowledged()
    {
        foreach (var (job, (end, first, sends)) in _unacknowledged.ToList())
            if (sends >= KeepSends && Environment.TickCount64 - first > (long)KeepUnacknowledged.TotalMilliseconds)
            {
                _log.Error("client {0}: the end of job {1} was sent {2} times over {3} to a manager that answers, which did not record it: no longer sent " +
                           "(a backup's snapshot it made stays on its library: 'abk catalog rebuild LIBRARY' puts it in the catalog)", _settings.ClientId, job, sends, KeepUnacknowledged);
                _unacknowledged.Remove(job);
            }
            else
            {
                _unacknowledged[job] = (end, first, sends + 1);
                _manager.Tell(Signed(end));
            }
        ReplyWhenStopped();
    }

    /// <summary>A job's end as sent: a signed copy (what is kept stays unsigned, signed anew at each send).</summary>
    private JobFinished Signed(JobFinished end) => Trust.JobSignature.Sign(end.Clone(), _trust);

    private void ReplyWhenStopped()
    {
        if (_shutdownWaiter is null || _running.Count > 0 || _unacknowledged.Count > 0 || _next.Count > 0) return;
        _shutdownWaiter.Tell(Done.Instance);
        _shutdownWaiter = null;
    }

    /// <summary>A job's end as its thread made it (local only: not a wire message).</summary>
    private sealed record Ended(JobFinished Finished);

    private void Start(JobInfo job, Func<CancellationToken, JobFinished> run, bool cancelled = false)
    {
        if (_unacknowledged.TryGetValue(job.Id, out var ended) && ended.End.Attempt >= job.Attempt)
        {
            // This attempt ran here and ended; the manager has not recorded its end yet: the end again, not the job.
            _manager.Tell(Signed(ended.End));
            return;
        }
        if (_running.TryGetValue(job.Id, out var earlier))
        {
            // The same attempt assigned again (a message repeated): it runs once. A later attempt (the manager lost
            // sight of this client and retried the job): the earlier one stops, its end is stamped with its own
            // attempt, which the manager takes as late, not as the later attempt's.
            if (earlier.Attempt >= job.Attempt)
            {
                _log.Warning("job {0}: attempt {1} assigned while attempt {2} runs here: not started again", job.Id, job.Attempt, earlier.Attempt);
                return;
            }
            // It starts once the earlier one has ended here (its post-command run, its writes done): never both at once.
            _log.Warning("job {0}: attempt {1} assigned while attempt {2} still runs here: that one is cancelled, this one starts when it has ended", job.Id, job.Attempt, earlier.Attempt);
            earlier.Cts.Cancel();
            _next[job.Id] = (job, run, cancelled);
            return;
        }
        var cts = new CancellationTokenSource();
        if (_shuttingDown || cancelled) cts.Cancel(); // assigned while this node shuts down, or cancelled while it waited: it ends at once
        _running[job.Id] = (job.Attempt, cts);
        var self = Self;
        var log = _log;
        // Not started with cts.Token: a task cancelled before it ran would end without a JobFinished.
        Task.Factory.StartNew(() =>
        {
            var finished = Run();
            finished.Attempt = job.Attempt;
            return new Ended(finished);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).PipeTo(self);

        JobFinished Run()
        {
            try
            {
                return run(cts.Token);
            }
            catch (OperationCanceledException) when (_shuttingDown && !cancelled && !_cancelledByOperator.ContainsKey(job.Id))
            {
                return new JobFinished
                {
                    Job = job.Id, Ok = false, Interrupted = true, Outcome = JobState.Interrupted,
                    Reason = $"client {_settings.ClientId} shut down while the job ran; nothing of it was recorded as a snapshot; run it again",
                };
            }
            catch (OperationCanceledException)
            {
                var why = _cancelledByOperator.TryGetValue(job.Id, out var reason) && reason != "" ? reason : "cancelled by an operator";
                return new JobFinished { Job = job.Id, Ok = false, Outcome = JobState.Cancelled, Reason = $"{why}; nothing was recorded" };
            }
            catch (DataPlaneLostException e)
            {
                log.Warning("job {0}: {1}", job.Id, e.Message);
                return new JobFinished
                {
                    Job = job.Id, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultTransient,
                    Reason = $"library {job.Library}: {e.Message}: is its node up ('abk library list')? Nothing of this job was recorded",
                };
            }
            catch (AskTimeoutException e)
            {
                log.Warning("job {0}: {1}", job.Id, e.Message);
                return new JobFinished
                {
                    Job = job.Id, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultTransient,
                    Reason = $"the media agent of library {job.Library} did not answer: is its node up ('abk library list')?",
                };
            }
            catch (Engine.Library.LibraryBusyException e)
            {
                log.Warning("job {0}: {1}", job.Id, e.Message);
                return new JobFinished { Job = job.Id, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultTransient, Reason = e.Message };
            }
            catch (IOException e) when (e is LibraryFaultException or Engine.Library.LibraryFullException)
            {
                log.Warning("job {0}: {1}", job.Id, e.Message);
                return new JobFinished { Job = job.Id, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultLibrary, Reason = e.Message };
            }
            catch (Exception e) when (e is ForgedManifestException or MissingKeyException)
            {
                log.Warning("job {0}: {1}", job.Id, e.Message);
                return new JobFinished { Job = job.Id, Ok = false, Outcome = JobState.Failed, Reason = e.Message };
            }
            catch (Exception e)
            {
                log.Error(e, "job {0} failed", job.Id);
                return new JobFinished { Job = job.Id, Ok = false, Outcome = JobState.Failed, Reason = e.Message };
            }
        }
    }

    /// <summary>The ticket an assignment came with (none from a manager without trust: a test's).</summary>
    private static JobTicket TicketOf(JobInfo job, JobTicket? ticket) => ticket ?? new JobTicket { Job = job.Id };

    /// <summary>A session on <paramref name="library"/> under <paramref name="ticket"/> (a job's, or a look's).</summary>
    private IDataPlaneChannel OpenChannel(string library, JobTicket ticket, bool write)
    {
        var reply = _media.Ask<object>(new OpenSession { Library = library, Job = ticket.Job, Write = write, Ticket = ticket }, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        return reply switch
        {
            SessionOpened granted => _dataPlane.Connect(granted, TimeSpan.FromMinutes(5)),
            CommandRejected { Transient: true } r => throw new Engine.Library.LibraryBusyException($"library {library} refused the session for now: {r.Reason}"),
            CommandRejected r => throw new LibraryFaultException($"library {library} refused the session: {r.Reason}"),
            _ => throw new IOException($"library {library} answered {reply.GetType().Name}"),
        };
    }

    /// <summary>
    /// In the actor, before the listing's thread starts (a stop that comes right after the request finds it): the paced
    /// listing <paramref name="request"/> asks for, registered, or null when it asks for none; a refusal when too many run.
    /// Paced by the requester (a shell whose output is paged, or that stopped reading): at most `window` pages wait to be
    /// taken, so a listing of millions of entries is never held in memory whole, here or on the requester's node.
    /// </summary>
    private string? Paced(ListTree request, IActorRef requester, out PacedListing? paced)
    {
        var window = Math.Min(request.Window, MaxListingWindow);
        paced = null;
        if (window <= 0 || request.Listing is not { Length: > 0 and <= 64 }) return null;
        if (_listings.Count >= MaxPacedListings) return $"client {_settings.ClientId} is listing {MaxPacedListings} snapshots already: try again when one ends";
        paced = new PacedListing(requester, window);
        if (_listings.TryAdd(request.Listing, paced)) return null;
        paced = null;
        return $"listing {request.Listing} is running already";
    }

    /// <summary>
    /// `abk ls`: reads the snapshot's trees (under the keys of its client, which this node holds) and answers the requester with
    /// SnapshotTree pages, or CommandRejected. Runs on a thread of its own, never in the actor.
    /// </summary>
    /// <param name="paced">its pacing (<see cref="Paced"/>), or null: pages as fast as they are made</param>
    /// <param name="caller">who signed the ls (null without trust), and what: the snapshot and path must be those</param>
    private void ListTree(ListTree request, IActorRef requester, PacedListing? paced, Protocol.Trust.CellIdentity? caller = null, ListSnapshotTree? signed = null)
    {
        const int PageSize = 1000;
        void Send(SnapshotTree page)
        {
            if (paced is not null)
            {
                paced.WaitForRoom(ListingPageWait);
                page.Paced = true;
            }
            requester.Tell(page);
        }
        try
        {
            var manifest = _ring.Open(request.Manifest);
            if (caller is not null && Trust.LookSignatures.ListRefusal(caller, signed!, manifest.Id, manifest.Client, request.Path) is { } refused)
            {
                requester.Tell(new CommandRejected { Reason = refused });
                return;
            }
            var ticket = LookTicket("ls", manifest.Spans.Prepend(manifest.Library));
            using var reads = new ReadSessions(this, manifest.Spans, ticket, OpenChannel(manifest.Library, ticket, write: false), manifest.Library);
            using var trees = new TreeReader(_ring.For(manifest), reads.Source);
            var page = new SnapshotTree { Snapshot = request.Snapshot, More = true };
            var listed = 0L;
            foreach (var entry in TreeEntries.List(trees, manifest, request.Path))
            {
                listed++;
                page.Entries.Add(entry);
                if (page.Entries.Count < PageSize) continue;
                Send(page);
                page = new SnapshotTree { Snapshot = request.Snapshot, More = true };
            }
            // A path the snapshot does not hold (a folder it holds lists itself at least): said, not an empty listing.
            if (listed == 0 && request.Path.Trim('/') != "")
            {
                requester.Tell(new CommandRejected { Reason = $"snapshot {request.Snapshot} holds no {request.Path}: 'abk ls {request.Snapshot}' lists what it holds" });
                return;
            }
            page.More = false;
            Send(page);
        }
        catch (ListingStopped)
        {
            // its requester said it takes no more (its shell went away): nobody to tell
        }
        catch (Exception e) when (e is IOException or InvalidDataException or InvalidProtocolBufferException or Engine.Crypto.WrongKeyException or KeyNotFoundException or TimeoutException or AskTimeoutException)
        {
            requester.Tell(new CommandRejected { Reason = $"cannot list snapshot {request.Snapshot} on client {_settings.ClientId}: {e.Message}" });
        }
        finally
        {
            if (paced is not null) _listings.TryRemove(new KeyValuePair<string, PacedListing>(request.Listing, paced));
        }
    }

    /// <summary>The most pages a listing's requester may let wait to be taken (ListTree.window).</summary>
    public const int MaxListingWindow = 64;

    /// <summary>The most paced listings a client node runs at once (each holds a thread and read sessions while it waits).</summary>
    public const int MaxPacedListings = 32;

    /// <summary>Finds at most on this client node at once, each on a thread of its own (waiting for its turn at the index, or searching).</summary>
    public const int MaxFinds = 8;
    private readonly OwnThreads _finds = new(MaxFinds);

    /// <summary>The most manifests a catalog rebuild's answer names as not opened (the others are counted).</summary>
    private const int MaxProblemsSaid = 100;

    /// <summary>Catalog rebuilds at most on this client node at once, each on a thread of its own.</summary>
    public const int MaxRebuilds = 2;
    private readonly OwnThreads _rebuilds = new(MaxRebuilds);

    /// <summary>Work that waits on other actors, each on a thread of its own (not the pool the actors run on), at most <paramref name="max"/> at once.</summary>
    private sealed class OwnThreads(int max)
    {
        private int _running;

        /// <summary>Starts <paramref name="work"/>; false, and nothing started, when <paramref name="max"/> already run.</summary>
        public bool TryRun(Action work)
        {
            if (Interlocked.Increment(ref _running) > max)
            {
                Interlocked.Decrement(ref _running);
                return false;
            }
            Task.Factory.StartNew(() =>
            {
                try
                {
                    work();
                }
                finally
                {
                    Interlocked.Decrement(ref _running);
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            return true;
        }
    }

    /// <summary>How long a paced listing waits for its requester to take a page before it gives up (the shell went away).</summary>
    internal static TimeSpan ListingPageWait { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The paced listings running (ListTree.listing).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, PacedListing> _listings = new();

    /// <summary>A listing sent while fewer than its window of pages wait to be taken by <see cref="Requester"/>.</summary>
    private sealed class PacedListing(IActorRef requester, int window)
    {
        public IActorRef Requester { get; } = requester;
        // (Not disposed: a TreePagesTaken may come after the listing ended; it holds no wait handle.)
        private readonly SemaphoreSlim _room = new(window, window);
        private volatile bool _done;

        /// <summary>From the actor: pages taken, or (done) no more wanted.</summary>
        public void Taken(TreePagesTaken m)
        {
            if (m.Done) _done = true;
            try
            {
                if (m.Done || m.Pages > 0) _room.Release(m.Done ? 1 : Math.Min(m.Pages, MaxListingWindow));
            }
            catch (SemaphoreFullException)
            {
                // more taken than were sent: ignored (the listing's own count stays right)
            }
        }

        /// <summary>On the listing's thread: returns once a page may be sent; throws when its requester wants no more or took none for <paramref name="wait"/>.</summary>
        public void WaitForRoom(TimeSpan wait)
        {
            if (_done) throw new ListingStopped();
            if (!_room.Wait(wait)) throw new TimeoutException($"nobody took a page of the listing for {wait.TotalMinutes:F0} minutes: its shell went away");
            if (_done) throw new ListingStopped();
        }
    }

    /// <summary>A paced listing's requester wants no more pages.</summary>
    private sealed class ListingStopped : Exception;

    /// <summary>A set's pre- or post-command, on this job's thread.</summary>
    private static HookCommand.Result RunHook(JobInfo job, string command, string state, CancellationToken cancel, TimeSpan? timeout = null) =>
        HookCommand.ForJob(job, command, state, timeout ?? HookTimeout(job), cancel).GetAwaiter().GetResult();

    /// <summary>While the node shuts down, a post-command gets at most this long: the shutdown waits for the job's end.</summary>
    private static readonly TimeSpan PostCommandWhileStopping = TimeSpan.FromSeconds(10);

    private static TimeSpan HookTimeout(JobInfo job) => HookCommand.Timeout(job.CommandTimeoutSeconds);

    private JobFinished RunBackup(BackupAssignment a, CancellationToken cancel)
    {
        var job = a.Job;
        if (job.PreCommand != "" && RunHook(job, job.PreCommand, "STARTING", cancel) is { Ok: false } pre)
        {
            cancel.ThrowIfCancellationRequested();
            return new JobFinished { Job = job.Id, Ok = false, Outcome = JobState.Failed, Reason = pre.Describe("the pre-command", HookTimeout(job)) + "; nothing was backed up" };
        }
        var finished = RunBackupItself(a, cancel, out var failure);
        // The post-command runs whatever the outcome, cancelled jobs included (it may undo what the pre-command
        // did), but briefly when the node is stopping.
        var postTimeout = _shuttingDown && PostCommandWhileStopping < HookTimeout(job) ? PostCommandWhileStopping : HookTimeout(job);
        // With what the backup could not read (ABK_ERRORS, ABK_OUTCOME=partial), and its snapshot.
        var ended = job;
        if (finished is not null)
        {
            ended = job.Clone();
            (ended.State, ended.Errors, ended.Snapshot) = (JobState.Succeeded, finished.Errors, finished.Manifest.IsEmpty ? "" : Engine.Trees.SnapshotManifest.Parser.ParseFrom(finished.Manifest).Id);
        }
        var post = job.PostCommand == "" ? null : RunHook(ended, job.PostCommand, failure is null ? "SUCCEEDED" : "FAILED", CancellationToken.None, postTimeout);
        // The job's own failure is what it reports, with its stack.
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        if (post is { Ok: false }) finished!.Reason = post.Describe("the post-command", postTimeout);
        return finished!;
    }

    /// <summary>The backup; an exception is handed out (not thrown) so that the post-command runs first.</summary>
    private JobFinished? RunBackupItself(BackupAssignment a, CancellationToken cancel, out Exception? failure)
    {
        failure = null;
        try
        {
            return RunEngineBackup(a, cancel);
        }
        catch (Exception e)
        {
            failure = e;
            return null;
        }
    }

    private JobFinished RunEngineBackup(BackupAssignment a, CancellationToken cancel)
    {
        var job = a.Job;
        var assigned = DateTime.UtcNow;
        var gc = (Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2), Pause: GC.GetTotalPauseDuration());
        var ticket = TicketOf(job, a.Ticket);
        var channel = OpenChannel(job.Library, ticket, write: true);
        // When the library fills up, the backup goes on in the next library of its pool that opens.
        var sink = new Engine.Spanning.SpanningSink(job.Library, channel, a.SpanTo, library =>
        {
            try
            {
                return OpenChannel(library, ticket, write: true);
            }
            catch (AskTimeoutException)
            {
                throw new IOException($"library {library} did not answer a session request in 30 s"); // passed over: the next one may
            }
        });
        try
        {
            // The parent must be a snapshot of this cell's (sealed): a forged one would make this backup skip files. One
            // from before manifests were sealed is no parent: this backup is a full one.
            // A parent under keys this node lacks, or under another key domain, is none either.
            var keys = _ring.For(_settings.ClientId, job.PrivateKeys ? KeyScheme.ClientPrivate : KeyScheme.Client);
            var parent = a.ParentManifest.IsEmpty ? null : ManifestSeal.Parent(_ring, keys, SnapshotManifest.Parser.ParseFrom(a.ParentManifest));
            var level = parent is null && !a.ParentManifest.IsEmpty ? BackupLevel.LevelFull : job.Level;
            // The parent's trees are read from its library and those it spans.
            using var parentReads = new ReadSessions(this, parent?.Manifest.Spans ?? [], ticket, channel);
            var set = new BackupSet(job.BackupSet, job.Paths, job.Excludes, job.OneFileSystem, job.Atime) { ExcludeIfPresent = job.ExcludeIfPresent };
            var options = new BackupOptions
            {
                // The storage policy's chunk size and compression, else this node's.
                Level = ManagerState.ToEngineLevel(level),
                Chunker = job.ChunkKib > 0 ? Engine.Chunking.ChunkerOptions.ForAverage(job.ChunkKib * 1024) : _settings.Chunker,
                CompressionLevel = job.Compression > 0 ? job.Compression : _settings.CompressionLevel,
                Client = _settings.ClientId, Library = job.Library, Job = job.Id, MaxBytesPerSecond = _settings.BackupRateLimit,
                Commit = false, // committed with the manifest (StoreManifest)
                RereadChangedWithin = _settings.RereadChangedWithin,
            };
            var started = DateTime.UtcNow;
            var progress = new ActionProgress<BackupProgress>(p => Progress(new JobProgress
            {
                Job = job.Id, FilesDone = p.FilesDone, FilesTotal = p.FilesToRead, BytesDone = p.BytesDone, BytesTotal = p.BytesToRead,
                ChunksNew = p.ChunksNew, BytesStored = p.BytesStored, Seconds = (DateTime.UtcNow - started).TotalSeconds, Entries = p.EntriesWalked,
            }));
            var manifest = new Archiver(keys, sink, parentReads.Source, parent?.Keys).Run(set, options, parent?.Manifest, progress, cancel);
            manifest.Policy = job.Policy; // whose retention it is under, should its set go
            manifest.Spans.AddRange(sink.Libraries.Skip(1));
            var storing = DateTime.UtcNow;
            // A backup that went on in a further library commits its data first: the manifest, appended to the last one,
            // could otherwise become durable there (another session's commit) before the data in the full ones is.
            if (sink.Libraries.Count > 1) sink.Commit();
            StoreManifest(keys, manifest, options.CompressionLevel, sink); // and the commit of all the backup stored
            var commitSeconds = (DateTime.UtcNow - storing).TotalSeconds;
            // Storing the manifest itself may have gone on in a further library (which then holds just that chunk).
            manifest.Spans.AddRange(sink.Libraries.Skip(1 + manifest.Spans.Count));
            if (manifest.Spans.Count > 0) _log.Info("job {0}: {1} filled up; the backup went on in {2}", job.Id, job.Library, string.Join(", ", manifest.Spans));
            var st = manifest.Stats;
            _log.Info($"job {job.Id}: snapshot {manifest.Id} in {(DateTime.UtcNow - assigned).TotalSeconds:F2} s (session {(started - assigned).TotalSeconds:F2}, " +
                      $"walk {st.SecondsWalk:F2}, read {st.SecondsRead:F2}, trees {st.SecondsTrees:F2}, commit {commitSeconds:F2}); {st.Files} files, {st.ChunksNew} new chunks; " +
                      $"GC {GC.CollectionCount(0) - gc.Gen0}/{GC.CollectionCount(1) - gc.Gen1}/{GC.CollectionCount(2) - gc.Gen2} pause {(GC.GetTotalPauseDuration() - gc.Pause).TotalSeconds:F2} s heap {GC.GetTotalMemory(false) >> 20} MiB");
            return new JobFinished
            {
                Job = job.Id, Ok = true, Outcome = JobState.Succeeded, Manifest = manifest.ToByteString(), Errors = manifest.ErrorCount,
                Files = (long)manifest.Stats.Files, Bytes = (long)manifest.Stats.Bytes,
            };
        }
        finally
        {
            foreach (var (library, span) in sink.Spans)
            {
                var opened = (IDataPlaneChannel)span;
                _media.Tell(new CloseSession { Library = library, Ticket = opened.Ticket });
                opened.Dispose();
            }
        }
    }

    /// <summary>
    /// The manifest goes into the library too, encrypted like any chunk and flagged as a manifest, part of the
    /// snapshot's references: with the volumes and the key alone the catalog can be rebuilt (abk catalog rebuild).
    /// </summary>
    private void StoreManifest(CellKeys keys, SnapshotManifest manifest, int compressionLevel, Engine.Codec.IChunkSink channel) =>
        Engine.Catalog.StoredManifests.Store(_ring, keys, channel, manifest, compressionLevel);

    /// <summary>
    /// `abk catalog rebuild LIBRARY`: the manifests stored in the library, opened with the cell key and handed to
    /// the manager, which records those its catalog lacks. On a thread of its own; answers CatalogRebuilt or
    /// CommandRejected.
    /// </summary>
    private void RebuildCatalog(RebuildCatalog request, IActorRef requester)
    {
        try
        {
            var listed = _media.Ask<object>(Trust.MessageSignature.Sign(new ListManifests { Library = request.Library, Caller = request.Caller }, _trust), TimeSpan.FromMinutes(10)).GetAwaiter().GetResult();
            if (listed is not ManifestIds ids)
            {
                requester.Tell(listed as CommandRejected ?? new CommandRejected { Reason = $"library {request.Library} answered {listed.GetType().Name}" });
                return;
            }
            var found = new RecordSnapshots { Library = request.Library, Caller = request.Caller, Referenced = { ids.Referenced } }; // the operator's request it answers
            var problems = new List<string>();
            using (var channel = OpenChannel(request.Library, LookTicket("catalog-rebuild", [request.Library]), write: false))
            {
                try
                {
                    // One at a time: a damaged or forged one is left out, logged and named in the answer (the operator
                    // learns that a snapshot there is not back), the others come back. A fault of the way to the library
                    // (the connection lost, the library failed: ISourceFault) is no damage of a manifest: it ends the
                    // rebuild, which records nothing, so that it is run again rather than leave sound snapshots out.
                    foreach (var stored in ids.Ids.Where(r => r.Length == Engine.Hashing.ChunkId.Size).Select(r => new Engine.Hashing.ChunkId(r.Span)))
                        try
                        {
                            found.Manifests.AddRange(Engine.Catalog.StoredManifests.Open(_ring, channel, [stored]).Select(m => m.ToByteString()));
                        }
                        catch (Exception e) when (e is not Engine.Codec.ISourceFault
                                                  && e is IOException or InvalidDataException or KeyNotFoundException or InvalidProtocolBufferException or Engine.Crypto.WrongKeyException)
                        {
                            _log.Warning("catalog rebuild of {0}: the manifest in record {1} is left out: {2}", request.Library, stored.Short, e.Message);
                            problems.Add($"the manifest in record {stored.Short} cannot be opened: {e.Message}");
                        }
                }
                finally
                {
                    _media.Tell(new CloseSession { Library = request.Library, Ticket = channel.Ticket });
                }
            }
            found.Complete = problems.Count == 0;
            // Manifests too many for one message go just before it, in parts (Manager/RebuildParts).
            foreach (var part in Manager.RebuildParts.Split(found)) _manager.Tell(part, ActorRefs.NoSender);
            var answer = _manager.Ask<object>(found, TimeSpan.FromMinutes(1)).GetAwaiter().GetResult();
            // At most 100 named (an answer stays well inside a frame to the shell), the rest counted; the log names them all.
            if (answer is CatalogRebuilt rebuilt)
            {
                rebuilt.Problems.AddRange(problems.Take(MaxProblemsSaid));
                if (problems.Count > MaxProblemsSaid) rebuilt.Problems.Add($"and {problems.Count - MaxProblemsSaid} more (the log of client node {_settings.ClientId} names them)");
            }
            requester.Tell(answer);
        }
        catch (Exception e) when (e is IOException or AskTimeoutException or InvalidProtocolBufferException)
        {
            requester.Tell(new CommandRejected
            {
                Reason = $"the catalog could not be rebuilt from library {request.Library}: {e.Message}" +
                         (e is Engine.Codec.ISourceFault ? ": nothing was recorded; run 'abk catalog rebuild' again when the library answers ('abk library list')" : ""),
            });
        }
    }

    private JobFinished RunRestore(RestoreAssignment a, CancellationToken cancel)
    {
        var ring = KeysToRestore(a);
        return Reading(a.Job, TicketOf(a.Job, a.Ticket), a.Manifest, fallback: a.Fallback, ring: ring, run: channel => Restore(a, ring, channel, cancel));
    }

    /// <summary>
    /// The keys a restore reads its snapshot with: this node's, or, for another client's snapshot this node holds no
    /// keys of, this node's and that client's key granted for the job by a node holding it (KeyGrants): the snapshot's
    /// own client node first, then every other connected client node.
    /// </summary>
    private KeyRing KeysToRestore(RestoreAssignment a)
    {
        SnapshotManifest claimed;
        try
        {
            claimed = SnapshotManifest.Parser.ParseFrom(a.Manifest); // checked under the keys it gets, below
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ForgedManifestException($"the snapshot manifest of job {a.Job.Id} does not parse ({e.Message}): not used");
        }
        if (_ring.Holds(claimed.Client, claimed.Keys) || claimed.Keys == KeyScheme.Cell || _trust is null) return _ring;
        // The key comes back sealed to a key pair made for this request alone (a node that replays it learns nothing).
        using var replyKey = Trust.KeySealing.NewReplyKey();
        var request = Trust.MessageSignature.Sign(new RequestClientKey
        {
            Client = claimed.Client, Assignment = a.ToByteString(), ReplyKey = ByteString.CopyFrom(Trust.KeySealing.PublicKey(replyKey)),
        }, _trust);
        ClientList clients;
        try
        {
            clients = _manager.Ask<object>(new ListClients(), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult() switch
            {
                ClientList list => list,
                // The manager starting again after its journal failed: a passing trouble, the restore tried again later.
                CommandRejected { Transient: true } r => throw new Engine.Library.LibraryBusyException($"the manager could not say which nodes hold client {claimed.Client}'s keys: {r.Reason}"),
                _ => new ClientList(),
            };
        }
        catch (AskTimeoutException)
        {
            throw new Engine.Library.LibraryBusyException($"this node holds only client {_ring.OnlyClient}'s keys, and the manager did not say in 30 s which nodes could give client {claimed.Client}'s: tried again later");
        }
        var refusals = new List<string>();
        foreach (var holder in clients.Clients.Where(c => c.Reachable && c.Id != _settings.ClientId && c.Address.Contains("/user/", StringComparison.Ordinal))
                     .OrderByDescending(c => c.Id == claimed.Client))
        {
            try
            {
                switch (_system.ActorSelection(holder.Address).Ask<object>(request, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult())
                {
                    case ClientKeyGranted granted when granted.Client == claimed.Client:
                        byte[] key;
                        try
                        {
                            key = Trust.KeySealing.Open(replyKey, granted.Sealer.Span, granted.SealedKey.Span, Trust.KeySealing.Context(claimed.Client, a.Job.Id));
                        }
                        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException)
                        {
                            refusals.Add($"{holder.Id}: its answer does not open with this request's key ({e.Message})");
                            break;
                        }
                        _log.Warning("job {0}: client {1}'s key granted by {2} for this restore", a.Job.Id, claimed.Client, holder.Id);
                        return _ring.WithGrant(claimed.Client, key);
                    case CommandRejected refused:
                        refusals.Add($"{holder.Id}: {refused.Reason}");
                        break;
                }
            }
            catch (AskTimeoutException)
            {
                refusals.Add($"{holder.Id}: no answer in 30 s");
            }
        }
        throw new MissingKeyException($"this node holds only client {_ring.OnlyClient}'s keys, and no node gave client {claimed.Client}'s for this restore" +
                                      (refusals.Count == 0 ? $": start {claimed.Client}'s node or a client node that holds the cell key (the cell's first node, given the client role if it has not)" : $" ({string.Join("; ", refusals)})"));
    }

    /// <summary>Answers a RequestClientKey from another client node: the key, when KeyGrants says it may have it.</summary>
    private void GrantKey(RequestClientKey request, IActorRef requester)
    {
        if (Trust.KeyGrants.Refusal(_trust, _ring, request, DateTimeOffset.UtcNow, out var job) is { } refused)
        {
            _log.Warning("{0}", refused);
            requester.Tell(new CommandRejected { Reason = refused });
            return;
        }
        _log.Warning("gave client {0}'s key to {1} for job {2} (a restore of its snapshot there)", request.Client, requester.Path.Address, job);
        byte[] sealer, sealedKey;
        try
        {
            (sealer, sealedKey) = Trust.KeySealing.Seal(request.ReplyKey.Span, _ring.ClientKey(request.Client), Trust.KeySealing.Context(request.Client, job));
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            requester.Tell(new CommandRejected { Reason = $"a key request refused: its reply key cannot be sealed to ({e.Message})" });
            return;
        }
        requester.Tell(new ClientKeyGranted { Client = request.Client, Job = job, Sealer = ByteString.CopyFrom(sealer), SealedKey = ByteString.CopyFrom(sealedKey) });
    }

    private JobFinished Restore(RestoreAssignment a, KeyRing ring, Engine.Codec.IChunkSource channel, CancellationToken cancel)
    {
        var job = a.Job;
        var manifest = ring.Open(a.Manifest);
        var started = DateTime.UtcNow;
        var progress = new ActionProgress<RestoreProgress>(p => Progress(new JobProgress
        {
            Job = job.Id, FilesDone = p.FilesDone, FilesTotal = p.FilesTotal, BytesDone = p.BytesDone, BytesTotal = p.BytesTotal,
            Seconds = (DateTime.UtcNow - started).TotalSeconds, Entries = p.Entries,
        }));
        var parallelism = Math.Max(2, Environment.ProcessorCount);
        // A retry goes on over its earlier attempt's files only if that attempt claimed the target (passed the check that
        // it is empty, or was forced): one that never got that far is checked again, not forced (RestoreClaims).
        var resumes = job.Attempt > 0 ? _restoreClaims.Find(job.Id, job.Target) : null;
        var found = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var options = new RestoreOptions
        {
            Include = job.Paths, Parallelism = parallelism, Force = job.Force, NumericOwner = job.NumericOwner, Sparse = job.Sparse, Resumes = resumes,
            Excludes = job.Excludes, DryRun = job.DryRun,
            Overwrite = job.Overwrite switch
            {
                RestoreOverwrite.OverwriteIfChanged => OverwritePolicy.IfChanged,
                RestoreOverwrite.OverwriteIfNewer => OverwritePolicy.IfNewer,
                RestoreOverwrite.OverwriteNever => OverwritePolicy.Never,
                RestoreOverwrite.OverwriteAlways => OverwritePolicy.Always,
                // A policy of a newer build: not taken for "always" (that would write over what it says to keep).
                var unknown => throw new InvalidDataException($"overwrite policy {(int)unknown} is not one this client's build knows: upgrade its node, or restore without it"),
            },
            // The folders on the way found there, kept for a retry (which leaves them as the first attempt did).
            FoundBefore = resumes is null ? null : _restoreClaims.FoundOf(job.Id, job.Target),
            // Gathered from the level's threads, recorded with one sync once the level is made (before anything goes in).
            FoundOnTheWay = found.Enqueue,
            FoundLevelDone = () =>
            {
                var level = new List<string>();
                while (found.TryDequeue(out var relative)) level.Add(relative);
                try
                {
                    _restoreClaims.AddFound(job.Id, job.Target, level);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    _log.Warning("job {0}: could not record that {1} folders ({2}...) were there before the restore (a retry would give them the snapshot's metadata): {3}",
                        job.Id, level.Count, level[0], e.Message);
                }
            },
            Claimed = made =>
            {
                try
                {
                    _restoreClaims.Claim(job.Id, job.Target, made);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Not fatal: only a retry of this restore needs it, and without it that retry is checked (and refused
                    // if it finds this attempt's files) rather than going on over them.
                    _log.Warning("job {0}: could not record that the restore claimed {1}: {2}", job.Id, job.Target, e.Message);
                }
            },
        };
        var result = new Restorer(ring.For(manifest), channel).Run(manifest, job.Target, options, progress, cancel);
        // Kept when this attempt was being stopped as it finished (a later attempt may be waiting to go on over it: let go,
        // that one would find the target full and be refused without --force).
        if (!cancel.IsCancellationRequested) _restoreClaims.Release(job.Id, job.Target);
        // Entries not made apart from those made without some of their metadata (an owner, an xattr, set-id bits).
        var reason = result.ErrorCount == 0 ? "" :
            (result.NotRestored > 0 ? $"{result.NotRestored} entries not restored; " : "") + $"{result.ErrorCount} errors: " +
            string.Join("; ", result.Errors.Take(ErrorsInReason).Select(e => $"{e.Path}: {e.Reason}"));
        // More than the reason holds: every one listed in a file on this host, which the reason names.
        if (result.ErrorCount > ErrorsInReason)
        {
            var listed = _restoreClaims.WriteErrors(job.Id, result.Errors, result.ErrorCount - result.Errors.Count);
            reason += listed is null ? $"; ... and {result.ErrorCount - ErrorsInReason} more (their list could not be written on {_settings.ClientId}: see its log)"
                : $"; ... and {result.ErrorCount - ErrorsInReason} more, {(result.ErrorCount > result.Errors.Count ? $"the first {result.Errors.Count} of all" : "every one")} listed in {listed} on {_settings.ClientId}";
            if (listed is null)
                foreach (var e in result.Errors.Skip(ErrorsInReason)) _log.Warning("job {0}: {1}: {2}", job.Id, e.Path, e.Reason);
        }
        if (channel is Engine.Spanning.SpanningSource { FallbackReads: > 0 } spanning)
        {
            var fallback = $"{spanning.FallbackReads} chunks could not be read from library {job.Library} (damaged or missing) and came from a copy elsewhere: " +
                           $"run 'abk verify {manifest.Id}' (it heals them from the copy)";
            _log.Warning("job {0}: {1}", job.Id, fallback);
            reason = reason == "" ? fallback : $"{reason}; {fallback}";
        }
        // No file, link or special file made of those planned (a read-only mount under --force, every chunk unreadable; the
        // folders on the way may be there): failed, not a success
        // with errors (exit 3 says "done, look at these"). Not retried: another attempt would meet the same.
        var failed = result.NotRestored > 0 && result.Files + result.Links + result.Other == 0;
        return new JobFinished
        {
            Job = job.Id, Ok = !failed, Outcome = failed ? JobState.Failed : JobState.Succeeded, Fault = JobFault.FaultNone,
            Reason = failed ? $"none of the files, links and special files was restored: {reason}" : reason, Errors = (int)Math.Min(int.MaxValue, result.ErrorCount), Files = result.Files, Bytes = result.Bytes,
            FilesKept = result.Kept,
        };
    }

    /// <summary>How many of a restore's errors its reason holds (the rest are in a file on the client host: RestoreClaims.WriteErrors).</summary>
    private const int ErrorsInReason = 5;

    /// <summary>
    /// Runs a job that reads a snapshot through read sessions on its library and every library it spans, closed
    /// however the job ends.
    /// </summary>
    /// <param name="fallback">libraries holding a whole copy, read chunk by chunk (opened when first needed) for what
    /// the job's library cannot give: a restore gets past a damaged or missing chunk; a verify checks one library</param>
    /// <param name="ring">the keys to read it with (default: this node's)</param>
    private JobFinished Reading(JobInfo job, JobTicket ticket, ByteString manifest, Func<Engine.Codec.IChunkSource, JobFinished> run, IEnumerable<string>? fallback = null,
        KeyRing? ring = null)
    {
        var snapshot = (ring ?? _ring).Open(manifest);
        // The libraries it spans when it is read from its own; a copy elsewhere is whole.
        using var reads = new ReadSessions(this, snapshot.Library == job.Library ? snapshot.Spans : [], ticket, OpenChannel(job.Library, ticket, write: false), job.Library, fallback);
        return run(reads.Source);
    }

    /// <summary>
    /// Read sessions on a snapshot's libraries (the first one given, opened by the caller; the others opened here)
    /// as one chunk source; Dispose closes those it opened (and the first when <paramref name="firstLibrary"/> is given).
    /// </summary>
    private sealed class ReadSessions : IDisposable
    {
        private readonly ClientActor _client;
        private readonly List<(string Library, IDataPlaneChannel Channel)> _opened = [];

        public ReadSessions(ClientActor client, IEnumerable<string> spans, JobTicket ticket, IDataPlaneChannel first, string? firstLibrary = null,
            IEnumerable<string>? fallback = null)
        {
            _client = client;
            if (firstLibrary is not null) _opened.Add((firstLibrary, first));
            var sources = new List<Engine.Codec.IChunkSource> { first };
            try
            {
                foreach (var library in spans)
                {
                    var channel = client.OpenChannel(library, ticket, write: false);
                    _opened.Add((library, channel));
                    sources.Add(channel);
                }
            }
            catch
            {
                Dispose();
                throw;
            }
            var own = sources.Count;
            foreach (var library in fallback ?? []) sources.Add(new Fallback(this, library, ticket));
            Source = sources.Count == 1 ? first : new Engine.Spanning.SpanningSource(sources, own);
        }

        /// <summary>A library holding a whole copy: its read session is opened when a chunk is first asked of it.</summary>
        private sealed class Fallback(ReadSessions owner, string library, JobTicket ticket) : Engine.Codec.IChunkSource
        {
            private IDataPlaneChannel? _channel;
            private IOException? _failed;
            private readonly object _lock = new();

            private IDataPlaneChannel Channel()
            {
                lock (_lock)
                {
                    if (_channel is not null) return _channel;
                    if (_failed is not null) throw _failed;
                    try
                    {
                        _channel = owner._client.OpenChannel(library, ticket, write: false);
                        lock (owner._opened) owner._opened.Add((library, _channel));
                        return _channel;
                    }
                    catch (Exception e) when (e is IOException or AskTimeoutException)
                    {
                        _failed = new IOException($"library {library}, which holds a copy, cannot be read: {e.Message}", e);
                        throw _failed;
                    }
                }
            }

            public ReadOnlySpan<byte> ReadPayload(Engine.Hashing.ChunkId id, ref byte[] buffer, out Engine.Volumes.RecordFlags flags) =>
                Channel().ReadPayload(id, ref buffer, out flags);
        }

        public Engine.Codec.IChunkSource Source { get; }

        public void Dispose()
        {
            foreach (var (library, channel) in _opened)
            {
                _client._media.Tell(new CloseSession { Library = library, Ticket = channel.Ticket });
                channel.Dispose();
            }
            _opened.Clear();
        }
    }

    /// <summary>Reads the snapshot back through the data plane and checks every chunk (SnapshotVerifier); writes nothing.</summary>
    private JobFinished RunVerify(VerifyAssignment a, CancellationToken cancel) => Reading(a.Job, TicketOf(a.Job, a.Ticket), a.Manifest, channel =>
    {
        var job = a.Job;
        var manifest = _ring.Open(a.Manifest);
        var started = DateTime.UtcNow;
        var total = (long)(manifest.Stats?.Bytes ?? 0);
        var progress = new ActionProgress<Engine.Verify.VerifyProgress>(p => Progress(new JobProgress
        {
            Job = job.Id, BytesDone = p.Bytes, BytesTotal = Math.Max(total, p.Bytes), Seconds = (DateTime.UtcNow - started).TotalSeconds, Entries = p.Chunks,
        }));
        var r = Engine.Verify.SnapshotVerifier.Run(_ring.For(manifest), channel, manifest, progress, cancel, job.VerifySharePercent);
        var report = new VerifyReport
        {
            Trees = r.Trees, Chunks = r.Chunks, Bytes = r.Bytes, BadChunks = r.BadChunks, DamagedFiles = r.DamagedFileCount, Seconds = r.Seconds, Damaged = { r.DamagedFiles },
            SharePercent = job.VerifySharePercent,
            BadIds = { r.BadIds.Select(id => ByteString.CopyFrom(id.ToArray())) },
        };
        _log.Info("job {0}: verify of snapshot {1}: {2} chunks, {3} bad, in {4:F2} s", job.Id, manifest.Id, r.Chunks, r.BadChunks, r.Seconds);
        return new JobFinished
        {
            Job = job.Id, Ok = r.Ok, Outcome = r.Ok ? JobState.Succeeded : JobState.Failed, Verify = report, Bytes = r.Bytes, Errors = (int)Math.Min(int.MaxValue, r.DamagedFileCount),
            Reason = r.Ok ? "" : $"{r.BadChunks} damaged chunk{(r.BadChunks == 1 ? "" : "s")}; {r.DamagedFileCount} file{(r.DamagedFileCount == 1 ? "" : "s")} of snapshot {manifest.Id} would not restore whole: " +
                                 string.Join("; ", r.DamagedFiles.Take(5)) + (r.DamagedFileCount > 5 ? "; ... ('abk job show " + job.Id + "' lists them)" : ""),
        };
    });

    /// <summary>A job's progress to the manager, signed (it takes progress only from the job's own node).</summary>
    private void Progress(JobProgress p) => _manager.Tell(Trust.MessageSignature.Sign(p, _trust));

    /// <summary>Reports on the caller's thread; telling an actor is thread-safe.</summary>
    private sealed class ActionProgress<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }
}
