namespace ActorBackup.Engine.Posix;

/// <summary>A file the walk found is not the file that is there to read (a symlink, FIFO or other file now): recorded as the file's error.</summary>
public sealed class FileChangedException(string message) : IOException(message);
