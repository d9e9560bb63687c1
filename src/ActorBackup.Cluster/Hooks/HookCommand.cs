using System.Diagnostics;
using System.Text;

namespace ActorBackup.Cluster.Hooks;

/// <summary>
/// An operator's command run around a job: a set's pre/post commands on the client, its on-success /
/// on-failure commands on the manager's node. Run by /bin/sh -c with the job's JSON on stdin and ABK_*
/// variables; bounded in time (killed with its process group after the timeout) and in what it prints
/// (the last <see cref="MaxOutput"/> characters are kept for the job's reason or the log).
/// </summary>
public static class HookCommand
{
    public const int MaxOutput = 4096;

    public sealed record Result(int ExitCode, string Output, bool TimedOut)
    {
        public bool Ok => ExitCode == 0 && !TimedOut;

        public string Describe(string what, TimeSpan timeout) =>
            (TimedOut ? $"{what} did not end within {timeout.TotalSeconds:F0} s and was killed" : $"{what} exited with {ExitCode}") +
            (Output.Trim() is { Length: > 0 } o ? $": {o}" : "");
    }

    /// <summary>How long a set's command may run: its command_timeout_seconds, else 5 minutes.</summary>
    public static TimeSpan Timeout(int seconds) => TimeSpan.FromSeconds(seconds > 0 ? seconds : 300);

    /// <summary>
    /// A command about a job: its JSON (as `abk --json job show` prints it, every field, zeros too) on stdin, ABK_JOB,
    /// ABK_SET, ABK_CLIENT, ABK_STATE, ABK_ERRORS (entries it could not handle) and ABK_OUTCOME (<see cref="Outcome"/>).
    /// </summary>
    public static Task<Result> ForJob(ActorBackup.Protocol.JobInfo job, string command, string state, TimeSpan timeout, CancellationToken cancel = default) =>
        Run(command, ActorBackup.Protocol.OperatorJson.Format(job), new Dictionary<string, string>
        {
            ["ABK_JOB"] = job.Id, ["ABK_SET"] = job.BackupSet, ["ABK_CLIENT"] = job.Client, ["ABK_STATE"] = state,
            ["ABK_ERRORS"] = job.Errors.ToString(System.Globalization.CultureInfo.InvariantCulture), ["ABK_OUTCOME"] = Outcome(state, job.Errors, job.Suspect),
        }, timeout, cancel);

    /// <summary>
    /// A job's end as a monitoring check reads it: ok, partial (it succeeded but left entries it could not handle: an
    /// on-success command that reports OK would hide them), suspect (its snapshot looks like a mass change: ransomware?),
    /// failed (failed, cancelled, interrupted), missed; else the state in lower case (a pre-command's "running").
    /// </summary>
    public static string Outcome(string state, long errors, string suspect = "") => state switch
    {
        "SUCCEEDED" when suspect != "" => "suspect",
        "SUCCEEDED" => errors > 0 ? "partial" : "ok",
        "MISSED" => "missed",
        "FAILED" or "CANCELLED" or "INTERRUPTED" => "failed",
        _ => state.ToLowerInvariant(),
    };

    /// <summary>
    /// The node's variables a command must not inherit: the passphrase that unlocks the cell's master key, and the node's
    /// configuration (a PostgreSQL connection string with its password). A set's command is the operator's, but what it
    /// prints goes into the job's reason, which integrators and client hosts read.
    /// </summary>
    public static readonly IReadOnlyList<string> Secrets = ["ABK_PASSPHRASE", "ABK_HOCON"];

    /// <summary>Takes <see cref="Secrets"/> out of a command's environment.</summary>
    public static void Scrub(IDictionary<string, string?> environment)
    {
        foreach (var secret in Secrets) environment.Remove(secret);
    }

    public static async Task<Result> Run(string command, string stdin, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, CancellationToken cancel = default)
    {
        // In a session (and process group) of its own, so that a timeout kills what it started in the
        // background too, which Process.Kill cannot find once it is re-parented.
        var psi = new ProcessStartInfo(File.Exists(SetSid) ? SetSid : "/bin/sh")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (psi.FileName == SetSid) psi.ArgumentList.Add("/bin/sh");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        Scrub(psi.Environment);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var process = new Process { StartInfo = psi };
        var output = new Tail(MaxOutput);
        // Each stream's end (null data): the output is whole once both came.
        var outEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var errEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Add(e.Data); else outEnd.TrySetResult(); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Add(e.Data); else errEnd.TrySetResult(); };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new Result(-1, $"could not start /bin/sh: {e.Message}", false);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Not WaitForExitAsync: it also waits for the end of the output, which a background child keeps open.
        var waiter = new Thread(() =>
        {
            try
            {
                process.WaitForExit(int.MaxValue); // a finite wait does not wait for the end of the output
            }
            catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException or System.ComponentModel.Win32Exception)
            {
                // Given up on (a process that would not die) and disposed: nothing to wait for.
            }
            exited.TrySetResult();
        }) { IsBackground = true, Name = "hook-wait" };
        waiter.Start();
        try
        {
            try
            {
                await process.StandardInput.WriteAsync(stdin.AsMemory(), deadline.Token);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The command does not read its stdin: that is its business.
            }
            await exited.Task.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            KillGroup(process);
            await exited.Task.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
            return new Result(-1, output.ToString(), !cancel.IsCancellationRequested);
        }
        // The last lines it printed: read to the end of its output, or for at most a second more when a child it left in
        // the background keeps the output open.
        await Task.WhenAny(Task.WhenAll(outEnd.Task, errEnd.Task), Task.Delay(OutputAfterExit, CancellationToken.None));
        return new Result(process.ExitCode, output.ToString(), false);
    }

    private const string SetSid = "/usr/bin/setsid";

    /// <summary>How long the output of a command that exited is still read while something it left keeps it open.</summary>
    private static readonly TimeSpan OutputAfterExit = TimeSpan.FromSeconds(1);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>SIGKILL to the command's process group (its pid, under setsid), then to the process itself.</summary>
    private static void KillGroup(Process process)
    {
        try
        {
            kill(-process.Id, 9);
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Gone already.
        }
    }

    /// <summary>The last lines of what a command printed, at most so many characters.</summary>
    private sealed class Tail(int max)
    {
        private readonly LinkedList<string> _lines = new();
        private int _length;

        public void Add(string line)
        {
            lock (_lines)
            {
                _lines.AddLast(line);
                _length += line.Length + 1;
                while (_length > max && _lines.Count > 1)
                {
                    _length -= _lines.First!.Value.Length + 1;
                    _lines.RemoveFirst();
                }
            }
        }

        public override string ToString()
        {
            lock (_lines)
            {
                var text = string.Join("\n", _lines);
                return text.Length > max ? text[^max..] : text;
            }
        }
    }
}
