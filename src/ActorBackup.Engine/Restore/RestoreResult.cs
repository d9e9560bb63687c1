using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Restore;

/// <summary>What a restore made (files written whole, folders, hard links, special files and symlinks), and what it did not.</summary>
/// <param name="Errors">each entry not restored, or restored without some of its metadata (an owner, an xattr, set-id bits), with why: the first
/// <see cref="Restorer.MaxErrorsListed"/></param>
/// <param name="NotRestored">entries planned but not made: each failed with an error, or lay below a folder that could not be made (whose error says why)</param>
/// <param name="ErrorsInAll">how many errors there were, listed or not (-1: as many as listed)</param>
/// <param name="Kept">entries already at their names left as they were (RestoreOptions.Overwrite)</param>
/// <param name="DryRun">nothing was written: the counts are what the restore would make (RestoreOptions.DryRun)</param>
public sealed record RestoreResult(long Files, long Directories, long Links, long Other, long Bytes, IReadOnlyList<SnapshotError> Errors, long NotRestored = 0, long ErrorsInAll = -1,
    long Kept = 0, bool DryRun = false)
{
    /// <summary>Every error, those listed and those only counted.</summary>
    public long ErrorCount => ErrorsInAll < 0 ? Errors.Count : ErrorsInAll;
}
