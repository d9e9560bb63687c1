namespace ActorBackup.Engine.Posix;

/// <summary>What lstat says of a path: every field an incremental backup and a faithful restore need.</summary>
/// <param name="Attributes">the file flags statx tells (compressed, immutable, append-only, nodump: the same bits as FileFlags)</param>
/// <param name="Blocks">512-byte blocks allocated: fewer than the size needs means holes (a sparse file)</param>
public readonly record struct FileStat(
    FileKind Kind, uint Mode, uint Uid, uint Gid, ulong Size, ulong Inode, ulong Device, uint Nlink,
    long MtimeSec, uint MtimeNsec, long CtimeSec, uint CtimeNsec, uint RdevMajor, uint RdevMinor, ulong Blocks = 0,
    long AtimeSec = 0, uint AtimeNsec = 0, uint Attributes = 0)
{
    /// <summary>Whether the file may have holes: fewer blocks allocated than its size takes.</summary>
    public bool MayBeSparse => Kind == FileKind.Regular && Blocks * 512 < Size;
}
