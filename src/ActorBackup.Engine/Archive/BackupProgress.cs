namespace ActorBackup.Engine.Archive;

public sealed record BackupProgress(long FilesDone, long FilesToRead, long BytesDone, long BytesToRead, long ChunksNew, long BytesStored);
