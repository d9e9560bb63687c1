using ActorBackup.Cluster.Client;
using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Manager;
using ActorBackup.Cluster.Media;
using ActorBackup.Cluster.Ops;
using ActorBackup.Cluster.Sharding;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Chunks;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Client;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using Microsoft.Data.Sqlite;

namespace ActorBackup.Cluster.Hosting;

/// <summary>The settings under actorbackup.* that say what this node is.</summary>
public sealed record NodeSettings(
    string DataDir, IReadOnlyList<string> Roles, IReadOnlyList<LibraryDeclaration> Libraries, string ClientId, string KeyDir,
    int ChunkAverage, int CompressionLevel, string Persistence, long BackupRateLimit = 0, int OpsPort = 0, string OperatorTokenFile = "")
{
    public static NodeSettings From(Config config)
    {
        var c = config.GetConfig("actorbackup");
        var dataDir = Path.GetFullPath(c.GetString("data-dir", "data"));
        var capacity = c.GetLong("volume-capacity", 4L * 1024 * 1024 * 1024);
        var libraries = new List<LibraryDeclaration>();
        foreach (var value in c.GetValue("libraries")?.GetArray() ?? [])
        {
            var obj = value.GetObject();
            var id = obj.GetKey("id")?.GetString() ?? throw new ConfigurationException("every entry of actorbackup.libraries needs an id");
            var path = obj.GetKey("path")?.GetString() ?? "";
            libraries.Add(new LibraryDeclaration(id, path == "" ? Path.Combine(dataDir, "libraries", id) : Path.GetFullPath(path), capacity));
        }
        var roles = c.GetStringList("roles").ToList();
        foreach (var r in roles)
            if (r is not ("manager" or "media" or "client")) throw new ConfigurationException($"unknown role '{r}' in actorbackup.roles: use manager, media, client");
        var clientId = c.GetString("client-id", "");
        var keyDir = c.GetString("key-dir", "");
        return new NodeSettings(dataDir, roles, libraries, clientId == "" ? Environment.MachineName : clientId,
            keyDir == "" ? Path.Combine(dataDir, "keys") : Path.GetFullPath(keyDir),
            c.GetInt("chunk-average", 1024 * 1024), c.GetInt("compression-level", 3), c.GetString("persistence", "sqlite"),
            c.HasPath("backup-rate-limit") ? c.GetByteSize("backup-rate-limit") ?? 0 : 0,
            OpsPortFor(c.GetInt("ops.port", -1), config.GetInt("akka.remote.dot-netty.tcp.port", 0)),
            c.GetString("ops.token-file", "") is { Length: > 0 } token ? Path.GetFullPath(token) : Path.Combine(dataDir, "certs", Protocol.Ops.OperatorToken.FileName));
    }

    /// <summary>The operator endpoint's port: as set, else the Akka.Remote port + 1000 (any free port when that is 0).</summary>
    public static int OpsPortFor(int configured, int remotePort) => configured switch
    {
        >= 0 => configured,
        _ when remotePort == 0 => 0,
        _ => remotePort + 1000,
    };
}

/// <summary>
/// One running node of a cell: the ActorSystem with the roles its HOCON gives. The embedded default (no
/// configuration at all) is one node with every role, SQLite in ./data and one disk library.
/// </summary>
public sealed class CellNode
{
    public ActorSystem System { get; }
    public NodeSettings Settings { get; }
    public IActorRef Manager { get; }
    public IActorRef Media { get; }
    public IActorRef Ops { get; }
    /// <summary>Where `abk --node` reaches this node.</summary>
    public System.Net.IPEndPoint OpsEndpoint { get; }

    private CellNode(ActorSystem system, NodeSettings settings, IActorRef manager, IActorRef media, IActorRef ops, System.Net.IPEndPoint opsEndpoint)
    {
        OpsEndpoint = opsEndpoint;
        System = system;
        Settings = settings;
        Manager = manager;
        Media = media;
        Ops = ops;
    }

    /// <summary>base.conf and the persistence file, from the folder that ships them.</summary>
    public static Config Defaults(string hoconDir, string persistence = "sqlite")
    {
        var file = Path.Combine(hoconDir, persistence + ".conf");
        if (!File.Exists(file)) throw new ConfigurationException($"no persistence file {file}: use sqlite or postgres");
        return ConfigurationFactory.ParseString(File.ReadAllText(file))
            .WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(hoconDir, "base.conf"))))
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
    }

    /// <summary>
    /// An ActorSystem of its own with a SQLite journal in <paramref name="dir"/>, on no cluster and any free
    /// port: for tests and measurements of one persistent actor.
    /// </summary>
    public static Config StandaloneSqlite(string dir, string hoconDir)
    {
        Directory.CreateDirectory(dir);
        return Standalone("sqlite", $"Data Source={Path.Combine(dir, "journal.db")}", hoconDir);
    }

    /// <summary>The same on a PostgreSQL database.</summary>
    public static Config StandalonePostgres(string connectionString, string hoconDir) => Standalone("postgres", connectionString, hoconDir);

    private static Config Standalone(string persistence, string connectionString, string hoconDir) =>
        ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.remote.dot-netty.tcp.port = 0
            akka.cluster.seed-nodes = []
            akka.persistence.journal.sql.connection-string = "{{connectionString}}"
            akka.persistence.snapshot-store.sql.connection-string = "{{connectionString}}"
            """).WithFallback(Defaults(hoconDir, persistence));

    public static CellNode Start(Config config)
    {
        var settings = NodeSettings.From(config);
        Directory.CreateDirectory(settings.DataDir);
        var roles = new List<string>(settings.Roles);
        if (settings.Roles.Contains("media")) roles.AddRange(settings.Libraries.Select(l => LibraryAffinityAllocation.RolePrefix + l.Id));
        var extra = $"akka.cluster.roles = [{string.Join(",", roles.Select(r => "\"" + r + "\""))}]\n";
        string cs;
        switch (settings.Persistence)
        {
            case "sqlite":
                var db = Path.Combine(settings.DataDir, "actorbackup.db");
                PrepareSqlite(db);
                cs = $"Data Source={db};Default Timeout=30";
                break;
            case "postgres":
                cs = config.GetString("actorbackup.postgres.connection-string", "");
                CheckPostgres(config.GetString("akka.persistence.journal.sql.connection-string", "") is { Length: > 0 } own ? own : cs);
                break;
            default:
                throw new ConfigurationException($"unknown actorbackup.persistence '{settings.Persistence}': use sqlite or postgres");
        }
        foreach (var plugin in new[] { "journal", "snapshot-store" })
            if (config.GetString($"akka.persistence.{plugin}.sql.connection-string", "") == "")
                extra += $"akka.persistence.{plugin}.sql.connection-string = \"{cs.Replace("\\", "\\\\").Replace("\"", "\\\"")}\"\n";
        // Each `abk` is a short-lived remote system ("abk@..."): when it goes, Akka.Remote logs a warning and an
        // error with stack traces for the association, every time. Those two, for shell connections only, are
        // dropped; a node's own disassociation is still logged.
        var logFilter = new Akka.Event.LogFilterBuilder().ExcludeSourceContaining("reliableEndpointWriter-akka.tcp%3A%2F%2Fabk%40").Build();
        var system = ActorSystem.Create("actorbackup",
            Akka.Actor.Setup.ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(ConfigurationFactory.ParseString(extra).WithFallback(config)), logFilter));

        var extractor = new MediaMessageExtractor();
        var sharding = ClusterSharding.Get(system);
        var managerProxy = system.ActorOf(ClusterSingletonProxy.Props("/user/manager",
            ClusterSingletonProxySettings.Create(system).WithRole("manager").WithSingletonName("manager")), "manager-proxy");
        IActorRef media;
        if (settings.Roles.Contains("media"))
        {
            var declared = settings.Libraries.ToDictionary(l => l.Id);
            var server = new DataPlaneServer(system.Settings.Config.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1"),
                system.Settings.Config.GetInt("actorbackup.data-plane-port", 0), TimeSpan.FromMinutes(5));
            system.RegisterOnTermination(server.Dispose);
            var endpoint = new DataPlaneEndpoint(server.Endpoint);
            media = sharding.Start("media", id => MediaActor.Props(
                    declared.TryGetValue(id, out var d) ? d : throw new InvalidOperationException($"library {id} is not declared on this node"), managerProxy, endpoint),
                ClusterShardingSettings.Create(system).WithRole("media"), extractor, new LibraryAffinityAllocation(system), PoisonPill.Instance);
        }
        else media = sharding.StartProxy("media", "media", extractor);

        if (settings.Roles.Contains("manager"))
            system.ActorOf(ClusterSingletonManager.Props(ManagerActor.Props(media), PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole("manager").WithSingletonName("manager")), "manager");

        IActorRef? client = null;
        if (settings.Roles.Contains("client"))
        {
            var keys = CellKeyring.LoadOrCreate(settings.KeyDir);
            var clientSettings = new ClientSettings(settings.ClientId, ChunkerOptions.ForAverage(settings.ChunkAverage), settings.CompressionLevel, settings.BackupRateLimit);
            client = system.ActorOf(ClientActor.Props(clientSettings, keys, managerProxy, media), "client");
        }
        var ops = system.ActorOf(OpsActor.Props(managerProxy, media, client, client is null ? "" : settings.ClientId), "ops");
        var opsEndpoint = new OpsEndpoint(system.Settings.Config.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1"), settings.OpsPort, ops,
            Protocol.Ops.OperatorToken.LoadOrCreate(settings.OperatorTokenFile), system.Log);
        system.RegisterOnTermination(opsEndpoint.Dispose);
        // Integrators reach the manager's public messages (StartBackup, WatchJob, ...) at /user/manager-proxy through ClusterClient.
        ClusterClientReceptionist.Get(system).RegisterService(managerProxy);

        // Wake this node's media agents so that they open their libraries and register with the manager.
        if (settings.Roles.Contains("media"))
            Akka.Cluster.Cluster.Get(system).RegisterOnMemberUp(() =>
            {
                foreach (var l in settings.Libraries) media.Tell(new GetLibraryStatus { Library = l.Id });
            });
        return new CellNode(system, settings, managerProxy, media, ops, opsEndpoint.Endpoint);
    }

    /// <summary>
    /// Fails the node's start with what to do when the shared PostgreSQL database cannot be reached, instead
    /// of a manager and media agents that fail their recovery over and over.
    /// </summary>
    private static void CheckPostgres(string connectionString)
    {
        Npgsql.NpgsqlConnectionStringBuilder b;
        try
        {
            b = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException($"actorbackup.postgres.connection-string is not a valid connection string: {e.Message}");
        }
        try
        {
            using var connection = new Npgsql.NpgsqlConnection(connectionString);
            connection.Open();
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or global::System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new IOException($"cannot reach PostgreSQL database '{b.Database}' at {b.Host}:{b.Port} as '{b.Username}': {e.Message}. " +
                                             "Start the server, create the role and database, or fix actorbackup.postgres.connection-string.");
        }
    }

    /// <summary>SQLite in WAL mode: readers never wait for the writer, and a crash loses no committed event.</summary>
    private static void PrepareSqlite(string path)
    {
        using var connection = new SqliteConnection($"Data Source={path}");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
        cmd.ExecuteNonQuery();
    }
}
