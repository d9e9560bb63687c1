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

    public static Option<string[]> ExcludeIfPresent() => new("--exclude-if-present")
    {
        Description = "leave out what a folder holds when it holds a file of this name, e.g. .nobackup (the folder and the file are kept; repeatable)",
        HelpName = "NAME", AllowMultipleArgumentsPerToken = false,
    };

    public static Option<bool> ExcludeCaches() => new("--exclude-caches")
    {
        Description = "leave out what cache folders hold: those with a CACHEDIR.TAG that starts with its signature (bford.info/cachedir)",
    };

    /// <summary>The names that mark a folder to leave out: --exclude-if-present's, and CACHEDIR.TAG with --exclude-caches.</summary>
    public static List<string> Markers(string[]? ifPresent, bool caches) =>
        [.. (ifPresent ?? []).Concat(caches ? ["CACHEDIR.TAG"] : []).Distinct(StringComparer.Ordinal)];

    public static readonly string[] OverwriteNames = ["always", "if-changed", "if-newer", "never"];

    /// <summary>A restore's --overwrite: what becomes of a file already at a name it makes (with --force).</summary>
    public static Option<RestoreOverwrite> Overwrite() => new("--overwrite")
    {
        Description = "with --force, a file already there is: always replaced (default), replaced if-changed (its kind, size, mtime to the nanosecond, mode or owner differs from the snapshot's), " +
                      "replaced if-newer (the snapshot's is newer), or never replaced (only what is missing is restored)",
        HelpName = "always|if-changed|if-newer|never",
        CustomParser = r =>
        {
            var word = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "always";
            var i = Array.IndexOf(OverwriteNames, word.ToLowerInvariant());
            if (i >= 0) return (RestoreOverwrite)i;
            r.AddError($"unknown overwrite policy '{word}': use {string.Join(", ", OverwriteNames)}");
            return RestoreOverwrite.OverwriteAlways;
        },
        CompletionSources = { OverwriteNames },
    };

    /// <summary>How --overwrite names a policy.</summary>
    public static string OverwriteName(RestoreOverwrite policy) => (int)policy is >= 0 and < 4 ? OverwriteNames[(int)policy] : policy.ToString();

    public static Option<string[]> RestoreExclude() => new("--exclude")
    {
        Description = "entries not to restore (repeatable): a glob with a '/' matches snapshot paths, one without names (*.tmp); a folder left out takes what is below it",
        HelpName = "GLOB", AllowMultipleArgumentsPerToken = false,
    };

    public static Option<bool> RestoreDryRun() => new("--dry-run") { Description = "say what would be restored (and, with --overwrite, left as it is), write nothing" };

    public static Option<bool> OneFileSystem() => new("--one-file-system") { Description = "stay on the file system of each path" };

    public static Option<bool> Atime() => new("--atime") { Description = "record each entry's access time, and give it back on restore (off by default: it changes on every read)" };

    public static Option<bool> Sparse() => new("--sparse") { Description = "leave blocks of zeros in files as holes (not written), not only the holes the backup recorded" };

    /// <summary>A level as operators type it; empty: the default.</summary>
    /// <summary>The level a word names (its short forms incr and diff too), or null when it names none.</summary>
    private static BackupLevel? LevelNamed(string word) => word.ToLowerInvariant() switch
    {
        "full" => BackupLevel.LevelFull,
        "incremental" or "incr" => BackupLevel.LevelIncremental,
        "differential" or "diff" => BackupLevel.LevelDifferential,
        _ => null,
    };

    public static BackupLevel ParseLevel(string? level, System.CommandLine.Parsing.ArgumentResult? result = null)
    {
        if (string.IsNullOrEmpty(level)) return BackupLevel.LevelDefault;
        if (LevelNamed(level) is { } named) return named;
        var message = $"unknown level '{level}': use full, incremental or differential";
        if (result is null) throw new ArgumentException(message);
        result.AddError(message);
        return BackupLevel.LevelDefault;
    }

    /// <summary>A duration as an operator types it: a number and s, m, h or d (90s, 30m, 4h, 1d); null when it is not one.</summary>
    public static TimeSpan? ParseDuration(string text)
    {
        text = text.Trim();
        return text.Length < 2 ? null : text[^1] switch
        {
            's' => Scaled(text[..^1], 1),
            'm' => Scaled(text[..^1], 60),
            'h' => Scaled(text[..^1], 3600),
            'd' => Scaled(text[..^1], 86400),
            _ => null,
        };
    }

    /// <summary>What <see cref="ParseAge"/> takes, for the messages that refuse one.</summary>
    public const string AgeForm = "a number and s, h, d, w, mo (30 days) or y (365 days), e.g. 30d or 6mo (not m: that would be minutes)";

    /// <summary>
    /// An age of snapshots as an operator types it for retention and tiering (keep within, tier after): s, h, d, w,
    /// mo (30 days) or y (365 days); null when it is not one. A bare m is refused: restic and Borg read 6m as six
    /// months, and minutes of retention would delete what a month was meant to keep.
    /// </summary>
    public static TimeSpan? ParseAge(string text)
    {
        text = text.Trim();
        if (text.EndsWith("mo", StringComparison.Ordinal)) return Scaled(text[..^2], 30 * 86400);
        if (text.Length < 2 || text[^1] == 'm') return null;
        return text[^1] switch
        {
            'w' => Scaled(text[..^1], 7 * 86400),
            'y' => Scaled(text[..^1], 365 * 86400),
            _ => ParseDuration(text),
        };
    }

    /// <summary><paramref name="number"/> times <paramref name="unit"/> seconds; null when it is not a number, or more than ten years.</summary>
    private static TimeSpan? Scaled(string number, double unit)
    {
        if (number.Length == 0 || !double.TryParse(number, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var n)
            || !double.IsFinite(n) || n < 0)
            return null;
        // At most ten years: a longer one is a typo, and would not fit where it goes (seconds in an int).
        var seconds = n * unit;
        return seconds <= 10 * 365 * 86400.0 ? TimeSpan.FromSeconds(seconds) : null;
    }

    /// <summary>"CRON" or "CRON=LEVEL" as an operator types it (in `abk set add --schedule` and in an `abk apply` file).</summary>
    public static ScheduleRule ParseScheduleRule(string text)
    {
        var eq = text.LastIndexOf('=');
        // The level names --level takes, its short ones (incr, diff) too.
        if (eq > 0 && LevelNamed(text[(eq + 1)..].Trim()) is { } level)
            return new ScheduleRule { Cron = text[..eq].Trim(), Level = level };
        return new ScheduleRule { Cron = text.Trim() };
    }
}
