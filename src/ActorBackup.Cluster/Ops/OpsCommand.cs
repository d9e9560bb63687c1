using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// One operator command, from arrival to its last answer: a child of the OpsActor that lives as long as the
/// command. Request-and-answer commands ask the manager, a media agent or the cluster and answer once;
/// `job watch` streams progress until the job ends; `ls` streams a client node's pages. A command the shell
/// gave up on (it hung up) stops its handler.
/// </summary>
public sealed class OpsCommand : ReceiveActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>What every command may reach on this node.</summary>
    /// <param name="AskTimeout">how long a command waits for the manager, a media agent or a client node (default 20 s)</param>
    public sealed record Cell(IActorRef Manager, IActorRef Media, IActorRef? Client, string LocalClient, TimeSpan AskTimeout = default)
    {
        public TimeSpan AskTimeout { get; } = AskTimeout == default ? TimeSpan.FromSeconds(20) : AskTimeout;
        /// <summary>This node's client holds the cell key (every client's keys), not just its own client's keyring.</summary>
        public bool LocalReadsEveryClient { get; init; } = true;
        /// <summary>How often a watch is given to the manager again (<see cref="DefaultWatchEvery"/>).</summary>
        public TimeSpan WatchEvery { get; init; } = DefaultWatchEvery;
    }

    private sealed record Run;
    private sealed record WatchAgain;
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromMilliseconds(250);
    /// <summary>
    /// How often a watch is given to the manager again: the manager that took it may have stopped (its node gone, the
    /// singleton moved), and its successor's job actor knows no watcher; a watcher given again is the same one.
    /// </summary>
    public static readonly TimeSpan DefaultWatchEvery = TimeSpan.FromSeconds(30);
    private readonly Cell _cell;
    private readonly OpsCall _call;
    private CancellationTokenRegistration _hangUp;
    private DateTime _lastProgress = DateTime.MinValue;
    /// <summary>A watched job's state as last passed on (not ended yet).</summary>
    private (JobState, string, int) _shown;

    public static Props Props(Cell cell, OpsCall call) => Akka.Actor.Props.Create(() => new OpsCommand(cell, call));

    public OpsCommand(Cell cell, OpsCall call)
    {
        _cell = cell;
        _call = call;
        ReceiveAsync<Run>(async _ =>
        {
            IMessage? answer;
            try
            {
                answer = OpsPermissions.Refusal(call.Caller, call.Command) is { } refused ? new CommandRejected { Reason = refused }
                    : Narrow(call.Caller, call.Command) is { } narrowed ? new CommandRejected { Reason = narrowed }
                    : Filter(await Handle(call.Command));
            }
            catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidOperationException or TimeoutException)
            {
                answer = new CommandRejected { Reason = e.Message };
            }
            if (answer is not null) Finish(answer);
        });
    }

    protected override void PreStart()
    {
        var self = Self;
        _hangUp = _call.Cancel.Register(() => self.Tell(PoisonPill.Instance));
        self.Tell(new Run());
    }

    protected override void PostStop()
    {
        _hangUp.Dispose();
        _call.Reply.TryComplete();
        _stopped?.Invoke();
    }

    /// <summary>What a command that stops before its end says to whom works for it (a client node listing for `ls`).</summary>
    private Action? _stopped;

    private void Finish(IMessage answer)
    {
        _call.Reply.TryWrite(new OpsAnswer(answer, More: false));
        Context.Stop(Self);
    }

    private void More(IMessage answer, Action? written = null) => _call.Reply.TryWrite(new OpsAnswer(answer, More: true, written));

    private TimeSpan AskTimeout => _cell.AskTimeout;

    /// <summary>How long `abk catalog rebuild` waits for the client node's answer.</summary>
    public static readonly TimeSpan RebuildTimeout = TimeSpan.FromMinutes(30);

    /// <summary>What <paramref name="target"/> answers, a refusal included; TimeoutException (saying what to check) when nothing comes.</summary>
    private async Task<object> AskAny(IActorRef target, object message, string who, TimeSpan? timeout = null)
    {
        var within = timeout ?? AskTimeout;
        try
        {
            return await target.Ask<object>(message, within);
        }
        catch (AskTimeoutException)
        {
            // The manager stopped by a failure of its journal (the catalog's database) starts again by itself, 1 s after
            // at first and up to 30 s between tries while the failure lasts (ManagerActor.Supervised).
            throw new TimeoutException(ReferenceEquals(target, _cell.Manager)
                ? $"the manager did not answer in {within.TotalSeconds:F0} s: its node is down or unreachable (see 'abk cluster show'), " +
                  "or it is starting again after a failure of its journal, the catalog's database (its node's log says so): check that database and try again"
                : $"{who} did not answer in {within.TotalSeconds:F0} s: is its node up? see 'abk cluster show' and 'abk library list'");
        }
    }

    /// <summary>A page of the manager's snapshot list, for the caller (Manager/SnapshotPages).</summary>
    private Task<object> Raw(ListSnapshots page) => AskAny(_cell.Manager, ForCaller(page), "the manager");

    private async Task<T> Ask<T>(IActorRef target, object message, string who, TimeSpan? timeout = null) where T : class
    {
        object reply;
        try
        {
            reply = await AskAny(target, message, who, timeout);
        }
        catch (TimeoutException e) when (typeof(T) == typeof(JobAccepted))
        {
            // A slow journal answers late, not never: the job may be queued a moment after the ask gave up.
            throw new TimeoutException(e.Message + "; the job asked for may still be queued: look with 'abk job list' before asking again", e);
        }
        return reply switch
        {
            T t => t,
            CommandRejected r => throw new InvalidOperationException(r.Reason),
            _ => throw new InvalidOperationException($"{who} answered {reply.GetType().Name}"),
        };
    }

    private Task<T> AskManager<T>(IMessage message) where T : class =>
        Ask<T>(_cell.Manager, ForCaller(message), "the manager");

    /// <summary>
    /// A look at the manager's catalog goes with the caller's signed command (CatalogLook): the manager answers it as
    /// the caller may see (a client host: its own client's), never to this node in its own name.
    /// </summary>
    private object ForCaller(IMessage message) => OperatorCommands.For(_call.Proof, message);

    /// <summary>
    /// Narrows a search to what its caller may see, or says why it may not: a client host's find is of its own client.
    /// The manager narrows looks at its catalog (Manager/JobCallers.NarrowLook) and job commands (JobCallers.Narrow)
    /// itself, by the caller's signature that goes with them.
    /// </summary>
    private static string? Narrow(CellIdentity caller, IMessage command)
    {
        if (caller.Role != CellRole.Client || command is not FindFiles f) return null;
        if (OpsPermissions.NotOwn(caller, f.Client) is { } refused) return refused;
        f.Client = caller.Client;
        return null;
    }

    /// <summary>Takes out of an answer what the caller may not see: a client host sees its own client only (the manager narrows the catalog's answers).</summary>
    private IMessage? Filter(IMessage? answer)
    {
        if (_call.Caller.Role != CellRole.Client || answer is not ClientList clients) return answer;
        var own = new ClientList();
        own.Clients.AddRange(clients.Clients.Where(c => c.Id == _call.Caller.Client));
        return own;
    }

    /// <summary>The answer, or null when the command streams its answers from now on (Become).</summary>
    private async Task<IMessage?> Handle(IMessage command)
    {
        // An operator-only or a job command goes to the manager as the shell signed it: the manager takes it from
        // nobody else (not from this node in the caller's name) and decides itself what the signer may do
        // (Manager/JobCallers). The manager reads a definitions file itself.
        if (_call is { Proof: { } proof } && OperatorCommands.Signed.Contains(command.Descriptor.Name))
            return await AskManager<IMessage>(proof);
        switch (command)
        {
            case GetClusterState:
                var state = ClusterState();
                // A client host's shell on another host's node backs up its own client (the manager fills it in).
                state.LocalClient = _call.Caller.Role == CellRole.Client && _call.Caller.Client != _cell.LocalClient ? "" : _cell.LocalClient;
                return state;
            case ChangeMember m:
                return ChangeMember(m);
            case GetShardStats:
                return await ShardStats();
            case ListSnapshots l:
                // Page by page from the manager, and to the shell in pages too (it puts them together): a catalog of
                // tens of thousands of snapshots fits no one message.
                var listed = await Manager.SnapshotPages.All(l, Raw);
                if (listed is not SnapshotList all) return (IMessage)listed; // the manager's refusal
                // A shell that asks for no pages (one older than paging) gets the list whole: one it cannot take fails
                // loudly at the frame's bound instead of showing its last page as if it were all.
                if (l.Take == 0) return all;
                var size = (int)Manager.SnapshotPages.PageSize;
                for (var at = 0; at + size < all.Snapshots.Count; at += size)
                    More(new SnapshotList { Snapshots = { all.Snapshots.Skip(at).Take(size) }, More = true });
                return new SnapshotList { Snapshots = { all.Snapshots.Skip(Math.Max(0, (all.Snapshots.Count - 1) / size * size)) } };
            case ListClients or ListLibraries or ListJobs or GetJob or CancelJob or SetJobPriority or DeleteSnapshots or UndeleteSnapshots or ClearSuspect or ListAudit or HoldSnapshots or GetSnapshot
                or ListBackupSets or GetBackupSet or DefineBackupSet or RemoveBackupSet or EnableBackupSet or DeferBackupSet
                or ListPolicies or GetPolicy or DefinePolicy or RemovePolicy or ListRevocations:
                return await AskManager<IMessage>(command);
            case ListVolumes v:
                await EnsureLibrary(v.Library);
                return await Ask<VolumeList>(_cell.Media, v, $"the media agent of library {v.Library}");
            case ListDrives drives:
                // The manager says which job holds each drive; a tape library's media agent, what is in it and its counters.
                var answer = await AskManager<IMessage>(drives);
                if (answer is DriveList list)
                    foreach (var tape in list.Drives.Where(d => d.Kind == "tape").GroupBy(d => d.Library))
                    {
                        LibraryInventory? inventory;
                        try
                        {
                            inventory = await Ask<IMessage>(_cell.Media, new GetInventory { Library = tape.Key }, $"the media agent of library {tape.Key}") as LibraryInventory;
                        }
                        catch (TimeoutException)
                        {
                            continue; // its node is away: the list still says which jobs hold its drives
                        }
                        // A job mounts and writes its cartridges in the drive the manager gave it (its ticket names it), but
                        // reads a cartridge where it already sits: the media agent says which job uses each drive now. A
                        // job the queue gave a drive it has not used yet stays on it; one using another drive shows there.
                        var running = tape.Where(d => d.Job != "").GroupBy(d => d.Job).ToDictionary(g => g.Key, g => g.First().Clone());
                        var inUse = inventory?.Drives.Select(x => x.Job).Where(j => j != "").ToHashSet() ?? [];
                        foreach (var d in tape)
                            if (inventory?.Drives.FirstOrDefault(x => x.Number == d.Number) is { } changer)
                            {
                                d.Cartridge = changer.Cartridge;
                                d.CleaningDue = changer.CleaningDue;
                                d.Mounts = changer.Mounts;
                                d.Hours = changer.Hours;
                                var user = changer.Job != "" ? running.GetValueOrDefault(changer.Job) : null;
                                (d.Job, d.JobKind, d.Client, d.SinceUnixMs, d.State) = user is not null ? (user.Job, user.JobKind, user.Client, user.SinceUnixMs, user.State)
                                    : changer.Job != "" ? (changer.Job, JobKind.Unspecified, "", 0L, "busy") // a job of another library reading here (a span, a fallback)
                                    : d.Job != "" && !inUse.Contains(d.Job) ? (d.Job, d.JobKind, d.Client, d.SinceUnixMs, d.State) // held, not used yet
                                    : ("", JobKind.Unspecified, "", 0L, "idle");
                                if (changer.Activity != "") d.State = changer.Activity; // mounting, unmounting, cleaning
                                if (changer.Failed != "") d.State = "failed";
                            }
                    }
                return answer;
            case GetInventory inventory:
                await EnsureLibrary(inventory.Library);
                return await Ask<IMessage>(_cell.Media, inventory, $"the media agent of library {inventory.Library}");
            case StartBackup b:
                if (b.Client == "") b.Client = _cell.LocalClient;
                b.Origin = JobOrigin.Operator;
                return await AskManager<JobAccepted>(b);
            case ApplyFile f:
                var apply = Definitions.DefinitionsFile.ToApply(f);
                return apply is ApplyDefinitions definitions ? await AskManager<ApplyResult>(definitions) : apply;
            case StartVerify v:
                v.Origin = JobOrigin.Operator;
                return await AskManager<JobAccepted>(v);
            case RebuildCatalog rc:
                if (_cell.Client is null)
                    return new CommandRejected
                    {
                        Reason = "this node has no client role, so it opens no manifest: run abk against a client node that holds the cell key (master.json in its key " +
                                 "folder), or give the node holding it the client role (actorbackup.roles; its certificate is issued again at its start where ca.key is)",
                    };
                if (!_cell.LocalReadsEveryClient)
                    return new CommandRejected
                    {
                        Reason = $"this node holds client {_cell.LocalClient}'s keyring only, which checks none of the other clients' manifests: " +
                                 "run abk catalog rebuild against a node that holds the cell key (the cell's first node; one without the client role " +
                                 "needs it added: actorbackup.roles)",
                    };
                await EnsureLibrary(rc.Library);
                rc.Caller = _call.Proof; // the client rebuilds for the operator who signed it
                // It reads every manifest of the library (the client waits up to 10 minutes for their list alone): not
                // the few seconds of a command's answer.
                return await Ask<CatalogRebuilt>(_cell.Client, rc, "this node's client", RebuildTimeout);
            case StartCopy cp:
                cp.Origin = JobOrigin.Operator;
                return await AskManager<JobAccepted>(cp);
            case StartPrune p:
                p.Origin = JobOrigin.Operator;
                return await AskManager<JobAccepted>(p);
            case StartRestore or RunBackupSet:
                return await AskManager<JobAccepted>(command);
            case WatchJob w:
                _cell.Manager.Tell(ForCaller(w));
                Become(() => Watching(w));
                return null;
            case ListSnapshotTree ls:
                await ListTree(ls);
                return null;
            case FindFiles f:
                return await Find(f);
            default:
                return new CommandRejected { Reason = $"{command.Descriptor.Name} is not an operator command: is abk newer than this node?" };
        }
    }

    private void Watching(WatchJob w)
    {
        Timers.StartPeriodicTimer("watch", new WatchAgain(), _cell.WatchEvery);
        Receive<WatchAgain>(_ =>
        {
            _cell.Manager.Tell(ForCaller(w)); // the answer: progress, or the job as recorded (taken when it has ended)
        });
        Receive<JobProgress>(p =>
        {
            if (DateTime.UtcNow - _lastProgress < ProgressEvery) return;
            _lastProgress = DateTime.UtcNow;
            More(p);
        });
        Receive<JobInfo>(j =>
        {
            if (Manager.ManagerState.IsFinal(j.State)) Finish(j);
            else if ((j.State, j.Reason, j.Attempt) != _shown)
            {
                // Waiting, and why (its client offline, its library's drives busy, a retry's backoff): passed on when it changes.
                _shown = (j.State, j.Reason, j.Attempt);
                More(j);
            }
        });
        // A watch refused (no such job, not the caller's) is the answer, whichever sending it answers: the shell signs
        // a new watch every 50 minutes, so one is never given again past the hour the manager takes looks within.
        Receive<CommandRejected>(Finish);
    }

    /// <summary>
    /// Reading a snapshot's trees needs its client's keys, which only client nodes hold: this node's own client when
    /// it holds them (the cell key, or it is <paramref name="preferred"/>), else <paramref name="preferred"/>'s node,
    /// else this node's client (which says whose keys it lacks), else any connected client node.
    /// </summary>
    private async Task<ICanTell> ClientNode(string preferred, string what)
    {
        if (_cell.Client is { } local && (_cell.LocalReadsEveryClient || preferred == "" || preferred == _cell.LocalClient)) return local;
        var clients = await AskManager<ClientList>(new ListClients());
        var connected = clients.Clients.Where(c => c.Reachable && c.Address.Contains("/user/", StringComparison.Ordinal)).ToList();
        if (_cell.Client is { } fallback && connected.All(c => c.Id != preferred)) return fallback;
        var target = connected.OrderByDescending(c => c.Id == preferred).FirstOrDefault()
                     ?? throw new InvalidOperationException($"no client node is connected, and {what} needs keys that only client nodes hold: start one");
        return Context.ActorSelection(target.Address);
    }

    /// <summary>A page of a listing written to the shell: its client node may send one more. (The last pages' may come after the command ended.)</summary>
    private sealed record PageWritten : Akka.Event.IDeadLetterSuppression;

    /// <summary>How many pages of a listing may wait to be written to the shell (ListTree.window).</summary>
    internal const int ListingWindow = 8;

    /// <summary>
    /// `abk ls`: a client node lists the snapshot page by page, paced by the shell: it sends a page while fewer than
    /// <see cref="ListingWindow"/> wait to be written to the shell's connection (a shell whose output is paged, or read
    /// slowly, holds the listing back instead of making this node hold all of it).
    /// </summary>
    private async Task ListTree(ListSnapshotTree ls)
    {
        var detail = await AskManager<SnapshotDetail>(new GetSnapshot { Snapshot = ls.Snapshot });
        var listing = Guid.NewGuid().ToString("N");
        var request = new ListTree { Manifest = detail.Manifest, Path = ls.Path, Snapshot = detail.Info.Id, Caller = _call.Proof, Listing = listing, Window = ListingWindow };
        // The pages taken go back to the node asked (the pages themselves come from its listing's thread, no actor).
        var lister = await ClientNode(detail.Info.Client, "reading a snapshot's trees");
        lister.Tell(request, Self);
        SetReceiveTimeout(AskTimeout);
        var self = Self;
        var unwritten = 0;
        // Stopped before the last page (the shell went away, or its connection's write failed or timed out): the client
        // node stops listing at once instead of waiting for pages to be taken.
        _stopped = () => lister.Tell(new TreePagesTaken { Listing = listing, Done = true }, self);
        Become(() =>
        {
            Receive<SnapshotTree>(page =>
            {
                if (!page.More)
                {
                    _stopped = null;
                    Finish(page);
                    return;
                }
                // A client node before pacing sends every page at once and knows no TreePagesTaken.
                if (!page.Paced)
                {
                    _stopped = null;
                    More(page);
                    return;
                }
                unwritten++;
                More(page, () => self.Tell(new PageWritten()));
            });
            Receive<PageWritten>(_ =>
            {
                unwritten--;
                lister.Tell(new TreePagesTaken { Listing = listing, Pages = 1 }, Self);
            });
            Receive<CommandRejected>(r =>
            {
                _stopped = null;
                Finish(r);
            });
            // Pages waiting for the shell: the shell is the one that is slow (its connection's write timeout ends the
            // call if it stops reading, and this command with it), not the client node.
            Receive<ReceiveTimeout>(_ =>
            {
                if (unwritten == 0) Finish(new CommandRejected { Reason = $"the client node listing snapshot {detail.Info.Id} did not answer in {AskTimeout.TotalSeconds:F0} s" });
            });
        });
    }

    /// <summary>
    /// `abk find`: the catalog's snapshots (of a client, since a time) searched by a client node from its file
    /// indexes, which it builds first where it lacks them (telling FindProgress meanwhile).
    /// </summary>
    private async Task<IMessage?> Find(FindFiles f)
    {
        var listed = await Manager.SnapshotPages.All(new ListSnapshots(), Raw);
        if (listed is not SnapshotList catalog) return (IMessage)listed; // the manager's refusal
        if (f.Client != "" && catalog.Snapshots.All(s => s.Client != f.Client))
            return new CommandRejected
            {
                Reason = _call.Caller.Role == CellRole.Client ? $"client {f.Client} has no snapshot yet" // other clients' names are not its business
                    : $"the catalog has no snapshot of client '{f.Client}': clients with snapshots are " +
                      (catalog.Snapshots.Count == 0 ? "none" : string.Join(", ", catalog.Snapshots.Select(s => s.Client).Distinct().Order())),
            };
        var request = new SearchFileIndex { Query = f, Live = { catalog.Snapshots.Select(s => s.Id) }, Caller = _call.Proof };
        request.Snapshots.AddRange(catalog.Snapshots.Where(s => (f.Client == "" || s.Client == f.Client) && s.FinishedUnixMs >= f.SinceUnixMs)
            .Select(s => new IndexedSnapshot { Id = s.Id, Client = s.Client, FinishedUnixMs = s.FinishedUnixMs, Libraries = { s.Copies.Prepend(s.Library) } }));
        (await ClientNode(f.Client, "searching snapshots' files")).Tell(request, Self);
        SetReceiveTimeout(AskTimeout);
        Become(() =>
        {
            Receive<FindProgress>(p => More(p));
            Receive<FilesFound>(Finish);
            Receive<CommandRejected>(Finish);
            Receive<ReceiveTimeout>(_ => Finish(new CommandRejected { Reason = $"the client node searching the file indexes did not answer in {AskTimeout.TotalSeconds:F0} s" }));
        });
        return null;
    }

    private async Task EnsureLibrary(string library)
    {
        var libraries = await AskManager<LibraryList>(new ListLibraries());
        if (libraries.Libraries.All(l => l.Id != library))
            throw new KeyNotFoundException($"unknown library '{library}': known are {(libraries.Libraries.Count == 0 ? "none yet (start a node with the media role)" : string.Join(", ", libraries.Libraries.Select(l => l.Id)))}");
    }

    private static ClusterState ClusterState()
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var state = cluster.State;
        var managerNode = Hosting.ManagerNode.Of(state);
        var answer = new ClusterState { Leader = state.Leader?.ToString() ?? "" };
        answer.Members.AddRange(state.Members.OrderBy(m => m.Address.ToString()).Select(m => new ClusterMember
        {
            Address = m.Address.ToString(), Status = m.Status.ToString().ToLowerInvariant(), Reachable = !state.Unreachable.Contains(m),
            Roles = { m.Roles.Order() }, Manager = managerNode is not null && m.Address == managerNode.Address, Self = m.Address == cluster.SelfAddress,
            Version = m.AppVersion.ToString(),
        }));
        return answer;
    }

    private static MemberChangeRequested ChangeMember(ChangeMember m)
    {
        Address address;
        try
        {
            address = Address.Parse(Trust.RemoteAddresses.Secure(m.Address));
        }
        catch (UriFormatException)
        {
            throw new InvalidOperationException($"'{m.Address}' is not a member address: use one as 'abk cluster show' prints it");
        }
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        if (cluster.State.Members.FirstOrDefault(x => x.Address == address) is not { } member) throw new InvalidOperationException($"{address} is not a member: see 'abk cluster show'");
        // Downing a member that answers stops it (exit 75) with whatever it runs: meant for one that is gone.
        if (m.Change == MemberChange.Down && !m.Force && !cluster.State.Unreachable.Contains(member))
            throw new InvalidOperationException($"{address} is reachable, as this node sees it: down is for a member that is gone. One that just stopped is " +
                                                "seen unreachable within about 10 s (try again then, or add --force if you are sure it is gone); a member that " +
                                                $"runs is taken out gracefully with 'abk cluster leave {address}' (--force downs it anyway: it stops, what it runs is interrupted)");
        switch (m.Change)
        {
            case MemberChange.Leave: cluster.Leave(address); break;
            case MemberChange.Down: cluster.Down(address); break;
            default: throw new InvalidOperationException($"unknown member change {m.Change}");
        }
        return new MemberChangeRequested { Address = address.ToString(), Change = m.Change };
    }

    private async Task<ShardStats> ShardStats()
    {
        ClusterShardingStats stats;
        try
        {
            stats = await ClusterSharding.Get(Context.System).ShardRegion("media")
                .Ask<ClusterShardingStats>(new GetClusterShardingStats(TimeSpan.FromSeconds(5)), AskTimeout);
        }
        catch (AskTimeoutException)
        {
            throw new TimeoutException("the media shard regions did not answer in time: see 'abk cluster show'");
        }
        var answer = new ShardStats();
        foreach (var (node, region) in stats.Regions)
        {
            var r = new RegionShards { Node = node.ToString() };
            foreach (var (shard, entities) in region.Stats) r.Shards[shard] = entities;
            answer.Regions.Add(r);
        }
        return answer;
    }
}
