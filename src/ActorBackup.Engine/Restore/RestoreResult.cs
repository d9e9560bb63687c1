using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Restore;

public sealed record RestoreResult(long Files, long Directories, long Links, long Other, long Bytes, IReadOnlyList<SnapshotError> Errors);
