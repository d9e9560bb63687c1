using ActorBackup.Cluster.Manager;
using ActorBackup.Cluster.Media;
using Akka.Configuration;

namespace ActorBackup.Cluster.Hosting;

/// <summary>The settings under actorbackup.* that say what this node is.</summary>
public sealed record NodeSettings(
    string DataDir, IReadOnlyList<string> Roles, IReadOnlyList<LibraryDeclaration> Libraries, string ClientId, string KeyDir,
    int ChunkAverage, int CompressionLevel, string Persistence, long BackupRateLimit = 0, int OpsPort = 0, string CertsDir = "", QueueLimits? Queue = null,
    string MetricsHost = "127.0.0.1", int MetricsPort = 0)
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
            // One key says how many jobs a library takes at once, and the manager's queue reads that same number.
            if (obj.GetKey("streams") is not null)
                throw new ConfigurationException($"library {id}: 'streams' is now called 'drives' (the same setting: how many jobs may read or write the library at once); rename it");
            var drives = obj.GetKey("drives")?.GetInt() ?? LibraryDeclaration.DefaultDrives;
            if (drives < 1) throw new ConfigurationException($"library {id}: drives must be at least 1, got {drives}");
            var reserve = obj.GetKey("reserve") is { } r ? r.GetByteSize() ?? throw new ConfigurationException($"library {id}: reserve must be a size such as 64MiB") : -1;
            if (reserve < -1) throw new ConfigurationException($"library {id}: reserve must be a size such as 64MiB, got {reserve}");
            libraries.Add(new LibraryDeclaration(id, path == "" ? Path.Combine(dataDir, "libraries", id) : Path.GetFullPath(path), capacity, drives, reserve));
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
            c.GetString("certs-dir", "") is { Length: > 0 } certs ? Path.GetFullPath(certs) : Path.Combine(dataDir, "certs"),
            new QueueLimits(c.GetInt("manager.max-jobs", 0), c.GetInt("manager.max-jobs-per-client", 4), c.GetTimeSpan("manager.retry-backoff", TimeSpan.FromSeconds(30)), c.GetInt("manager.keep-jobs-per-set", 100),
                c.GetTimeSpan("manager.priority-aging", TimeSpan.FromHours(1)), c.GetTimeSpan("manager.job-probe", TimeSpan.FromSeconds(30)),
                c.GetDouble("manager.prune-compact-threshold", 0.2), c.GetTimeSpan("manager.prune-orphans-after", TimeSpan.FromDays(1)),
                ScheduleOf("prune-schedule", c.GetString("manager.prune-schedule", "")), ScheduleOf("check-schedule", c.GetString("manager.check-schedule", ""))),
            c.GetString("metrics.host", "127.0.0.1"), c.GetInt("metrics.port", 0));
    }

    /// <summary>A schedule of the manager's as the HOCON gives it; a rule that does not parse stops the node with the reason.</summary>
    private static string ScheduleOf(string key, string cron) =>
        cron == "" || Manager.ManagerState.ParseCron(cron, out var error) is not null ? cron
            : throw new Akka.Configuration.ConfigurationException($"actorbackup.manager.{key} '{cron}' does not parse: {error}");

    /// <summary>The operator endpoint's port: as set, else the Akka.Remote port + 1000 (any free port when that is 0).</summary>
    public static int OpsPortFor(int configured, int remotePort) => configured switch
    {
        >= 0 => configured,
        _ when remotePort == 0 => 0,
        _ => remotePort + 1000,
    };
}
