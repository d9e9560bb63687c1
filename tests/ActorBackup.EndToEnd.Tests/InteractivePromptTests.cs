using System.Diagnostics;
using System.Text;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>
/// `abk` alone, as an operator types into it: on a real terminal (a pseudo-terminal from util-linux's
/// `script`), keys sent one step at a time, the screen read back.
/// </summary>
public class InteractivePromptTests
{
    private sealed class Terminal : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _screen = new();

        public Terminal(string command, string home)
        {
            Assert.True(File.Exists("/usr/bin/script"), "util-linux 'script' is needed to give abk a terminal");
            var psi = new ProcessStartInfo("/usr/bin/script") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in (string[])["-qfec", command, "/dev/null"]) psi.ArgumentList.Add(a);
            psi.Environment["HOME"] = home;
            psi.Environment["TERM"] = "xterm";
            _process = Process.Start(psi)!;
            // Raw reads, not lines: the prompt "abk> " ends no line.
            foreach (var reader in new[] { _process.StandardOutput, _process.StandardError })
                new Thread(() =>
                {
                    var buffer = new char[4096];
                    int n;
                    while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
                        lock (_screen) _screen.Append(buffer, 0, n);
                }) { IsBackground = true }.Start();
        }

        public string Screen { get { lock (_screen) return _screen.ToString(); } }

        public void Type(string keys)
        {
            _process.StandardInput.Write(keys);
            _process.StandardInput.Flush();
        }

        /// <summary>Waits (30 s at most) until the screen shows <paramref name="text"/> <paramref name="times"/> times.</summary>
        public void WaitFor(string text, int times = 1)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Count(text) < times)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the prompt never showed '{text}' ({times}x):\n{Screen}");
                Thread.Sleep(50);
            }
        }

        private int Count(string text)
        {
            var screen = Screen;
            var n = 0;
            for (var i = screen.IndexOf(text, StringComparison.Ordinal); i >= 0; i = screen.IndexOf(text, i + text.Length, StringComparison.Ordinal)) n++;
            return n;
        }

        public bool WaitForExit() => _process.WaitForExit(30_000);

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
    }

    [Fact]
    public void The_prompt_completes_commands_and_ids_runs_them_and_recalls_history()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "a.txt"), "alpha");
        var large = Path.Combine(dir.Path, "large");
        CellTests.MakeRandomFiles(large, 2); // 16 MiB at 1 MB/s: a backup that runs while the prompt is interrupted
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.backup-rate-limit=1000000").Start();
        Assert.Equal(0, cell.Abk("backup", src).ExitCode); // job 1

        // A history file of years: cut back to its newest 1,000 lines when the prompt starts (it grew for good).
        var old = Enumerable.Range(0, 2001).Select(i => $"job show {i}").ToArray();
        File.WriteAllLines(Path.Combine(dir.Path, ".abk_history"), old);
        using var terminal = new Terminal($"{Processes.Abk} --node {cell.Node} --certs {cell.CertsDir}", dir.Path);
        terminal.WaitFor("abk> ");
        terminal.Type("job sh\t"); // one command starts so: completed
        terminal.WaitFor("abk> job show ");
        terminal.Type("\t"); // one job: its id completed
        terminal.WaitFor("abk> job show 1 ");
        terminal.Type("\r");
        terminal.WaitFor("job 1: backup succeeded");
        terminal.Type("client list\r");
        terminal.WaitFor("REACHABLE");
        terminal.Type("\x1b[A"); // up: the last command again
        terminal.WaitFor("abk> client list", 2);
        terminal.Type("\r");
        terminal.WaitFor("REACHABLE", 2);
        terminal.Type("job show 99\r");
        terminal.WaitFor("abk: no job 99");
        // Words as a shell splits them: a single-quoted path is the path (its quotes were part of it before).
        terminal.Type($"ls latest '{src}'\r");
        terminal.WaitFor("a.txt");
        terminal.Type("ls 'latest\r");
        terminal.WaitFor("is not closed");
        // Ctrl-C stops the command that waits for a backup, not the prompt (the job goes on).
        terminal.Type($"backup {large}\r");
        terminal.WaitFor("job 2 queued");
        terminal.Type("\x03");
        terminal.WaitFor("interrupted");
        terminal.Type("job cancel 2\r");
        terminal.WaitFor("cancel requested for job 2");
        // Ctrl-C at the prompt drops the line typed so far, as in bash; the prompt goes on.
        terminal.Type("job li");
        terminal.WaitFor("abk> job li");
        terminal.Type("\x03");
        terminal.WaitFor("^C");
        terminal.Type("job show 99\r");
        terminal.WaitFor("abk: no job 99", 2);
        terminal.Type("exit\r");
        Assert.True(terminal.WaitForExit(), terminal.Screen);

        Assert.Equal([.. old[^1000..], "job show 1", "client list", "client list", "job show 99", $"ls latest '{src}'", "ls 'latest", $"backup {large}", "job cancel 2", "job show 99"],
            File.ReadAllLines(Path.Combine(dir.Path, ".abk_history")));
    }
}
