namespace ActorBackup.Engine.Archive;

/// <summary>
/// What to back up on a client: paths, exclude globs, whether to stay on each path's file system, and whether to record
/// access times (they change on every read, so an entry's tree changes with them; off by default, as in tar).
/// </summary>
public sealed record BackupSet(string Name, IReadOnlyList<string> Paths, IReadOnlyList<string>? Excludes = null, bool OneFileSystem = false, bool Atime = false);
