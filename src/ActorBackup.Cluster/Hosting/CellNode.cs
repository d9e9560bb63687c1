using System.Net;
using ActorBackup.Cluster.Manager;
using ActorBackup.Cluster.Media;
using ActorBackup.Cluster.Ops;
using ActorBackup.Cluster.Trust;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ActorBackup.Cluster.Hosting;

/// <summary>
/// One running node of a cell: a .NET generic host with the ActorSystem that <see cref="CellHosting"/>
/// configures. The host's lifetime runs the node: SIGTERM or Ctrl-C (or systemd's stop) runs coordinated
/// shutdown; an ActorSystem that terminates on its own (the node left or was downed) stops the host. Under
/// systemd the node is a Type=notify service. The embedded default (no configuration at all) is one node
/// with every role, SQLite in ./data and one disk library.
/// </summary>
public sealed class CellNode : IAsyncDisposable
{
    public IHost Host { get; }
    public ActorSystem System { get; }
    public NodeSettings Settings { get; }
    public IActorRef Manager { get; }
    public IActorRef Media { get; }
    public IActorRef Ops { get; }
    /// <summary>Where `abk --node` reaches this node.</summary>
    public IPEndPoint OpsEndpoint { get; }

    private CellNode(IHost host, NodeSettings settings, IPEndPoint opsEndpoint)
    {
        Host = host;
        Settings = settings;
        OpsEndpoint = opsEndpoint;
        System = host.Services.GetRequiredService<ActorSystem>();
        var registry = ActorRegistry.For(System);
        Manager = registry.Get<ManagerActor>();
        Media = registry.Get<MediaActor>();
        Ops = registry.Get<OpsActor>();
    }

    /// <summary>Builds and starts the node's host; throws what kept it from starting.</summary>
    public static async Task<CellNode> StartAsync(Config config, CancellationToken cancel = default)
    {
        var settings = NodeSettings.From(config);
        // The cell's first start makes the cell key before the CA (whatever the node's roles): a CA on disk then means the
        // key was made, and a first node that finds the CA but no key lost it (made anew, it would leave every backup
        // made so far unreadable, silently). Any other client node is given its keyring.
        if (NodeTrust.MakesCell(config, settings)) Client.CellKeyring.EnsureCellKey(settings.KeyDir);
        var trust = NodeTrust.ForNode(config, settings);
        // The client's keys too, before the host: a wrong or damaged key file is a clear error, not a hosting stack trace.
        var keys = settings.Roles.Contains("client")
            ? Client.CellKeyring.Load(settings.KeyDir, settings.ClientId, create: false, firstSeed: NodeTrust.IsFirstSeed(config))
            : null;
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSystemd();
        // Room for coordinated shutdown: running jobs are stopped and recorded INTERRUPTED before the node goes.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(45));
        builder.Services.AddAkka(CellHosting.SystemName, akka => akka.AddCell(config, settings, trust, keys));
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancel);
            var system = host.Services.GetRequiredService<ActorSystem>();
            var endpoint = await ActorRegistry.For(system).Get<OpsActor>().Ask<IPEndPoint>(OpsActor.GetEndpoint.Instance, TimeSpan.FromSeconds(30), cancel);
            return new CellNode(host, settings, endpoint);
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    /// <summary>Until the host is told to stop (a signal, systemd, or the ActorSystem ending), then stops it.</summary>
    public Task RunUntilStopped(CancellationToken cancel = default) => Host.WaitForShutdownAsync(cancel);

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        await Host.StopAsync(timeout.Token);
        Host.Dispose();
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
        return Standalone("sqlite", new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, "journal.db") }.ToString(), hoconDir);
    }

    /// <summary>The same on a PostgreSQL database.</summary>
    public static Config StandalonePostgres(string connectionString, string hoconDir) => Standalone("postgres", connectionString, hoconDir);

    private static Config Standalone(string persistence, string connectionString, string hoconDir) =>
        HoconValues.At("akka.loglevel", "WARNING")
            .WithFallback(HoconValues.At("akka.remote.dot-netty.tcp.port", 0))
            .WithFallback(HoconValues.At("akka.cluster.seed-nodes", Array.Empty<string>()))
            .WithFallback(HoconValues.At("akka.persistence.journal.sql.connection-string", connectionString))
            .WithFallback(HoconValues.At("akka.persistence.snapshot-store.sql.connection-string", connectionString))
            .WithFallback(Defaults(hoconDir, persistence));
}
