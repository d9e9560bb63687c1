namespace ActorBackup.Engine.Posix;

public sealed class PosixException(int errno, string message) : IOException(message)
{
    public int Errno { get; } = errno;
}
