namespace ActorBackup.Engine.Archive;

/// <param name="EntriesWalked">files, folders and other entries the walk has looked at so far, changed or not</param>
public sealed record BackupProgress(long FilesDone, long FilesToRead, long BytesDone, long BytesToRead, long ChunksNew, long BytesStored, long EntriesWalked = 0);
