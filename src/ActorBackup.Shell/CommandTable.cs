using System.CommandLine;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Commands;
using Google.Protobuf;

namespace ActorBackup.Shell;

/// <summary>
/// Every `abk` command, declared once: its words, arguments, options and help; the typed message it sends;
/// how its answer is printed. One-shot mode, the prompt, help, usage errors and completion all come from
/// this table. To add a command: one entry here, one message in the protocol, one case in the node's
/// OpsCommand.
/// </summary>
public static class CommandTable
{
    public static readonly Option<string?> NodeOption = new("--node")
    {
        Description = "the node's operator endpoint, HOST or HOST:PORT (default 127.0.0.1:5053, or $ABK_NODE)", HelpName = "HOST:PORT", Recursive = true,
    };
    public static readonly Option<string?> CertsOption = new("--certs")
    {
        Description = "folder with the cell's operator credential (default ./data/certs, or $ABK_CERTS)", HelpName = "DIR", Recursive = true,
    };
    public static readonly Option<bool> JsonOption = SharedOptions.Json();

    public static RootCommand Build(Session session, Func<ParseResult, CancellationToken, Task<int>> interactive)
    {
        var root = new RootCommand("abk: the ActorBackup operator shell. With no command: an interactive prompt.")
        {
            NodeOption, CertsOption, JsonOption,
        };
        root.SetAction(interactive);
        // Help asks the console for its width, which costs a terminal round trip (~0.1 s) even when piped.
        foreach (var help in root.Options.OfType<System.CommandLine.Help.HelpOption>())
            if (help.Action is System.CommandLine.Help.HelpAction action) action.MaxWidth = Console.IsOutputRedirected ? 120 : Math.Max(80, Console.WindowWidth);

        Command Verb(string name, string description, Func<ParseResult, Output, CancellationToken, Task<int>> run, params Symbol[] symbols)
        {
            var c = new Command(name, description).With(symbols);
            c.SetAction(async (pr, cancel) =>
            {
                await session.Target(pr.GetValue(NodeOption), pr.GetValue(CertsOption));
                return await run(pr, new Output(pr.GetValue(JsonOption)), cancel);
            });
            return c;
        }

        Command Group(string name, string description, params Command[] verbs)
        {
            var g = new Command(name, description);
            foreach (var v in verbs) g.Subcommands.Add(v);
            return g;
        }

        // cluster
        var address = new Argument<string>("ADDRESS") { HelpName = "ADDRESS", Description = "a member's address as 'abk cluster show' prints it" };
        var forceDown = new Option<bool>("--force") { Description = "down a member this node still reaches (it stops; what it runs is interrupted)" };
        root.Subcommands.Add(Group("cluster", "members of the cell",
            Verb("show", "members, roles, status, reachability, manager location", async (_, o, c) =>
            {
                var state = await session.Call<ClusterState>(new GetClusterState(), c);
                if (o.Json)
                {
                    o.Write(state);
                    return 0;
                }
                // A build is 1.YYYYMMDD.HHMM-COMMIT (its commit's time, fixed width: its text orders the builds); a member of the
                // cell on an older one than the newest is marked, an upgrade host by host half done (README, "Upgrading a cell").
                static string Built(string version) => version.Split('-')[0];
                var live = state.Members.Where(m => m.Status is "up" or "joining" or "weaklyup" or "leaving" or "preparingforshutdown" or "readyforshutdown").ToList();
                var newest = live.Select(m => Built(m.Version)).DefaultIfEmpty("").Max(StringComparer.Ordinal)!;
                o.Table(["ADDRESS", "STATUS", "REACHABLE", "MANAGER", "ROLES", "VERSION"], state.Members.Select(m => new[]
                    { m.Address + (m.Self ? " (this node)" : ""), m.Status, m.Reachable ? "yes" : "NO", m.Manager ? "yes" : "", string.Join(",", m.Roles),
                      m.Version + (live.Contains(m) && string.CompareOrdinal(Built(m.Version), newest) < 0 ? " (older build)" : "") }));
                var builds = live.Select(m => Built(m.Version)).Distinct().Count();
                if (builds > 1)
                    Console.Error.WriteLine($"the members run {builds} builds: finish the upgrade host by host (README, \"Upgrading a cell\")");
                return 0;
            }),
            Verb("leave", "ask a member to leave the cell", (pr, o, c) => ChangeMember(session, o, pr.GetValue(address)!, MemberChange.Leave, c), address),
            Verb("down", "mark an unreachable member down (one that still answers: --force)", (pr, o, c) => ChangeMember(session, o, pr.GetValue(address)!, MemberChange.Down, c, pr.GetValue(forceDown)), address, forceDown)));

        root.Subcommands.Add(Group("shard", "sharding of media agents",
            Verb("stats", "media agents (libraries) per node", async (_, o, c) =>
            {
                var stats = await session.Call<ShardStats>(new GetShardStats(), c);
                if (o.Json) o.Line(System.Text.Json.JsonSerializer.Serialize(stats.Regions.ToDictionary(r => r.Node, r => r.Shards.ToDictionary(s => s.Key, s => s.Value)), ShellJson.Default.DictionaryStringDictionaryStringInt32));
                else o.Table(["NODE", "SHARD", "ENTITIES"], stats.Regions.SelectMany(r => r.Shards.Select(s => new[] { r.Node, s.Key, s.Value.ToString() })));
                return 0;
            })));

        var clientId = new Argument<string>("HOST") { HelpName = "HOST", Description = "a client's id, as 'abk client list' shows it" };
        clientId.CompletionSources.Add(ctx => Ids(session, new ListClients(), (ClientList l) => l.Clients.Select(x => x.Id)));
        root.Subcommands.Add(Group("client", "clients (protected hosts)",
            Verb("list", "registered clients", async (_, o, c) =>
            {
                var list = await session.Call<ClientList>(new ListClients(), c);
                if (o.Json) o.Write(list);
                else o.Table(["CLIENT", "REACHABLE", "REGISTERED", "ADDRESS"], list.Clients.Select(x => new[] { x.Id, x.Reachable ? "yes" : "no", Output.Time(x.RegisteredUnixMs), x.Address }));
                return 0;
            }),
            Verb("remove", "take a decommissioned client off the list (not while it has backup sets or jobs, or its node is connected); its snapshots stay", async (pr, o, c) =>
            {
                var removed = await session.Call<ClientRemoved>(new RemoveClient { Client = pr.GetValue(clientId)! }, c);
                o.Line(o.Json ? Output.ToJson(removed) : $"client {removed.Id} removed; {removed.Snapshots} snapshot{(removed.Snapshots == 1 ? "" : "s")} of it stay in the catalog " +
                                                         "until 'abk snapshot delete' (no scheduled verify runs them; abk restore SNAPSHOT --client HOST puts one onto another host)");
                return 0;
            }, clientId)));

        var certArg = new Argument<string>("SERIAL|CERT") { HelpName = "SERIAL|CERT", Description = "a certificate's serial number (hex, as 'actorbackup ca show' prints it), or its .crt file" };
        var revokeReason = new Option<string?>("--reason") { Description = "why (a lost laptop, a host decommissioned): kept with it", HelpName = "TEXT" };
        var revokeOwn = new Option<bool>("--force") { Description = "revoke even the certificate this shell signs with (it is locked out from then on)" };
        root.Subcommands.Add(Group("cert", "certificates the cell refuses",
            Verb("revoke", "refuse a certificate on every node from now on (a lost operator key, a decommissioned host); for good", async (pr, o, c) =>
            {
                var (serial, subject) = CertificateNamed(pr.GetValue(certArg)!);
                var revoked = await session.Call<CertificateRevoked>(new RevokeCertificate { Serial = serial, Subject = subject, Reason = pr.GetValue(revokeReason) ?? "", Force = pr.GetValue(revokeOwn) }, c);
                o.Line(o.Json ? Output.ToJson(revoked) : $"certificate {revoked.Serial}{(revoked.Subject == "" ? "" : $" ({revoked.Subject})")} revoked: every node refuses it " +
                                                         "from when it hears (at once on the manager's node, within seconds on the others); a connection open now stays " +
                                                         "until it closes: 'abk cluster down' a revoked node");
                return 0;
            }, certArg, revokeReason, revokeOwn),
            Verb("list", "the certificates the cell revoked", async (_, o, c) =>
            {
                var list = await session.Call<Revocations>(new ListRevocations(), c);
                if (o.Json) o.Write(new Revocations { Revoked = { list.Revoked } }); // without the manager's signature
                else o.Table(["SERIAL", "SUBJECT", "REVOKED", "REASON"], list.Revoked.Select(r => new[] { r.Serial, r.Subject, Output.Time(r.UnixMs), r.Reason }));
                return 0;
            })));

        var auditSince = new Option<DateTimeOffset?>("--since")
        {
            Description = "only records from then on: 2026-12-01, 2026-12-01T22:00 (local), or a duration back from now such as 7d",
            HelpName = "TIME", CustomParser = r => SinceOf(r),
        };
        var auditCaller = new Option<string?>("--caller") { Description = "only records whose caller holds TEXT (a certificate's name, e.g. alice)", HelpName = "TEXT" };
        var auditCommand = new Option<string?>("--command") { Description = "only records of this command (its protocol name, e.g. DeleteSnapshots)", HelpName = "NAME" };
        var auditLimit = new Option<int>("--limit") { Description = "how many of the newest records (default 100, at most 500)", HelpName = "N" };
        root.Subcommands.Add(Group("audit", "the audit trail: every command the manager took, who signed it, taken or refused",
            Verb("list", "the newest records, oldest first, among the trail's newest 100,000; the chain is checked over those (exit 1 when it is broken)", async (pr, o, c) =>
            {
                var list = await session.Call<AuditList>(new ListAudit
                {
                    SinceUnixMs = pr.GetValue(auditSince)?.ToUnixTimeMilliseconds() ?? 0, Caller = pr.GetValue(auditCaller) ?? "", Command = pr.GetValue(auditCommand) ?? "",
                    Limit = pr.GetValue(auditLimit),
                }, c);
                if (o.Json) o.Write(list);
                else
                {
                    o.Table(["SEQ", "TIME", "CALLER", "COMMAND", "OUTCOME", "NODE", "WHAT"], list.Records.Select(r => new[]
                    {
                        r.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture), Output.Time(r.UnixMs), r.Caller == "" ? "-" : r.Caller, r.Command,
                        r.Outcome, r.Node, r.What.Length > 100 ? r.What[..97] + "..." : r.What,
                    }));
                    if (list.Matched > list.Records.Count)
                        Console.Error.WriteLine($"the newest {list.Records.Count} of {list.Matched} records that match: --limit (at most 500) or --since for others");
                    if (list.From > 1)
                        Console.Error.WriteLine($"(records {list.From} to {list.Total}, the trail's newest, were read and checked; abk audit verify reads and checks it all)");
                }
                return AuditChain(list);
            }, auditSince, auditCaller, auditCommand, auditLimit),
            Verb("verify", "read the whole trail and check its chain: exit 0 when whole (it prints the head to note down elsewhere), 1 when broken", async (_, o, c) =>
            {
                var list = await session.Call<AuditList>(new ListAudit { Limit = 1, Whole = true }, c);
                if (o.Json) o.Write(new AuditList { Total = list.Total, Head = list.Head, Broken = list.Broken });
                else if (list.Broken == "")
                    o.Line($"{Count(list.Total, "record")}, chain whole; head {Convert.ToHexString(list.Head.Span).ToLowerInvariant()}");
                return AuditChain(list);
            })));

        var library = new Argument<string>("LIBRARY") { HelpName = "LIBRARY", Description = "a library id, as 'abk library list' shows it" };
        var barcode = new Argument<string>("BARCODE") { HelpName = "BARCODE", Description = "a cartridge's barcode, such as ABC123L8 (cleaning cartridges: CLN...)" };
        var slotArg = new Argument<int>("SLOT") { HelpName = "SLOT", Description = "a storage slot of the tape library, from 1" };
        var driveArg = new Argument<int>("DRIVE") { HelpName = "DRIVE", Description = "a drive of the library, from 1" };
        var retireDryRun = new Option<bool>("--dry-run") { Description = "say which volumes the prune would compact and retire, change nothing" };
        var volumes = new Argument<uint[]>("VOLUME") { HelpName = "VOLUME", Description = "volume numbers, as 'abk volume list' shows them", Arity = ArgumentArity.OneOrMore };
        var toSlot = new Argument<int>("SLOT") { HelpName = "SLOT", Description = "the slot to put it in (default: its home slot)", Arity = ArgumentArity.ZeroOrOne };
        library.CompletionSources.Add(ctx => Ids(session, new ListLibraries(), (LibraryList l) => l.Libraries.Select(x => x.Id)));
        var disableReason = new Option<string?>("--reason") { Description = "why (shown with the library and the jobs that wait for it); default: maintenance", HelpName = "TEXT" };
        root.Subcommands.Add(Group("library", "storage libraries",
            Verb("list", "libraries, where they are, what they hold", async (_, o, c) =>
            {
                var list = await session.Call<LibraryList>(new ListLibraries(), c);
                if (o.Json) o.Write(list);
                else
                {
                    o.Table(["LIBRARY", "KIND", "REACHABLE", "USABLE", "JOBS", "CHUNKS", "STORED", "FREE", "VOLUMES", "NODE"], list.Libraries.Select(l => new[]
                        { l.Id, l.Kind, l.Reachable ? "yes" : "no", l.Disabled != "" ? "disabled" : l.Unavailable == "" ? "yes" : "NO", l.ActiveSessions.ToString(), l.Chunks.ToString(), Output.Size(l.BytesStored), Output.Size(l.FreeBytes), l.Volumes.ToString(), l.Node }));
                    foreach (var l in list.Libraries.Where(l => l.Disabled != "")) o.Line($"{l.Id}: disabled by an operator ({l.Disabled}): no new job starts on it; 'abk library enable {l.Id}'");
                    foreach (var l in list.Libraries.Where(l => l.Unavailable != "")) o.Line($"{l.Id}: {l.Unavailable}");
                    foreach (var l in list.Libraries.Where(l => l.Problem != "")) o.Line($"{l.Id}: {l.Problem}");
                }
                return 0;
            }),
            Verb("disable", "start no new job on LIBRARY (those running finish): for maintenance of its disk, drives or robot", async (pr, o, c) =>
                EnabledLine(o, await session.Call<LibraryInfo>(new SetLibraryEnabled { Library = pr.GetValue(library)!, Reason = pr.GetValue(disableReason) ?? "" }, c)), library, disableReason),
            Verb("enable", "let LIBRARY take jobs again", async (pr, o, c) =>
                EnabledLine(o, await session.Call<LibraryInfo>(new SetLibraryEnabled { Library = pr.GetValue(library)!, Enabled = true }, c)), library),
            Verb("inventory", "a tape library's slots, cartridges and drives", async (pr, o, c) =>
                Inventory(o, await session.Call<LibraryInventory>(new GetInventory { Library = pr.GetValue(library)! }, c)), library),
            Verb("import", "take the cartridge with BARCODE in through the mail slot, into the first free slot", (pr, o, c) =>
                ChangeTape(session, o, new ChangeTape { Library = pr.GetValue(library)!, Verb = TapeVerb.Import, Barcode = pr.GetValue(barcode)! }, c), library, barcode),
            Verb("export", "put the cartridge with BARCODE out through the mail slot (it keeps its data)", (pr, o, c) =>
                ChangeTape(session, o, new ChangeTape { Library = pr.GetValue(library)!, Verb = TapeVerb.Export, Barcode = pr.GetValue(barcode)! }, c), library, barcode)));
        root.Subcommands.Add(Group("volume", "volumes of a library",
            Verb("list", "the volumes of LIBRARY", async (pr, o, c) =>
            {
                var list = await session.Call<VolumeList>(new ListVolumes { Library = pr.GetValue(library)! }, c);
                if (o.Json) o.Write(list);
                else o.Table(["VOLUME", "LABEL", "STATE", "BYTES", "RECORDS", "ERROR"], list.Volumes.Select(v => new[]
                    { v.Number.ToString(), v.Label, v.State, Output.Size(v.Bytes), v.Records.ToString(), v.Error }));
                return 0;
            }, library),
            Verb("retire", "take VOLUMEs out of service (a cartridge with errors): a prune job of the library copies their live chunks to other volumes, " +
                           "then retires them (it also gives back what deleted snapshots held, as abk prune does; --dry-run says what it would do)", async (pr, o, c) =>
            {
                var accepted = await session.Call<JobAccepted>(new StartPrune { Library = pr.GetValue(library)!, Retire = { pr.GetValue(volumes)! }, DryRun = pr.GetValue(retireDryRun) }, c);
                if (!o.Json) o.Line($"job {accepted.Job} queued");
                return await WaitForJob(session, o, accepted.Job, c);
            }, library, volumes, retireDryRun),
            Verb("label", "write the volume label BARCODE on the cartridge in SLOT of a tape library (a scratch cartridge to write on)", (pr, o, c) =>
                ChangeTape(session, o, new ChangeTape { Library = pr.GetValue(library)!, Verb = TapeVerb.Label, Slot = pr.GetValue(slotArg), Barcode = pr.GetValue(barcode)! }, c),
                library, slotArg, barcode)));
        var driveLibrary = new Argument<string?>("LIBRARY") { HelpName = "LIBRARY", Description = "a library id (default: every library)", Arity = ArgumentArity.ZeroOrOne };
        driveLibrary.CompletionSources.Add(ctx => Ids(session, new ListLibraries(), (LibraryList l) => l.Libraries.Select(x => x.Id)));
        root.Subcommands.Add(Group("drive", "drives of the libraries (a disk library's write streams, a tape library's drives)",
            Verb("list", "each drive's state, cartridge and the job holding it", async (pr, o, c) =>
            {
                var list = await session.Call<DriveList>(new ListDrives { Library = pr.GetValue(driveLibrary) ?? "" }, c);
                if (o.Json) o.Write(list);
                else
                {
                    o.Table(["LIBRARY", "DRIVE", "STATE", "CARTRIDGE", "JOB", "KIND", "CLIENT", "SINCE", "MOUNTS", "HOURS"], list.Drives.Select(d => new[]
                    {
                        d.Library, d.Number.ToString(), d.State, d.Cartridge, d.Job, d.Job == "" ? "" : d.JobKind.ToString().ToLowerInvariant(), d.Client,
                        d.SinceUnixMs > 0 ? Output.Time(d.SinceUnixMs) : "", d.Kind == "tape" ? d.Mounts.ToString() : "", d.Kind == "tape" ? $"{d.Hours:F2}" : "",
                    }));
                    foreach (var d in list.Drives.Where(d => d.CleaningDue != "")) o.Line($"{d.Library} drive {d.Number} is due for cleaning: {d.CleaningDue}");
                }
                return 0;
            }, driveLibrary),
            Verb("mount", "load the cartridge in SLOT into DRIVE of a tape library", (pr, o, c) =>
                ChangeTape(session, o, new ChangeTape { Library = pr.GetValue(library)!, Verb = TapeVerb.Mount, Drive = pr.GetValue(driveArg), Slot = pr.GetValue(slotArg) }, c),
                library, driveArg, slotArg),
            Verb("unmount", "unload DRIVE of a tape library, into SLOT or the cartridge's home slot", (pr, o, c) =>
                ChangeTape(session, o, new ChangeTape { Library = pr.GetValue(library)!, Verb = TapeVerb.Unmount, Drive = pr.GetValue(driveArg), Slot = pr.GetValue(toSlot) }, c),
                library, driveArg, toSlot),
            Verb("clean", "clean DRIVE of a tape library with a cleaning cartridge (the drive must be empty)", (pr, o, c) =>
                ChangeTape(session, o, new ChangeTape { Library = pr.GetValue(library)!, Verb = TapeVerb.Clean, Drive = pr.GetValue(driveArg) }, c),
                library, driveArg)));

        // jobs
        var noWait = new Option<bool>("--no-wait") { Description = "print the job id at once instead of following the job" };
        var client = new Option<string?>("--client") { Description = "the client (host) that runs the job", HelpName = "HOST" };
        client.CompletionSources.Add(ctx => Ids(session, new ListClients(), (ClientList l) => l.Clients.Select(x => x.Id)));
        var paths = new Argument<string[]>("PATH") { HelpName = "PATH", Description = "absolute paths on the client", Arity = ArgumentArity.OneOrMore };
        var level = SharedOptions.Level();
        var libraryOption = new Option<string?>("--library") { Description = "the library to write to (default: the manager picks)", HelpName = "LIBRARY" };
        var set = new Option<string?>("--set") { Description = "backup set name (default: named after the paths)", HelpName = "NAME" };
        var backupPolicy = new Option<string?>("--policy") { Description = "storage policy: the library pool (default: default)", HelpName = "POLICY" };
        var jobPriority = new Option<int>("--priority") { Description = "place in the job queue: 1 (lowest) to 10 (highest); default 5", HelpName = "N" };
        var exclude = SharedOptions.Exclude();
        var ifPresent = SharedOptions.ExcludeIfPresent();
        var caches = SharedOptions.ExcludeCaches();
        var oneFs = SharedOptions.OneFileSystem();
        var atime = SharedOptions.Atime();
        var backupMaxRun = MaxRunTime("the backup (default: its set's, if a defined set is named)");
        root.Subcommands.Add(Verb("backup", "back PATHs up; follows the job until it ends unless --no-wait", async (pr, o, c) =>
        {
            var cmd = new StartBackup
            {
                Client = pr.GetValue(client) ?? "", Level = pr.GetValue(level), Library = pr.GetValue(libraryOption) ?? "",
                OneFileSystem = pr.GetValue(oneFs), Atime = pr.GetValue(atime), BackupSet = pr.GetValue(set) ?? "", Priority = pr.GetValue(jobPriority), Policy = pr.GetValue(backupPolicy) ?? "",
                Paths = { pr.GetValue(paths)! }, Excludes = { pr.GetValue(exclude) ?? [] }, MaxRunSeconds = (long)pr.GetValue(backupMaxRun).TotalSeconds,
                ExcludeIfPresent = { SharedOptions.Markers(pr.GetValue(ifPresent), pr.GetValue(caches)) },
            };
            // No --client: this host, i.e. the client of the node abk talks to (asked first: the command goes signed as
            // it is, and the manager takes no node's word for whose it is).
            if (cmd.Client == "") cmd.Client = (await session.Call<ClusterState>(new GetClusterState(), c)).LocalClient;
            return await StartJob(session, o, cmd, pr.GetValue(noWait), c);
        }, paths, client, level, libraryOption, backupPolicy, exclude, ifPresent, caches, oneFs, atime, set, jobPriority, backupMaxRun, noWait));

        var snapshot = new Argument<string>("SNAPSHOT") { HelpName = "SNAPSHOT", Description = "a snapshot id, a unique prefix of one, or 'latest'" };
        snapshot.CompletionSources.Add(ctx => SnapshotIds(session).Append("latest"));
        var include = new Argument<string[]>("PATH") { HelpName = "PATH", Description = "paths or globs inside the snapshot (default: everything)", Arity = ArgumentArity.ZeroOrMore };
        var to = new Option<string>("--to") { Description = "absolute folder on the client to restore into", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "restore into / or into a folder that is not empty (files there may be replaced); refused without it" };
        var numericOwner = new Option<bool>("--numeric-owner") { Description = "give files their recorded owner ids; default: the ids their owners' names have on the target host" };
        var sparse = SharedOptions.Sparse();
        var restorePriority = new Option<int>("--priority") { Description = "place in the job queue: 1 (lowest) to 10 (highest); default 7 (before backups of the default 5)", HelpName = "N" };
        var restoreExclude = SharedOptions.RestoreExclude();
        var overwrite = SharedOptions.Overwrite();
        var restoreDryRun = SharedOptions.RestoreDryRun();
        root.Subcommands.Add(Verb("restore", "restore a snapshot (or PATHs of it) into a folder of any client", async (pr, o, c) =>
        {
            var cmd = new StartRestore { Snapshot = pr.GetValue(snapshot)!, Target = pr.GetValue(to)!, Client = pr.GetValue(client) ?? "", Paths = { pr.GetValue(include) ?? [] }, Force = pr.GetValue(force),
                NumericOwner = pr.GetValue(numericOwner), Sparse = pr.GetValue(sparse), Priority = pr.GetValue(restorePriority), Excludes = { pr.GetValue(restoreExclude) ?? [] },
                Overwrite = pr.GetValue(overwrite), DryRun = pr.GetValue(restoreDryRun) };
            if (cmd.Overwrite != RestoreOverwrite.OverwriteAlways && !cmd.Force)
                throw new ShellException("--overwrite says what becomes of what is already in the target folder, and only --force lets a restore write into one that holds something: give --force too", 2);
            // 'latest' without --client: this host's newest snapshot, restored here (as a backup without --client is this
            // host's), never the cell's newest, which would roll back whichever host backed up last. A node without a
            // client of its own leaves it to the manager, which refuses 'latest' when several hosts have snapshots.
            if (cmd.Client == "" && cmd.Snapshot is "" or "latest") cmd.Client = (await session.Call<ClusterState>(new GetClusterState(), c)).LocalClient;
            return await StartJob(session, o, cmd, pr.GetValue(noWait), c);
        }, snapshot, include, to, client, noWait, force, numericOwner, sparse, restorePriority, restoreExclude, overwrite, restoreDryRun));

        var verifySnapshot = new Argument<string?>("SNAPSHOT") { HelpName = "SNAPSHOT", Description = "a snapshot id, a unique prefix of one, or 'latest'", Arity = ArgumentArity.ZeroOrOne };
        var verifyLibrary = new Option<string?>("--library")
        {
            Description = "instead of a snapshot: the library's media agent reads every record of every volume back and checks it (no key), naming the snapshots a damaged chunk takes with it",
            HelpName = "LIBRARY",
        };
        var share = new Option<int>("--share") { Description = "read back only this percentage of the file chunks, picked at random (every tree always); a sample does not mark the snapshot verified", HelpName = "PERCENT" };
        root.Subcommands.Add(Verb("verify", "read a snapshot back on a client and check every chunk; exit 1 when any is damaged (the files it takes with it are listed)",
            async (pr, o, c) =>
            {
                var (id, lib) = (pr.GetValue(verifySnapshot), pr.GetValue(verifyLibrary));
                if ((id is null) == (lib is null)) throw new ShellException("give a SNAPSHOT, or --library LIBRARY: 'abk verify --help'", 2);
                if (lib is not null && pr.GetValue(share) != 0) throw new ShellException("--share samples a snapshot's chunks; a library check reads every record", 2);
                var cmd = new StartVerify { Snapshot = id ?? "", Library = lib ?? "", Client = pr.GetValue(client) ?? "", Priority = pr.GetValue(jobPriority), SharePercent = pr.GetValue(share) };
                return await StartJob(session, o, cmd, pr.GetValue(noWait), c);
            }, verifySnapshot, verifyLibrary, client, jobPriority, noWait, share));

        var pruneLibrary = new Argument<string?>("LIBRARY") { HelpName = "LIBRARY", Description = "the library to prune (default: every library, one job each)", Arity = ArgumentArity.ZeroOrOne };
        pruneLibrary.CompletionSources.Add(ctx => Ids(session, new ListLibraries(), (LibraryList l) => l.Libraries.Select(x => x.Id)));
        var pruneDryRun = new Option<bool>("--dry-run") { Description = "say what would be removed and freed, change nothing" };
        var dropUnknown = new Option<bool>("--drop-unknown")
        {
            Description = "also remove the reference lists of snapshots the catalog does not know when they outnumber the kept ones (otherwise they are kept and the prune's report says why: a manager on the wrong journal would sweep everything); needs LIBRARY",
        };
        root.Subcommands.Add(Verb("prune", "give back the disk space of deleted snapshots: remove the chunks no kept snapshot references, compact the volumes they leave mostly empty",
            async (pr, o, c) =>
            {
                var accepted = await session.Call<JobAccepted>(new StartPrune { Library = pr.GetValue(pruneLibrary) ?? "", DryRun = pr.GetValue(pruneDryRun), Priority = pr.GetValue(jobPriority), DropUnknown = pr.GetValue(dropUnknown) }, c);
                var jobs = accepted.Also.Prepend(accepted.Job).ToList();
                if (pr.GetValue(noWait))
                {
                    o.Line(o.Json ? Output.ToJson(accepted) : string.Join("\n", jobs));
                    return 0;
                }
                if (o.Json && pr.GetValue(pruneLibrary) is null)
                {
                    // Every library: one JSON value (a job list), however many the cell has; one library named: its job.
                    var ended = new JobList();
                    foreach (var id in jobs) ended.Jobs.Add(await FollowJob(session, o, id, c));
                    o.Write(ended);
                    return ended.Jobs.Max(ExitOf);
                }
                var exit = 0;
                foreach (var id in jobs)
                {
                    if (!o.Json) o.Line($"job {id} queued");
                    exit = Math.Max(exit, await WaitForJob(session, o, id, c));
                }
                return exit;
            }, pruneLibrary, pruneDryRun, dropUnknown, jobPriority, noWait));

        var job = new Argument<string>("JOB") { HelpName = "JOB", Description = "a job id, as 'abk job list' shows it" };
        job.CompletionSources.Add(ctx => Ids(session, new ListJobs { Limit = 50 }, (JobList l) => l.Jobs.Select(x => x.Id)));
        var limit = new Option<int>("--limit") { Description = "how many of the newest jobs (at most 5000)", DefaultValueFactory = _ => 50 };
        var jobsOf = new Option<string>("--client") { Description = "only this client's jobs" };
        var jobsOfSet = new Option<string?>("--set") { Description = "only this backup set's jobs", HelpName = "SET" };
        var jobStates = new Option<string?>("--state") { Description = "only jobs in these states: queued, running, committing, succeeded, failed, cancelled, interrupted, missed (comma-separated)", HelpName = "LIST" };
        var jobKinds = new Option<string?>("--kind") { Description = "only jobs of these kinds: backup, restore, verify, prune, copy (comma-separated)", HelpName = "LIST" };
        var jobsSince = new Option<DateTimeOffset?>("--since")
        {
            Description = "only jobs queued or ended since then, and those not ended: a time (2026-12-01T22:00) or a duration back from now (24h)",
            HelpName = "TIME", CustomParser = r => SinceOf(r),
        };
        var newPriority = new Argument<int>("PRIORITY") { HelpName = "PRIORITY", Description = "1 (lowest) to 10 (highest)" };
        root.Subcommands.Add(Group("job", "backup and restore jobs",
            Verb("list", "the newest jobs", async (pr, o, c) =>
            {
                if (pr.GetValue(limit) is < 1 or > 5000) throw new ShellException($"--limit {pr.GetValue(limit)}: give 1 to 5000", 2);
                var query = new ListJobs
                {
                    Limit = pr.GetValue(limit), Client = pr.GetValue(jobsOf) ?? "", Set = pr.GetValue(jobsOfSet) ?? "",
                    SinceUnixMs = pr.GetValue(jobsSince)?.ToUnixTimeMilliseconds() ?? 0,
                };
                query.States.AddRange(Listed<JobState>(pr.GetValue(jobStates), "--state", "queued, running, committing, succeeded, failed, cancelled, interrupted, missed"));
                query.Kinds.AddRange(Listed<JobKind>(pr.GetValue(jobKinds), "--kind", "backup, restore, verify, prune, copy"));
                var list = await session.Call<JobList>(query, c);
                if (o.Json) o.Write(list);
                else o.Table(["JOB", "KIND", "STATE", "LEVEL", "CLIENT", "LIBRARY", "QUEUED", "TOOK", "ERRORS", "SNAPSHOT", "ORIGIN", "PATHS"], list.Jobs.Select(j => new[]
                {
                    j.Id, j.Kind.ToString().ToLowerInvariant(), Output.State(j.State), j.Kind == JobKind.Backup ? Output.Level(j.Level) : "-", j.Client, j.Library,
                    Output.Time(j.QueuedUnixMs), Output.Took(j), j.Errors > 0 ? j.Errors.ToString() : "-", j.Snapshot == "" ? "-" : j.Snapshot, Output.Origin(j),
                    j.Kind == JobKind.Restore ? "-> " + j.Target : string.Join(" ", j.Paths),
                }));
                return 0;
            }, limit, jobsOf, jobsOfSet, jobStates, jobKinds, jobsSince),
            Verb("show", "one job in full", async (pr, o, c) =>
            {
                var info = await session.Call<JobInfo>(new GetJob { Job = pr.GetValue(job)! }, c);
                o.Line(o.Json ? Output.ToJson(info) : Output.Job(info));
                return 0;
            }, job),
            Verb("watch", "follow a job until it ends", (pr, o, c) => WaitForJob(session, o, pr.GetValue(job)!, c), job),
            Verb("priority", "move a waiting job in the queue: 1 (lowest) to 10 (highest)", async (pr, o, c) =>
            {
                var info = await session.Call<JobInfo>(new SetJobPriority { Job = pr.GetValue(job)!, Priority = pr.GetValue(newPriority) }, c);
                o.Line(o.Json ? Output.ToJson(info) : $"job {info.Id} now has priority {info.Priority}");
                return 0;
            }, job, newPriority),
            Verb("cancel", "stop a queued job, or a running backup, restore or verify (nothing of it is recorded); a prune, copy or library check that runs goes to its end", async (pr, o, c) =>
            {
                var info = await session.Call<JobInfo>(new CancelJob { Job = pr.GetValue(job)! }, c);
                o.Line(o.Json ? Output.ToJson(info) : $"cancel requested for job {info.Id}");
                return 0;
            }, job)));

        var ofClient = new Option<string?>("--client") { Description = "only this client's snapshots", HelpName = "HOST" };
        var ofSet = new Option<string?>("--set") { Description = "only this backup set's snapshots", HelpName = "SET" };
        var ofPath = new Option<string?>("--path") { Description = "only the snapshots whose backed-up paths hold PATH (or lie below it)", HelpName = "PATH" };
        var why = new Option<bool>("--why") { Description = "with the retention rules that keep each snapshot (none: retention deletes it)" };
        var snapshots = new Argument<string[]>("SNAPSHOT") { HelpName = "SNAPSHOT", Description = "snapshot ids or unique prefixes", Arity = ArgumentArity.OneOrMore };
        snapshots.CompletionSources.Add(ctx => SnapshotIds(session));
        var deleteDryRun = new Option<bool>("--dry-run") { Description = "say what would be deleted, delete nothing" };
        var listDeleted = new Option<bool>("--deleted") { Description = "the deleted snapshots held for the manager's deletion delay (abk snapshot undelete brings one back)" };
        var copyTarget = new Option<string>("--to") { Description = "the library to copy it to", HelpName = "LIBRARY", Required = true };
        var holdUntil = new Option<DateTimeOffset>("--until")
        {
            Description = "the hold's end: 2027-06-30 (local), 2027-06-30T00:00Z, or an age from now such as 90d, 6mo or 7y", HelpName = "TIME", Required = true,
            CustomParser = r => HoldEndOf(r),
        };
        var holdReason = new Option<string>("--reason") { Description = "why (a case number, who asked): shown wherever a deletion is refused", HelpName = "TEXT", Required = true };
        root.Subcommands.Add(Group("snapshot", "the catalog of snapshots",
            Verb("list", "snapshots, newest last", async (pr, o, c) =>
            {
                var withWhy = pr.GetValue(why);
                var deleted = pr.GetValue(listDeleted);
                if (deleted && (pr.GetValue(ofSet) is not null || pr.GetValue(ofPath) is not null))
                    throw new ShellException("--set and --path filter the catalog; the deleted snapshots are listed whole (--client narrows them)", 2);
                var list = await Snapshots(session, new ListSnapshots
                {
                    Client = pr.GetValue(ofClient) ?? "", Why = withWhy && !deleted, Deleted = deleted, BackupSet = pr.GetValue(ofSet) ?? "", Path = pr.GetValue(ofPath) ?? "",
                }, c);
                if (pr.GetValue(ofSet) is { } onlySet && list.Snapshots.Any(s => s.BackupSet != onlySet)) // a manager of a build before the filters lists all
                    throw new ShellException("the manager's build does not filter snapshots by set (abk cluster show: upgrade its nodes): this list would be its catalog", 1);
                if (deleted && list.Snapshots.Any(s => s.DeletedUnixMs == 0)) // a manager of a build before deletion delays answers with its catalog
                    throw new ShellException("the manager's build keeps no deleted snapshots (abk cluster show: upgrade its nodes): this list would be its catalog", 1);
                if (o.Json) o.Write(list);
                else if (deleted)
                    o.Table(["SNAPSHOT", "TIME", "LEVEL", "SET", "CLIENT", "DELETED", "DATA GOES AFTER", "WHY"], list.Snapshots.Select(s => new[]
                    {
                        s.Id, Output.Time(s.FinishedUnixMs), Output.Level(s.Level), s.BackupSet, s.Client, Output.Time(s.DeletedUnixMs), Output.Time(s.PurgeAfterUnixMs), s.DeletedReason,
                    }));
                else if (withWhy)
                    o.Table(["SNAPSHOT", "TIME", "LEVEL", "SET", "CLIENT", "VERIFIED", "POLICY", "KEPT BECAUSE"], list.Snapshots.Select(s => new[]
                    {
                        s.Id, Output.Time(s.FinishedUnixMs), Output.Level(s.Level), s.BackupSet, s.Client, s.Verified ? "yes" : "no", s.Policy,
                        s.KeptBecause.Count == 0 ? "nothing: deleted by retention next" : string.Join("; ", s.KeptBecause),
                    }));
                else o.Table(["SNAPSHOT", "TIME", "LEVEL", "CLIENT", "LIBRARY", "COPIES", "FILES", "SIZE", "STORED", "ERRORS", "PATHS"], list.Snapshots.Select(s => new[]
                {
                    s.Id + (s.Suspect == "" ? "" : " !") + (s.HeldUntilUnixMs > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() ? " H" : ""), Output.Time(s.FinishedUnixMs), Output.Level(s.Level), s.Client, string.Join("+", s.Spans.Prepend(s.Library)), s.Copies.Count == 0 ? "-" : string.Join(" ", s.Copies),
                    s.Files.ToString(), Output.Size(s.Bytes), Output.Size(s.BytesStored), s.Errors.ToString(), string.Join(" ", s.Paths),
                }));
                if (!o.Json && !deleted)
                    foreach (var s in list.Snapshots.Where(s => s.Suspect != ""))
                        o.Line($"! snapshot {s.Id} ({s.Client}, {s.BackupSet}) is suspect: {s.Suspect}");
                return 0;
            }, ofClient, ofSet, ofPath, why, listDeleted),
            Verb("show", "one snapshot in full, with every library that holds it", async (pr, o, c) =>
            {
                var detail = await session.Call<SnapshotDetail>(new GetSnapshot { Snapshot = pr.GetValue(snapshot)! }, c);
                o.Line(o.Json ? Output.ToJson(detail.Info) : Output.Snapshot(detail.Info));
                return 0;
            }, snapshot),
            Verb("copy", "copy a snapshot to another library now (media agent to media agent, only the chunks it lacks)", async (pr, o, c) =>
            {
                var cmd = new StartCopy { Snapshot = pr.GetValue(snapshot)!, Library = pr.GetValue(copyTarget)!, Priority = pr.GetValue(jobPriority) };
                return await StartJob(session, o, cmd, pr.GetValue(noWait), c);
            }, snapshot, copyTarget, jobPriority, noWait),
            Verb("delete", "delete snapshots from the catalog (their chunks go at the library's next prune)", async (pr, o, c) =>
            {
                var dry = pr.GetValue(deleteDryRun);
                var answer = await session.Call<SnapshotDeletion>(new DeleteSnapshots { Snapshots = { pr.GetValue(snapshots)! }, DryRun = dry }, c);
                if (o.Json) o.Write(answer);
                else foreach (var s in answer.Snapshots)
                    o.Line($"{(dry ? "would delete" : "deleted")} snapshot {s.Id} ({Output.Level(s.Level)} of {s.Client}, {Output.Time(s.FinishedUnixMs)})");
                return 0;
            }, snapshots, deleteDryRun),
            Verb("hold", "hold snapshots until a date (a legal hold): neither retention nor a delete lets them go before it, nor can the hold be shortened (abk snapshot list marks them with H)", async (pr, o, c) =>
            {
                var until = pr.GetValue(holdUntil);
                var answer = await session.Call<SnapshotDeletion>(new HoldSnapshots { Snapshots = { pr.GetValue(snapshots)! }, UntilUnixMs = until.ToUnixTimeMilliseconds(), Reason = pr.GetValue(holdReason)! }, c);
                if (o.Json) o.Write(answer);
                else foreach (var s in answer.Snapshots) o.Line($"snapshot {s.Id} ({Output.Level(s.Level)} of {s.Client}, {Output.Time(s.FinishedUnixMs)}) is held until {Output.Time(s.HeldUntilUnixMs)}");
                return 0;
            }, snapshots, holdUntil, holdReason),
            Verb("clear-suspect", "let the retention of suspect snapshots' sets go on, once you have checked them (abk snapshot list marks them with !)", async (pr, o, c) =>
            {
                var answer = await session.Call<SnapshotDeletion>(new ClearSuspect { Snapshots = { pr.GetValue(snapshots)! } }, c);
                if (o.Json) o.Write(answer);
                else foreach (var s in answer.Snapshots) o.Line($"snapshot {s.Id} is no longer suspect (its set's retention goes on unless another of its snapshots is)");
                return 0;
            }, snapshots),
            Verb("undelete", "bring deleted snapshots back into the catalog while the manager still holds them (actorbackup.manager.deletion-delay)", async (pr, o, c) =>
            {
                var answer = await session.Call<SnapshotDeletion>(new UndeleteSnapshots { Snapshots = { pr.GetValue(snapshots)! } }, c);
                if (o.Json) o.Write(answer);
                else foreach (var s in answer.Snapshots)
                    o.Line($"snapshot {s.Id} is back ({Output.Level(s.Level)} of {s.Client}, {Output.Time(s.FinishedUnixMs)})");
                return 0;
            }, snapshots)));

        root.Subcommands.Add(Group("catalog", "the manager's catalog of snapshots",
            Verb("rebuild", "find the snapshots stored in LIBRARY's volumes and give the catalog back those it lacks (after its journal was lost)", async (pr, o, c) =>
            {
                var rebuilt = await session.Call<CatalogRebuilt>(new RebuildCatalog { Library = pr.GetValue(library)! }, c);
                if (o.Json) o.Write(rebuilt);
                else o.Line($"library {rebuilt.Library}: {rebuilt.Found} snapshots stored; {rebuilt.Added} were missing from the catalog and are back" +
                            (rebuilt.Added > 0 ? ": " + string.Join(" ", rebuilt.AddedIds) + (rebuilt.Added > rebuilt.AddedIds.Count ? " ..." : "") : "") +
                            (rebuilt.CopiesRecorded > 0 ? $"; {rebuilt.CopiesRecorded} recorded as copies held there" : ""));
                if (!o.Json && rebuilt.Unaccounted.Count > 0)
                    o.Line($"library {rebuilt.Library} also holds data of {rebuilt.Unaccounted.Count}{(rebuilt.Unaccounted.Count >= 1000 ? " or more" : "")} snapshots whose " +
                           "manifests are not in it (backups that went on in another library when this one was full): rebuild the other libraries; " +
                           $"until they are back, prunes of {rebuilt.Library} keep their data ({string.Join(" ", rebuilt.Unaccounted.Take(10))}" +
                           $"{(rebuilt.Unaccounted.Count > 10 ? " ..." : "")}). Those that no rebuild brings back (a backup that failed before its manifest " +
                           $"was stored) go with 'abk prune {rebuilt.Library} --drop-unknown'");
                if (rebuilt.Problems.Count == 0) return 0;
                // Not silently: each manifest left out is a snapshot the catalog still lacks (and whose data a prune
                // may give back once its list is older than the orphans' age).
                Console.Error.WriteLine($"abk: manifests stored in library {rebuilt.Library} could not be opened, so their snapshots are not back:");
                foreach (var problem in rebuilt.Problems) Console.Error.WriteLine("  " + problem);
                Console.Error.WriteLine("where a key is missing or wrong, run the rebuild on a node that holds the cell key; where a manifest is damaged, " +
                                        $"rebuild from another library that holds copies of them, and check this one ('abk verify --library {rebuilt.Library}')");
                return 3;
            }, library)));

        // backup sets and their schedules
        var setName = new Argument<string>("NAME") { HelpName = "NAME", Description = "the backup set's name" };
        setName.CompletionSources.Add(ctx => Ids(session, new ListBackupSets(), (BackupSetList l) => l.Sets.Select(x => x.Set.Name)));
        var setPaths = new Option<string[]>("--path") { Description = "an absolute path on the client (repeatable)", HelpName = "PATH", Required = true };
        var schedule = new Option<string[]>("--schedule")
        {
            Description = "a cron rule (5 fields, or 6 with seconds) and the level of its runs, e.g. \"0 2 * * 0=full\" (repeatable; " +
                          "without =LEVEL: incremental, full when there is nothing to compare with)",
            HelpName = "CRON[=LEVEL]",
        };
        var timeZone = new Option<string?>("--time-zone") { Description = "IANA time zone the rules are read in (default UTC)", HelpName = "ZONE" };
        var priority = new Option<int>("--priority") { Description = "1 (lowest) to 10 (highest); default 5", HelpName = "N" };
        var window = new Option<TimeSpan>("--window")
        {
            Description = "how long after its slot a scheduled job may still start (waiting for an offline client or a busy library); " +
                          "later it ends MISSED. e.g. 30m, 4h; default: no window",
            HelpName = "DURATION", CustomParser = r => DurationOf(r),
        };
        var policy = new Option<string?>("--policy") { Description = "storage policy (default: default)", HelpName = "POLICY" };
        var setClient = new Option<string?>("--client") { Description = "the client the set is on (default: the only client)", HelpName = "HOST" };
        var preCommand = new Option<string?>("--pre-command") { Description = "run on the client (sh -c, the job's JSON on stdin) before each backup; if it fails, the job fails with its output", HelpName = "CMD" };
        var postCommand = new Option<string?>("--post-command") { Description = "run on the client after each backup, whatever its outcome ($ABK_STATE)", HelpName = "CMD" };
        var onSuccess = new Option<string?>("--on-success") { Description = "run on the manager's node when a job of the set succeeds, its JSON on stdin", HelpName = "CMD" };
        var onFailure = new Option<string?>("--on-failure") { Description = "run on the manager's node when a job of the set fails (or is cancelled, interrupted, missed)", HelpName = "CMD" };
        var commandTimeout = new Option<TimeSpan>("--command-timeout") { Description = "how long each of these commands may run (default 5m)", HelpName = "DURATION", CustomParser = r => DurationOf(r) };
        var setMaxRun = MaxRunTime("a backup of the set");
        var privateKeys = new Option<bool>("--private-keys")
        {
            Description = "a private key domain: the set's file chunks under its client's own keys, so that no other client host can read them (no dedup with other clients)",
        };
        var runLevel = SharedOptions.Level();
        var until = new Option<DateTimeOffset>("--until")
        {
            Description = "when the run happens instead: a time (2026-12-24T22:00, local unless it has an offset) or a duration from now (90m, 4h)",
            HelpName = "TIME", Required = true, CustomParser = r => TimeOf(r),
        };
        root.Subcommands.Add(Group("set", "backup sets: what to back up on a client, and when",
            Verb("add", "define a backup set", async (pr, o, c) =>
            {
                var set = new BackupSetDefinition
                {
                    Name = pr.GetValue(setName)!, Client = pr.GetValue(setClient) ?? "", OneFileSystem = pr.GetValue(oneFs), Atime = pr.GetValue(atime), Policy = pr.GetValue(policy) ?? "",
                    TimeZone = pr.GetValue(timeZone) ?? "", Priority = pr.GetValue(priority), WindowSeconds = (long)pr.GetValue(window).TotalSeconds,
                    PreCommand = pr.GetValue(preCommand) ?? "", PostCommand = pr.GetValue(postCommand) ?? "", OnSuccess = pr.GetValue(onSuccess) ?? "",
                    OnFailure = pr.GetValue(onFailure) ?? "", CommandTimeoutSeconds = (int)pr.GetValue(commandTimeout).TotalSeconds,
                    PrivateKeys = pr.GetValue(privateKeys), MaxRunSeconds = (long)pr.GetValue(setMaxRun).TotalSeconds,
                    Paths = { pr.GetValue(setPaths)! }, Excludes = { pr.GetValue(exclude) ?? [] },
                    ExcludeIfPresent = { SharedOptions.Markers(pr.GetValue(ifPresent), pr.GetValue(caches)) },
                };
                set.Schedules.AddRange((pr.GetValue(schedule) ?? []).Select(SharedOptions.ParseScheduleRule));
                var info = await session.Call<BackupSetInfo>(new DefineBackupSet { Set = set }, c);
                o.Line(o.Json ? Output.ToJson(info) : Output.Set(info));
                return 0;
            }, setName, setPaths, setClient, exclude, oneFs, atime, policy, schedule, timeZone, priority, window, preCommand, postCommand, onSuccess, onFailure, commandTimeout, privateKeys, setMaxRun, ifPresent, caches),
            Verb("list", "the backup sets, their next run and last snapshot", async (_, o, c) =>
            {
                var list = await session.Call<BackupSetList>(new ListBackupSets(), c);
                if (o.Json) o.Write(list);
                else o.Table(["SET", "CLIENT", "ENABLED", "PRIORITY", "NEXT RUN", "LEVEL", "LAST SNAPSHOT", "PATHS"], list.Sets.Select(i => new[]
                {
                    i.Set.Name, i.Set.Client, i.Set.Disabled ? "no" : "yes", i.Set.Priority.ToString(), Output.Time(i.NextRunUnixMs),
                    i.NextRunUnixMs == 0 ? "-" : Output.RunLevel(i.NextLevel), i.LastSnapshot == "" ? "-" : i.LastSnapshot, string.Join(" ", i.Set.Paths),
                }));
                return 0;
            }),
            Verb("show", "one backup set in full", async (pr, o, c) =>
            {
                var info = await session.Call<BackupSetInfo>(new GetBackupSet { Name = pr.GetValue(setName)! }, c);
                o.Line(o.Json ? Output.ToJson(info) : Output.Set(info));
                return 0;
            }, setName),
            Verb("remove", "forget a backup set (its snapshots stay)", async (pr, o, c) =>
            {
                var removed = await session.Call<BackupSetRemoved>(new RemoveBackupSet { Name = pr.GetValue(setName)! }, c);
                o.Line(o.Json ? Output.ToJson(removed) : $"backup set {removed.Name} removed; its snapshots stay");
                return 0;
            }, setName),
            Verb("enable", "let the set's schedule run it again", (pr, o, c) => EnableSet(session, o, pr.GetValue(setName)!, true, c), setName),
            Verb("disable", "stop the set's schedule (a run by hand still works)", (pr, o, c) => EnableSet(session, o, pr.GetValue(setName)!, false, c), setName),
            Verb("defer", "move the set's next scheduled run to a later time (the slots until then do not run)", async (pr, o, c) =>
            {
                var info = await session.Call<BackupSetInfo>(new DeferBackupSet { Name = pr.GetValue(setName)!, UntilUnixMs = pr.GetValue(until).ToUnixTimeMilliseconds() }, c);
                o.Line(o.Json ? Output.ToJson(info) : $"backup set {info.Set.Name}: the run of {Output.Time(info.DeferredSlotUnixMs)} now runs at {Output.Time(info.NextRunUnixMs)} ({Output.RunLevel(info.NextLevel)})");
                return 0;
            }, setName, until),
            Verb("run", "back the set up now; follows the job until it ends unless --no-wait", (pr, o, c) =>
                StartJob(session, o, new RunBackupSet { Name = pr.GetValue(setName)!, Level = pr.GetValue(runLevel) }, pr.GetValue(noWait), c), setName, runLevel, noWait)));
        root.Subcommands.Add(Group("schedule", "when the backup sets run",
            Verb("list", "the next run of every scheduled set, soonest first", async (_, o, c) =>
            {
                var list = await session.Call<BackupSetList>(new ListBackupSets(), c);
                var due = list.Sets.Where(i => i.NextRunUnixMs != 0).OrderBy(i => i.NextRunUnixMs).ToList();
                if (o.Json)
                {
                    var only = new BackupSetList();
                    only.Sets.AddRange(due);
                    o.Write(only);
                }
                else o.Table(["NEXT RUN", "SET", "CLIENT", "LEVEL", "RULES"], due.Select(i => new[]
                {
                    Output.Time(i.NextRunUnixMs), i.Set.Name, i.Set.Client, Output.RunLevel(i.NextLevel), string.Join("; ", i.Set.Schedules.Select(Output.Rule)),
                }));
                return 0;
            })));

        // storage policies
        var policyName = new Argument<string>("NAME") { HelpName = "NAME", Description = "the storage policy's name" };
        policyName.CompletionSources.Add(ctx => Ids(session, new ListPolicies(), (PolicyList l) => l.Policies.Select(x => x.Policy.Name)));
        var poolLibraries = new Option<string[]>("--library")
        {
            Description = "a library of the primary copy's pool, in order (repeatable; default: every library of the cell)", HelpName = "LIBRARY",
        };
        var choice = new Option<string>("--choice")
        {
            Description = "how a backup's library is chosen from the pool: balance (the least busy; a set stays on its chain's library) or fill-first (the first that can take it)",
            HelpName = "RULE", DefaultValueFactory = _ => "balance",
        };
        choice.AcceptOnlyFromAmong("balance", "fill-first");
        var chunkSize = new Option<int>("--chunk-kib") { Description = "average chunk size in KiB, a power of two from 64 to 16384 (default: the client's, 1024)", HelpName = "KIB" };
        var compression = new Option<int>("--compression") { Description = "zstd level 1 to 19 (default: the client's, 3)", HelpName = "LEVEL" };
        var retries = new Option<int?>("--retries") { Description = $"further attempts of a job that failed on a transient fault or a library fault (default 2)", HelpName = "N" };
        Option<int> Keep(string what, string description) => new($"--keep-{what}") { Description = description, HelpName = "N" };
        var keepLast = Keep("last", "retention: keep the newest N snapshots of each set");
        var keepWithin = new Option<string?>("--keep-within") { Description = "retention: keep the snapshots at most this much older than the set's newest: s, h, d, w, mo or y (e.g. 30d, 6mo, 1y)", HelpName = "AGE" };
        var keepDaily = Keep("daily", "retention: keep the newest snapshot of each of the last N days that have one (the set's time zone)");
        var keepWeekly = Keep("weekly", "retention: ... of each of the last N weeks (ISO)");
        var keepMonthly = Keep("monthly", "retention: ... of each of the last N months");
        var keepYearly = Keep("yearly", "retention: ... of each of the last N years");
        var keepMinimum = Keep("minimum", "retention: the newest N stay whatever the other rules say");
        var copyTo = new Option<string[]>("--copy-to") { Description = "a second copy of every snapshot on this library (repeatable: one copy each)", HelpName = "LIBRARY" };
        var copyFullsOnly = new Option<bool>("--copy-fulls-only") { Description = "copy only full backups" };
        var copySchedule = new Option<string?>("--copy-schedule")
        {
            Description = "make the copies at the slots of this cron rule (UTC), every snapshot still lacking one, e.g. \"0 1 * * *\"; default: after each backup",
            HelpName = "CRON",
        };
        var copyKeep = new Option<string?>("--copy-keep")
        {
            Description = "the copies' own retention, e.g. weekly=52,last=2 (keys last, within, daily, weekly, monthly, yearly, minimum); " +
                          "a snapshot the policy's retention lets go lives on in a copy this keeps. Default: copies go with their snapshot",
            HelpName = "RULES",
        };
        var tierTo = new Option<string[]>("--tier-to") { Description = "move snapshots older than --tier-after to this library (repeatable: the first that is registered)", HelpName = "LIBRARY" };
        var verifySchedule = new Option<string?>("--verify-schedule")
        {
            Description = "a cron rule (UTC) at whose slots the newest unverified snapshot of each client and set is verified, e.g. \"0 3 * * 0\"",
            HelpName = "CRON",
        };
        var verifyShare = new Option<int>("--verify-share") { Description = "each scheduled verify reads back this percentage of the file chunks, at random (default: all)", HelpName = "PERCENT" };
        var tierAfter = new Option<string?>("--tier-after") { Description = "the age at which a snapshot moves to its tier (e.g. 30d)", HelpName = "DURATION" };
        root.Subcommands.Add(Group("policy", "storage policies: where backups go and how",
            Verb("add", "define a storage policy", async (pr, o, c) =>
            {
                var p = new StoragePolicy
                {
                    Name = pr.GetValue(policyName)!, Libraries = { pr.GetValue(poolLibraries) ?? [] }, ChunkKib = pr.GetValue(chunkSize), Compression = pr.GetValue(compression),
                    Choice = pr.GetValue(choice) == "fill-first" ? LibraryChoice.FillFirst : LibraryChoice.Balance,
                };
                if (pr.GetValue(retries) is { } n) p.Retries = n;
                var within = pr.GetValue(keepWithin) is { } w ? SharedOptions.ParseAge(w) ?? throw new ShellException($"--keep-within '{w}' is not an age: {SharedOptions.AgeForm}", 2) : TimeSpan.Zero;
                p.Retention = new RetentionRule
                {
                    Last = pr.GetValue(keepLast), WithinSeconds = (long)within.TotalSeconds, Daily = pr.GetValue(keepDaily), Weekly = pr.GetValue(keepWeekly),
                    Monthly = pr.GetValue(keepMonthly), Yearly = pr.GetValue(keepYearly), Minimum = pr.GetValue(keepMinimum),
                };
                var copyRetention = pr.GetValue(copyKeep) is { } ck ? KeepRules(ck) : null;
                if ((pr.GetValue(copyTo) ?? []).Length == 0)
                {
                    if (copyRetention is not null) throw new ShellException("--copy-keep needs --copy-to: the library whose copies it keeps", 2);
                    if (pr.GetValue(copySchedule) is not null) throw new ShellException("--copy-schedule needs --copy-to: the library the copies go to", 2);
                    if (pr.GetValue(copyFullsOnly)) throw new ShellException("--copy-fulls-only needs --copy-to: the library the copies go to", 2);
                }
                foreach (var l in pr.GetValue(copyTo) ?? [])
                    p.Copies.Add(new CopyRule { Libraries = { l }, FullsOnly = pr.GetValue(copyFullsOnly), Retention = copyRetention, Schedule = pr.GetValue(copySchedule) ?? "" });
                if (pr.GetValue(tierTo) is { Length: > 0 } tiers)
                {
                    var after = pr.GetValue(tierAfter) is { } ta ? SharedOptions.ParseAge(ta) ?? throw new ShellException($"--tier-after '{ta}' is not an age: {SharedOptions.AgeForm}", 2)
                        : throw new ShellException("--tier-to needs --tier-after: the age at which snapshots move, e.g. 30d", 2);
                    p.Tier = new TierRule { Libraries = { tiers }, AfterSeconds = (long)after.TotalSeconds };
                }
                else if (pr.GetValue(tierAfter) is not null) throw new ShellException("--tier-after needs --tier-to: the library the snapshots move to", 2);
                if (pr.GetValue(verifySchedule) is { Length: > 0 } vs) p.Verify = new VerifyRule { Schedule = vs, SharePercent = pr.GetValue(verifyShare) };
                else if (pr.GetValue(verifyShare) != 0) throw new ShellException("--verify-share needs --verify-schedule: the slots at which the samples are read back", 2);
                var info = await session.Call<PolicyInfo>(new DefinePolicy { Policy = p }, c);
                o.Line(o.Json ? Output.ToJson(info) : Output.Policy(info));
                return 0;
            }, policyName, poolLibraries, choice, chunkSize, compression, retries, keepLast, keepWithin, keepDaily, keepWeekly, keepMonthly, keepYearly, keepMinimum,
                copyTo, copyFullsOnly, copyKeep, copySchedule, tierTo, tierAfter, verifySchedule, verifyShare),
            Verb("list", "the storage policies and the sets that use them", async (_, o, c) =>
            {
                var list = await session.Call<PolicyList>(new ListPolicies(), c);
                if (o.Json) o.Write(list);
                else o.Table(["POLICY", "LIBRARIES", "CHOICE", "CHUNK", "COMPRESSION", "RETRIES", "RETENTION", "SETS"], list.Policies.Select(i => new[]
                {
                    i.Policy.Name + (i.Implicit ? " (built in)" : ""), Output.Pool(i.Policy), Output.Choice(i.Policy.Choice),
                    i.Policy.ChunkKib == 0 ? "client's" : $"{i.Policy.ChunkKib} KiB", i.Policy.Compression == 0 ? "client's" : $"zstd {i.Policy.Compression}",
                    Output.Retries(i.Policy), i.Retention, i.Sets.Count == 0 ? "-" : string.Join(" ", i.Sets),
                }));
                return 0;
            }),
            Verb("show", "one storage policy in full", async (pr, o, c) =>
            {
                var info = await session.Call<PolicyInfo>(new GetPolicy { Name = pr.GetValue(policyName)! }, c);
                o.Line(o.Json ? Output.ToJson(info) : Output.Policy(info));
                return 0;
            }, policyName),
            Verb("remove", "forget a storage policy that no set, queued job or snapshot of a removed set goes by", async (pr, o, c) =>
            {
                var removed = await session.Call<PolicyRemoved>(new RemovePolicy { Name = pr.GetValue(policyName)! }, c);
                o.Line(o.Json ? Output.ToJson(removed) : $"storage policy {removed.Name} removed");
                return 0;
            }, policyName)));

        // definitions as code
        var file = new Argument<FileInfo>("FILE") { HelpName = "FILE", Description = "a HOCON file of storage policies and backup sets (see hocon/definitions-example.conf)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "say what would change, change nothing" };
        var prune = new Option<bool>("--prune") { Description = "also remove the sets and policies the file does not name" };
        root.Subcommands.Add(Verb("apply", "make the cell's storage policies and backup sets what FILE says: all of it or nothing", async (pr, o, c) =>
        {
            var f = pr.GetValue(file)!;
            if (!f.Exists) throw new ShellException($"no file {f.FullName}");
            if (f.Length > 1 << 20) throw new ShellException($"{f.FullName} is {f.Length} bytes; an apply file is at most 1 MiB");
            var cmd = new ApplyFile { Text = await File.ReadAllTextAsync(f.FullName, c), Name = f.Name, DryRun = pr.GetValue(dryRun), Prune = pr.GetValue(prune) };
            var result = await session.Call<ApplyResult>(cmd, c);
            if (o.Json)
            {
                o.Write(result);
                return 0;
            }
            var changes = result.Changes.Where(x => x.Action != "unchanged").ToList();
            if (changes.Count > 0)
                o.Table(["ACTION", "KIND", "NAME", "FIELDS"], changes.Select(x => new[] { x.Action, x.Kind, x.Name, string.Join(" ", x.Fields) }));
            var unchanged = result.Changes.Count - changes.Count;
            o.Line(changes.Count == 0 ? $"nothing to change ({unchanged} definitions as the file says)"
                : result.Applied ? $"applied: {changes.Count} changes{(unchanged > 0 ? $", {unchanged} unchanged" : "")}"
                : $"dry run: {changes.Count} changes would be made; nothing was changed");
            return 0;
        }, file, dryRun, prune));

        var below = new Argument<string>("PATH") { HelpName = "PATH", Description = "list only below this path", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => "" };
        var findPattern = new Argument<string>("PATTERN")
        {
            HelpName = "PATTERN",
            Description = "a name or glob matched against each entry's name (passwd, *.conf), or, with a '/', against the whole path " +
                          "from the root (/etc/**/*.conf); * and ? stay within a name, ** crosses directories",
        };
        var findClient = new Option<string?>("--client") { Description = "only this client's snapshots", HelpName = "HOST" };
        var since = new Option<DateTimeOffset?>("--since")
        {
            Description = "only snapshots made since then: a time (2026-12-01, 2026-12-01T22:00, local unless it has an offset) or a duration back from now (7d, 12h)",
            HelpName = "TIME", CustomParser = r => SinceOf(r),
        };
        var findLimit = new Option<int>("--limit") { Description = "show at most N versions (default 1000, at most 20000)", HelpName = "N" };
        var ignoreCase = new Option<bool>("--ignore-case", "-i") { Description = "match without regard to case" };
        root.Subcommands.Add(Verb("find", "every version of matching files across the snapshots: size, mtime, and the snapshots that hold it", async (pr, o, c) =>
        {
            var limit = pr.GetValue(findLimit);
            if (limit is < 0 or > 20_000) throw new ShellException($"--limit {limit}: give 1 to 20000", 2);
            var query = new FindFiles
            {
                Pattern = pr.GetValue(findPattern)!, Client = pr.GetValue(findClient) ?? "", Limit = limit, IgnoreCase = pr.GetValue(ignoreCase),
                SinceUnixMs = pr.GetValue(since)?.ToUnixTimeMilliseconds() ?? 0,
            };
            var found = await session.Call<FilesFound>(query, c, m =>
            {
                if (m is FindProgress p && !o.Json)
                    Console.Error.WriteLine($"indexing snapshot {p.Snapshot}: {p.IndexesBuilt} of {p.IndexesToBuild} file indexes built");
            });
            if (o.Json) o.Write(found);
            else
            {
                o.Table(["MODIFIED", "SIZE", "TYPE", "CLIENT", "IN", "FIRST SEEN", "LAST SEEN", "PATH"], found.Versions.Select(v => new[]
                {
                    Output.FileTime(v.MtimeUnixSec), Output.Size(v.Size), v.Type, v.Client, $"{v.Snapshots} snapshot{(v.Snapshots == 1 ? "" : "s")}",
                    $"{v.FirstSnapshot} {Output.Time(v.FirstUnixMs)}", $"{v.LastSnapshot} {Output.Time(v.LastUnixMs)}", v.Path,
                }));
                Console.Error.WriteLine($"{Count(found.Versions.Count, "version")} of {Count(found.Matches, "matching entry", "matching entries")} in {Count(found.SnapshotsSearched, "snapshot")} " +
                                        $"({found.EntriesSearched} entries searched{(found.IndexesBuilt > 0 ? $", {found.IndexesBuilt} indexes built" : "")}) in {found.Seconds:F2} s");
                if (found.Truncated)
                    Console.Error.WriteLine($"more matched than shown (limit {(limit == 0 ? 1000 : limit)} versions, or as many matches in one snapshot): narrow the pattern, " +
                                            "add --client or --since, or raise --limit");
            }
            foreach (var n in found.NotSearched) Console.Error.WriteLine($"not searched: snapshot {n}");
            return found.NotSearched.Count == 0 ? 0 : 1;
        }, findPattern, findClient, since, findLimit, ignoreCase));
        root.Subcommands.Add(Verb("ls", "the files of a snapshot, like ls -lR", async (pr, o, c) =>
        {
            var entries = new List<TreeEntry>();
            void Page(SnapshotTree t)
            {
                if (o.Json) entries.AddRange(t.Entries);
                else foreach (var e in t.Entries) o.Line(e.ToLine());
            }
            var last = await session.Call<SnapshotTree>(new ListSnapshotTree { Snapshot = pr.GetValue(snapshot)!, Path = pr.GetValue(below) ?? "" }, c,
                m => Page((SnapshotTree)m));
            Page(last);
            if (o.Json) o.Write(new SnapshotTree { Snapshot = last.Snapshot, Entries = { entries } });
            return 0;
        }, snapshot, below));
        return root;
    }

    /// <summary>The values of a comma-separated option (--state failed,missed), each a protobuf enum value's name without its prefix; a wrong one is a usage error.</summary>
    private static IEnumerable<T> Listed<T>(string? text, string option, string known) where T : struct, Enum
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(word =>
            Enum.GetValues<T>().FirstOrDefault(v => !v.ToString().EndsWith("Unspecified", StringComparison.Ordinal)
                                                    && string.Equals(v.ToString(), word, StringComparison.OrdinalIgnoreCase)) is var found && !found.Equals(default(T))
                ? found : throw new ShellException($"{option} '{word}': give {known}", 2)).ToList();
    }

    /// <summary>--max-run-time of a set or a backup.</summary>
    private static Option<TimeSpan> MaxRunTime(string of) => new("--max-run-time")
    {
        Description = $"stop {of} whose attempt runs longer, and end it FAILED (not retried), e.g. 6h; default: no limit",
        HelpName = "DURATION", CustomParser = r => DurationOf(r),
    };

    /// <summary>A duration as an operator types it: a number and s, m, h or d (90s, 30m, 4h, 1d).</summary>
    private static TimeSpan DurationOf(System.CommandLine.Parsing.ArgumentResult r)
    {
        var text = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
        if (SharedOptions.ParseDuration(text) is { } d) return d;
        r.AddError($"'{text}' is not a duration: a number and s, m, h or d, e.g. 30m or 4h");
        return TimeSpan.Zero;
    }

    /// <summary>A time as an operator types it: ISO 8601 (local unless it has an offset), or a duration from now.</summary>
    private static DateTimeOffset TimeOf(System.CommandLine.Parsing.ArgumentResult r) =>
        AheadOf(r, SharedOptions.ParseDuration, "give 2026-12-24T22:00 (local), 2026-12-24T22:00Z, or a duration from now such as 4h");

    /// <summary>The end of a hold as an operator types it: ISO 8601 (local unless it has an offset), or an age from now (SharedOptions.ParseAge: 90d, 6mo, 7y).</summary>
    private static DateTimeOffset HoldEndOf(System.CommandLine.Parsing.ArgumentResult r) =>
        AheadOf(r, SharedOptions.ParseAge, "give 2027-06-30 (local), 2027-06-30T00:00Z, or an age from now such as 90d, 6mo or 7y");

    /// <summary>A time to come: ISO 8601 (local unless it has an offset), or what <paramref name="span"/> reads, from now.</summary>
    private static DateTimeOffset AheadOf(System.CommandLine.Parsing.ArgumentResult r, Func<string, TimeSpan?> span, string forms)
    {
        var text = r.Tokens.Count > 0 ? r.Tokens[^1].Value.Trim() : "";
        if (span(text) is { } d) return DateTimeOffset.Now + d;
        if (DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeLocal, out var t)) return t;
        r.AddError($"'{text}' is not a time: {forms}");
        return default;
    }

    /// <summary>Retention rules as an operator types them in one option: weekly=52,last=2,within=30d.</summary>
    private static RetentionRule KeepRules(string text)
    {
        var r = new RetentionRule();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2) throw new ShellException($"--copy-keep '{part}': give KEY=VALUE, e.g. weekly=52", 2);
            if (kv[0] == "within")
            {
                r.WithinSeconds = (long)(SharedOptions.ParseAge(kv[1]) ?? throw new ShellException($"--copy-keep within='{kv[1]}' is not an age: {SharedOptions.AgeForm}", 2)).TotalSeconds;
                continue;
            }
            if (!int.TryParse(kv[1], out var n) || n < 0) throw new ShellException($"--copy-keep {kv[0]}='{kv[1]}': give a count, 0 or more", 2);
            switch (kv[0])
            {
                case "last": r.Last = n; break;
                case "daily": r.Daily = n; break;
                case "weekly": r.Weekly = n; break;
                case "monthly": r.Monthly = n; break;
                case "yearly": r.Yearly = n; break;
                case "minimum": r.Minimum = n; break;
                default: throw new ShellException($"--copy-keep: unknown rule '{kv[0]}': use last, within, daily, weekly, monthly, yearly, minimum", 2);
            }
        }
        return r;
    }

    /// <summary>0 when the audit trail's chain is whole; else 1, and why on stderr.</summary>
    private static int AuditChain(AuditList list)
    {
        if (list.Broken == "") return 0;
        Console.Error.WriteLine($"the audit trail is broken: {list.Broken}");
        return 1;
    }

    private static string Count(long n, string one, string? many = null) => $"{n} {(n == 1 ? one : many ?? one + "s")}";

    /// <summary>A moment in the past as an operator types it: ISO 8601 (local unless it has an offset), or a duration back from now.</summary>
    private static DateTimeOffset? SinceOf(System.CommandLine.Parsing.ArgumentResult r)
    {
        var text = r.Tokens.Count > 0 ? r.Tokens[^1].Value.Trim() : "";
        if (SharedOptions.ParseDuration(text) is { } d) return DateTimeOffset.Now - d;
        if (DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeLocal, out var t)) return t;
        r.AddError($"'{text}' is not a time: give 2026-12-01 or 2026-12-01T22:00 (local), 2026-12-01T22:00Z, or a duration back from now such as 7d");
        return null;
    }

    private static async Task<int> EnableSet(Session session, Output o, string name, bool enabled, CancellationToken cancel)
    {
        var info = await session.Call<BackupSetInfo>(new EnableBackupSet { Name = name, Enabled = enabled }, cancel);
        o.Line(o.Json ? Output.ToJson(info) : $"backup set {name} {(enabled ? "enabled" : "disabled")}" +
                                              (info.NextRunUnixMs != 0 ? $"; next run {Output.Time(info.NextRunUnixMs)}" : ""));
        return 0;
    }

    /// <summary>What abk library disable / enable says: the library's state, and the jobs still running on it.</summary>
    private static int EnabledLine(Output o, LibraryInfo l)
    {
        if (o.Json) o.Write(l);
        else if (l.Disabled != "") o.Line($"library {l.Id} disabled ({l.Disabled}): no new job starts on it; {l.ActiveSessions} running on it finish" +
                                          " ('abk job list' shows the running jobs: a backup running now may still go on into it when its own library fills)");
        else o.Line($"library {l.Id} enabled: jobs waiting for it start");
        return 0;
    }

    /// <summary>A changer command (operator only): the inventory after it.</summary>
    private static async Task<int> ChangeTape(Session session, Output o, ChangeTape command, CancellationToken cancel) =>
        Inventory(o, await session.Call<LibraryInventory>(command, cancel));

    private static int Inventory(Output o, LibraryInventory inventory)
    {
        if (o.Json)
        {
            o.Write(inventory);
            return 0;
        }
        var bySlot = inventory.Cartridges.Where(c => c.Place == "slot").ToDictionary(c => c.Number);
        o.Table(["SLOT", "BARCODE", "KIND", "LABEL", "VOLUME", "FILES", "USES"], Enumerable.Range(1, inventory.Slots).Select(n => bySlot.TryGetValue(n, out var c)
            ? [n.ToString(), c.Barcode, c.Kind, c.Label, c.Retired ? "retired" : c.Volume > 0 ? c.Volume.ToString() : c.Label != "" ? "scratch" : "",
               c.Files > 0 ? c.Files.ToString() : "", c.Kind == "cleaning" ? $"{c.Uses}{(c.Worn ? " (worn out)" : "")}" : ""]
            : new[] { n.ToString(), "", "", "", "", "", "" }));
        o.Line("");
        o.Table(["DRIVE", "CARTRIDGE", "LABEL", "MOUNTS", "HOURS", "CLEANINGS", "LAST CLEANED", "CLEANING DUE", "FAILED"], inventory.Drives.Select(d => new[]
        {
            d.Number.ToString(), d.Cartridge, inventory.Cartridges.FirstOrDefault(c => c.Barcode == d.Cartridge)?.Label ?? "", d.Mounts.ToString(), $"{d.Hours:F2}",
            d.Cleanings.ToString(), d.LastCleanedUnixMs > 0 ? Output.Time(d.LastCleanedUnixMs) : "", d.CleaningDue, d.Failed,
        }));
        var outside = inventory.Cartridges.Where(c => c.Place == "outside").Select(c => c.Barcode + (c.Volume > 0 ? $" (volume {c.Volume})" : "")).ToList();
        if (outside.Count > 0) o.Line($"outside the library: {string.Join(", ", outside)}");
        foreach (var worn in inventory.Cartridges.Where(c => c.Worn)) o.Line($"cleaning cartridge {worn.Barcode} is worn out: export it and import a new one");
        foreach (var retired in inventory.Cartridges.Where(c => c.Retired && c.Place != "outside")) o.Line($"cartridge {retired.Barcode} is retired: export it (abk library export)");
        return 0;
    }

    private static async Task<int> ChangeMember(Session session, Output o, string address, MemberChange change, CancellationToken cancel, bool force = false)
    {
        var done = await session.Call<MemberChangeRequested>(new ChangeMember { Address = address, Change = change, Force = force }, cancel);
        o.Line(o.Json ? Output.ToJson(done) : $"{change.ToString().ToLowerInvariant()} requested for {done.Address}");
        return 0;
    }

    private static async Task<int> StartJob(Session session, Output o, IMessage command, bool noWait, CancellationToken cancel)
    {
        var accepted = await session.Call<JobAccepted>(command, cancel);
        if (noWait)
        {
            o.Line(o.Json ? Output.ToJson(accepted) : accepted.Job);
            return 0;
        }
        if (!o.Json) o.Line($"job {accepted.Job} queued");
        return await WaitForJob(session, o, accepted.Job, cancel);
    }

    /// <summary>
    /// How long one signed watch is followed before a new one is sent: the manager takes a watch signed within the last
    /// hour (OperatorCommands.LookWindow), and the node gives it to the manager again every 30 s (a manager that
    /// took over knows no watcher): a job longer than that is followed by a watch signed anew.
    /// </summary>
    private static readonly TimeSpan WatchRenewal = TimeSpan.FromMinutes(50);

    /// <summary>Follows a job to its end. Exit code: 0 succeeded, 3 succeeded with files it could not handle, 1 otherwise.</summary>
    private static async Task<int> WaitForJob(Session session, Output o, string job, CancellationToken cancel)
    {
        var info = await FollowJob(session, o, job, cancel);
        o.Line(o.Json ? Output.ToJson(info) : Output.Job(info));
        return ExitOf(info);
    }

    /// <summary>0 for a job that succeeded (3 with errors); 1, said on stderr, for one that did not.</summary>
    private static int ExitOf(JobInfo info)
    {
        if (info.State == JobState.Succeeded && info.Suspect != "")
        {
            // Exit 3 too: done, but to be looked at before anything else (a cron wrapper must not report it OK).
            Console.Error.WriteLine($"abk: job {info.Id}'s snapshot {info.Snapshot} is suspect: {info.Suspect}; its set's retention waits until you check it " +
                                    "('abk snapshot show', then 'abk snapshot clear-suspect')");
            return 3;
        }
        if (info.State == JobState.Succeeded && info.Errors > 0)
        {
            // Exit 3: what was not handled said where a script's log catches it (stderr), not only in the output.
            Console.Error.WriteLine($"abk: job {info.Id} succeeded with {info.Errors} error{(info.Errors == 1 ? "" : "s")}" +
                                    (info.Kind == JobKind.Backup && info.Snapshot != "" ? $": 'abk snapshot show {info.Snapshot}' lists them" : $": 'abk job show {info.Id}' says which"));
            return 3;
        }
        if (info.State == JobState.Succeeded) return 0;
        Console.Error.WriteLine($"abk: job {info.Id} {Output.State(info.State)}: {info.Reason}");
        return 1;
    }

    /// <summary>The job as it ended, its progress shown meanwhile.</summary>
    private static async Task<JobInfo> FollowJob(Session session, Output o, string job, CancellationToken cancel)
    {
        try
        {
            return await o.WithProgress(job, async (progress, status) =>
            {
                while (true)
                {
                    using var renewal = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    renewal.CancelAfter(WatchRenewal);
                    try
                    {
                        return await session.Call<JobInfo>(new WatchJob { Job = job, WithState = true }, renewal.Token, m =>
                        {
                            if (m is JobProgress p) progress(p);
                            else if (m is JobInfo j) status(j);
                        });
                    }
                    catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                    {
                        // renewed: the job goes on, followed by a watch signed now
                    }
                }
            });
        }
        catch (ShellException e) when (!e.Refused)
        {
            // The job goes on where the shell lost it: say which it is (with --json its id was not printed yet).
            throw new ShellException($"job {job}: {e.Message} (the job itself goes on: 'abk job watch {job}' follows it)", e.ExitCode);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            throw new JobFollowInterrupted(job, cancel);
        }
    }

    /// <summary>The catalog's snapshots, as the node sends them: page by page, put together here.</summary>
    private static async Task<SnapshotList> Snapshots(Session session, ListSnapshots request, CancellationToken cancel)
    {
        var all = new SnapshotList();
        request.Take = 1000; // this shell takes the list in pages (of the node's size)
        var last = await session.Call<SnapshotList>(request, cancel, m => { if (m is SnapshotList page) all.Snapshots.AddRange(page.Snapshots); });
        all.Snapshots.AddRange(last.Snapshots);
        return all;
    }

    /// <summary>Snapshot ids for completion; none when the node cannot be reached.</summary>
    private static IEnumerable<string> SnapshotIds(Session session) =>
        Ids(async c => (await Snapshots(session, new ListSnapshots(), c)).Snapshots.Select(x => x.Id));

    /// <summary>Ids for completion, asked of the node; none when it cannot be reached.</summary>
    private static IEnumerable<string> Ids<T>(Session session, IMessage list, Func<T, IEnumerable<string>> ids) where T : class, IMessage =>
        Ids(async c => ids(await session.Call<T>(list, c)));

    private static IEnumerable<string> Ids(Func<CancellationToken, Task<IEnumerable<string>>> fetch)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            return fetch(timeout.Token).GetAwaiter().GetResult().ToList();
        }
        catch (Exception e) when (e is ShellException or OperationCanceledException)
        {
            return [];
        }
    }

    /// <summary>A certificate's serial number and subject from its file, or the serial number as written (the manager checks it).</summary>
    private static (string Serial, string Subject) CertificateNamed(string serialOrFile)
    {
        if (!File.Exists(serialOrFile)) return (serialOrFile, "");
        try
        {
            using var cert = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(serialOrFile);
            return (cert.SerialNumber, cert.Subject);
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new ShellException($"{serialOrFile} is not a certificate ({e.Message}): give a .crt file, or the serial number", 2);
        }
    }
}
