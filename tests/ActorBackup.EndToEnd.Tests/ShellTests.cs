using System.Diagnostics;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>The real `abk` against a real node: many operators at once, help without a cell, credentials.</summary>
public class ShellTests
{
    [Fact]
    public async Task Twenty_abk_commands_at_once_all_answer_while_one_follows_a_long_backup()
    {
        using var dir = new TempDir();
        var large = Path.Combine(dir.Path, "large");
        CellTests.MakeRandomFiles(large, 16);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.backup-rate-limit=500000").Start();
        var job = CellTests.StartAndWaitForBytes(cell, large);

        // The long one: follows the throttled backup until it ends (about 4 min at 0.5 MB/s: nineteen shells starting at
        // once on a busy machine take a while) or is cancelled (below).
        var watch = Task.Run(() => cell.Abk("job", "watch", job));
        var others = Enumerable.Range(0, 19).Select(i => Task.Run(() => i % 2 == 0 ? cell.Abk("--json", "job", "list") : cell.Abk("library", "list"))).ToArray();
        await Task.WhenAll(others).WaitAsync(TimeSpan.FromMinutes(2));
        if (watch.IsCompleted) Assert.Fail($"the watch ended before the other commands: the test proves nothing. {await watch}");
        var results = others.Select(t => t.Result).ToList();
        foreach (var r in results) Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.All(results.Where((_, i) => i % 2 == 0), r => Assert.Contains($"\"id\": \"{job}\"", r.Stdout));

        var cancel = cell.Abk("job", "cancel", job);
        Assert.True(cancel.ExitCode == 0, cancel.Stderr);
        var watched = await watch.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(1, watched.ExitCode);
        Assert.Contains($"job {job} cancelled", watched.Stderr);
        // It showed the backup's progress as it went (signed by the client's node: the manager takes only that), piped:
        // on stderr (stdout keeps the result alone), the first at once, then once a minute as stderr is no terminal.
        Assert.Matches($@"job {job}: +[0-9.]+%  [0-9]+/16 files", watched.Stderr);
        Assert.DoesNotMatch("ETA", watched.Stdout);
    }

    [Fact]
    public void An_argument_that_is_not_UTF8_is_refused_with_the_form_abk_takes_for_it()
    {
        // .NET would make the byte 0xe9 a U+FFFD and the node would look for another name: refused before any connection.
        var closed = $"127.0.0.1:{Ports.Free()}";
        var r = Processes.Run("/bin/sh", ["-c", "exec \"$0\" --node \"$1\" ls latest \"$(printf '/srv/caf\\351')\"", Processes.Abk, closed]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(@"argument '/srv/caf\xe9' is not UTF-8", r.Stderr);
    }

    [Fact]
    public void Help_needs_no_cell_and_usage_errors_say_what_to_type()
    {
        var closed = $"127.0.0.1:{Ports.Free()}";
        var clock = Stopwatch.StartNew();
        var help = Processes.Run(Processes.Abk, ["--node", closed, "--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("backup", help.Stdout);
        Assert.Contains("snapshot", help.Stdout);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "help waited for a node"); // a shell start on a busy machine, not a node's timeout

        var backupHelp = Processes.Run(Processes.Abk, ["--node", closed, "backup", "--help"]);
        Assert.Contains("--level", backupHelp.Stdout);
        Assert.Contains("full|incremental|differential", backupHelp.Stdout);

        var badLevel = Processes.Run(Processes.Abk, ["--node", closed, "backup", "--level", "weekly", "/tmp"]);
        Assert.Equal(2, badLevel.ExitCode);
        Assert.Contains("unknown level 'weekly'", badLevel.Stderr);
        var noPath = Processes.Run(Processes.Abk, ["--node", closed, "backup"]);
        Assert.Equal(2, noPath.ExitCode);
        Assert.Contains("abk backup --help", noPath.Stderr);

        // An option that does nothing without another is refused, not dropped (usage: exit 2).
        var tierAfterAlone = Processes.Run(Processes.Abk, ["--node", closed, "policy", "add", "p", "--tier-after", "30d"]);
        Assert.Equal(2, tierAfterAlone.ExitCode);
        Assert.Contains("--tier-after needs --tier-to", tierAfterAlone.Stderr);
        var badDuration = Processes.Run(Processes.Abk, ["--node", closed, "policy", "add", "p", "--keep-within", "3x"]);
        Assert.Equal(2, badDuration.ExitCode);
        Assert.Contains("is not an age", badDuration.Stderr);
        // 6m: six months to a restic user; refused rather than read as six minutes of retention.
        var minutes = Processes.Run(Processes.Abk, ["--node", closed, "policy", "add", "p", "--keep-within", "6m"]);
        Assert.Equal(2, minutes.ExitCode);
        Assert.Contains("not m: that would be minutes", minutes.Stderr);
        // A value of the wrong kind is named in the operator's words, not the runtime's type.
        var badCount = Processes.Run(Processes.Abk, ["--node", closed, "policy", "add", "p", "--keep-daily", "abc"]);
        Assert.Equal(2, badCount.ExitCode);
        Assert.Contains("Cannot parse argument 'abc' for option '--keep-daily' as a whole number", badCount.Stderr);
        Assert.DoesNotContain("System.", badCount.Stderr);
        // The node's own command line: a --set value of the wrong kind is a usage error with its message, no stack trace.
        using var nodeDir = new TempDir();
        var badSet = Processes.Run(Processes.Actorbackup, ["--data", nodeDir.Path, "--port", Ports.Free().ToString(), "--set", "actorbackup.manager.max-jobs=four"]);
        Assert.Equal(2, badSet.ExitCode);
        Assert.Contains("bad configuration", badSet.Stderr);
        Assert.DoesNotContain("   at ", badSet.Stderr);

        // A port another program holds: said, with what to do; no unhandled exception (it ended in SIGABRT).
        var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        try
        {
            using var takenDir = new TempDir();
            var portTaken = Processes.Run(Processes.Actorbackup, ["--data", takenDir.Path, "--port", ((System.Net.IPEndPoint)taken.LocalEndpoint).Port.ToString()]);
            Assert.Equal(1, portTaken.ExitCode);
            Assert.Contains("another node runs here? stop it, or give this one --port N", portTaken.Stderr);
            Assert.DoesNotContain("Unhandled exception", portTaken.Stderr);
        }
        finally
        {
            taken.Stop();
        }

        using var dir = new TempDir();
        var noNode = Processes.Run(Processes.Abk, ["--node", closed, "--certs", dir.Path, "job", "list"]);
        Assert.Equal(1, noNode.ExitCode);
        Assert.Contains("no cell CA certificate", noNode.Stderr);
    }
}
