using System.Text.Json;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>`abk find` through a real node: every version of a file across snapshots, from the client's file indexes.</summary>
public class FindTests
{
    private static string Run(CellProcess cell, string level)
    {
        var run = cell.AbkJson("set", "run", "web", "--level", level);
        Assert.Equal("SUCCEEDED", run.GetProperty("state").GetString());
        return run.GetProperty("snapshot").GetString()!;
    }

    private static List<JsonElement> Versions(JsonElement found) =>
        found.TryGetProperty("versions", out var v) ? v.EnumerateArray().ToList() : [];

    private static void Until(Func<bool> condition, string why)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, why);
            Thread.Sleep(200);
        }
    }

    [Fact]
    public void Find_lists_every_version_of_a_file_across_snapshots_and_follows_the_catalog()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        Directory.CreateDirectory(Path.Combine(src, "etc"));
        File.WriteAllText(Path.Combine(src, "etc", "app.conf"), "port = 80\n");
        File.WriteAllBytes(Path.Combine(src, "data.bin"), new byte[100_000]);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src).ExitCode);
        var a = Run(cell, "full");
        File.WriteAllText(Path.Combine(src, "etc", "app.conf"), "port = 8080\n");
        File.SetLastWriteTimeUtc(Path.Combine(src, "etc", "app.conf"), DateTime.UtcNow.AddMinutes(1));
        var b = Run(cell, "incremental");
        // Each backup's snapshot is indexed on its client right after it ends.
        var indexes = Path.Combine(cell.DataDir, "file-index");
        Until(() => File.Exists(Path.Combine(indexes, a + ".fidx")) && File.Exists(Path.Combine(indexes, b + ".fidx")), "the backups' file indexes were not written");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(indexes, a + ".fidx")));

        var conf = cell.AbkJson("find", "app.conf");
        var versions = Versions(conf);
        Assert.Equal(2, versions.Count);
        Assert.All(versions, v => Assert.Equal(Path.Combine(src, "etc", "app.conf"), v.GetProperty("path").GetString()));
        Assert.Equal(("10", 1, a, a), (versions[0].GetProperty("size").GetString(), versions[0].GetProperty("snapshots").GetInt32(),
            versions[0].GetProperty("firstSnapshot").GetString(), versions[0].GetProperty("lastSnapshot").GetString()));
        Assert.Equal(("12", 1, b), (versions[1].GetProperty("size").GetString(), versions[1].GetProperty("snapshots").GetInt32(), versions[1].GetProperty("firstSnapshot").GetString()));
        Assert.Equal(2, conf.GetProperty("snapshotsSearched").GetInt32());

        // A path glob; the same version in both snapshots is one line.
        var data = Assert.Single(Versions(cell.AbkJson("find", "/**/www/*.bin")));
        Assert.Equal((2, a, b), (data.GetProperty("snapshots").GetInt32(), data.GetProperty("firstSnapshot").GetString(), data.GetProperty("lastSnapshot").GetString()));
        var text = cell.Abk("find", "*.conf");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains(Path.Combine(src, "etc", "app.conf"), text.Stdout);
        Assert.Contains("2 versions of 2 matching entries in 2 snapshots", text.Stderr);

        // --since: only the snapshots made since then.
        var bTime = long.Parse(cell.AbkJson("snapshot", "show", b).GetProperty("finishedUnixMs").GetString()!);
        var since = DateTimeOffset.FromUnixTimeMilliseconds(bTime).ToString("yyyy-MM-ddTHH:mm:ss.fffZ");
        Assert.Equal(b, Assert.Single(Versions(cell.AbkJson("find", "app.conf", "--since", since))).GetProperty("firstSnapshot").GetString());

        // A lost index is built again when a find needs it.
        File.Delete(Path.Combine(indexes, a + ".fidx"));
        var rebuilt = cell.AbkJson("find", "APP.CONF", "-i");
        Assert.Equal(1, rebuilt.GetProperty("indexesBuilt").GetInt32());
        Assert.Equal(2, Versions(rebuilt).Count);

        // The indexes follow the catalog: a deleted snapshot is no longer found, its index goes.
        Assert.Equal(0, cell.Abk("snapshot", "delete", a).ExitCode);
        Assert.Equal(b, Assert.Single(Versions(cell.AbkJson("find", "app.conf"))).GetProperty("firstSnapshot").GetString());
        Assert.False(File.Exists(Path.Combine(indexes, a + ".fidx")));

        var unknown = cell.Abk("find", "app.conf", "--client", "nosuch");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no snapshot of client 'nosuch'", unknown.Stderr);
        Assert.Empty(Versions(cell.AbkJson("find", "nothing-like-this")));
    }
}
