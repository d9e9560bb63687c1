namespace ActorBackup.Engine.Posix;

/// <summary>What lstat says of a path: every field an incremental backup and a faithful restore need.</summary>
public readonly record struct FileStat(
    FileKind Kind, uint Mode, uint Uid, uint Gid, ulong Size, ulong Inode, ulong Device, uint Nlink,
    long MtimeSec, uint MtimeNsec, long CtimeSec, uint CtimeNsec, uint RdevMajor, uint RdevMinor);
