namespace ActorBackup.Engine.Archive;

/// <summary>What to back up on a client: paths, exclude globs, and whether to stay on each path's file system.</summary>
public sealed record BackupSet(string Name, IReadOnlyList<string> Paths, IReadOnlyList<string>? Excludes = null, bool OneFileSystem = false);
