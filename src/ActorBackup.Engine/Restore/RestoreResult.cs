using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Restore;

/// <summary>What a restore made (files written whole, folders, hard links, special files and symlinks), and what it did not.</summary>
/// <param name="Errors">each entry not restored, or restored without some of its metadata (an owner, an xattr, set-id bits), with why</param>
/// <param name="NotRestored">entries planned but not made: each failed with an error, or lay below a folder that could not be made (whose error says why)</param>
public sealed record RestoreResult(long Files, long Directories, long Links, long Other, long Bytes, IReadOnlyList<SnapshotError> Errors, long NotRestored = 0);
