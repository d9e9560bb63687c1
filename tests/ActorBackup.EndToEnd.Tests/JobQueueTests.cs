namespace ActorBackup.EndToEnd.Tests;

/// <summary>The manager's job queue on a real node: a library of one drive runs one job at a time, by priority.</summary>
public class JobQueueTests
{
    [Fact]
    public void A_library_of_one_drive_runs_backups_one_after_another_higher_priority_first_and_says_why_they_wait()
    {
        using var dir = new TempDir();
        var a = Path.Combine(dir.Path, "a");
        var b = Path.Combine(dir.Path, "b");
        var c = Path.Combine(dir.Path, "c");
        // At 1 MB/s: the first backup (64 MiB) runs about 67 s, long enough to queue the other two (8 MiB each) behind it
        // and look at the queue and the drive on a busy machine, where each look (an abk process) can take 3-5 s (at 8 MB/s,
        // CI once saw it end during the looks).
        CellTests.MakeRandomFiles(a, 8);
        CellTests.MakeRandomFiles(b, 1);
        CellTests.MakeRandomFiles(c, 1);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null,
            "--set", "actorbackup.libraries=[{id=lib1, drives=1}]", "--set", "actorbackup.backup-rate-limit=1000000").Start();

        var first = CellTests.StartAndWaitForBytes(cell, a);
        var low = cell.Abk("backup", "--no-wait", "--priority", "2", b).Stdout.Trim();
        var high = cell.Abk("backup", "--no-wait", "--priority", "9", c).Stdout.Trim();
        Assert.Equal("RUNNING", cell.AbkJson("job", "show", first).GetProperty("state").GetString()); // else the test proves nothing
        var waiting = cell.AbkJson("job", "show", low);
        Assert.Equal("QUEUED", waiting.GetProperty("state").GetString());
        Assert.Equal("waiting: lib1: 1 of 1 drives busy", waiting.GetProperty("reason").GetString());
        Assert.Contains("lib1: 1 of 1 drives busy", cell.Abk("job", "show", high).Stdout);
        // The one drive is the first job's while it writes.
        var drive = Assert.Single(cell.AbkJson("drive", "list", "lib1").GetProperty("drives").EnumerateArray());
        Assert.Equal((1, "writing", first), (drive.GetProperty("number").GetInt32(), drive.GetProperty("state").GetString(), drive.GetProperty("job").GetString()));
        Assert.Matches($@"lib1\s+1\s+writing\s+{first}\s+backup", cell.Abk("drive", "list").Stdout);
        Assert.Contains("library  lib1, drive 1", cell.Abk("job", "show", first).Stdout);
        var unknown = cell.Abk("drive", "list", "lib9");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no library lib9: list them with 'abk library list'", unknown.Stderr);

        var ends = new[] { first, high, low }.Select(j => CellTests.WaitForEnd(cell, j, 180)).ToList();
        Assert.All(ends, e => Assert.Equal("SUCCEEDED", e.GetProperty("state").GetString()));
        long Ms(System.Text.Json.JsonElement e, string field) => long.Parse(e.GetProperty(field).GetString()!);
        // One at a time: each started when the one before finished; the higher priority went first.
        Assert.True(Ms(ends[1], "startedUnixMs") >= Ms(ends[0], "finishedUnixMs"), "the high-priority job started while the first ran");
        Assert.True(Ms(ends[2], "startedUnixMs") >= Ms(ends[1], "finishedUnixMs"), "the low-priority job did not wait for the high-priority one");
        Assert.Equal("idle", Assert.Single(cell.AbkJson("drive", "list", "lib1").GetProperty("drives").EnumerateArray()).GetProperty("state").GetString());
    }

    [Fact]
    public void A_disabled_library_starts_no_job_until_an_operator_enables_it_again()
    {
        using var dir = new TempDir();
        var a = Path.Combine(dir.Path, "a");
        CellTests.MakeRandomFiles(a, 1);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.libraries=[{id=lib1, drives=1}]").Start();
        Assert.Contains("library lib1 disabled (disk swap): no new job starts on it; 0 running on it finish", cell.Abk("library", "disable", "lib1", "--reason", "disk swap").Stdout);
        Assert.Matches(@"lib1\s.*\byes\s+disabled\s", cell.Abk("library", "list").Stdout);
        Assert.Equal("disk swap", Assert.Single(cell.AbkJson("library", "list").GetProperty("libraries").EnumerateArray()).GetProperty("disabled").GetString());

        var pinned = cell.Abk("backup", "--library", "lib1", a);
        Assert.Equal(1, pinned.ExitCode);
        Assert.Contains("library lib1 is disabled (disk swap): 'abk library enable lib1' when its maintenance is done, or pick another", pinned.Stderr);
        var job = cell.Abk("backup", "--no-wait", a).Stdout.Trim();
        Assert.Contains("library lib1 is disabled (disk swap)", cell.AbkJson("job", "show", job).GetProperty("reason").GetString());
        Assert.Equal("QUEUED", cell.AbkJson("job", "show", job).GetProperty("state").GetString());

        Assert.Contains("library lib1 enabled", cell.Abk("library", "enable", "lib1").Stdout);
        Assert.Equal("SUCCEEDED", CellTests.WaitForEnd(cell, job, 120).GetProperty("state").GetString());
        Assert.Contains("is not disabled", cell.Abk("library", "enable", "lib1").Stderr);
    }

    /// <summary>A 6-field cron rule for one moment, <paramref name="ahead"/> from now (UTC).</summary>
    private static string At(TimeSpan ahead)
    {
        var t = DateTime.UtcNow + ahead;
        return $"{t.Second} {t.Minute} {t.Hour} {t.Day} {t.Month} *";
    }

    [Fact]
    public void A_scheduled_job_waits_for_its_offline_client_inside_its_window_runs_when_it_returns_and_ends_missed_after_the_window()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "a.txt"), "scheduled while away");
        // A: manager and library; B: the client host-b, which goes away and comes back.
        using var a = new CellProcess(Path.Combine(dir.Path, "node-a"), null, "--set", "actorbackup.roles=[manager,media]");
        a.Start();
        var nodeB = Path.Combine(dir.Path, "node-b");
        string[] clientArgs = ["--set", "actorbackup.roles=[client]", "--set", "actorbackup.client-id=host-b"];
        var b = new CellProcess(nodeB, null, clientArgs) { JoinCellOf = a }.Start(seedPort: a.Port.ToString());
        var port = b.Port;
        var known = DateTime.UtcNow.AddSeconds(60); // the manager knows host-b (it registered) ...
        while (!a.Abk("--json", "client", "list").Stdout.Contains("\"id\": \"host-b\""))
        {
            Assert.True(DateTime.UtcNow < known, "host-b never registered:\n" + b.Log);
            Thread.Sleep(200);
        }
        Assert.Equal(0, b.Terminate()); // ... and it leaves before the slot
        Assert.Equal(0, a.Abk("set", "add", "patient", "--client", "host-b", "--path", src, "--schedule", At(TimeSpan.FromSeconds(20)), "--window", "10m").ExitCode);
        Assert.Equal(0, a.Abk("set", "add", "hasty", "--client", "host-b", "--path", src, "--schedule", At(TimeSpan.FromSeconds(20)), "--window", "3s").ExitCode);

        List<System.Text.Json.JsonElement> Jobs() => a.AbkJson("job", "list").GetProperty("jobs").EnumerateArray().ToList();
        System.Text.Json.JsonElement Of(string set) => Jobs().Single(j => j.GetProperty("backupSet").GetString() == set);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!(Jobs().Any(j => j.GetProperty("backupSet").GetString() == "hasty" && j.GetProperty("state").GetString() == "MISSED")))
        {
            Assert.True(DateTime.UtcNow < deadline, "the short-window job never ended MISSED:\n" + string.Join("\n", Jobs()));
            Thread.Sleep(500);
        }
        Assert.Contains("client host-b was offline", Of("hasty").GetProperty("reason").GetString());
        var waiting = Of("patient");
        Assert.Equal("QUEUED", waiting.GetProperty("state").GetString());
        Assert.Equal("waiting: client host-b is offline", waiting.GetProperty("reason").GetString());

        using var back = new CellProcess(nodeB, port, clientArgs) { JoinCellOf = a }.Start(seedPort: a.Port.ToString());
        var ended = CellTests.WaitForEnd(a, waiting.GetProperty("id").GetString()!, 90);
        Assert.True(ended.GetProperty("state").GetString() == "SUCCEEDED", ended.ToString());
    }
}
