using System.CommandLine;
using ActorBackup.Protocol.Commands;

namespace ActorBackup.Shell;

/// <summary>Ctrl-C while a job was followed: the job goes on, and which one it is is said (with --json its id was not printed yet).</summary>
public sealed class JobFollowInterrupted(string job, CancellationToken token) : OperationCanceledException(token)
{
    public string Job { get; } = job;
}

/// <summary>Runs one parsed `abk` command line: usage errors exit 2 with the reason, failures 1 with what to do.</summary>
public static class Shell
{
    /// <param name="signals">Ctrl-C cancels the command (and the process ends soon after); false: the caller handles
    /// Ctrl-C itself (the prompt: it stops the command, not the prompt)</param>
    public static Task<int> Invoke(ParseResult parsed, CancellationToken cancel = default, bool signals = true) =>
        CommandLineRunner.Run("abk", parsed, e => e switch
        {
            ShellException s => (s.ExitCode, s.Message),
            JobFollowInterrupted j => (130, $"interrupted; job {j.Job} goes on ('abk job watch {j.Job}' follows it, 'abk job cancel {j.Job}' stops it)"),
            OperationCanceledException => (130, "interrupted (a job it started goes on: 'abk job list')"),
            IOException or UnauthorizedAccessException => (1, e.Message), // a file it was given (abk apply FILE) it cannot read
            _ => null,
        }, cancelOnSignals: signals, cancel);
}
