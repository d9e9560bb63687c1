using ActorBackup.Cluster.Hooks;

namespace ActorBackup.Cluster.Tests;

/// <summary>A set's commands: stdin, environment, exit codes, and bounds that a command cannot escape.</summary>
public class HookCommandTests
{
    private static readonly Dictionary<string, string> Env = new() { ["ABK_STATE"] = "SUCCEEDED" };

    [Fact]
    public async Task A_command_gets_its_stdin_and_environment_and_its_output_and_exit_code_are_kept()
    {
        var r = await HookCommand.Run("cat; echo \" $ABK_STATE\"; echo oops >&2; exit 4", "{\"id\": \"7\"}", Env, TimeSpan.FromMinutes(1));
        Assert.False(r.Ok);
        Assert.Equal(4, r.ExitCode);
        Assert.Contains("{\"id\": \"7\"} SUCCEEDED", r.Output);
        Assert.Contains("oops", r.Output);
        Assert.Equal("the pre-command exited with 4: " + r.Output.Trim(), r.Describe("the pre-command", TimeSpan.FromMinutes(1)));
    }

    [Fact]
    public async Task A_job_command_gets_every_field_of_the_job_and_an_outcome_that_tells_a_partial_backup_from_a_clean_one()
    {
        var clean = await HookCommand.ForJob(new ActorBackup.Protocol.JobInfo { Id = "7", BackupSet = "web" }, "cat; echo \" $ABK_OUTCOME\"", "SUCCEEDED", TimeSpan.FromMinutes(1));
        Assert.True(clean.Ok, clean.Output);
        Assert.Contains("\"errors\": ", clean.Output); // zero, but there: a script's `jq .errors` finds it
        Assert.EndsWith(" ok", clean.Output.Trim());
        var partial = await HookCommand.ForJob(new ActorBackup.Protocol.JobInfo { Id = "8", Errors = 3 }, "echo \"$ABK_STATE $ABK_ERRORS $ABK_OUTCOME\"", "SUCCEEDED", TimeSpan.FromMinutes(1));
        Assert.Equal("SUCCEEDED 3 partial", partial.Output.Trim());
        Assert.Equal(["failed", "failed", "missed", "running"], new[] { "FAILED", "INTERRUPTED", "MISSED", "RUNNING" }.Select(st => HookCommand.Outcome(st, 0)));
        Assert.Equal("suspect", HookCommand.Outcome("SUCCEEDED", 2, "new data: 95% of the set"));
    }

    [Fact]
    public void A_command_does_not_inherit_the_nodes_passphrase_or_its_configuration()
    {
        // The environment a command would get: the node's own (a ProcessStartInfo's), with the secrets a node may hold.
        var environment = new System.Diagnostics.ProcessStartInfo("/bin/true").Environment;
        environment["ABK_PASSPHRASE"] = "s3cret";
        environment["ABK_HOCON"] = "akka.persistence.journal.sql.connection-string = \"Password=s3cret\"";
        environment["ABK_NODE"] = "127.0.0.1:5053";
        HookCommand.Scrub(environment);
        Assert.False(environment.ContainsKey("ABK_PASSPHRASE"));
        Assert.False(environment.ContainsKey("ABK_HOCON"));
        Assert.Equal("127.0.0.1:5053", environment["ABK_NODE"]); // what abk in a command needs stays
        Assert.DoesNotContain(environment.Values, v => v?.Contains("s3cret", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task A_command_run_by_a_node_does_not_see_its_configuration()
    {
        // ABK_HOCON, not ABK_PASSPHRASE: nothing in this test process reads the configuration variable (a cell key would).
        Environment.SetEnvironmentVariable("ABK_HOCON", "secret-of-the-node");
        try
        {
            var r = await HookCommand.Run("echo \"[$ABK_HOCON] $ABK_STATE\"", "", Env, TimeSpan.FromMinutes(1));
            Assert.True(r.Ok, r.Output);
            Assert.Equal("[] SUCCEEDED", r.Output.Trim());
        }
        finally
        {
            Environment.SetEnvironmentVariable("ABK_HOCON", null);
        }
    }

    [Fact]
    public async Task A_child_left_in_the_background_does_not_hold_the_job_and_a_command_past_its_timeout_is_killed_with_its_children()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"abk-hook-{Guid.NewGuid():N}");
        try
        {
            // The background sleep keeps the output pipe open; the command itself is done at once.
            var r = await HookCommand.Run("sleep 600 & echo started", "", Env, TimeSpan.FromMinutes(2));
            Assert.True(r.Ok, r.Output);
            Assert.Contains("started", r.Output);

            // The background child makes the marker once the test says go, which it does only after the timeout's kill
            // (however late a busy machine makes that kill, the child cannot get there first).
            var go = marker + ".go";
            var slow = await HookCommand.Run($"(while [ ! -e {go} ]; do sleep 0.1; done; touch {marker}) & sleep 600", "", Env, TimeSpan.FromSeconds(1));
            Assert.True(slow.TimedOut);
            Assert.Contains("did not end within 1 s and was killed", slow.Describe("the post-command", TimeSpan.FromSeconds(1)));
            File.WriteAllText(go, "");
            await Task.Delay(TimeSpan.FromSeconds(3)); // had its background child survived, it would have made the file by now
            Assert.False(File.Exists(marker), "the command's background child outlived the timeout");
        }
        finally
        {
            File.Delete(marker);
            File.Delete(marker + ".go");
        }
    }

    [Fact]
    public async Task A_command_that_never_reads_a_large_stdin_is_still_bounded_by_its_timeout()
    {
        var r = await HookCommand.Run("sleep 600", new string('x', 1 << 20), Env, TimeSpan.FromSeconds(1));
        Assert.True(r.TimedOut);
    }
}
