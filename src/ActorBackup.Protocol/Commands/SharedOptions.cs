using System.CommandLine;

namespace ActorBackup.Protocol.Commands;

/// <summary>
/// Options that `abk`, `actorbackup` and `actorbackup engine` share, defined once: the same name, help and
/// parsing wherever an operator types them.
/// </summary>
public static class SharedOptions
{
    public static readonly string[] LevelNames = ["full", "incremental", "differential"];

    public static Option<bool> Json() => new("--json") { Description = "machine-readable output", Recursive = true };

    public static Option<BackupLevel> Level() => new("--level")
    {
        Description = "full, incremental (default: full when there is nothing to compare with) or differential",
        HelpName = "full|incremental|differential",
        CustomParser = r => ParseLevel(r.Tokens.Count > 0 ? r.Tokens[^1].Value : null, r),
        CompletionSources = { LevelNames },
    };

    public static Option<string[]> Exclude() => new("--exclude")
    {
        Description = "glob of paths to leave out (repeatable)", HelpName = "GLOB", AllowMultipleArgumentsPerToken = false,
    };

    public static Option<bool> OneFileSystem() => new("--one-file-system") { Description = "stay on the file system of each path" };

    /// <summary>A level as operators type it; empty: the default.</summary>
    public static BackupLevel ParseLevel(string? level, System.CommandLine.Parsing.ArgumentResult? result = null)
    {
        switch (level?.ToLowerInvariant())
        {
            case null or "": return BackupLevel.LevelDefault;
            case "full": return BackupLevel.LevelFull;
            case "incremental" or "incr": return BackupLevel.LevelIncremental;
            case "differential" or "diff": return BackupLevel.LevelDifferential;
        }
        var message = $"unknown level '{level}': use full, incremental or differential";
        if (result is null) throw new ArgumentException(message);
        result.AddError(message);
        return BackupLevel.LevelDefault;
    }
}
