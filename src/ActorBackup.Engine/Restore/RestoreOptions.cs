namespace ActorBackup.Engine.Restore;

public sealed record RestoreOptions
{
    /// <summary>Snapshot paths (a path restores it and everything below it) or globs; empty: everything.</summary>
    public IReadOnlyList<string> Include { get; init; } = [];
    /// <summary>Set owners back. Default: when running as root (only root may give files away).</summary>
    public bool? RestoreOwner { get; init; }
    /// <summary>Write into / or into a folder that already holds something (what is there may be replaced). Default: refused.</summary>
    public bool Force { get; init; }
    /// <summary>
    /// Set when this run retries a restore whose earlier attempt claimed the target (<see cref="Claimed"/>): what is
    /// there is that attempt's, so the target is not refused as not empty. True when that attempt made the folder
    /// (setuid/setgid files and device nodes may go in, as they could then). Null: a first claim, checked.
    /// </summary>
    public bool? Resumes { get; init; }
    /// <summary>Told once the target is claimed (checked or forced, made), before anything is written there: whether this restore (or the attempt it resumes) made the folder.</summary>
    public Action<bool>? Claimed { get; init; }
    /// <summary>
    /// Folders on the way to the paths asked for that an earlier attempt of this restore found there before it (kept by
    /// the caller from <see cref="FoundOnTheWay"/>): a resumed restore leaves their own metadata as a first one does.
    /// </summary>
    public IReadOnlySet<string>? FoundBefore { get; init; }
    /// <summary>Told (from several threads) each folder on the way found there before the restore; on the disk by <see cref="FoundLevelDone"/>'s return.</summary>
    public Action<string>? FoundOnTheWay { get; init; }
    /// <summary>
    /// Called once each level of folders is made, before anything goes into them: what <see cref="FoundOnTheWay"/> was told
    /// must be on the disk when it returns (one sync a level, not one a folder: --overwrite never finds every folder there).
    /// </summary>
    public Action? FoundLevelDone { get; init; }
    /// <summary>Owners by the recorded ids, as they are; otherwise by the recorded user and group names where this host knows them (tar's way).</summary>
    public bool NumericOwner { get; init; }
    /// <summary>Blocks of zeros (4 KiB, aligned in the file) are not written but left as holes: the file takes no space for them.</summary>
    public bool Sparse { get; init; }
    /// <summary>
    /// Entries not restored, written as a backup set's excludes are (Archive/ExcludeMatcher): a pattern with a '/' is matched
    /// against the entry's snapshot path, one without against its name ("*.tmp"); a folder left out takes what is below it.
    /// </summary>
    public IReadOnlyList<string> Excludes { get; init; } = [];
    /// <summary>
    /// With <see cref="Force"/>: what becomes of an entry (not a folder) already at a name the restore makes. Without
    /// Force a restore writes into a new or empty folder (or one its earlier attempt wrote), and it does not apply.
    /// </summary>
    public OverwritePolicy Overwrite { get; init; }
    /// <summary>Plan only: what would be restored (and left as it is, and refused) is counted and said; nothing is made or written, not even the target.</summary>
    public bool DryRun { get; init; }
    public int Parallelism { get; init; } = Math.Max(2, Environment.ProcessorCount);
    /// <summary>Told the name of each phase that ended (directories, contents, links): tests change the target between phases.</summary>
    internal Action<string>? Phase { get; init; }
}

/// <summary>What a forced restore does with an entry already at a name it makes (folders are merged, whatever the policy).</summary>
public enum OverwritePolicy
{
    /// <summary>Replaced (once its new copy is whole).</summary>
    Always,
    /// <summary>Left as it is when it is of the same kind, size, modification time (to the nanosecond), mode and (restoring owners) owner as the snapshot's: a restore over a tree that is mostly intact writes only what differs.</summary>
    IfChanged,
    /// <summary>Left as it is unless the snapshot's is newer (its modification time later than the one there).</summary>
    IfNewer,
    /// <summary>Left as it is, whatever it is; folders that were there keep their own metadata too: only what is missing is restored.</summary>
    Never,
}
