namespace ActorBackup.Engine.Archive;

/// <summary>
/// What to back up on a client: paths, exclude globs, whether to stay on each path's file system, and whether to record
/// access times (they change on every read, so an entry's tree changes with them; off by default, as in tar).
/// </summary>
public sealed record BackupSet(string Name, IReadOnlyList<string> Paths, IReadOnlyList<string>? Excludes = null, bool OneFileSystem = false, bool Atime = false)
{
    /// <summary>
    /// Names that mark a folder to leave out, as restic's and borg's --exclude-if-present: a folder holding one is kept
    /// with only its markers (restored, it says why it is empty), whatever else it holds left out. A marker named
    /// <see cref="CacheDirTag"/> counts only when the file starts with its signature (the Cache Directory Tagging
    /// Specification: --exclude-caches).
    /// </summary>
    public IReadOnlyList<string> ExcludeIfPresent { get; init; } = [];

    /// <summary>The Cache Directory Tagging Specification's file name (bford.info/cachedir).</summary>
    public const string CacheDirTag = "CACHEDIR.TAG";

    /// <summary>What a <see cref="CacheDirTag"/> starts with.</summary>
    public static ReadOnlySpan<byte> CacheDirSignature => "Signature: 8a477f597d28d172789f06886806bc55"u8;

    /// <summary>What is wrong with a marker name (it is a name, not a path or a glob), or null.</summary>
    public static string? BadMarker(string name) =>
        name is "" or "." or ".." || name.Contains('/') || name.Contains('\0') || name.Length > 255
            ? $"'{name}' is not a file name: --exclude-if-present takes a name such as .nobackup (no '/')" : null;
}
