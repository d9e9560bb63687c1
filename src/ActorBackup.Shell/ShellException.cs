namespace ActorBackup.Shell;

/// <summary>An operator-facing failure: printed as "abk: MESSAGE", the process exits with <see cref="ExitCode"/>.</summary>
public sealed class ShellException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    /// <summary>The node's answer refused the command (CommandRejected), as opposed to the connection failing.</summary>
    public bool Refused { get; init; }
}
