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
    /// <summary>actorbackup.metrics.token-file, .tls-certificate, .tls-key: required when the metrics are served beyond this machine.</summary>
    public Metrics.MetricsAccess? MetricsAccess { get; init; }

    /// <summary>actorbackup.reread-changed-within (BackupOptions.RereadChangedWithin); 0 or more.</summary>
    public TimeSpan RereadChangedWithin { get; init; } = Engine.Archive.BackupOptions.DefaultRereadChangedWithin;
    /// <summary>actorbackup.manager-absent-timeout (<see cref="ManagerAbsence"/>); zero: never.</summary>
    public TimeSpan ManagerAbsentTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>The node's settings; a value of the wrong kind (max-jobs = four) is a ConfigurationException saying so.</summary>
    public static NodeSettings From(Config config)
    {
        try
        {
            return Read(config);
        }
        catch (FormatException e)
        {
            throw new Akka.Configuration.ConfigurationException($"a setting under actorbackup is not of its kind: {e.Message}", e);
        }
    }

    /// <summary>Settings under actorbackup.* that no shipped default names but the node reads.</summary>
    private static readonly string[] KnownWithoutDefault = ["key-dir", "persistence"];

    /// <summary>Settings earlier builds read and this one does not: said and ignored, so that an upgraded node still starts.</summary>
    private static readonly Dictionary<string, string> Retired = new(StringComparer.Ordinal)
    {
        ["ops.token-file"] = "abk reaches the operator endpoint with a certificate of the cell's CA (DATA/certs/operator.crt), not a token",
    };

    /// <summary>
    /// Refuses a key under actorbackup.* that the node does not know, with the nearest one it does: a misspelled key
    /// was ignored, and its default taken silently (a misspelled libraries gave the node lib1, a misspelled connection
    /// string a database nobody meant). The known ones are those the shipped HOCON files name (base.conf and the
    /// persistence files beside it); without those files (a test's own folder) nothing is checked.
    /// </summary>
    private static void RefuseUnknownKeys(Config actorbackup)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "hocon");
        if (!File.Exists(Path.Combine(dir, "base.conf"))) return;
        var known = new HashSet<string>(KnownWithoutDefault, StringComparer.Ordinal);
        foreach (var file in Directory.GetFiles(dir, "*.conf").Where(f => Path.GetFileName(f) is "base.conf" or "sqlite.conf" or "postgres.conf"))
            if (ConfigurationFactory.ParseString(File.ReadAllText(file)).GetConfig("actorbackup") is { IsEmpty: false } shipped)
                known.UnionWith(Leaves(shipped.Root, ""));
        foreach (var key in Leaves(actorbackup.Root, ""))
        {
            if (known.Contains(key)) continue;
            if (Retired.TryGetValue(key, out var why))
            {
                Console.Error.WriteLine($"actorbackup: actorbackup.{key} is no longer read ({why}): remove it");
                continue;
            }
            var (nearest, distance) = known.Select(k => (k, Distance(k, key))).MinBy(n => n.Item2);
            throw new ConfigurationException($"unknown setting actorbackup.{key}" + (distance <= 3 ? $": did you mean actorbackup.{nearest}?" : "") +
                                             $" (README.md and hocon/base.conf list the settings; a setting of a newer build? this is build {CellHosting.BuildVersion})");
        }
    }

    /// <summary>The dotted paths of the values under <paramref name="value"/> that are not objects (a list is one value).</summary>
    private static IEnumerable<string> Leaves(Akka.Configuration.Hocon.HoconValue? value, string prefix)
    {
        if (value is null) yield break;
        if (!value.IsObject())
        {
            if (prefix != "") yield return prefix;
            yield break;
        }
        foreach (var (name, child) in value.GetObject().Items)
            foreach (var leaf in Leaves(child, prefix == "" ? name : prefix + "." + name))
                yield return leaf;
    }

    /// <summary>Levenshtein distance, for "did you mean".</summary>
    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var diagonal = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    private static NodeSettings Read(Config config)
    {
        var c = config.GetConfig("actorbackup");
        RefuseUnknownKeys(c);
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
            var kind = obj.GetKey("kind")?.GetString() ?? "disk";
            var tape = kind switch
            {
                "disk" => null,
                "tape" => TapeOf(id, obj, drives),
                _ => throw new ConfigurationException($"library {id}: kind '{kind}' is not one: use disk or tape"),
            };
            libraries.Add(new LibraryDeclaration(id, path == "" ? Path.Combine(dataDir, "libraries", id) : Path.GetFullPath(path),
                tape?.Changer.CartridgeCapacity ?? capacity, drives, reserve, tape));
        }
        var roles = c.GetStringList("roles").ToList();
        foreach (var r in roles)
            if (r is not ("manager" or "media" or "client")) throw new ConfigurationException($"unknown role '{r}' in actorbackup.roles: use manager, media, client");
        // The catalog is the manager's journal: a manager node that joins another node's cell on a SQLite file of its
        // own would, once the singleton moved to it, recover an empty catalog and have its prunes sweep what the cell
        // stored. A cell of several manager nodes shares one PostgreSQL journal.
        if (roles.Contains("manager") && c.GetString("persistence", "sqlite") == "sqlite" && !Trust.NodeTrust.IsFirstSeed(config))
            throw new ConfigurationException($"a node with the manager role that joins another node's cell (it is not the first of akka.cluster.seed-nodes: {Trust.NodeTrust.FirstSeedNote(config)}) " +
                                             "must share that cell's journal: set actorbackup.persistence=postgres and the cell's connection string, " +
                                             "or leave the manager role out (actorbackup.roles=[media, client])");
        var clientId = c.GetString("client-id", "");
        var keyDir = c.GetString("key-dir", "");
        // Checked here, where the setting can be named: wrong, each backup of the node would fail on it instead.
        var chunkAverage = c.GetInt("chunk-average", 1024 * 1024);
        try
        {
            Engine.Chunking.ChunkerOptions.ForAverage(chunkAverage).Validate();
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException($"actorbackup.chunk-average: {e.Message} (a power of two such as 1048576)");
        }
        var compressionLevel = c.GetInt("compression-level", 3);
        if (compressionLevel is < -7 or > 22)
            throw new ConfigurationException($"actorbackup.compression-level must be a zstd level between -7 and 22 (3 by default), got {compressionLevel}");
        return new NodeSettings(dataDir, roles, libraries, clientId == "" ? Environment.MachineName : clientId,
            keyDir == "" ? Path.Combine(dataDir, "keys") : Path.GetFullPath(keyDir),
            chunkAverage, compressionLevel, c.GetString("persistence", "sqlite"),
            c.HasPath("backup-rate-limit") ? c.GetByteSize("backup-rate-limit") ?? 0 : 0,
            OpsPortFor(c.GetInt("ops.port", -1), config.GetInt("akka.remote.dot-netty.tcp.port", 0)),
            c.GetString("certs-dir", "") is { Length: > 0 } certs ? Path.GetFullPath(certs) : Path.Combine(dataDir, "certs"),
            new QueueLimits(c.GetInt("manager.max-jobs", 0), c.GetInt("manager.max-jobs-per-client", 4), c.GetTimeSpan("manager.retry-backoff", TimeSpan.FromSeconds(30)), c.GetInt("manager.keep-jobs-per-set", 100),
                c.GetTimeSpan("manager.priority-aging", TimeSpan.FromHours(1)), c.GetTimeSpan("manager.job-probe", TimeSpan.FromSeconds(30)),
                c.GetDouble("manager.prune-compact-threshold", 0.2), c.GetTimeSpan("manager.prune-orphans-after", QueueLimits.DefaultOrphansAfter),
                ScheduleOf("prune-schedule", c.GetString("manager.prune-schedule", "")), ScheduleOf("check-schedule", c.GetString("manager.check-schedule", "")),
                c.GetTimeSpan("manager.client-offline-wait", TimeSpan.FromHours(1)), c.GetTimeSpan("manager.stall-timeout", TimeSpan.FromMinutes(30)))
            {
                DeletionDelay = c.GetTimeSpan("manager.deletion-delay", TimeSpan.Zero) is var delay && delay >= TimeSpan.Zero
                    ? delay : throw new ConfigurationException($"actorbackup.manager.deletion-delay must be 0s or more (a duration such as 7d), got {c.GetString("manager.deletion-delay")}"),
                Suspicion = new Suspicion(c.GetDouble("manager.suspect-new-share", Suspicion.DefaultShare) is var share and >= 0 and <= 1
                    ? share : throw new ConfigurationException($"actorbackup.manager.suspect-new-share must be between 0 (off) and 1, got {c.GetString("manager.suspect-new-share")}")),
            },
            c.GetString("metrics.host", "127.0.0.1"), c.GetInt("metrics.port", 0))
        {
            // "-1s" does not parse as a duration (a FormatException); "infinite" parses, as a negative one.
            RereadChangedWithin = c.GetString("reread-changed-within", "").TrimStart().StartsWith('-')
                || c.GetTimeSpan("reread-changed-within", Engine.Archive.BackupOptions.DefaultRereadChangedWithin) is var within && within < TimeSpan.Zero
                ? throw new ConfigurationException($"actorbackup.reread-changed-within must be 0s or more (a duration such as 2s), got {c.GetString("reread-changed-within")}")
                : within,
            ManagerAbsentTimeout = c.GetTimeSpan("manager-absent-timeout", TimeSpan.FromMinutes(2)) is var absent && absent >= TimeSpan.Zero
                ? absent
                : throw new ConfigurationException($"actorbackup.manager-absent-timeout must be 0s or more (a duration such as 2m), got {c.GetString("manager-absent-timeout")}"),
            MetricsAccess = MetricsAccessOf(c),
        };
    }

    /// <summary>
    /// The metrics' token and certificate: all three or none; none only while they are served to this machine alone
    /// (they name clients and libraries: beyond it, plain and open, anyone on the network reads them).
    /// </summary>
    private static Metrics.MetricsAccess? MetricsAccessOf(Config c)
    {
        string PathOf(string key) => c.GetString("metrics." + key, "") is { Length: > 0 } path ? Path.GetFullPath(path) : "";
        var (token, certificate, key) = (PathOf("token-file"), PathOf("tls-certificate"), PathOf("tls-key"));
        var host = c.GetString("metrics.host", "127.0.0.1");
        var local = host == "localhost" || System.Net.IPAddress.TryParse(host, out var address) && System.Net.IPAddress.IsLoopback(address);
        if (token == "" && certificate == "" && key == "")
        {
            if (local || c.GetInt("metrics.port", 0) <= 0) return null;
            throw new ConfigurationException($"actorbackup.metrics.host = \"{host}\" serves the metrics beyond this machine: give actorbackup.metrics.token-file " +
                                             "(a file of this node's user alone, mode 600, holding a token of 16 characters or more that Prometheus sends: " +
                                             "authorization.credentials_file) and actorbackup.metrics.tls-certificate and .tls-key (PEM; Prometheus: scheme: https), " +
                                             "or keep host = \"127.0.0.1\" (docs: README, Monitoring)");
        }
        if (token == "" || certificate == "" || key == "")
            throw new ConfigurationException("actorbackup.metrics.token-file, .tls-certificate and .tls-key go together: give all three (a token without TLS " +
                                             "crosses the network in the clear; TLS without a token lets anyone read)");
        return new Metrics.MetricsAccess(token, certificate, key);
    }

    /// <summary>A tape library's settings (kind = tape); its drives are the library's drives, one key for both.</summary>
    private static TapeDeclaration TapeOf(string id, Akka.Configuration.Hocon.HoconObject obj, int drives)
    {
        string Bad(string key, string what) => $"library {id}: {key} must be {what}";
        long Size(string key, long fallback) => obj.GetKey(key) is { } v ? v.GetByteSize() ?? throw new ConfigurationException(Bad(key, "a size such as 64MiB")) : fallback;
        double Number(string key, double fallback) => obj.GetKey(key) is { } v ? double.TryParse(v.GetString(), System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : throw new ConfigurationException(Bad(key, "a number")) : fallback;
        var t = obj.GetKey("timings")?.GetObject();
        double Seconds(string key, double fallback) => t?.GetKey(key) is { } v ? v.GetTimeSpan().TotalSeconds : fallback;
        double Rate(string key, double fallback) => t?.GetKey(key) is { } v ? v.GetByteSize() is { } r && r > 0 ? r : throw new ConfigurationException(Bad($"timings.{key}", "a size a second such as 300MB")) : fallback;
        var changer = new Engine.Tape.ChangerConfig((int)Number("slots", 8), drives, Size("cartridge-capacity", 1L << 30), (int)Number("cleaning-uses", 50),
            (int)Number("clean-after-mounts", 0), Number("clean-after-hours", 0), Number("cleaning-required-after-hours", 0));
        if (changer.Problem() is { } problem) throw new ConfigurationException($"library {id}: {problem}");
        var defaults = new Engine.Tape.TapeTimings();
        var timings = new Engine.Tape.TapeTimings(Seconds("move", defaults.MoveSeconds), Seconds("load", defaults.LoadSeconds), Seconds("unload", defaults.UnloadSeconds),
            Seconds("clean", defaults.CleanSeconds), Rate("position-rate", defaults.PositionBytesPerSecond), Rate("stream-rate", defaults.StreamBytesPerSecond),
            t?.GetKey("scale") is { } scale ? double.TryParse(scale.GetString(), System.Globalization.CultureInfo.InvariantCulture, out var sc) && sc >= 0 ? sc : throw new ConfigurationException(Bad("timings.scale", "a number of 0 or more")) : 0);
        var cartridges = obj.GetKey("cartridges")?.GetStringList().ToList() ?? [];
        foreach (var c in cartridges)
            if (Engine.Tape.ChangerState.BadBarcode(c) is { } bad) throw new ConfigurationException($"library {id}: {bad}");
        if (cartridges.Count > changer.Slots) throw new ConfigurationException($"library {id}: {cartridges.Count} cartridges do not fit in {changer.Slots} slots");
        if (cartridges.Distinct().Count() != cartridges.Count) throw new ConfigurationException($"library {id}: a barcode is named twice in cartridges");
        return new TapeDeclaration(changer, timings, cartridges);
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
