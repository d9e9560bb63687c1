namespace ActorBackup.Node;

/// <summary>The operator typed something we cannot act on; the message says what to type instead (exit 2).</summary>
public sealed class UsageException(string message) : Exception(message);
