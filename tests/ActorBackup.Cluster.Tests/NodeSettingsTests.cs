using ActorBackup.Cluster.Hosting;
using Akka.Configuration;

namespace ActorBackup.Cluster.Tests;

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
    public void An_unknown_role_is_refused_with_the_known_ones()
    {
        var e = Assert.Throws<ConfigurationException>(() => Read("actorbackup.roles = [manager, tape]"));
        Assert.Contains("use manager, media, client", e.Message);
    }
}
