using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Tape;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Google.Protobuf;

namespace ActorBackup.Cluster.Media;

/// <summary>
/// The media agent of one library (a sharded entity, id = library id). Its journal is the library's index:
/// one event per commit with the entries of that commit, and a snapshot of the whole index every
/// <see cref="SnapshotEvery"/> commits. The volumes themselves are files the library appends to; bytes
/// reach them through the data plane, never through this actor's mailbox.
/// </summary>
public sealed partial class MediaActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>A job's end as this media node reports it: signed with its certificate (the manager checks whose it is).</summary>
    private JobFinished Signed(JobFinished f) => Trust.JobSignature.Sign(f, Trust.NodeTrust.Of(Context.System));

    /// <summary>Whether <paramref name="m"/>, which only the manager may send, is signed by a manager node; if not, it is logged and refused.</summary>
    private bool FromManager(IMessage m)
    {
        if (Trust.MessageSignature.NotFromManager(Trust.NodeTrust.Of(Context.System), m) is not { } refused) return true;
        _log.Warning("library {0}: {1} (from {2})", _declaration.Id, refused, Sender);
        Sender.Tell(new CommandRejected { Reason = refused });
        return false;
    }

    /// <summary>Attempts and jobs the manager said ended: their tickets open no session.</summary>
    private readonly Trust.EndedJobs _ended = new();
    /// <summary>The operators' signed rebuilds this agent scanned for: each scans once.</summary>
    private readonly Trust.CallerNonces _rebuildNonces = new();

    public ITimerScheduler Timers { get; set; } = null!;
    /// <summary>While the library cannot be used: how often it is opened again (room freed, disk back), and the manager told.</summary>
    private static readonly TimeSpan ReopenEvery = TimeSpan.FromSeconds(30);
    private sealed record Reopen;
    /// <summary>Are the volume files still there? (A disk unmounted or a folder removed under a running agent.)</summary>
    private sealed record Health;
    private static readonly TimeSpan HealthEvery = TimeSpan.FromSeconds(5);
    public const int SnapshotEvery = 50;

    /// <summary>
    /// The most chunks a journal snapshot of the index holds: a snapshot is one value of the journal's store, which
    /// SQLite and PostgreSQL keep under 1 GB (<see cref="ChunkIndex.EntrySize"/> bytes a chunk: about 19.8 million
    /// chunks, 630 GB of disk images in 32 KiB chunks). A larger index is not snapshotted (the agent replays its journal
    /// when it starts, which takes longer, and says so once) rather than failing every 50 commits or overflowing.
    /// </summary>
    public const long SnapshotMaxChunks = 950_000_000 / ChunkIndex.EntrySize;
    private readonly LibraryDeclaration _declaration;
    private readonly IActorRef? _manager;
    private readonly DataPlaneEndpoint _endpoint;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ChunkIndex _index = new();
    private List<VolumeEntry> _volumes = [];
    private DiskLibrary? _library;
    /// <summary>Why the library could not be opened (then <see cref="_library"/> is null).</summary>
    private string? _unavailable;
    /// <summary>Unavailable for writes only (a write failed, the journal holds): its read sessions go on. Not with volumes missing.</summary>
    private bool _readable;
    /// <summary>Readable, with room again, and a write asked: no new reading job is sent here (reads false), so that it opens again.</summary>
    private bool _writeWaiting;
    /// <summary>The scan for a catalog rebuild's manifests under way (or the last), and the library it reads.</summary>
    private Task<object>? _manifestScan;
    private DiskLibrary? _manifestScanOf;
    private readonly Dictionary<string, string> _sessions = [];
    /// <summary>The sessions that may write: a prune waits for those that were open when it began.</summary>
    private readonly HashSet<string> _writeSessions = [];
    private int _eventsSinceSnapshot;
    /// <summary>Its journal behind its snapshots, 200 events a time (a journal never trimmed before, after an upgrade,
    /// goes in steps its database takes in well under the time another actor's write waits for it).</summary>
    private readonly Journal.JournalTrim _trim = new(4 * SnapshotEvery);

    public override string PersistenceId => "media-" + _declaration.Id;

    /// <param name="entriesPerEvent">the most index entries one journal event holds (<see cref="IndexEntriesPerEvent"/>; tests make it small)</param>
    /// <param name="mediaRegion">where this agent reaches other libraries (a copy's source): the cell's media shard region
    /// unless a test gives its own</param>
    public static Props Props(LibraryDeclaration declaration, IActorRef? manager, DataPlaneEndpoint? endpoint = null, long snapshotMaxChunks = SnapshotMaxChunks,
        int entriesPerEvent = IndexEntriesPerEvent, IActorRef? mediaRegion = null) =>
        Akka.Actor.Props.Create(() => new MediaActor(declaration, manager, endpoint ?? new DataPlaneEndpoint("", 0), snapshotMaxChunks, entriesPerEvent, mediaRegion));

    /// <summary>The most index entries one journaled event holds: 48 MB.</summary>
    public const int IndexEntriesPerEvent = 1 << 20;

    private readonly int _entriesPerEvent;

    private readonly long _snapshotMaxChunks;
    /// <summary>Whether the log said the index is too large to snapshot (once a run).</summary>
    private bool _toldNoSnapshot;

    private readonly IActorRef? _mediaRegion;

    /// <summary>The other libraries of the cell (a copy's source and the libraries its snapshot spans).</summary>
    private IActorRef MediaRegion => _mediaRegion ?? ClusterSharding.Get(Context.System).ShardRegion("media");

    public MediaActor(LibraryDeclaration declaration, IActorRef? manager, DataPlaneEndpoint endpoint, long snapshotMaxChunks, int entriesPerEvent = IndexEntriesPerEvent,
        IActorRef? mediaRegion = null)
    {
        _mediaRegion = mediaRegion;
        _entriesPerEvent = Math.Max(1, entriesPerEvent);
        _declaration = declaration;
        _manager = manager;
        _endpoint = endpoint;
        _snapshotMaxChunks = snapshotMaxChunks;

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is not MediaSnapshot s) return;
            _trim.Recovered(offer.Metadata.SequenceNr, s.TrimmedUpTo);
            _index = ChunkIndex.FromBytes(s.Index.Span);
            _volumes = s.Volumes.Select(FromRecord).ToList();
            _damagedMarks.Clear();
            RecoverMarks(s.Damaged);
        });
        Recover<ChunksDamaged>(e =>
        {
            RecoverMarks(e.Marks);
            _eventsSinceSnapshot++;
        });
        Recover<IndexBatchCommitted>(e =>
        {
            _index.Apply(e.Entries.Span);
            _volumes = e.Volumes.Select(FromRecord).ToList();
            _eventsSinceSnapshot++;
        });
        Recover<IndexEntriesRemoved>(e =>
        {
            foreach (var id in Unpack(e.Ids)) _index.Remove(id);
            _volumes = e.Volumes.Select(FromRecord).ToList();
            _eventsSinceSnapshot++;
        });
        Recover<RecoveryCompleted>(_ => OpenLibrary());

        Available();
    }

    /// <summary>The library is open and writable: sessions are granted, committed and closed.</summary>
    private void Available()
    {
        Command<OpenSession>(m =>
        {
            if (_library?.Broken is { } broken)
            {
                // A write of another session failed meanwhile (a full disk, say) and its close has not come yet: the
                // library is opened again on its committed index (Unavailable), and when it opens (room freed since)
                // it takes this session; else the session is refused with why.
                Unavailable(broken);
                if (_unavailable is null) Self.Forward(m);
                else Sender.Tell(new CommandRejected { Reason = _unavailable });
                return;
            }
            if (m.Write && _library!.Full is not null) _library.CheckRoom(); // room again, maybe (freed, pruned): look now
            if (m.Write && _library!.Full is { } full)
            {
                // Down to its reserve: reads, prunes and the sessions open go on; a backup goes on in another library.
                Sender.Tell(new CommandRejected { Reason = full });
                return;
            }
            OpenSessionOn(_library!, m);
        });
        Command<CommitSession>(m =>
        {
            if (!_sessions.TryGetValue(m.Ticket, out var job))
            {
                Sender.Tell(new CommandRejected { Reason = $"no open session {m.Ticket} on library {_declaration.Id}: it was closed or the media agent restarted" });
                return;
            }
            CommitBatch batch;
            try
            {
                batch = _library!.Commit();
            }
            catch (IOException e)
            {
                _log.Error(e, "commit of library {0} failed", _declaration.Id);
                Sender.Tell(new CommandRejected { Reason = e.Message });
                if (_library?.Broken is { } broken) Unavailable(broken);
                return;
            }
            var sender = Sender;
            var waiting = (sender, m.Ticket);
            _persisting.Add(waiting);
            PersistBatch(batch, job, e =>
            {
                _persisting.Remove(waiting);
                Committed(batch);
                // The job hears first: a snapshot that falls due here (the whole index, sorted) does not hold up its commit.
                sender.Tell(new SessionCommitted { Ticket = m.Ticket, Chunks = batch.Count, BytesStored = (ulong)batch.Volumes.Sum(v => v.Bytes) });
                AfterPersist(e.Volumes);
                _manager?.Tell(Report());
            });
        });
        Command<CloseSession>(m =>
        {
            CloseSession(m.Ticket);
            if (_tape is not null) _manager?.Tell(Report()); // a restore's mounts count towards cleaning: the manager hears them
            if (_library?.Broken is { } broken) Unavailable(broken); // a job's append failed (a full disk, say)
        });
        Command<Reopen>(_ => { });
        Timers?.Cancel("reopen"); // null while the constructor runs
        Timers?.StartPeriodicTimer("health", new Health(), HealthEvery);
        Command<Health>(_ =>
        {
            CloseExpiredSessions();
            JournalDamaged();
            // A write that failed outside a session (a check's or a read's flush of what was buffered, on a full disk)
            // broke the library: it is opened again on its committed index, as after a session's failed write.
            if (_library?.Broken is { } broken && Idle()) Unavailable(broken);
            else if (_library?.MissingVolumes() is { Count: > 0 } missing) Unavailable(MissingVolumesReason(missing));
            else if (_library is not null)
            {
                _library.CheckRoom(); // down to its reserve, or room again (a prune, an operator)
                // The manager starts backups by the one, and retires tape cartridges with errors by the other.
                if ((_library.Full ?? "") != _reportedFull || InError(_library.VolumesInError) != _reportedInError) _manager?.Tell(Report());
                else Export(NewReport());
            }
            else Export(NewReport());
        });
        PruneCommands();
        CopyCommands();
        VerifyCommands();
        Always();
    }

    /// <summary>Closes the sessions whose ticket expired and that no channel or connection uses (<see cref="DataPlaneSessions.InUse"/>).</summary>
    private void CloseExpiredSessions()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var sessions = DataPlaneSessions.Get(Context.System);
        // The expiry is the session's ticket's (kept with the session): a look whose client node went, which no job's end
        // closes, held the library busy, its robot commands refused, until the agent restarted.
        foreach (var (ticket, expires) in _sessions.Keys
                     .Select(t => (Ticket: t, Expires: sessions.TryGet(t, out var open) && open.Ticket is { ExpiresUnixMs: > 0 } granted ? granted.ExpiresUnixMs : long.MaxValue))
                     .Where(e => e.Expires < now && !sessions.InUse(e.Ticket)).ToList())
        {
            _log.Warning("library {0}: the session of {1} is closed: its ticket expired at {2:u} and nothing uses it (its client node went away)",
                _declaration.Id, _sessions.GetValueOrDefault(ticket, "?"), DateTimeOffset.FromUnixTimeMilliseconds(expires));
            CloseSession(ticket);
        }
    }

    /// <summary>A session of <paramref name="m"/>'s job on <paramref name="library"/>, its ticket checked; answers SessionOpened or CommandRejected.</summary>
    private void OpenSessionOn(DiskLibrary library, OpenSession m)
    {
        if (Trust.JobTickets.Refusal(Trust.NodeTrust.Of(Context.System), m.Ticket, _declaration.Id, m.Job, m.Write, DateTimeOffset.UtcNow, _ended.Ended) is { } refused)
        {
            _log.Warning("library {0}: session of job {1} refused: {2} (from {3})", _declaration.Id, m.Job, refused, Sender);
            Sender.Tell(new CommandRejected { Reason = refused });
            return;
        }
        SawJournal(m.Ticket?.JournalSequence ?? 0);
        var ticket = DataPlaneSessions.Get(Context.System).Open(library, Self, _declaration.Id, m.Write, m.Ticket);
        _sessions[ticket] = m.Job;
        if (m.Write) _writeSessions.Add(ticket);
        Sender.Tell(new SessionOpened { Library = _declaration.Id, Ticket = ticket, SocketHost = _endpoint.Host, SocketPort = _endpoint.Port });
    }

    /// <summary>
    /// The library cannot take writes (it could not be opened, or a write failed): a write session is refused with
    /// the reason, and each new request tries to open it again, so that freeing space is all it takes. Reads go on
    /// when it opened but cannot write (a full disk, its journal failing): a restore from a full library is when it is
    /// needed most. It is not opened again under anything using it (read sessions, a check, a manifest scan): it opens
    /// again when the last of them ends, and a write asking meanwhile hears so.
    /// </summary>
    private void Unavailable()
    {
        Command<OpenSession>(m =>
        {
            if (Idle()) OpenLibrary();
            if (_unavailable is null) Self.Forward(m); // open again: Available takes it
            else if (!m.Write && _readable && _library is not null) OpenSessionOn(_library, m);
            else if (_prune is not null) Sender.Tell(new CommandRejected { Reason = $"{_unavailable}; a prune (job {_prune.Request.Job}) is freeing room in it: try again when it ends" });
            else if (m.Write && _readable && _library?.Broken is not null && _library.MissingVolumes().Count == 0 && !Idle() && JournalFailures.Holding(Context.System, _declaration.Id, Monotonic.Now) is null && RoomAgain())
            {
                // Room again, but reads hold the library open: the manager sends no new reading job here (IndexReport.reads)
                // so that they end and it opens again to write; those it sent already are still taken.
                if (!_writeWaiting)
                {
                    _writeWaiting = true;
                    _manager?.Tell(Report());
                }
                Sender.Tell(new CommandRejected { Reason = $"{_unavailable}; it has room again and opens to write once the sessions and jobs reading it now end ({Busy()})" });
            }
            else Sender.Tell(new CommandRejected { Reason = _unavailable, Transient = JournalHeld() });
        });
        Command<CommitSession>(_ => Sender.Tell(new CommandRejected { Reason = _unavailable ?? $"library {_declaration.Id} is not open", Transient = JournalHeld() }));
        Command<CloseSession>(m =>
        {
            var open = _sessions.ContainsKey(m.Ticket); // a late close of a session closed before (a failed write closed them all) is none
            CloseSession(m.Ticket);
            if (open && Idle()) OpenLibrary(); // the last read ended: room freed meanwhile lets it write again
        });
        Command<Reopen>(_ =>
        {
            CloseExpiredSessions(); // a look's session whose client went (nothing else closes it) would hold it for good
            if (!JournalHeld()) JournalDamaged(); // reads and checks go on while it takes no writes: what they found damaged
            if (Idle()) OpenLibrary();
        });
        PruneCommands(); // a library that cannot write can still be swept and give back its wholly dead volumes
        VerifyCommands(); // and checked, to say what is damaged or missing
        CopyResults(); // a copy that ran when it became unavailable ends (failed)
        Command<CopySnapshot>(m =>
        {
            if (FromManager(m))
                Sender.Tell(Signed(new JobFinished
                {
                    Job = m.Job, Attempt = m.Attempt, Ok = false, Outcome = JobState.Failed, Fault = JobFault.FaultLibrary, Reason = _unavailable ?? $"library {_declaration.Id} is not open",
                }));
        });
        Command<Health>(_ => { });
        Timers.Cancel("health");
        Timers.StartPeriodicTimer("reopen", new Reopen(), ReopenEvery);
        Always();
    }

    /// <summary>
    /// Why a task on the library failed, as the library said it: the outermost exception inside the task's aggregate
    /// (a broken library's "out of space at ..., N free there now: free space there ..."), not the bare OS error
    /// innermost.
    /// </summary>
    /// <summary>
    /// Work of minutes or hours on the library (a verify, a prune's mark and copies, a volume scan) on a thread of its
    /// own: on the thread pool it held the threads the actors (cluster heartbeats among them) run on.
    /// </summary>
    private static Task<T> LongRunning<T>(Func<T> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <inheritdoc cref="LongRunning{T}(Func{T})"/>
    private static Task LongRunning(Action work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static string Why(Exception e) => (e is AggregateException a ? a.Flatten().InnerExceptions[0] : e).Message;

    /// <summary>What the media agent answers whatever the state of its library.</summary>
    private void Always()
    {
        Command<HandOffStop>(_ => Context.Stop(Self)); // sharding's hand-over: after the events being written are written
        Command<ListVolumes>(_ => Sender.Tell(Volumes()));
        TapeCommands();
        Command<ListManifests>(m =>
        {
            var library = _library;
            var sender = Sender;
            // Only a client node's rebuilding a catalog for an operator, who signed it for this library (once): every
            // volume is read whole.
            var trust = Trust.NodeTrust.Of(Context.System);
            if ((Trust.MessageSignature.Refusal(trust, m, id => id.Role == Protocol.Trust.CellRole.Node && id.NodeRoles.Contains("client"), "a client node")
                 ?? (trust is null ? null : Trust.RebuildProof.Refusal(trust, m, DateTimeOffset.UtcNow, _rebuildNonces))) is { } refused)
            {
                _log.Warning("library {0}: {1} (from {2})", _declaration.Id, refused, sender);
                sender.Tell(new CommandRejected { Reason = refused });
                return;
            }
            if (library is null)
            {
                sender.Tell(new CommandRejected { Reason = _unavailable ?? $"library {_declaration.Id} is not open" });
                return;
            }
            // Off the actor's thread: an open volume is scanned whole. One scan at a time: a request that comes while
            // one runs gets that scan's answer.
            if (_manifestScan is not { IsCompleted: false } || _manifestScanOf != library)
            {
                _manifestScanOf = library;
                _manifestScan = LongRunning(() =>
                {
                    var ids = new ManifestIds { Library = _declaration.Id };
                    ids.Ids.AddRange(library.FindRecords(Engine.Volumes.RecordFlags.Manifest).Select(id => ByteString.CopyFrom(id.ToArray())));
                    ids.Referenced.AddRange(library.SnapshotsReferenced());
                    return (object)ids;
                });
            }
            _manifestScan.PipeTo(sender, failure: e => new CommandRejected { Reason = $"library {_declaration.Id}: {Why(e)}" });
        });
        Command<EndJobSessions>(m =>
        {
            if (!FromManager(m)) return;
            _ended.End(m.Job, m.Attempt, m.JobEnded);
            foreach (var ticket in _sessions.Where(kv => kv.Value == m.Job).Select(kv => kv.Key).ToList()) CloseSession(ticket);
        });
        Command<GetLibraryStatus>(_ => Sender.Tell(Report()));
        // The journal does not grow for ever (JournalTrim): every commit's index entries and every prune's were kept.
        Command<SaveSnapshotSuccess>(s =>
        {
            if (_trim.Saved(s.Metadata.SequenceNr) is not { } trim) return;
            DeleteMessages(trim.Events);
            DeleteSnapshots(new SnapshotSelectionCriteria(trim.Snapshots));
        });
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning("older events of library {0} could not be deleted: {1}", _declaration.Id, f.Cause.Message));
        Command<SaveSnapshotFailure>(f => _log.Warning("snapshot of library {0} failed: {1}", _declaration.Id, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
        Command<JobInfo>(_ => { }); // the manager's receipt of a prune's end
    }

    private void CloseSession(string ticket)
    {
        DataPlaneSessions.Get(Context.System).Close(ticket);
        _sessions.Remove(ticket);
        _writeSessions.Remove(ticket);
        PruneSessionClosed(ticket);
    }

    /// <summary>
    /// A write to the library failed: the library object may have lost appends that never reached the disk.
    /// Its sessions end (their jobs fail with the reason), and the library is opened again on the committed
    /// index this actor keeps (no journal replay): the volume is cut back to its last whole record and whole
    /// records after the last commit are found again. If it still cannot write, the agent stays Unavailable.
    /// </summary>
    private void Unavailable(string reason)
    {
        _log.Warning("library {0}: {1}; opening it again on the committed index", _declaration.Id, reason);
        FinishPrune(false, $"library {_declaration.Id} failed a write during the prune: {reason}", JobFault.FaultLibrary);
        foreach (var ticket in _sessions.Keys.ToList()) CloseSession(ticket);
        CloseLibrary();
        _unavailable = reason;
        OpenLibrary();
    }

    /// <summary>A journaled batch joins the committed index (through the library, which reads it concurrently).</summary>
    private void Committed(CommitBatch batch)
    {
        if (_library is not null) _library.Committed(batch);
        else _index.Apply(batch.Packed.Span);
    }

    /// <summary>
    /// The library closed, if open. A close that fails (a writer's last flush on a full disk) is said, not thrown: the
    /// library releases its lock and files all the same (DiskLibrary.Dispose), and the agent goes on.
    /// </summary>
    /// <param name="journalMarks">journal the damage marks found since the last look first (not when stopped: nothing journals then)</param>
    private void CloseLibrary(bool journalMarks = true)
    {
        // What reads found damaged since the last look, not lost with the library object. While its journal is held (a
        // write then would stop the agent again) they are kept in memory, given back at the next open, and saved with the
        // next snapshot of the index.
        if (journalMarks && !JournalHeld()) JournalDamaged();
        else if (journalMarks)
            foreach (var (id, at) in _library?.TakeFoundDamaged() ?? []) _damagedMarks[id] = at;
        try
        {
            _library?.Dispose();
        }
        catch (Exception e)
        {
            _log.Warning("library {0}: closing it: {1}", _declaration.Id, e.Message);
        }
        _library = null;
    }

    /// <summary>Nothing uses the library object (sessions, copies, checks, a prune, a manifest scan): it may be opened again.</summary>
    private bool Idle() => Busy() == 0 && _manifestScan is not { IsCompleted: false };

    /// <summary>Whether the library's disk (or cartridges) has twice its reserve free: opened again, it may write.</summary>
    private bool RoomAgain() => FreeBytes() >= (ulong)Math.Max(2 * _declaration.ReserveBytes(), 1L << 20);

    private void OpenLibrary()
    {
        _readable = false;
        _writeWaiting = false;
        CloseLibrary(); // one open at a time: a library that could not write is opened afresh
        _tape = null;
        try
        {
            var medium = Medium();
            _library = DiskLibrary.OpenOwned(_declaration.Path, _declaration.Id, _declaration.VolumeCapacity, _index, _volumes, medium);
            _library.RecoveredDamaged(_damagedMarks.Select(m => (m.Key, m.Value))); // writers store them again
            _tape = medium as TapeMedium;
            _library.ReserveBytes = _declaration.ReserveBytes();
            _unavailable = null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            // Stay up and say why (a bad path, no room, no permission, a damaged changer state): every session is
            // refused with it, and the next one tries to open the library again.
            _unavailable = e is InvalidDataException or Engine.Volumes.NewerFormatException ? $"library {_declaration.Id}: {e.Message}"
                : $"{DiskLibrary.DescribeWriteFailure(_declaration.Id, _declaration.Path, e)}; the library could not be opened";
            _log.Error("library {0}: {1}", _declaration.Id, _unavailable);
            Register();
            Become(Unavailable);
            _manager?.Tell(Report());
            return;
        }
        foreach (var p in _library.LastOpen.Problems) _log.Warning("library {0}: {1}", _declaration.Id, p);
        if (_library.LastOpen.RecoveredRecords > 0 || _library.LastOpen.TornBytesCut > 0)
        {
            _log.Info("library {0}: {1} whole records found after the last commit, {2} torn bytes cut", _declaration.Id, _library.LastOpen.RecoveredRecords, _library.LastOpen.TornBytesCut);
            // Its journal failed a moment ago (this agent's last incarnation stopped on it): reads only, and the commit
            // waits for the backoff (the reopen timer tries again), not tried, failed and stopped on again each message.
            if (JournalFailures.Holding(Context.System, _declaration.Id, Monotonic.Now) is { } holding)
            {
                _unavailable = holding;
                _readable = ReadableWith(_library.MissingVolumes());
                Become(Unavailable);
                Register();
                _manager?.Tell(Report());
                return;
            }
            try
            {
                var batch = _library.Commit();
                PersistBatch(batch, "recovery", e =>
                {
                    Committed(batch);
                    AfterPersist(e.Volumes);
                });
            }
            catch (IOException e)
            {
                // Still no room, say: the library refuses sessions with that reason until a reopen can commit.
                _log.Warning("library {0}: the records found again could not be committed: {1}", _declaration.Id, e.Message);
            }
        }
        var missing = _library.MissingVolumes();
        _unavailable = _library.Broken ?? (missing.Count > 0 ? MissingVolumesReason(missing) : null);
        // Could not write (its disk full): reads go on.
        _readable = _library.Broken is not null || (missing.Count > 0 && ReadableWith(missing));
        if (_unavailable is null) Become(Available);
        else Become(Unavailable);
        Register();
        _manager?.Tell(Report());
    }

    /// <summary>
    /// Where the volumes are: the library's folder (disk), or the cartridges of its simulated changer (tape), which a
    /// new tape library fills with the cartridges its HOCON names (data cartridges labelled with their barcode).
    /// </summary>
    private IVolumeMedium? Medium()
    {
        if (_declaration.Tape is not { } tape) return null;
        var changer = TapeChanger.Open(Path.Combine(_declaration.Path, "changer"), tape.Changer, tape.Timings);
        try
        {
            if (changer.State.Cartridges.Count == 0)
                foreach (var barcode in tape.Cartridges)
                {
                    if (changer.Execute(new ImportCartridge(barcode)) is { } refused) throw new InvalidDataException($"cartridge {barcode} of the HOCON: {refused}");
                    var slot = changer.State.Cartridge(barcode)!.Place.Number;
                    if (ChangerState.KindOf(barcode) == CartridgeKind.Data && changer.Execute(new LabelCartridge(slot, barcode)) is { } unlabelled)
                        throw new InvalidDataException($"cartridge {barcode} of the HOCON: {unlabelled}");
                }
            return new TapeMedium(changer, _declaration.Id);
        }
        catch
        {
            changer.Dispose();
            throw;
        }
    }

    private string MissingVolumesReason(IReadOnlyList<uint> missing) => _declaration.Tape is not null
        ? $"library {_declaration.Id}: {missing.Count} volume{(missing.Count == 1 ? " is" : "s are")} on cartridges not in the library (volume {string.Join(", ", missing.Take(5))}" +
          $"{(missing.Count > 5 ? ", ..." : "")}): import them (abk library import); restores use a copy on another library when there is one"
        : $"library {_declaration.Id}: {missing.Count} volume file{(missing.Count == 1 ? " is" : "s are")} missing from {Path.Combine(_declaration.Path, "volumes")} " +
        $"(volume {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? ", ..." : "")}): its disk is not mounted, or its data is gone — restores use a copy on another library when there is one";

    /// <summary>
    /// Whether the library serves reads with <paramref name="missing"/> volumes away: some (a file lost, a cartridge taken
    /// out): reads of the others go on (a chunk of a missing one fails, and a restore reads it from a copy); all of them
    /// (the disk not mounted): no session at all. No writes until they are back; a prune still gives back wholly dead volumes.
    /// </summary>
    private bool ReadableWith(IReadOnlyList<uint> missing) => missing.Count == 0 || missing.Count < _library!.VolumesHolding();

    /// <summary>Tells the manager this library is here (opened or not: a refused session says why).</summary>
    private void Register() => _manager?.Tell(Trust.MessageSignature.Sign(new RegisterLibrary
    {
        Id = _declaration.Id, Node = Akka.Cluster.Cluster.Get(Context.System).SelfAddress.ToString(), Kind = _declaration.Kind, Drives = _declaration.Drives,
    }, Trust.NodeTrust.Of(Context.System)));


    /// <summary>After an event of the index is journaled: the volume table it carried, and a snapshot every so often.</summary>
    private void AfterPersist(IReadOnlyCollection<VolumeRecord> volumes)
    {
        _volumes = volumes.Select(FromRecord).ToList();
        if (++_eventsSinceSnapshot < SnapshotEvery || _library is null) return;
        _eventsSinceSnapshot = 0;
        var chunks = _library.ChunkCount;
        if (chunks > _snapshotMaxChunks)
        {
            if (!_toldNoSnapshot)
                _log.Warning("library {0} indexes {1} chunks, more than a journal snapshot holds ({2}): its index is not snapshotted, so its media agent replays the journal when it starts (slower, nothing lost); new backups can go to another library to keep each one smaller",
                    _declaration.Id, chunks, _snapshotMaxChunks);
            _toldNoSnapshot = true;
            return;
        }
        var marks = _library.Damaged; // those that hold: a chunk stored again since leaves the journal's marks with the trimmed events
        _damagedMarks.Clear();
        foreach (var (id, at) in marks) _damagedMarks[id] = at;
        var snapshot = new MediaSnapshot { Index = UnsafeByteOperations.UnsafeWrap(_library.IndexBytes()), TrimmedUpTo = _trim.TrimmedUpTo, Damaged = PackMarks(marks) }; // a fresh array, wrapped: no copy
        snapshot.Volumes.AddRange(volumes);
        SaveSnapshot(snapshot);
    }

    /// <summary>Whether the library takes no writes for a while because its journal failed (a database restarted, say): a job is tried again later.</summary>
    private bool JournalHeld() => JournalFailures.Holding(Context.System, _declaration.Id, Monotonic.Now) is not null;

    /// <summary>The commits whose index entries are being journaled, and who waits for each: told if the journal fails them.</summary>
    private readonly List<(IActorRef Sender, string Ticket)> _persisting = [];

    /// <summary>
    /// The journal (the node's database) did not take an event: the agent stops, as Akka.Persistence has it (it starts
    /// again on the next message, and finds the records since its last journaled commit again in its volumes). The
    /// commits waiting for it hear why now, not after their timeout as "did not answer: is its node up?".
    /// </summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        var reason = $"library {_declaration.Id}: the media agent's journal (its node's database) could not be written ({cause.Message}): free space " +
                     "where that node keeps its database, or check the database, and run the job again (what it wrote is found again in the volumes)";
        JournalFailures.Record(Context.System, _declaration.Id, cause.Message, Monotonic.Now);
        Metrics.CellMetrics.JournalFailures.WithLabels("media:" + _declaration.Id, "persist").Inc();
        _log.Error(cause, "library {0}: {1}", _declaration.Id, reason);
        foreach (var (sender, _) in _persisting) sender.Tell(new CommandRejected { Reason = reason, Transient = true }); // its job is tried again later
        _persisting.Clear();
        StartAgainAfterHold();
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <summary>
    /// The journal could not be read as the agent started (its database down a moment, a replay past its timeout): held
    /// and counted as a write failure is, and started again after the hold, not left down until a job comes (the queue
    /// sends none to a library it was told is unavailable, and the library's series would read as gone, not 0).
    /// </summary>
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        JournalFailures.Record(Context.System, _declaration.Id, reason.Message, Monotonic.Now);
        Metrics.CellMetrics.JournalFailures.WithLabels("media:" + _declaration.Id, "recovery").Inc();
        _log.Error(reason, "library {0}: the media agent's journal (its node's database) could not be read as it started ({1}): it starts again after a while; check that database",
            _declaration.Id, reason.Message);
        StartAgainAfterHold();
        base.OnRecoveryFailure(reason, message);
    }

    /// <summary>Stopped, the agent has no timer: once its journal's hold has passed, a look at its status starts it again (it tries its journal then).</summary>
    private void StartAgainAfterHold()
    {
        try
        {
            Context.System.Scheduler.ScheduleTellOnce(JournalFailures.HeldFor(Context.System, _declaration.Id, Monotonic.Now) + TimeSpan.FromSeconds(1),
                MediaRegion, new GetLibraryStatus { Library = _declaration.Id }, ActorRefs.NoSender);
        }
        catch (Exception e) // no sharding here (a test's agent): ClusterSharding says so with an exception of its own
        {
            _log.Warning("library {0}: no media region to start the agent again after its journal's hold ({1}): the next job or look does", _declaration.Id, e.Message);
        }
    }

    /// <summary>
    /// A commit's batch journaled as events of at most <see cref="_entriesPerEvent"/> entries each (48 MB at the default),
    /// all in one atomic write; <paramref name="persisted"/> runs once, when the last is persisted. One event of a commit
    /// of 21 million new chunks (a first full backup of a big file server) would pass the 1 GB a value may hold in
    /// SQLite and PostgreSQL, and that commit could never be journaled.
    /// </summary>
    private void PersistBatch(CommitBatch batch, string job, Action<IndexBatchCommitted> persisted)
    {
        var events = new List<IndexBatchCommitted>();
        var step = (long)_entriesPerEvent * ChunkIndex.EntrySize;
        for (long at = 0; at == 0 || at < batch.Packed.Length; at += step) // long: near 2 GB a step past the end would wrap
        {
            // The batch's own bytes, not a copy (ProtoSerializer copies each part once more).
            var part = batch.Packed.Slice((int)at, (int)Math.Min(step, batch.Packed.Length - at));
            var e = new IndexBatchCommitted { Entries = UnsafeByteOperations.UnsafeWrap(part), Job = job };
            e.Volumes.AddRange(batch.Volumes.Select(ToRecord));
            events.Add(e);
        }
        var left = events.Count;
        PersistAll(events, e =>
        {
            if (--left > 0) return;
            JournalFailures.Cleared(Context.System, _declaration.Id); // the journal takes writes again
            persisted(e);
        });
    }

    /// <summary>What the manager last heard of the library's reserve (IndexReport.full).</summary>
    private string _reportedFull = "";
    private string _reportedInError = "";

    /// <summary>The volumes in error as a report names them (at most 256), to compare with what the manager last heard.</summary>
    private static string InError(IEnumerable<uint> volumes) => string.Join(",", volumes.Take(256));

    private IndexReport Report()
    {
        var report = NewReport();
        _reportedFull = report.Full;
        _reportedInError = InError(report.VolumesInError);
        Export(report);
        return Trust.MessageSignature.Sign(report, Trust.NodeTrust.Of(Context.System));
    }

    /// <summary>The library's series (each report, and every health tick: free space another program takes shows within seconds).</summary>
    private void Export(IndexReport report)
    {
        var id = _declaration.Id;
        if (FreeBytesOrNull() is { } free) Metrics.CellMetrics.LibraryFree.WithLabels(id).Set(free); // unknown: the last figure stays
        if (_library is not null) Metrics.CellMetrics.LibraryStored.WithLabels(id).Set(report.BytesStored); // not opened: the last figure stays
        Metrics.CellMetrics.LibraryAvailable.WithLabels(id).Set(_unavailable is null && _library is not null ? 1 : 0);
        Metrics.CellMetrics.LibraryFull.WithLabels(id).Set(report.Full != "" ? 1 : 0);
        Metrics.CellMetrics.LibraryVolumesInError.WithLabels(id).Set(_library?.VolumesInError.Count ?? 0);
        Metrics.CellMetrics.LibraryDrivesDueCleaning.WithLabels(id).Set(report.DrivesDueCleaning.Count);
    }

    private IndexReport NewReport() => new()
    {
        Library = _declaration.Id, UnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        Chunks = (ulong)(_library?.ChunkCount ?? _index.Count),
        BytesStored = (ulong)(_library?.StoredBytes ?? 0),
        Volumes = (_library?.Volumes ?? _volumes).Count(v => v.State != VolumeState.Recycle),
        ActiveSessions = _sessions.Count,
        FreeBytes = FreeBytes(),
        Node = Akka.Cluster.Cluster.Get(Context.System).SelfAddress.ToString(),
        Unavailable = _unavailable ?? "",
        Reads = _unavailable is not null && _readable && !_writeWaiting && _library is not null, // Unavailable takes read sessions
        Full = _library?.Full ?? "",
        PruneJob = _prune?.Request.Job ?? "",
        Jobs = { _copies.Keys.Concat(_checks.Keys).Concat(_prune is null ? [] : new[] { _prune.Request.Job }) },
        DrivesDueCleaning = { DrivesDueCleaning() },
        CleaningProblem = DrivesDueCleaning().Any() ? _cleaningProblem ?? "" : "", // cleaned since (by an operator, say): no problem left
        VolumesInError = { (_library?.VolumesInError ?? []).Take(256) }, // as InError counts them
    };

    private ulong FreeBytes() => FreeBytesOrNull() ?? 0;

    /// <summary>Free space for the library; null when it cannot be known (the path unreadable, a tape library not open).</summary>
    private ulong? FreeBytesOrNull()
    {
        if (_library?.RoomLeft is { } room) return (ulong)room; // a tape library: what is left on its cartridges
        if (_declaration.Kind == "tape") return null; // not open: the host disk's free space is no cartridge's
        try
        {
            return (ulong)new DriveInfo(Path.GetFullPath(_declaration.Path)).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private VolumeList Volumes()
    {
        var list = new VolumeList { Library = _declaration.Id };
        foreach (var v in _library?.Volumes ?? _volumes)
            list.Volumes.Add(new VolumeInfo { Number = v.Number, Label = v.Label, State = v.State.ToString(), Bytes = (ulong)v.Bytes, Records = v.Records, Error = v.Error ?? "" });
        return list;
    }

    private static VolumeRecord ToRecord(VolumeEntry v) => new() { Number = v.Number, Label = v.Label, State = v.State.ToString(), Bytes = v.Bytes, Records = v.Records, Error = v.Error ?? "", Retire = v.Retire };

    private static VolumeEntry FromRecord(VolumeRecord r) => new()
    {
        Number = r.Number, Label = r.Label, State = Enum.TryParse<VolumeState>(r.State, out var s) ? s : VolumeState.Error,
        Bytes = r.Bytes, Records = r.Records, Error = r.Error == "" ? null : r.Error, Retire = r.Retire,
    };

    protected override void PostStop()
    {
        // Stopped on a journal failure (Akka.Persistence stops the agent): the jobs in place whose sessions end are tried again later.
        var journal = JournalFailures.Holding(Context.System, _declaration.Id, Monotonic.Now);
        foreach (var ticket in _sessions.Keys) DataPlaneSessions.Get(Context.System).Close(ticket, journal);
        CloseLibrary(journalMarks: false);
        // No figures of a library this node no longer serves; one stopped on its journal is this node's still, and not
        // available (its series gone, an alert on available == 0 would stay silent just when it broke).
        if (journal is not null) Metrics.CellMetrics.LibraryAvailable.WithLabels(_declaration.Id).Set(0);
        else foreach (var gauge in Metrics.CellMetrics.LibrarySeries) gauge.RemoveLabelled(_declaration.Id);
        base.PostStop();
    }
}
