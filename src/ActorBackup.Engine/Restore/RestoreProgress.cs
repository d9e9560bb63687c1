namespace ActorBackup.Engine.Restore;

public sealed record RestoreProgress(long FilesDone, long FilesTotal, long BytesDone, long BytesTotal);
