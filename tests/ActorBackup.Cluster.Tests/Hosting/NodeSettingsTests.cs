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
    }

    [Theory]
    [InlineData("50000000", 50_000_000)]
    [InlineData("\"50 MiB\"", 50L << 20)]
    [InlineData("\"20MB\"", 20_000_000)]
    public void The_backup_rate_limit_takes_bytes_or_sizes(string value, long bytes) =>
        Assert.Equal(bytes, Read($"actorbackup.backup-rate-limit = {value}").BackupRateLimit);

    [Fact]
    public void A_library_declares_its_drives_with_one_key()
    {
        Assert.Equal([4, 1], Read("actorbackup.libraries = [{id = lib1}, {id = lib2, drives = 1}]").Libraries.Select(l => l.Drives));
        var renamed = Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = lib1, streams = 2}]"));
        Assert.Contains("'streams' is now called 'drives'", renamed.Message);
        Assert.Contains("at least 1", Assert.Throws<ConfigurationException>(() => Read("actorbackup.libraries = [{id = lib1, drives = 0}]")).Message);
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
