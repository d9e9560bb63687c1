using System.Text.Json;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>The data lifecycle through a real node and the real `abk`: verify, retention, delete.</summary>
public class LifecycleTests
{
    private static List<JsonElement> Snapshots(CellProcess cell) =>
        cell.AbkJson("snapshot", "list", "--why").GetProperty("snapshots").EnumerateArray().ToList();

    private static string Run(CellProcess cell, string level)
    {
        var run = cell.AbkJson("set", "run", "web", "--level", level);
        Assert.Equal("SUCCEEDED", run.GetProperty("state").GetString());
        return run.GetProperty("snapshot").GetString()!;
    }

    [Fact]
    public void Retention_deletes_nothing_until_a_newer_full_is_verified_and_verify_finds_a_flipped_bit()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var data = new byte[3_000_000];
        new Random(5).NextBytes(data); // incompressible: it is most of the library's volume
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi</h1>");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        var policy = cell.Abk("policy", "add", "keep2", "--keep-last", "2");
        Assert.True(policy.ExitCode == 0, policy.Stderr);
        Assert.Contains("retention    last 2", policy.Stdout);
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "keep2").ExitCode);

        var a = Run(cell, "full");
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi again</h1>");
        var b = Run(cell, "incremental");
        var c = Run(cell, "incremental");
        // No full has passed a verify: retention keeps all three, and says why.
        var listed = Snapshots(cell);
        Assert.Equal([a, b, c], listed.Select(s => s.GetProperty("id").GetString()));
        Assert.Contains("no newer full has passed a verify yet", listed[0].GetProperty("keptBecause").EnumerateArray().Select(r => r.GetString()));

        var verify = cell.Abk("verify", a);
        Assert.True(verify.ExitCode == 0, verify.Stderr + verify.Stdout);
        Assert.Contains("all good", verify.Stdout);
        Assert.True(Snapshots(cell)[0].GetProperty("verified").GetBoolean());
        Assert.Equal(3, Snapshots(cell).Count); // a verified full keeps itself and everything newer

        var d = Run(cell, "full");
        Assert.Equal(0, cell.Abk("verify", d).ExitCode);
        // D is the newest verified full: what is older than it and not among the last 2 (D, C) goes.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        List<string?> ids;
        while ((ids = Snapshots(cell).Select(s => s.GetProperty("id").GetString()).ToList()).Count > 2 && DateTime.UtcNow < deadline) Thread.Sleep(200);
        Assert.Equal([c, d], ids);

        // An operator's delete: a dry run first, changing nothing; an unknown id refuses the whole delete.
        Assert.Contains($"would delete snapshot {c}", cell.Abk("snapshot", "delete", c, "--dry-run").Stdout);
        Assert.Equal(2, Snapshots(cell).Count);
        var unknown = cell.Abk("snapshot", "delete", c, "nosuch");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no snapshot 'nosuch'", unknown.Stderr);
        Assert.Contains("nothing was deleted", unknown.Stderr);
        Assert.Contains($"deleted snapshot {c}", cell.Abk("snapshot", "delete", c).Stdout);
        Assert.Equal([d], Snapshots(cell).Select(s => s.GetProperty("id").GetString()));

        // A flipped bit in the library: verify fails, names the file, and the snapshot is no longer verified.
        var volume = Directory.GetFiles(Path.Combine(cell.DataDir, "libraries", "lib1", "volumes"), "*.abv").Single();
        using (var f = new FileStream(volume, FileMode.Open))
        {
            // The largest record is data.bin's: a byte in its middle.
            f.Position = f.Length / 2;
            var x = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(x ^ 0x10));
        }
        var bad = cell.Abk("verify", d);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("/data.bin: ", bad.Stdout);
        Assert.Contains("damaged", bad.Stderr);
        Assert.False(Snapshots(cell).Single().GetProperty("verified").GetBoolean());
    }
}
