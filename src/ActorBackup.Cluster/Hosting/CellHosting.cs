using Akka.Cluster.Tools.PublishSubscribe;
using ActorBackup.Cluster.Client;
using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Manager;
using ActorBackup.Cluster.Media;
using ActorBackup.Cluster.Ops;
using ActorBackup.Cluster.Sharding;
using ActorBackup.Engine.Chunking;
using ActorBackup.Protocol;
using ActorBackup.Cluster.Trust;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Client;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Persistence.Sql.Hosting;
using Microsoft.Data.Sqlite;

namespace ActorBackup.Cluster.Hosting;

/// <summary>
/// A node of the cell on Akka.Hosting: what its HOCON says it is (roles, libraries, persistence) becomes the
/// ActorSystem `actorbackup` with the manager singleton (or its proxy), the media shard region (or its
/// proxy), the client, the ops endpoint, and the refs in the ActorRegistry: ManagerActor (the singleton
/// proxy), MediaActor (the shard region), ClientActor (when this node has the client role), OpsActor.
/// </summary>
public static class CellHosting
{
    public const string SystemName = "actorbackup";

    /// <param name="trust">this node's certificates (NodeTrust.ForNode): every connection is mutual TLS under the cell's CA</param>
    /// <param name="keys">the client's keys (CellKeyring.Load, before the host starts); null when the node has no client role</param>
    public static AkkaConfigurationBuilder AddCell(this AkkaConfigurationBuilder akka, Config config, NodeSettings settings, NodeTrust trust, Engine.Crypto.KeyRing? keys)
    {
        // The node's folder holds the catalog (every host's paths, the sets' commands) and the libraries: its user's alone
        // when the node makes it (one made by an operator is left as it is).
        Engine.Posix.Posix.CreateDirectories(settings.DataDir, 0x1C0);
        var roles = new List<string>(settings.Roles);
        if (settings.Roles.Contains("media")) roles.AddRange(settings.Libraries.Select(l => LibraryAffinityAllocation.RolePrefix + l.Id));

        // The roles go in as a HOCON value rather than ClusterOptions.Roles, which Akka.Cluster.Hosting 1.5.73
        // writes into HOCON unquoted: "library:lib1" does not parse there.
        akka.AddHocon(HoconValues.At("akka.cluster.roles", roles), HoconAddMode.Prepend)
            // Each member says which build it runs (abk cluster show): a cell upgraded host by host shows where it is.
            .AddHocon(HoconValues.At("akka.cluster.app-version", BuildVersion), HoconAddMode.Prepend)
            // Akka.Remote over TLS: the scheme follows the transport, so seeds written akka.tcp:// (as ever) are read as akka.ssl.tcp://.
            .AddHocon(HoconValues.At("akka.remote.dot-netty.tcp.enable-ssl", true), HoconAddMode.Prepend)
            .AddHocon(HoconValues.At("akka.cluster.seed-nodes", config.GetStringList("akka.cluster.seed-nodes").Select(RemoteAddresses.Secure).ToList()), HoconAddMode.Prepend)
            .AddSetup(new NodeTrustSetup(trust))
            .AddSetup(trust.RemoteSetup())
            .AddHocon(config, HoconAddMode.Append)
            .ConfigureLoggers(l => l.LogLevel = Akka.Event.Logging.LogLevelFor(config.GetString("akka.loglevel", "WARNING")))
            .WithClustering(new ClusterOptions())
            .WithClusterClientReceptionist()
            .WithDistributedPubSub(""); // every node: subscribers to the manager's job-ended topic may be anywhere
        // Only the manager and the media agents keep a journal (sharding's state is in ddata): a client host's node
        // gets no journal and needs no credentials for it (with them, a compromised client host could write the
        // manager's events: sets whose commands the manager and every client run).
        if (NeedsJournal(settings))
            akka.WithSqlPersistence(ConnectionString(config, settings), config.GetString("akka.persistence.journal.sql.provider-name"));

        var extractor = new MediaMessageExtractor();
        if (settings.Roles.Contains("media"))
            akka.WithActors((system, registry) =>
            {
                var declared = settings.Libraries.ToDictionary(l => l.Id);
                var server = new DataPlaneServer(system.Settings.Config.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1"),
                    system.Settings.Config.GetInt("actorbackup.data-plane-port", 0), TimeSpan.FromMinutes(5), DataPlaneSessions.Get(system), trust,
                    log: message => Akka.Event.LoggingExtensions.Warning(system.Log, message));
                system.RegisterOnTermination(server.Dispose);
                if (system.Settings.Config.GetInt("actorbackup.data-plane-port", 0) == 0 && !System.Net.IPAddress.IsLoopback(server.Endpoint.Address))
                    Akka.Event.LoggingExtensions.Warning(system.Log, "this node's data plane listens on port {0}, chosen at random (actorbackup.data-plane-port = 0), and " +
                        "another at each start: clients on other hosts reach it only through a firewall that lets any port through. Set actorbackup.data-plane-port and open that port",
                        server.Endpoint.Port);
                var endpoint = new DataPlaneEndpoint(AdvertisedHost(system.Settings.Config, server.Endpoint.Address), server.Endpoint.Port);
                // Started by hand, not WithShardRegion: the shards go by library affinity (a custom allocation
                // strategy), which the hosting options do not carry.
                var region = ClusterSharding.Get(system).Start("media", id => MediaActor.Props(
                        declared.TryGetValue(id, out var d) ? d : throw new InvalidOperationException($"library {id} is not declared on this node"),
                        registry.Get<ManagerActor>(), endpoint),
                    ClusterShardingSettings.Create(system).WithRole("media"), extractor, new LibraryAffinityAllocation(system), HandOffStop.Instance);
                registry.Register<MediaActor>(region);
            });
        else akka.WithShardRegionProxy<MediaActor>("media", "media", extractor);

        // After the media region: the manager's props take it. Media agents look the manager proxy up when they
        // start, which is after start-up.
        // Hand-overs stop the manager and the media agents with a message of their own, not a PoisonPill: one that stops
        // a persistent actor at once drops the replies of the events it is writing (a commit a backup waits for).
        var singleton = new ClusterSingletonOptions { Role = "manager", TerminationMessage = HandOffStop.Instance };
        if (settings.Roles.Contains("manager"))
            akka.WithSingleton<ManagerActor>("manager", (system, registry, _) =>
                ManagerActor.Supervised(ManagerActor.Props(registry.Get<MediaActor>(), settings.Queue, DistributedPubSub.Get(system).Mediator)), singleton);
        else akka.WithSingletonProxy<ManagerActor>("manager", singleton);

        return akka.WithActors((system, registry) =>
        {
            if (Metrics.CellMetrics.Serve(settings.MetricsHost, settings.MetricsPort, settings.MetricsAccess) is { } metrics) system.RegisterOnTermination(metrics.Dispose);
            Trust.CertificateWatch.Start(system, trust);
            // A node that cannot be the manager leaves a cell that has none for long (its manager's node formed another).
            if (!settings.Roles.Contains("manager") && settings.ManagerAbsentTimeout > TimeSpan.Zero)
                system.ActorOf(ManagerAbsenceActor.Props(settings.ManagerAbsentTimeout,
                    system.Settings.Config.GetStringList("akka.cluster.seed-nodes").Select(Address.Parse).ToList()), ManagerAbsenceActor.Name);
            var manager = registry.Get<ManagerActor>();
            var media = registry.Get<MediaActor>();
            // Every node refuses the certificates the cell revoked (the manager's list, signed).
            system.ActorOf(RevocationsActor.Props(trust, manager, DistributedPubSub.Get(system).Mediator), "revocations");
            IActorRef? client = null;
            var readsEveryClient = true;
            if (settings.Roles.Contains("client"))
            {
                var ring = keys ?? throw new InvalidOperationException("a node with the client role starts with its keys (CellKeyring.Load)");
                readsEveryClient = ring.HoldsCellKey;
                var clientSettings = new ClientSettings(settings.ClientId, ChunkerOptions.ForAverage(settings.ChunkAverage), settings.CompressionLevel, settings.BackupRateLimit,
                    Path.Combine(settings.DataDir, "file-index"), Path.Combine(settings.DataDir, "restores")) { RereadChangedWithin = settings.RereadChangedWithin };
                client = system.ActorOf(ClientActor.Props(clientSettings, ring, manager, media), "client");
                registry.Register<ClientActor>(client);
            }
            var endpoint = new OpsEndpoint(system.Settings.Config.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1"), settings.OpsPort,
                trust, system.Log);
            registry.Register<OpsActor>(system.ActorOf(OpsActor.Props(manager, media, client, client is null ? "" : settings.ClientId, endpoint,
                localReadsEveryClient: readsEveryClient), "ops"));
            // Integrators reach the manager's public messages (StartBackup, WatchJob, ...) at /user/manager-proxy, through
            // a door that lets protocol messages only through (a PoisonPill would stop the proxy itself).
            ClusterClientReceptionist.Get(system).RegisterService(new Manager.ManagerDoor((ExtendedActorSystem)system, manager));
            // Wake this node's media agents so that they open their libraries and register with the manager.
            if (settings.Roles.Contains("media"))
                Akka.Cluster.Cluster.Get(system).RegisterOnMemberUp(() =>
                {
                    foreach (var l in settings.Libraries) media.Tell(new GetLibraryStatus { Library = l.Id }, ActorRefs.NoSender); // no answer wanted
                });
        });
    }

    /// <summary>
    /// This build's version as Akka's app-version takes it: "1.YYYYMMDD.HHMM-COMMIT" (its commit's time, UTC, from
    /// Directory.Build.targets, and the commit's first 12 hex digits); "1.0.0" built outside a git clone.
    /// </summary>
    public static readonly string BuildVersion = VersionOf(typeof(CellHosting).Assembly);

    private static string VersionOf(System.Reflection.Assembly assembly)
    {
        var informational = assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "1.0.0";
        var plus = informational.IndexOf('+');
        return plus < 0 ? informational : informational[..plus] + "-" + informational[(plus + 1)..Math.Min(informational.Length, plus + 13)];
    }

    /// <summary>Whether the node keeps a journal: it runs the manager (its catalog) or media agents (their libraries' index).</summary>
    public static bool NeedsJournal(NodeSettings settings) => settings.Roles.Contains("manager") || settings.Roles.Contains("media");

    /// <summary>
    /// The journal's connection string: as the HOCON gives it, else the node's SQLite file in its data folder
    /// (WAL mode), else PostgreSQL's from actorbackup.postgres.connection-string or the file connection-string-file
    /// names, checked before the node starts.
    /// </summary>
    internal static string ConnectionString(Config config, NodeSettings settings)
    {
        if (config.GetString("akka.persistence.journal.sql.connection-string", "") is { Length: > 0 } own)
        {
            if (settings.Persistence == "postgres") CheckPostgres(own, "akka.persistence.journal.sql.connection-string");
            return own;
        }
        switch (settings.Persistence)
        {
            case "sqlite":
                var db = Path.Combine(settings.DataDir, "actorbackup.db");
                PrepareSqlite(db);
                return new SqliteConnectionStringBuilder { DataSource = db, DefaultTimeout = 30 }.ToString();
            case "postgres":
                var cs = config.GetString("actorbackup.postgres.connection-string", "");
                var source = "actorbackup.postgres.connection-string";
                if (cs == "" && config.GetString("actorbackup.postgres.connection-string-file", "") is { Length: > 0 } file)
                    (cs, source) = (ConnectionStringFile(file), $"the connection string in {file}");
                if (cs == "")
                    throw new ConfigurationException("actorbackup.persistence=postgres names no database: give actorbackup.postgres.connection-string-file " +
                                                     "(a file of mode 600 holding Host=...;Database=...;Username=...;Password=...) or actorbackup.postgres.connection-string");
                CheckPostgres(cs, source);
                return cs;
            default:
                throw new ConfigurationException($"unknown actorbackup.persistence '{settings.Persistence}': use sqlite or postgres");
        }
    }

    /// <summary>
    /// Where clients reach this node's data plane: akka.remote's public-hostname when set, else its hostname, else the
    /// address bound; never a wildcard (0.0.0.0 binds every address, and names none a client could connect to).
    /// </summary>
    internal static string AdvertisedHost(Config config, System.Net.IPAddress bound)
    {
        foreach (var key in (string[])["akka.remote.dot-netty.tcp.public-hostname", "akka.remote.dot-netty.tcp.hostname"])
            if (config.GetString(key, "") is { Length: > 0 } host && host is not ("0.0.0.0" or "::" or "[::]")) return host;
        return bound.Equals(System.Net.IPAddress.Any) || bound.Equals(System.Net.IPAddress.IPv6Any) ? System.Net.IPAddress.Loopback.ToString() : bound.ToString();
    }

    /// <summary>The connection string in <paramref name="path"/>: a file its owner alone may read (it holds the journal's password).</summary>
    private static string ConnectionStringFile(string path)
    {
        try
        {
            if ((File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
                throw new ConfigurationException($"actorbackup.postgres.connection-string-file {path} may be read or written by others: it holds the journal's password; chmod 600 it");
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"actorbackup.postgres.connection-string-file {path} cannot be read: {e.Message}");
        }
    }

    /// <summary>
    /// Fails the node's start with what to do when the shared PostgreSQL database cannot be reached, instead
    /// of a manager and media agents that fail their recovery over and over.
    /// </summary>
    /// <param name="source">where the connection string came from, as the operator fixes it</param>
    private static void CheckPostgres(string connectionString, string source)
    {
        Npgsql.NpgsqlConnectionStringBuilder b;
        try
        {
            b = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException($"{source} is not a valid connection string: {e.Message}");
        }
        try
        {
            using var connection = new Npgsql.NpgsqlConnection(connectionString);
            connection.Open();
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new IOException($"cannot reach PostgreSQL database '{b.Database}' at {b.Host}:{b.Port} as '{b.Username}': {e.Message}. " +
                                  $"Start the server, create the role and database, or fix {source}.");
        }
    }

    /// <summary>SQLite in WAL mode: readers never wait for the writer, and a crash loses no committed event.</summary>
    private static void PrepareSqlite(string path)
    {
        // Made 0600 before SQLite opens it (SQLite would make it with the umask's mode; its -wal and -shm files take
        // the database's): the journal is the manager's whole state.
        if (!File.Exists(path))
            new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }).Dispose();
        try
        {
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path }.ToString());
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
            cmd.ExecuteNonQuery();
        }
        catch (SqliteException e)
        {
            // A data folder full or read-only, a database that is not one: said as where and what, not as a stack.
            throw new IOException($"the node's journal {path} cannot be opened ({e.Message}): check that its folder is writable and has free space " +
                                  "(and that the file is an SQLite database), then start the node again", e);
        }
    }
}
