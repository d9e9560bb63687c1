using ActorBackup.Cluster.Hosting;
using Akka.Configuration;

namespace ActorBackup.Cluster.Tests.Hosting;

public class NodeSettingsTests
{
    private static NodeSettings Read(string hocon) =>
        NodeSettings.From(ConfigurationFactory.ParseString(hocon).WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon"))));

    [Fact]
    public void The_defaults_are_the_embedded_cell()
    {
        var s = Read("");
        Assert.Equal(["manager", "media", "client"], s.Roles);
        Assert.Equal("lib1", Assert.Single(s.Libraries).Id);
        Assert.Equal("sqlite", s.Persistence);
        Assert.Equal(0, s.BackupRateLimit);
        Assert.Equal(TimeSpan.FromSeconds(2), s.RereadChangedWithin);
    }

    [Fact]
    public void A_media_agent_is_never_stopped_for_being_idle()
    {
        // Its backups' and restores' traffic goes over the data plane, not through the shard: Akka's default (120 s)
        // stopped it in the middle of any backup longer than that.
        var config = CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon")).WithFallback(Akka.Cluster.Sharding.ClusterSharding.DefaultConfig())
            .WithFallback(Akka.Cluster.Tools.Singleton.ClusterSingleton.DefaultConfig());
        var sharding = Akka.Cluster.Sharding.ClusterShardingSettings.Create(config.GetConfig("akka.cluster.sharding"), config.GetConfig("akka.cluster.singleton"));
        Assert.Equal(TimeSpan.Zero, sharding.PassivateIdleEntityAfter);
        Assert.Equal(TimeSpan.FromSeconds(120), Akka.Cluster.Sharding.ClusterShardingSettings.Create(
            Akka.Cluster.Sharding.ClusterSharding.DefaultConfig().GetConfig("akka.cluster.sharding"), config.GetConfig("akka.cluster.singleton")).PassivateIdleEntityAfter); // what it was
    }

    [Fact]
    public void Metrics_served_beyond_this_machine_need_a_token_and_tls()
    {
        Assert.Null(Read("actorbackup.metrics.port = 9464").MetricsAccess); // 127.0.0.1: this machine's
        Assert.Null(Read("actorbackup.metrics { port = 9464, host = \"::1\" }").MetricsAccess);
        Assert.Null(Read("actorbackup.metrics.host = \"*\"").MetricsAccess); // off (port 0)
        foreach (var host in new[] { "*", "0.0.0.0", "192.0.2.7", "backup1.example.com" })
            Assert.Contains("give actorbackup.metrics.token-file",
                Assert.Throws<ConfigurationException>(() => Read($"actorbackup.metrics {{ port = 9464, host = \"{host}\" }}")).Message);
        Assert.Contains("go together", Assert.Throws<ConfigurationException>(() =>
            Read("actorbackup.metrics { port = 9464, host = \"*\", token-file = /etc/abk/metrics.token }")).Message);
        var access = Read("actorbackup.metrics { port = 9464, host = \"*\", token-file = /etc/abk/t, tls-certificate = /etc/abk/m.crt, tls-key = /etc/abk/m.key }").MetricsAccess;
        Assert.Equal(new ActorBackup.Cluster.Metrics.MetricsAccess("/etc/abk/t", "/etc/abk/m.crt", "/etc/abk/m.key"), access);
    }

    [Fact]
    public void The_time_within_which_a_change_is_read_again_is_0_or_more() // BackupOptions.RereadChangedWithin
    {
        Assert.Equal(TimeSpan.FromSeconds(30), Read("actorbackup.reread-changed-within = 30s").RereadChangedWithin);
        Assert.Equal(TimeSpan.Zero, Read("actorbackup.reread-changed-within = 0s").RereadChangedWithin);
        Assert.Contains("actorbackup.reread-changed-within must be 0s or more",
            Assert.Throws<ConfigurationException>(() => Read("actorbackup.reread-changed-within = -1s")).Message);
        Assert.Contains("actorbackup.reread-changed-within must be 0s or more",
            Assert.Throws<ConfigurationException>(() => Read("actorbackup.reread-changed-within = infinite")).Message);
    }

    [Fact]
    public void A_stalled_attempt_is_given_up_after_the_stall_timeout_unless_it_is_0s()
    {
        Assert.Equal(TimeSpan.FromMinutes(30), Read("").Queue!.Stall);
        Assert.Equal(TimeSpan.FromMinutes(5), Read("actorbackup.manager.stall-timeout = 5m").Queue!.Stall);
        Assert.Equal(TimeSpan.Zero, Read("actorbackup.manager.stall-timeout = 0s").Queue!.Stall);
    }

    [Theory]
    [InlineData("actorbackup.chunk-average = 1000", "actorbackup.chunk-average: chunk average size must be a power of two")]
    [InlineData("actorbackup.chunk-average = 128", "actorbackup.chunk-average: chunk average size must be a power of two")]
    [InlineData("actorbackup.compression-level = 30", "actorbackup.compression-level must be a zstd level between -7 and 22")]
    public void A_chunk_size_or_compression_level_the_engine_refuses_is_refused_at_start_naming_the_setting(string hocon, string message) =>
        Assert.Contains(message, Assert.Throws<ConfigurationException>(() => Read(hocon)).Message);

    [Theory]
    [InlineData("50000000", 50_000_000)]
    [InlineData("\"50 MiB\"", 50L << 20)]
    [InlineData("\"20MB\"", 20_000_000)]
    public void The_backup_rate_limit_takes_bytes_or_sizes(string value, long bytes) =>
        Assert.Equal(bytes, Read($"actorbackup.backup-rate-limit = {value}").BackupRateLimit);

    [Theory]
    [InlineData("actorbackup.librarys = [{id = lib2}]", "actorbackup.librarys: did you mean actorbackup.libraries?")]
    [InlineData("actorbackup.postgres.conection-string = \"Host=db\"", "did you mean actorbackup.postgres.connection-string?")]
    [InlineData("actorbackup.manager { max-job = 3 }", "did you mean actorbackup.manager.max-jobs?")]
    [InlineData("actorbackup.nothing-like-it = 1", "unknown setting actorbackup.nothing-like-it (README.md")]
    public void A_misspelled_setting_stops_the_node_with_the_one_it_meant(string hocon, string said) =>
        Assert.Contains(said, Assert.Throws<ConfigurationException>(() => Read(hocon)).Message);

    [Fact]
    public void The_shipped_node_files_use_only_known_settings()
    {
        foreach (var file in new[] { "node-media2.conf", "tape-demo.conf" })
            Read(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "hocon", file)).Replace("akka.remote.dot-netty.tcp.port = 4054", ""));
        Read("actorbackup.key-dir = \"k\"\nactorbackup.persistence = sqlite");
        Read("actorbackup.ops.token-file = \"/etc/actorbackup/operator.token\""); // an earlier build's: said, and the node starts
    }

    [Fact]
    public void A_library_declares_its_drives_with_one_key()
    {
        Assert.Equal([4, 1], Read("actorbackup.libraries = [{id = lib1}, {id = lib2, drives = 1}]").Libraries.Select(l => l.Drives));
        var renamed = Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = lib1, streams = 2}]"));
        Assert.Contains("'streams' is now called 'drives'", renamed.Message);
        Assert.Contains("at least 1", Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = lib1, drives = 0}]")).Message);
    }

    [Fact]
    public void The_tape_demo_declares_a_disk_and_a_tape_library_whose_drives_are_the_librarys()
    {
        var s = Read(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "hocon", "tape-demo.conf")));
        Assert.Equal([("lib1", "disk"), ("tape1", "tape")], s.Libraries.Select(l => (l.Id, l.Kind)));
        var tape = s.Libraries[1];
        Assert.Equal((2, 8, 64L << 20), (tape.Drives, tape.Tape!.Changer.Slots, tape.Tape.Changer.CartridgeCapacity));
        Assert.Equal(tape.Tape.Changer.Drives, tape.Drives); // one key
        Assert.Equal(64L << 20, tape.VolumeCapacity); // a volume is a cartridge
        Assert.Equal(["AAA001L8", "AAA002L8", "AAA003L8", "AAA004L8", "AAA005L8", "CLN001L1"], tape.Tape.Cartridges);
        Assert.Equal((30, 50e6, 300e6, 0.001), (tape.Tape.Timings.LoadSeconds, tape.Tape.Timings.PositionBytesPerSecond, tape.Tape.Timings.StreamBytesPerSecond, tape.Tape.Timings.Scale));
        Assert.Contains("kind 'floppy' is not one: use disk or tape", Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = x, kind = floppy}]")).Message);
        Assert.Contains("is not a barcode", Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = t, kind = tape, cartridges = [\"a b\"]}]")).Message);
        Assert.Contains("slots must be 1 to", Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = t, kind = tape, slots = 0}]")).Message);
    }

    [Fact]
    public void An_unknown_role_is_refused_with_the_known_ones()
    {
        var e = Assert.Throws<ConfigurationException>(() => Read("actorbackup.roles = [manager, tape]"));
        Assert.Contains("use manager, media, client", e.Message);
    }
}

public class HoconValuesTests
{
    [Theory]
    [InlineData("actorbackup.postgres.connection-string=Host=db;Port=5432;Password=a\"b\\c", "actorbackup.postgres.connection-string", "Host=db;Port=5432;Password=a\"b\\c")]
    [InlineData("actorbackup.data-dir=/var/lib/abk//x", "actorbackup.data-dir", "/var/lib/abk//x")]
    [InlineData("actorbackup.backup-rate-limit=50 MiB", "actorbackup.backup-rate-limit", "50 MiB")]
    [InlineData("actorbackup.manager.prune-schedule=\"0 4 * * *\"", "actorbackup.manager.prune-schedule", "0 4 * * *")] // quoted as in HOCON
    public void A_setting_keeps_its_value_byte_for_byte_whatever_it_contains(string setting, string path, string expected) =>
        Assert.Equal(expected, HoconValues.FromSetting(setting).GetString(path));

    [Fact]
    public void Numbers_switches_lists_and_objects_keep_their_type()
    {
        Assert.Equal(4060, HoconValues.FromSetting("akka.remote.dot-netty.tcp.port=4060").GetInt("akka.remote.dot-netty.tcp.port"));
        Assert.False(HoconValues.FromSetting("akka.cluster.run-coordinated-shutdown-when-down=off").GetBoolean("akka.cluster.run-coordinated-shutdown-when-down"));
        Assert.Equal(["manager", "media"], HoconValues.FromSetting("actorbackup.roles=[manager,media]").GetStringList("actorbackup.roles"));
        var libraries = HoconValues.FromSetting("actorbackup.libraries=[{id=lib9, path=\"/srv/lib9\"}]").GetValue("actorbackup.libraries").GetArray();
        Assert.Equal("/srv/lib9", libraries[0].GetObject().GetKey("path").GetString());
        Assert.Throws<ConfigurationException>(() => HoconValues.FromSetting("no-equals-sign"));
    }
}

/// <summary>A cell on several hosts: what a node refuses to start with, and where its data plane says it is.</summary>
public class SpanningHostsSettingsTests
{
    private static Config Of(string hocon) =>
        ConfigurationFactory.ParseString(hocon).WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon"), hocon.Contains("postgres") ? "postgres" : "sqlite"));

    [Fact]
    public void A_manager_node_that_joins_another_nodes_cell_on_its_own_sqlite_file_does_not_start()
    {
        const string joins = "akka.remote.dot-netty.tcp.port = 4054\nakka.cluster.seed-nodes = [\"akka.tcp://actorbackup@127.0.0.1:4053\"]\n";
        var e = Assert.Throws<ConfigurationException>(() => NodeSettings.From(Of(joins)));
        Assert.Contains("must share that cell's journal", e.Message);
        Assert.Equal(["media", "client"], NodeSettings.From(Of(joins + "actorbackup.roles = [media, client]")).Roles);
        NodeSettings.From(Of("akka.remote.dot-netty.tcp.port = 4053\nakka.cluster.seed-nodes = [\"akka.tcp://actorbackup@127.0.0.1:4053\"]")); // the first seed
    }

    [Fact]
    public void A_postgres_node_names_its_database_and_keeps_its_password_file_private()
    {
        var none = Of("actorbackup.persistence = postgres");
        Assert.Contains("names no database", Assert.Throws<ConfigurationException>(() => CellHosting.ConnectionString(none, NodeSettings.From(none))).Message);
        var dir = Directory.CreateTempSubdirectory("abk-conn-");
        try
        {
            var file = Path.Combine(dir.FullName, "journal.conn");
            File.WriteAllText(file, "Host=db;Database=actorbackup;Username=u;Password=secret\n");
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var open = Of($"actorbackup.persistence = postgres\nactorbackup.postgres.connection-string-file = \"{file}\"");
            Assert.Contains("chmod 600", Assert.Throws<ConfigurationException>(() => CellHosting.ConnectionString(open, NodeSettings.From(open))).Message);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Theory]
    [InlineData("", "127.0.0.1", "127.0.0.1")]
    [InlineData("akka.remote.dot-netty.tcp.hostname = \"0.0.0.0\"", "0.0.0.0", "127.0.0.1")]
    [InlineData("akka.remote.dot-netty.tcp.hostname = \"0.0.0.0\"\nakka.remote.dot-netty.tcp.public-hostname = \"store2.example\"", "0.0.0.0", "store2.example")]
    [InlineData("akka.remote.dot-netty.tcp.hostname = \"store2.example\"", "10.0.0.12", "store2.example")]
    public void The_data_plane_is_advertised_where_clients_can_reach_it_never_at_a_wildcard(string hocon, string bound, string advertised) =>
        Assert.Equal(advertised, CellHosting.AdvertisedHost(Of(hocon), System.Net.IPAddress.Parse(bound)));
}
