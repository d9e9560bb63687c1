using ActorBackup.Cluster.DataPlane;
using ActorBackup.Engine.Chunks;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// The operator endpoint of every node (/user/ops, registered with the ClusterClientReceptionist). Maps a
/// shell command line to cluster, sharding, manager and media messages and answers with text or JSON:
/// any number of OpsOutput (live progress), then one OpsReply with the exit code.
/// </summary>
public sealed class OpsActor : ReceiveActor
{
    public static readonly string[] Commands =
    [
        "cluster show", "cluster leave", "cluster down", "shard stats", "client list", "library list", "volume list",
        "backup", "job list", "job show", "job watch", "job cancel", "snapshot list", "ls", "restore", "help",
    ];

    public const string Help = """
        abk cluster show                      members, roles, status, reachability, manager location
        abk cluster leave ADDRESS             ask a member to leave the cell
        abk cluster down ADDRESS              mark an unreachable member down
        abk shard stats                       media agents (libraries) per node
        abk client list | library list | volume list LIBRARY
        abk backup [--client HOST] [--level full|incremental|differential] [--library LIBRARY]
                   [--exclude GLOB]... [--one-file-system] [--no-wait] PATH...
        abk job list | job show JOB | job watch JOB | job cancel JOB
        abk snapshot list [--client HOST]
        abk ls SNAPSHOT [PATH]
        abk restore SNAPSHOT [PATH...] --to DIR [--client HOST] [--no-wait]
        every command: --json, --node HOST:PORT (default 127.0.0.1:4053)
        """;

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(20);
    private readonly IActorRef _manager;
    private readonly IActorRef _media;
    private readonly CellKeys? _keys;
    private readonly string _localClient;

    /// <param name="localClient">This node's client id when it has the client role: a backup without --client backs up this host.</param>
    public static Props Props(IActorRef manager, IActorRef media, CellKeys? keys, string localClient = "") =>
        Akka.Actor.Props.Create(() => new OpsActor(manager, media, keys, localClient));

    public OpsActor(IActorRef manager, IActorRef media, CellKeys? keys, string localClient)
    {
        _manager = manager;
        _media = media;
        _keys = keys;
        _localClient = localClient;
        ReceiveAsync<OpsRequest>(async request =>
        {
            var sender = Sender;
            OpsReply? reply;
            try
            {
                reply = await Handle(request, sender);
            }
            catch (UsageException e)
            {
                reply = Fail(2, $"{e.Message}\nrun 'abk help' for the commands");
            }
            catch (AskTimeoutException)
            {
                reply = Fail(1, "the manager did not answer in time: is a node with the manager role up? try 'abk cluster show'");
            }
            catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidOperationException)
            {
                reply = Fail(1, e.Message);
            }
            if (reply is not null) sender.Tell(reply);
        });
    }

    private static OpsReply Ok(string text) => new() { ExitCode = 0, Text = text };
    private static OpsReply Fail(int code, string error) => new() { ExitCode = code, Error = error };

    private async Task<T> Ask<T>(IActorRef target, object message) where T : class
    {
        var reply = await target.Ask<object>(message, AskTimeout);
        return reply switch
        {
            T t => t,
            CommandRejected r => throw new InvalidOperationException(r.Reason),
            _ => throw new InvalidOperationException($"unexpected answer {reply.GetType().Name}"),
        };
    }

    /// <summary>Returns the reply, or null when a watcher child will send it later.</summary>
    private async Task<OpsReply?> Handle(OpsRequest request, IActorRef sender)
    {
        var a = new Args(request.Args);
        var words = a.Positional;
        var json = request.Json;
        string Verb(int n) => words.Count > n ? words[n] : "";
        string Need(int n, string what) => words.Count > n ? words[n] : throw new UsageException($"{string.Join(' ', words.Take(n))}: {what} is missing");

        switch (Verb(0))
        {
            case "" or "help":
                return Ok(Help);
            case "cluster" when Verb(1) == "show":
                return Ok(ClusterShow(json));
            case "cluster" when Verb(1) is "leave" or "down":
            {
                var address = Address.Parse(Need(2, "ADDRESS (as cluster show prints it)"));
                var cluster = Akka.Cluster.Cluster.Get(Context.System);
                if (!cluster.State.Members.Any(m => m.Address == address)) throw new InvalidOperationException($"{address} is not a member: see 'abk cluster show'");
                if (Verb(1) == "leave") cluster.Leave(address);
                else cluster.Down(address);
                return Ok($"{Verb(1)} requested for {address}");
            }
            case "shard" when Verb(1) == "stats":
            {
                var stats = await ClusterSharding.Get(Context.System).ShardRegion("media")
                    .Ask<ClusterShardingStats>(new GetClusterShardingStats(TimeSpan.FromSeconds(5)), AskTimeout);
                if (json) return Ok(System.Text.Json.JsonSerializer.Serialize(stats.Regions.ToDictionary(r => r.Key.ToString(), r => r.Value.Stats)));
                return Ok(OpsFormat.Table(["NODE", "SHARD", "ENTITIES"],
                    stats.Regions.SelectMany(r => r.Value.Stats.Select(s => new[] { r.Key.ToString(), s.Key, s.Value.ToString() }))));
            }
            case "client" when Verb(1) == "list":
            {
                var list = await Ask<ClientList>(_manager, new ListClients());
                return Ok(json ? OpsFormat.ToJson(list) : OpsFormat.Table(["CLIENT", "REACHABLE", "REGISTERED", "ADDRESS"],
                    list.Clients.Select(c => new[] { c.Id, c.Reachable ? "yes" : "no", OpsFormat.Time(c.RegisteredUnixMs), c.Address })));
            }
            case "library" when Verb(1) == "list":
            {
                var list = await Ask<LibraryList>(_manager, new ListLibraries());
                return Ok(json ? OpsFormat.ToJson(list) : OpsFormat.Table(["LIBRARY", "KIND", "REACHABLE", "JOBS", "CHUNKS", "STORED", "FREE", "VOLUMES", "NODE"],
                    list.Libraries.Select(l => new[] { l.Id, l.Kind, l.Reachable ? "yes" : "no", l.ActiveSessions.ToString(), l.Chunks.ToString(),
                        OpsFormat.Size(l.BytesStored), OpsFormat.Size(l.FreeBytes), l.Volumes.ToString(), l.Node })));
            }
            case "volume" when Verb(1) == "list":
            {
                var library = Need(2, "LIBRARY");
                await EnsureLibrary(library);
                var list = await Ask<VolumeList>(_media, new ListVolumes { Library = library });
                return Ok(json ? OpsFormat.ToJson(list) : OpsFormat.Table(["VOLUME", "LABEL", "STATE", "BYTES", "RECORDS", "ERROR"],
                    list.Volumes.Select(v => new[] { v.Number.ToString(), v.Label, v.State, OpsFormat.Size(v.Bytes), v.Records.ToString(), v.Error })));
            }
            case "backup":
            {
                if (words.Count < 2) throw new UsageException("backup: give at least one PATH");
                var cmd = new StartBackup
                {
                    Client = a.Value("client") ?? _localClient, Level = ParseLevel(a.Value("level")), Library = a.Value("library") ?? "",
                    OneFileSystem = a.Flag("one-file-system"), BackupSet = a.Value("set") ?? "",
                };
                cmd.Paths.AddRange(words.Skip(1));
                cmd.Excludes.AddRange(a.Values("exclude"));
                return await StartJob(cmd, a.Flag("no-wait"), json, sender);
            }
            case "restore":
            {
                var cmd = new StartRestore { Snapshot = Need(1, "SNAPSHOT"), Target = a.Value("to") ?? throw new UsageException("restore: --to DIR is required"), Client = a.Value("client") ?? "" };
                cmd.Paths.AddRange(words.Skip(2));
                return await StartJob(cmd, a.Flag("no-wait"), json, sender);
            }
            case "job" when Verb(1) == "list":
            {
                var list = await Ask<JobList>(_manager, new ListJobs { Limit = a.Int("limit", 50) });
                return Ok(json ? OpsFormat.ToJson(list) : OpsFormat.Table(["JOB", "KIND", "STATE", "LEVEL", "CLIENT", "LIBRARY", "QUEUED", "SNAPSHOT", "PATHS"],
                    list.Jobs.Select(j => new[] { j.Id, j.Kind.ToString().ToLowerInvariant(), OpsFormat.State(j.State), j.Kind == JobKind.Backup ? OpsFormat.Level(j.Level) : "-",
                        j.Client, j.Library, OpsFormat.Time(j.QueuedUnixMs), j.Snapshot == "" ? "-" : j.Snapshot, j.Kind == JobKind.Restore ? "-> " + j.Target : string.Join(" ", j.Paths) })));
            }
            case "job" when Verb(1) == "show":
            {
                var job = await Ask<JobInfo>(_manager, new GetJob { Job = Need(2, "JOB") });
                return Ok(json ? OpsFormat.ToJson(job) : OpsFormat.Job(job));
            }
            case "job" when Verb(1) == "cancel":
            {
                var job = await Ask<JobInfo>(_manager, new CancelJob { Job = Need(2, "JOB") });
                return Ok(json ? OpsFormat.ToJson(job) : $"cancel requested for job {job.Id}");
            }
            case "job" when Verb(1) == "watch":
            {
                var id = Need(2, "JOB");
                await Ask<JobInfo>(_manager, new GetJob { Job = id });
                Context.ActorOf(JobWatcher.Props(_manager, id, sender, json));
                return null;
            }
            case "snapshot" when Verb(1) == "list":
            {
                var list = await Ask<SnapshotList>(_manager, new ListSnapshots { Client = a.Value("client") ?? "" });
                return Ok(json ? OpsFormat.ToJson(list) : OpsFormat.Table(["SNAPSHOT", "TIME", "LEVEL", "CLIENT", "LIBRARY", "FILES", "SIZE", "STORED", "ERRORS", "PATHS"],
                    list.Snapshots.Select(s => new[] { s.Id, OpsFormat.Time(s.FinishedUnixMs), OpsFormat.Level(s.Level), s.Client, s.Library, s.Files.ToString(),
                        OpsFormat.Size(s.Bytes), OpsFormat.Size(s.BytesStored), s.Errors.ToString(), string.Join(" ", s.Paths) })));
            }
            case "ls":
            {
                var detail = await Ask<SnapshotDetail>(_manager, new GetSnapshot { Snapshot = Need(1, "SNAPSHOT") });
                if (_keys is null) return await OnClientNode(request, detail.Info.Client);
                return Ok(await Listing(detail, words.Count > 2 ? words[2] : "", json));
            }
            default:
                throw new UsageException($"unknown command '{string.Join(' ', words)}'");
        }
    }

    /// <summary>A level as operators type it (shell and engine command line alike); empty: the default.</summary>
    public static BackupLevel ParseLevel(string? level) => level?.ToLowerInvariant() switch
    {
        null or "" => BackupLevel.LevelDefault,
        "full" => BackupLevel.LevelFull,
        "incremental" or "incr" => BackupLevel.LevelIncremental,
        "differential" or "diff" => BackupLevel.LevelDifferential,
        _ => throw new UsageException($"unknown level '{level}': use full, incremental or differential"),
    };

    private async Task<OpsReply?> StartJob(IMessage command, bool noWait, bool json, IActorRef sender)
    {
        var accepted = await Ask<JobAccepted>(_manager, command);
        if (noWait) return Ok(json ? OpsFormat.ToJson(accepted) : accepted.Job);
        if (!json) sender.Tell(new OpsOutput { Text = $"job {accepted.Job} started" });
        Context.ActorOf(JobWatcher.Props(_manager, accepted.Job, sender, json));
        return null;
    }

    private async Task EnsureLibrary(string library)
    {
        var libraries = await Ask<LibraryList>(_manager, new ListLibraries());
        if (libraries.Libraries.All(l => l.Id != library))
            throw new KeyNotFoundException($"unknown library '{library}': known are {string.Join(", ", libraries.Libraries.Select(l => l.Id))}");
    }

    /// <summary>
    /// Reading a snapshot's trees needs the cell key, which only client nodes hold: a node without the client
    /// role hands the request to the ops actor of a connected client node (the snapshot's own client first).
    /// </summary>
    private async Task<OpsReply> OnClientNode(OpsRequest request, string preferredClient)
    {
        var clients = await Ask<ClientList>(_manager, new ListClients());
        var target = clients.Clients.Where(c => c.Reachable && c.Address.Contains("/user/", StringComparison.Ordinal))
                         .OrderByDescending(c => c.Id == preferredClient).FirstOrDefault()
                     ?? throw new InvalidOperationException("no client node is connected, and reading a snapshot's trees needs the cell key that only client nodes hold: start one");
        var ops = target.Address[..target.Address.LastIndexOf("/user/", StringComparison.Ordinal)] + "/user/ops";
        return await Context.ActorSelection(ops).Ask<OpsReply>(request, AskTimeout);
    }

    private async Task<string> Listing(SnapshotDetail detail, string prefix, bool json)
    {
        if (_keys is null) throw new InvalidOperationException("this node has no client role and so no cell key: ask a node with the client role (--node)");
        var manifest = SnapshotManifest.Parser.ParseFrom(detail.Manifest);
        var granted = await Ask<SessionOpened>(_media, new OpenSession { Library = manifest.Library, Job = "ls", Write = false });
        try
        {
            using var channel = InProcessDataPlane.Connect(granted, AskTimeout);
            return await Task.Run(() =>
            {
                using var trees = new TreeReader(_keys, channel);
                var output = new StringWriter();
                TreeListing.Print(trees, manifest, prefix, output);
                return output.ToString().TrimEnd('\n');
            });
        }
        finally
        {
            _media.Tell(new CloseSession { Library = manifest.Library, Ticket = granted.Ticket });
        }
    }

    private static string ClusterShow(bool json)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var state = cluster.State;
        var managerNode = state.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole("manager")).OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
        var rows = state.Members.OrderBy(m => m.Address.ToString()).Select(m => new
        {
            address = m.Address.ToString(),
            status = m.Status.ToString().ToLowerInvariant(),
            reachable = !state.Unreachable.Contains(m),
            roles = m.Roles.Order().ToArray(),
            manager = managerNode is not null && m.Address == managerNode.Address,
            self = m.Address == cluster.SelfAddress,
        }).ToList();
        if (json) return System.Text.Json.JsonSerializer.Serialize(new { leader = state.Leader?.ToString(), members = rows });
        return OpsFormat.Table(["ADDRESS", "STATUS", "REACHABLE", "MANAGER", "ROLES"],
            rows.Select(r => new[] { r.address + (r.self ? " (this node)" : ""), r.status, r.reachable ? "yes" : "NO", r.manager ? "yes" : "", string.Join(",", r.roles) }));
    }
}

/// <summary>Streams one job's progress to a shell until it ends, then replies with its outcome.</summary>
public sealed class JobWatcher : ReceiveActor
{
    public static Props Props(IActorRef manager, string job, IActorRef shell, bool json) => Akka.Actor.Props.Create(() => new JobWatcher(manager, job, shell, json));

    public JobWatcher(IActorRef manager, string job, IActorRef shell, bool json)
    {
        manager.Tell(new WatchJob { Job = job });
        var last = DateTime.MinValue;
        Receive<JobProgress>(p =>
        {
            if (json || DateTime.UtcNow - last < TimeSpan.FromMilliseconds(500)) return;
            last = DateTime.UtcNow;
            shell.Tell(new OpsOutput { Text = OpsFormat.Progress(p) });
        });
        Receive<JobInfo>(j =>
        {
            if (!ManagerFinal(j.State)) return;
            var ok = j.State == JobState.Succeeded;
            var text = json ? OpsFormat.ToJson(j) : OpsFormat.Job(j);
            shell.Tell(ok ? new OpsReply { ExitCode = j.Errors > 0 ? 3 : 0, Text = text } : new OpsReply { ExitCode = 1, Text = text, Error = $"job {j.Id} {OpsFormat.State(j.State)}: {j.Reason}" });
            Context.Stop(Self);
        });
        Receive<CommandRejected>(r =>
        {
            shell.Tell(new OpsReply { ExitCode = 1, Error = r.Reason });
            Context.Stop(Self);
        });
    }

    private static bool ManagerFinal(JobState s) => Manager.ManagerState.IsFinal(s);
}
