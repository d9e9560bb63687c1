namespace ActorBackup.EndToEnd.Tests;

/// <summary>Backup sets through the real `abk` against a real node: defined, listed, scheduled, run by hand, refused when wrong.</summary>
public class BackupSetTests
{
    [Fact]
    public void A_set_is_defined_listed_with_its_next_run_run_by_name_and_removed_and_a_bad_one_changes_nothing()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi</h1>");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();

        var added = cell.Abk("set", "add", "web", "--path", src, "--schedule", "0 2 * * *", "--schedule", "0 3 * * 0=full", "--time-zone", "Europe/Paris", "--priority", "7");
        Assert.True(added.ExitCode == 0, added.Stderr);
        Assert.Contains("backup set web", added.Stdout);
        Assert.Contains("next run", added.Stdout);

        var bad = cell.Abk("set", "add", "broken", "--path", src, "--schedule", "0 25 * * *");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("schedule '0 25 * * *' does not parse", bad.Stderr);

        var sets = cell.AbkJson("set", "list").GetProperty("sets").EnumerateArray().ToList();
        var web = Assert.Single(sets); // the broken one was not half-applied
        Assert.Equal("web", web.GetProperty("set").GetProperty("name").GetString());
        Assert.Equal(7, web.GetProperty("set").GetProperty("priority").GetInt32());
        var next = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(web.GetProperty("nextRunUnixMs").GetString()!));
        Assert.True(next > DateTimeOffset.UtcNow && next < DateTimeOffset.UtcNow.AddDays(1.01), $"next run {next}");
        Assert.Contains("web", cell.Abk("schedule", "list").Stdout);
        var deferred = cell.Abk("set", "defer", "web", "--until", "2d");
        Assert.True(deferred.ExitCode == 0, deferred.Stderr);
        Assert.Contains("now runs at", deferred.Stdout);
        Assert.Contains("deferred from", cell.Abk("set", "show", "web").Stdout);
        Assert.Equal(2, cell.Abk("set", "defer", "web", "--until", "soon").ExitCode); // a usage error says what a time is

        var run = cell.AbkJson("set", "run", "web");
        Assert.Equal("SUCCEEDED", run.GetProperty("state").GetString());
        Assert.Equal("web", run.GetProperty("backupSet").GetString());
        var shown = cell.AbkJson("set", "show", "web");
        Assert.Equal(run.GetProperty("snapshot").GetString(), shown.GetProperty("lastSnapshot").GetString());

        Assert.Contains("disabled", cell.Abk("set", "disable", "web").Stdout);
        Assert.Equal("0", cell.AbkJson("set", "show", "web").GetProperty("nextRunUnixMs").GetString());
        Assert.Equal(0, cell.Abk("set", "remove", "web").ExitCode);
        var gone = cell.Abk("set", "show", "web");
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains("no backup set 'web'", gone.Stderr);
    }

    [Fact]
    public void Apply_takes_a_file_of_policies_and_sets_whole_or_not_at_all_and_again_changes_nothing()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi</h1>");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        var good = Path.Combine(dir.Path, "cell.conf");
        File.WriteAllText(good, $$"""
            policies {
              small { libraries = [lib1], chunk-kib = 256, retries = 1 }
            }
            sets {
              web { paths = ["{{src}}"], policy = small, schedules = ["0 2 * * *"], window = 2h }
            }
            """);
        var bad = Path.Combine(dir.Path, "bad.conf");
        File.WriteAllText(bad, $$"""
            sets {
              ok { paths = ["{{src}}"] }
              web2 {
                paths = ["{{src}}"]
                policy = nope
              }
            }
            """);

        var refused = cell.Abk("apply", bad);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("bad.conf:3: set 'web2': no storage policy 'nope'", refused.Stderr);
        Assert.Empty(cell.AbkJson("set", "list").GetProperty("sets").EnumerateArray()); // not even the good one of that file

        var dry = cell.Abk("apply", good, "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.Stderr);
        Assert.Contains("dry run: 2 changes", dry.Stdout);
        Assert.Empty(cell.AbkJson("set", "list").GetProperty("sets").EnumerateArray());

        var applied = cell.Abk("apply", good);
        Assert.True(applied.ExitCode == 0, applied.Stderr);
        Assert.Contains("applied: 2 changes", applied.Stdout);
        Assert.Contains("nothing to change", cell.Abk("apply", good).Stdout);
        var policy = cell.AbkJson("policy", "show", "small");
        Assert.Equal(["web"], policy.GetProperty("sets").EnumerateArray().Select(x => x.GetString()));
        var run = cell.AbkJson("set", "run", "web");
        Assert.Equal("SUCCEEDED", run.GetProperty("state").GetString());
        Assert.Equal("small", run.GetProperty("policy").GetString());
        Assert.Equal(256, run.GetProperty("chunkKib").GetInt32());
    }

    [Fact]
    public async Task A_set_s_commands_run_around_its_jobs_and_a_failing_pre_command_fails_the_job_with_its_output()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi</h1>");
        var marks = dir.Sub("marks");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        string Mark(string name) => Path.Combine(marks, name);

        var added = cell.Abk("set", "add", "web", "--path", src,
            "--pre-command", $"cat > {Mark("pre.json")}", "--post-command", $"echo $ABK_STATE > {Mark("post")}",
            "--on-success", $"cat > {Mark("success.json")}", "--on-failure", $"touch {Mark("failure")}");
        Assert.True(added.ExitCode == 0, added.Stderr);
        var run = cell.AbkJson("set", "run", "web");
        Assert.Equal("SUCCEEDED", run.GetProperty("state").GetString());
        var job = run.GetProperty("id").GetString();
        Assert.Contains($"\"id\": \"{job}\"", File.ReadAllText(Mark("pre.json"))); // the job's JSON on stdin
        Assert.Equal("SUCCEEDED", File.ReadAllText(Mark("post")).Trim());
        var success = await Eventually.Until(() => Task.FromResult(File.Exists(Mark("success.json")) ? File.ReadAllText(Mark("success.json")) : ""),
            t => t.Contains("SUCCEEDED"), "the on-success command");
        Assert.Contains(run.GetProperty("snapshot").GetString()!, success);
        Assert.False(File.Exists(Mark("failure")));

        // A backup that could not read everything: its commands are told so (a check that reports OK on success would hide it).
        Assert.Equal(0, cell.Abk("set", "add", "partly", "--path", src, "--path", Path.Combine(dir.Path, "not-there"),
            "--post-command", $"echo $ABK_ERRORS $ABK_OUTCOME > {Mark("post-partly")}", "--on-success", $"echo $ABK_OUTCOME > {Mark("success-partly")}").ExitCode);
        var partly = cell.Abk("set", "run", "partly");
        Assert.True(partly.ExitCode == 3, partly.Stderr + partly.Stdout);
        Assert.Equal("1 partial", File.ReadAllText(Mark("post-partly")).Trim());
        await Eventually.Until(() => Task.FromResult(File.Exists(Mark("success-partly")) ? File.ReadAllText(Mark("success-partly")) : ""),
            t => t.Contains("partial"), "the on-success command of a partial backup");

        Assert.Equal(0, cell.Abk("set", "add", "db", "--path", src, "--pre-command", "echo the database would not pause >&2; exit 3",
            "--on-failure", $"cat > {Mark("failure.json")}").ExitCode);
        var failed = cell.Abk("--json", "set", "run", "db");
        Assert.Equal(1, failed.ExitCode);
        var reason = System.Text.Json.JsonDocument.Parse(failed.Stdout).RootElement.GetProperty("reason").GetString();
        Assert.Contains("the pre-command exited with 3: the database would not pause; nothing was backed up", reason);
        await Eventually.Until(() => Task.FromResult(File.Exists(Mark("failure.json")) ? File.ReadAllText(Mark("failure.json")) : ""),
            t => t.Contains("FAILED"), "the on-failure command");
    }

    private static List<System.Text.Json.JsonElement> ScheduledJobs(CellProcess cell) =>
        cell.AbkJson("job", "list", "--limit", "500").GetProperty("jobs").EnumerateArray()
            .Where(j => j.GetProperty("origin").GetString() == "SCHEDULE").ToList();

    private static List<System.Text.Json.JsonElement> WaitForScheduled(CellProcess cell, int atLeast)
    {
        // Generous: after a kill the interrupted job is queued again after the retry backoff (30 s), and the set's
        // slots wait for it meanwhile.
        var deadline = DateTime.UtcNow.AddSeconds(180);
        while (true)
        {
            var done = ScheduledJobs(cell).Where(j => j.GetProperty("state").GetString() is "SUCCEEDED" or "INTERRUPTED").ToList();
            if (done.Count >= atLeast) return done;
            Assert.True(DateTime.UtcNow < deadline, $"only {done.Count} scheduled jobs ended, wanted {atLeast}:\n{cell.Log}");
            Thread.Sleep(300);
        }
    }

    [Fact]
    public void A_schedule_starts_its_jobs_by_itself_once_per_slot_also_across_a_kill_9_of_the_node()
    {
        using var dir = new TempDir();
        var src = dir.Sub("data");
        File.WriteAllText(Path.Combine(src, "a.txt"), "scheduled");
        var nodeDir = Path.Combine(dir.Path, "node");
        var cell = new CellProcess(nodeDir).Start();
        try
        {
            Assert.Equal(0, cell.Abk("set", "add", "tick", "--path", src, "--schedule", "*/4 * * * * *").ExitCode); // every 4 s
            var first = WaitForScheduled(cell, 2);
            Assert.All(first, j => Assert.Equal("tick", j.GetProperty("backupSet").GetString()));
            Assert.Contains("schedule:tick", cell.Abk("job", "list").Stdout);
        }
        finally
        {
            cell.Kill(); // kill -9: whatever was running is queued again at the next start (a scheduled backup's slot is not lost)
        }
        using var again = new CellProcess(nodeDir, cell.Port).Start();
        var before = ScheduledJobs(again).Count;
        var all = WaitForScheduled(again, before + 2);
        Assert.Equal(0, again.Abk("set", "disable", "tick").ExitCode);
        var slots = ScheduledJobs(again).Select(j => j.GetProperty("slotUnixMs").GetString()).ToList();
        Assert.Equal(slots.Count, slots.Distinct().Count()); // no slot ran twice, before or after the kill
        Assert.True(all.Count(j => j.GetProperty("state").GetString() == "SUCCEEDED") >= 2);
    }

    [PostgresFact]
    public void A_schedule_runs_each_slot_once_across_a_kill_9_of_the_manager_s_node_in_a_two_node_PostgreSQL_cell()
    {
        using var db = new TestPostgres();
        using var dir = new TempDir();
        var src = dir.Sub("data");
        File.WriteAllText(Path.Combine(src, "a.txt"), "scheduled");
        int portA = Ports.Free(), portB = Ports.Free();
        string[] Shared(params string[] more) =>
        [
            "--set", "actorbackup.persistence=postgres", "--set", $"actorbackup.postgres.connection-string={db.ConnectionString}",
            "--set", $"akka.cluster.seed-nodes=[\"akka.tcp://actorbackup@127.0.0.1:{portA}\",\"akka.tcp://actorbackup@127.0.0.1:{portB}\"]",
            .. more,
        ];
        // A: the manager (the oldest node has the singleton); B: a standby manager, the library and the client.
        var a = new CellProcess(Path.Combine(dir.Path, "node-a"), portA, Shared("--set", "actorbackup.roles=[manager]"));
        using var b = new CellProcess(Path.Combine(dir.Path, "node-b"), portB, Shared("--set", "actorbackup.roles=[manager,media,client]",
            "--set", "actorbackup.client-id=host-b", "--set", "actorbackup.libraries=[{id=libb}]")) { JoinCellOf = a };
        List<System.Text.Json.JsonElement> Scheduled()
        {
            var r = b.Abk("--json", "job", "list", "--limit", "500"); // fails while the manager moves: not yet
            if (r.ExitCode != 0) return [];
            return System.Text.Json.JsonDocument.Parse(r.Stdout).RootElement.GetProperty("jobs").EnumerateArray()
                .Where(j => j.GetProperty("origin").GetString() == "SCHEDULE").ToList();
        }
        List<System.Text.Json.JsonElement> WaitFor(int ended)
        {
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (true)
            {
                var jobs = Scheduled();
                if (jobs.Count(j => j.GetProperty("state").GetString() is "SUCCEEDED" or "INTERRUPTED" or "FAILED") >= ended) return jobs;
                Assert.True(DateTime.UtcNow < deadline, $"fewer than {ended} scheduled jobs ended:\n{b.Log}");
                Thread.Sleep(300);
            }
        }
        try
        {
            a.Start(libraries: "");
            b.Start(libraries: "libb");
            Assert.Equal(0, b.Abk("set", "add", "tick", "--path", src, "--schedule", "*/4 * * * * *").ExitCode); // every 4 s
            WaitFor(2);
            a.Kill(); // kill -9 of the manager's node
        }
        finally
        {
            a.Dispose();
        }
        // The operator downs the dead node (two nodes cannot outvote each other); the manager recovers on B from
        // the shared journal, with the set's clock, and the schedule goes on by itself.
        var down = b.Abk("cluster", "down", "--force", $"akka.tcp://actorbackup@127.0.0.1:{portA}"); // killed a moment ago: maybe not seen unreachable yet
        Assert.True(down.ExitCode == 0, down.Stderr + down.Stdout);
        var recovered = WaitFor(2); // the manager answers again, with the history from before the kill
        var before = recovered.Count(j => j.GetProperty("state").GetString() is "SUCCEEDED" or "INTERRUPTED" or "FAILED");
        var after = WaitFor(before + 2);
        Assert.Equal(0, b.Abk("set", "disable", "tick").ExitCode);
        var slots = Scheduled().Select(j => j.GetProperty("slotUnixMs").GetString()).ToList();
        Assert.Equal(slots.Count, slots.Distinct().Count()); // no slot ran twice, before, across or after the move
        Assert.True(after.Count(j => j.GetProperty("state").GetString() == "SUCCEEDED") >= 3, string.Join("\n", after) + b.Log);
    }
}
