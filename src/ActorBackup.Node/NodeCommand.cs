using ActorBackup.Cluster.Hosting;
using System.CommandLine;
using ActorBackup.Node.Engine;

using Akka.Configuration;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup [--config FILE]... [--set KEY=VALUE]... [--data DIR] [--port N]`: runs a node of a cell until
/// SIGTERM or Ctrl-C, then leaves the cluster through coordinated shutdown. With no argument, the embedded cell.
/// </summary>
public static class NodeCommand
{
    /// <summary>The whole `actorbackup` command line: the node itself, `engine ...` and `bench-recovery`.</summary>
    public static RootCommand Build()
    {
        var config = new Option<string[]>("--config")
        {
            Description = "a node file (HOCON), e.g. hocon/node-media2.conf; repeatable, a later one wins", HelpName = "FILE", AllowMultipleArgumentsPerToken = false,
        };
        var set = new Option<string[]>("--set") { Description = "override one HOCON key, e.g. actorbackup.client-id=web1 (repeatable)", HelpName = "KEY=VALUE" };
        var data = new Option<string?>("--data") { Description = "the node's data folder (actorbackup.data-dir)", HelpName = "DIR" };
        var port = new Option<int?>("--port") { Description = "the node's cluster port (akka.remote.dot-netty.tcp.port); its operator port is this + 1000", HelpName = "N" };
        var root = new RootCommand("""
            actorbackup: a node of an ActorBackup cell, until SIGTERM or Ctrl-C. With no argument: the embedded
            cell, one node with the manager, media and client roles, SQLite and one disk library in ./data, the
            cluster on 127.0.0.1:4053 and the operator endpoint (abk) on 127.0.0.1:5053. Node files
            (hocon/node-*.conf) set roles, libraries, client id and data folder; --set overrides any HOCON key,
            and so does $ABK_HOCON (HOCON text).
            """) { config, set, data, port };
        root.SetAction((pr, _) => Run(BuildConfig(pr.GetValue(config) ?? [], pr.GetValue(set) ?? [], pr.GetValue(data), pr.GetValue(port))));
        root.Subcommands.Add(EngineCommand.Build());
        root.Subcommands.Add(CaCommand.Build());
        root.Subcommands.Add(KeysCommand.Build());
        var chunks = new Option<int>("--chunks") { Description = "index size", HelpName = "N", DefaultValueFactory = _ => 1_000_000 };
        var postgres = new Option<string?>("--postgres") { Description = "measure on this PostgreSQL database instead of SQLite", HelpName = "CONNECTION_STRING" };
        var bench = new Command("bench-recovery", "how long a media agent takes to recover an index of N chunks") { chunks, postgres };
        bench.SetAction(pr => RecoveryBench.Run(pr.GetValue(chunks), pr.GetValue(postgres)));
        root.Subcommands.Add(bench);
        var sets = new Option<int>("--sets") { Description = "how many backup sets", HelpName = "N", DefaultValueFactory = _ => 10_000 };
        var schedule = new Command("bench-schedule", "the manager's time for one schedule decision over N backup sets") { sets };
        schedule.SetAction(pr => ScheduleBench.Run(pr.GetValue(sets)));
        root.Subcommands.Add(schedule);
        var queueSets = new Option<int>("--sets") { Description = "how many backup sets, all due at the same second", HelpName = "N", DefaultValueFactory = _ => 200 };
        var clients = new Option<int>("--clients") { Description = "how many clients (client actors of their own ids in this process)", HelpName = "N", DefaultValueFactory = _ => 20 };
        var drives = new Option<int>("--drives") { Description = "drives of each of the two libraries", HelpName = "N", DefaultValueFactory = _ => 2 };
        var benchDir = new Option<string?>("--dir") { Description = "work folder (kept); default: a temporary one, removed", HelpName = "DIR" };
        var queue = new Command("bench-queue", "the manager's queue under a rush: N sets on C clients and two libraries, all due at once") { queueSets, clients, drives, benchDir };
        queue.SetAction((pr, _) => QueueBench.Run(pr.GetValue(queueSets), pr.GetValue(clients), pr.GetValue(drives), pr.GetValue(benchDir)));
        root.Subcommands.Add(queue);
        var pruneChunks = new Option<int>("--chunks") { Description = "chunks in the library (4 KiB on average), half of them dead", HelpName = "N", DefaultValueFactory = _ => 1_000_000 };
        var pruneDir = new Option<string?>("--dir") { Description = "work folder (kept); default: a temporary one under /var/tmp, removed", HelpName = "DIR" };
        var pruneBench = new Command("bench-prune", "prune of a library of N chunks, every volume half dead") { pruneChunks, pruneDir };
        pruneBench.SetAction(pr => PruneBench.Run(pr.GetValue(pruneChunks), pr.GetValue(pruneDir)));
        root.Subcommands.Add(pruneBench);
        var tapeFiles = new Option<int>("--files") { Description = "files restored", HelpName = "N", DefaultValueFactory = _ => 1000 };
        var tapeCartridges = new Option<int>("--cartridges") { Description = "cartridges they are spread over", HelpName = "N", DefaultValueFactory = _ => 10 };
        var tapeDir = new Option<string?>("--dir") { Description = "work folder (kept); default: a temporary one under /var/tmp, removed", HelpName = "DIR" };
        var tapeBench = new Command("bench-tape", "a restore from a simulated tape library in file order and in tape order: mounts and simulated time") { tapeFiles, tapeCartridges, tapeDir };
        tapeBench.SetAction(pr => TapeBench.Run(pr.GetValue(tapeFiles), pr.GetValue(tapeCartridges), pr.GetValue(tapeDir)));
        root.Subcommands.Add(tapeBench);
        var findVersions = new Option<long>("--versions") { Description = "file versions in all the indexes", HelpName = "N", DefaultValueFactory = _ => 10_000_000 };
        var findSource = new Option<string>("--source") { Description = "the tree each snapshot indexes (walked once)", HelpName = "DIR", DefaultValueFactory = _ => "/usr" };
        var findDir = new Option<string?>("--dir") { Description = "work folder (kept); default: a temporary one under /var/tmp, removed", HelpName = "DIR" };
        var findBench = new Command("bench-find", "abk find's search over file indexes of N file versions") { findVersions, findSource, findDir };
        findBench.SetAction(pr => FindBench.Run(pr.GetValue(findVersions), pr.GetValue(findSource)!, pr.GetValue(findDir)));
        root.Subcommands.Add(findBench);
        return root;
    }

    /// <summary>
    /// The node's configuration: --set lines (each one HOCON line as the operator typed it), --data and --port,
    /// $ABK_HOCON, the --config files, then the shipped base.conf and persistence file.
    /// </summary>
    public static Config BuildConfig(IReadOnlyList<string> configFiles, IReadOnlyList<string> sets, string? data, int? port)
    {
        var config = Config.Empty;
        foreach (var s in sets.Reverse()) config = config.WithFallback(HoconValues.FromSetting(s));
        if (data is not null) config = config.WithFallback(HoconValues.At("actorbackup.data-dir", data));
        if (port is not null) config = config.WithFallback(HoconValues.At("akka.remote.dot-netty.tcp.port", port.Value));
        // The embedded default on another port is still a cell of its own: its own seed (and so its own CA), unless a
        // node file, --set or $ABK_HOCON says which cell it joins. A node file that names neither seeds nor a port (the
        // tape demo) is a whole cell placed by --data and --port like the default; one with a port of its own (a second
        // node, hocon/node-media2.conf) joins the default seed.
        static bool Joins(string file)
        {
            if (!File.Exists(file)) return false;
            var c = ConfigurationFactory.ParseString(File.ReadAllText(file));
            return c.HasPath("akka.cluster.seed-nodes") || c.HasPath("akka.remote.dot-netty.tcp.port");
        }
        if (port is not null && !configFiles.Any(Joins)
            && !sets.Any(s => s.Contains("seed-nodes", StringComparison.Ordinal))
            && !(Environment.GetEnvironmentVariable("ABK_HOCON") ?? "").Contains("seed-nodes", StringComparison.Ordinal))
            config = config.WithFallback(HoconValues.At("akka.cluster.seed-nodes", new[] { $"akka.tcp://actorbackup@127.0.0.1:{port.Value}" }));
        if (Environment.GetEnvironmentVariable("ABK_HOCON") is { Length: > 0 } env) config = config.WithFallback(ConfigurationFactory.ParseString(env));
        foreach (var file in configFiles.Reverse())
        {
            if (!File.Exists(file)) throw new UsageException($"config file {file} does not exist");
            config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(file)));
        }
        var persistence = config.GetString("actorbackup.persistence", "sqlite");
        return config.WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon"), persistence));
    }

    /// <summary>The exit code of a node the cell downed (EX_TEMPFAIL: start it again).</summary>
    public const int Downed = 75;

    /// <summary>
    /// A node the cell downed must join the cell again, never form one of its own: started again while its side of a
    /// partition is still cut off, a first seed would join itself after the seed timeout and make a second cell (with
    /// a second manager on the shared journal). Until it is a member again, a file in its data folder says so, and its
    /// seed list then starts with the other seeds (a node that is not the first seed only joins). Only where other
    /// seeds and a shared journal exist: a single-seed cell has no other cell to join.
    /// </summary>
    public static Config AfterDowned(Config config, string marker)
    {
        if (!File.Exists(marker) || config.GetString("actorbackup.persistence", "sqlite") != "postgres") return config;
        var seeds = config.GetStringList("akka.cluster.seed-nodes").ToList();
        if (seeds.Count < 2 || !ActorBackup.Cluster.Trust.NodeTrust.IsFirstSeed(config)) return config;
        Console.Error.WriteLine($"actorbackup: this node was downed before ({marker}): it joins through the other seeds and does not form a cell of its own; " +
                                $"if every node of the cell is down and this one should form it, remove {marker} and start it again");
        return HoconValues.At("akka.cluster.seed-nodes", seeds.Skip(1).Append(seeds[0]).ToList()).WithFallback(config);
    }

    /// <summary>An exception and every exception under it (inner ones, each of an AggregateException's), outermost first.</summary>
    private static IEnumerable<Exception> Causes(Exception e)
    {
        yield return e;
        var inner = e is AggregateException a ? a.InnerExceptions : e.InnerException is { } one ? [one] : (IReadOnlyList<Exception>)[];
        foreach (var cause in inner.SelectMany(Causes)) yield return cause;
    }

    private static async Task<int> Run(Config config)
    {
        var marker = Path.Combine(Path.GetFullPath(config.GetString("actorbackup.data-dir", "data")), "downed");
        config = AfterDowned(config, marker);
        CellNode node;
        try
        {
            node = await CellNode.StartAsync(config);
        }
        // Akka.Remote's bind failure comes wrapped in AggregateExceptions five deep (GetBaseException stops at the last
        // of them): looked for through every cause, or the node ended with an unhandled exception and SIGABRT.
        catch (Exception e) when (Causes(e).Any(c => c is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse }))
        {
            Console.Error.WriteLine($"actorbackup: cannot listen on port {config.GetInt("akka.remote.dot-netty.tcp.port")} or its operator port: " +
                                    "another node runs here? stop it, or give this one --port N");
            return 1;
        }
        catch (Exception e) when (Causes(e).OfType<Akka.Remote.RemoteTransportException>().FirstOrDefault() is { } transport)
        {
            Console.Error.WriteLine($"actorbackup: the node's cluster transport did not start: {Causes(transport).Last().Message}: " +
                                    "check akka.remote.dot-netty.tcp (hostname, port) and the node's certificates");
            return 1;
        }
        await using (node)
        {
            var self = Akka.Cluster.Cluster.Get(node.System).SelfAddress;
            Console.WriteLine($"actorbackup node {self} operator endpoint {node.OpsEndpoint} roles [{string.Join(", ", node.Settings.Roles)}] data {node.Settings.DataDir}"
                              + (node.Settings.Roles.Contains("media") ? $" libraries [{string.Join(", ", node.Settings.Libraries.Select(l => l.Id + "=" + l.Path))}]" : ""));
            Akka.Cluster.Cluster.Get(node.System).RegisterOnMemberUp(() =>
            {
                Console.WriteLine("cell member up");
                try
                {
                    File.Delete(marker); // a member again: the next start is an ordinary one
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"actorbackup: could not remove {marker} ({e.Message}): remove it by hand");
                }
            });
            await node.RunUntilStopped();
            if (Akka.Actor.CoordinatedShutdown.Get(node.System).ShutdownReason is ManagerAbsentReason)
            {
                // Its cell had no manager (it formed anew elsewhere): started again, the node joins through its seeds.
                Console.Error.WriteLine($"actorbackup: this node's cell had no manager for {node.Settings.ManagerAbsentTimeout}: it left; " +
                                        "start it again and it joins through its seeds (systemd does, with scripts/actorbackup.service)");
                return Downed;
            }
            if (Akka.Actor.CoordinatedShutdown.Get(node.System).ShutdownReason is Akka.Actor.CoordinatedShutdown.ClusterDowningReason)
            {
                // Downed: unreachable for longer than the split-brain resolver waits (a partition, a pause, the manager's
                // node lost), or by an operator. A node downed is out of the cell for good; started again it joins anew.
                // Not 0, so that a service manager that restarts on failure (scripts/actorbackup.service) does so.
                Console.Error.WriteLine("actorbackup: this node was downed by the cell (unreachable for too long, or `abk cluster down`): " +
                                        "it stopped; start it again and it joins the cell anew (systemd does, with scripts/actorbackup.service)");
                try
                {
                    // Durable: lost to a power cut, a downed first seed would form a cell of its own when started again.
                    global::ActorBackup.Engine.Posix.Posix.WriteFileDurably(marker, System.Text.Encoding.UTF8.GetBytes(DateTimeOffset.UtcNow.ToString("O")));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"actorbackup: could not note the downing in {marker} ({e.Message})");
                }
                return Downed;
            }
        }
        Console.WriteLine("actorbackup node stopped");
        return 0;
    }
}
