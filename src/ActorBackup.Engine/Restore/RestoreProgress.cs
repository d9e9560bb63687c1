namespace ActorBackup.Engine.Restore;

/// <param name="Entries">steps over entries so far: planned (read from the snapshot's trees), folders, links and special files made,
/// flags and folder metadata set; it moves where files and bytes do not (a restore's planning, its last pass)</param>
public sealed record RestoreProgress(long FilesDone, long FilesTotal, long BytesDone, long BytesTotal, long Entries = 0);
