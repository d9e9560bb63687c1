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

    /// <summary>
    /// Whether to look for holes when it is read whole: it may be sparse, or it has blocks allocated past its end
    /// (fallocate with KEEP_SIZE, XFS's speculative preallocation), which can hide holes below the end from the count.
    /// </summary>
    /// A file under 1 MiB is not asked (its holes cost little to read); a file with a block or two more than its size
    /// (large blocks, indirect blocks, a file being appended to) is not either: only more than 1 MiB past its end.
    public bool MayHaveHoles => MayBeSparse || Kind == FileKind.Regular && Size >= Mebibyte && Blocks * 512 > (Size + Mebibyte - 1) / Mebibyte * Mebibyte + Mebibyte;

    private const ulong Mebibyte = 1 << 20;
}

/// <summary>What is at a name a restore makes (RootedDirectory.Existing): enough to judge whether to leave it (--overwrite).</summary>
/// <param name="Mode">the permission bits (07777)</param>
public readonly record struct Existing(FileKind Kind, ulong Size, long MtimeSec, uint MtimeNsec, uint Mode, uint Uid, uint Gid);
