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
