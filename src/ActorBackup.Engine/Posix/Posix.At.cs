using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ActorBackup.Engine.Posix;

/// <summary>The *at calls a restore makes through directory handles (see <see cref="RootedDirectory"/>).</summary>
public static unsafe partial class Posix
{
    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow { public ulong Flags, Mode, Resolve; }

    private const long SysOpenat2 = 437; // the same number on every Linux architecture
    private const ulong ResolveNoXdev = 0x01, ResolveNoMagiclinks = 0x02, ResolveNoSymlinks = 0x04, ResolveBeneath = 0x08;
    internal const int ORdOnlyFlag = 0, OWrOnly = 1, OCreat = 0x40, OExcl = 0x80, ODirectory = 0x10000, OPath = 0x200000;
    /// <summary>O_TMPFILE (with O_DIRECTORY, as the kernel defines it): a file with no name in the folder opened.</summary>
    internal const int OTmpFile = 0x400000 | ODirectory;
    internal const int EXDEV = 18, ELOOP_ = 40, ENOSYS = 38, EISDIR = 21;
    private const int AtRemoveDir = 0x200;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall_openat2(long number, int dirfd, byte* path, OpenHow* how, nuint size);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int open_mode(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "faccessat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int faccessat(int dirfd, string path, int mode, int flags);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long length);

    /// <summary>
    /// Allocates a new file's blocks at once without changing its size (FALLOC_FL_KEEP_SIZE, as FileStream's
    /// PreallocationSize does): fewer extents. The errno, 0 when done; a file system that cannot is no error.
    /// </summary>
    internal static int Preallocate(int fd, long size) => fallocate(fd, 1, 0, size) == 0 ? 0 : Marshal.GetLastPInvokeError();

    [LibraryImport("libc", EntryPoint = "fstatfs", SetLastError = true)]
    private static partial int fstatfs(int fd, byte* buf);

    private const long BtrfsMagic = 0x9123683E;

    /// <summary>
    /// Whether the file system of <paramref name="fd"/> is btrfs, which writes a preallocated file in place, uncompressed,
    /// even where a mount option (compress=) or a property asks for compression. False when it cannot say.
    /// </summary>
    internal static bool IsBtrfs(int fd)
    {
        var buf = stackalloc byte[256]; // struct statfs: 120 bytes on x86-64 and arm64, f_type its first word
        return fstatfs(fd, buf) == 0 && *(long*)buf == BtrfsMagic;
    }

    /// <summary>
    /// Whether a btrfs is mounted at or below the folder <paramref name="fd"/> holds (/proc/self/mountinfo, against the
    /// folder's own path as the kernel names it): then a file's own file system says whether it may be preallocated.
    /// True when it cannot say (no /proc).
    /// </summary>
    internal static bool BtrfsMountedBelow(int fd) => MountsBelow(fd) is not { } mounts || mounts.Any(m => m.Type == "btrfs");

    /// <summary>
    /// Whether a file system other than the folder's own may be mounted below the folder <paramref name="fd"/> holds:
    /// one is, or the mounts cannot be read.
    /// </summary>
    internal static bool OthersMountedBelow(int fd) => MountsBelow(fd, strictly: true) is not { Count: 0 };

    /// <summary>
    /// The file systems mounted at or below the folder <paramref name="fd"/> holds (/proc/self/mountinfo, against the
    /// folder's own path as the kernel names it): their mount points and types. Null when it cannot say (no /proc).
    /// </summary>
    /// <param name="strictly">only those below it, not one mounted at the folder itself</param>
    internal static List<(string Path, string Type)>? MountsBelow(int fd, bool strictly = false)
    {
        try
        {
            var folder = Encoding.UTF8.GetString(ReadLink($"/proc/self/fd/{fd}")).TrimEnd('/') + "/";
            var mounts = new List<(string, string)>();
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
                var fields = line.Split(' ');
                if (fields.Length < 10) continue; // not a line the kernel writes
                var dash = Array.IndexOf(fields, "-", 6);
                if (dash < 0 || dash + 1 >= fields.Length) continue;
                var point = MountInfoPath(fields[4]);
                var at = point.TrimEnd('/') + "/";
                if (at.StartsWith(folder, StringComparison.Ordinal) && !(strictly && at == folder)) mounts.Add((point, fields[dash + 1]));
            }
            return mounts;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static partial int syncfs(int fd);

    [LibraryImport("libc", EntryPoint = "sync")]
    private static partial void sync();

    /// <summary>Tests: the folders whose file systems <see cref="SyncFileSystems"/> made durable.</summary>
    internal static event Action<string>? FileSystemsSynced;

    /// <summary>
    /// Makes durable everything written to the file system of the folder <paramref name="fd"/> holds and to the local
    /// disk file systems mounted below it (syncfs of each: a restore with --force into "/" writes into them; network,
    /// FUSE and pseudo file systems are left alone, a dead server would hold the sync for good); sync() when the mounts
    /// cannot be read, or the folder cannot be opened to read (a restored mode without read permission). A file system
    /// that cannot sync (EINVAL, ENOTSUP) has nothing to sync; another error (EIO: a write the disk refused after the
    /// file was closed) is a PosixException naming the folder.
    /// </summary>
    /// <param name="readable">the folder opened to read when the restore began (a sync through it reports every write-back
    /// error of its file system since then, also one a write-behind sync met); -1: sync()</param>
    internal static void SyncFileSystems(int readable, int fd, string path)
    {
        if (readable < 0) sync();
        else SyncOne(readable, path);
        if (MountsBelow(fd) is not { } mounts) sync();
        else
            foreach (var (point, type) in mounts)
            {
                if (!LocalDiskTypes.Contains(type)) continue;
                var below = OpenPath(point, ORdOnlyFlag | ODirectory | ONonblockFlag);
                if (below < 0) continue; // unmounted meanwhile, or not this user's to open: nothing this restore wrote
                try
                {
                    SyncOne(below, point);
                }
                finally
                {
                    close(below);
                }
            }
        FileSystemsSynced?.Invoke(path);
    }

    /// <summary>
    /// Starts and waits for the write-back of what is written to the file system of the folder <paramref name="fd"/>
    /// holds, through a handle of its own (syncfs): a restore's writes reach the disk while it goes on writing, so that its
    /// last sync finds little left. Its errors are not this call's to report (the last sync reports them).
    /// </summary>
    internal static void WriteBehind(int fd)
    {
        var own = Reopen(fd, ORdOnlyFlag | ONonblockFlag);
        if (own < 0) return;
        syncfs(own);
        close(own);
    }

    /// <summary>The file systems on local disks that <see cref="SyncFileSystems"/> syncs when mounted below a restore's target.</summary>
    private static readonly HashSet<string> LocalDiskTypes =
        ["ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "jfs", "reiserfs", "vfat", "exfat", "ntfs", "ntfs3", "nilfs2"];

    private static void SyncOne(int fd, string path)
    {
        if (syncfs(fd) != 0 && Marshal.GetLastPInvokeError() is var errno and not (EINVAL or ENOTSUP))
            throw new PosixException(errno, $"{PosixNames.Display(path)}: the file system did not take what was written ({Describe(errno)})");
    }

    /// <summary>A path of /proc/self/mountinfo, whose space, tab, newline and backslash are octal escapes (\040; only these, all ASCII).</summary>
    private static string MountInfoPath(string field)
    {
        if (!field.Contains('\\')) return field;
        var path = new StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
            if (field[i] == '\\' && i + 3 < field.Length && field.AsSpan(i + 1, 3).IndexOfAnyExcept("01234567") < 0)
            {
                path.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else path.Append(field[i]);
        return path.ToString();
    }

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int close(int fd);

    internal const int EINVAL = 22;
    private const int ENOTSUP = 95;

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int fsync(int fd);

    /// <summary>
    /// Makes a folder's entries durable (fsync of the folder): a file renamed into it is there after a power cut, and
    /// before whatever is written after this. IOException when it cannot be opened or synced; a file system that cannot
    /// sync a folder at all (EINVAL, ENOTSUP: some FUSE and network mounts) is taken as having nothing to sync, as
    /// PostgreSQL does.
    /// </summary>
    public static void SyncDirectory(string path)
    {
        var fd = OpenPath(path, ORdOnlyFlag | ODirectory);
        if (fd < 0) throw new IOException($"{path}: cannot open the folder to sync it (errno {-fd})");
        try
        {
            if (fsync(fd) != 0 && Marshal.GetLastPInvokeError() is var errno and not (EINVAL or ENOTSUP))
                throw new IOException($"{path}: cannot sync the folder (errno {errno})");
        }
        finally
        {
            close(fd);
        }
        FolderSynced?.Invoke(path);
    }

    /// <summary>
    /// Closes a file written through <paramref name="handle"/>, saying whether the file system took what was written:
    /// NFS, CIFS and FUSE file systems report a write they could not make (out of quota or space, an I/O error) at
    /// close, which disposing the handle does not look at. PosixException with the errno when close fails (the
    /// descriptor is gone either way: never closed twice).
    /// </summary>
    public static void CloseChecked(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path)
    {
        if (handle.IsInvalid || handle.IsClosed) return;
        var fd = (int)handle.DangerousGetHandle();
        handle.SetHandleAsInvalid(); // closed here, not again by its Dispose or finalizer
        var result = close(fd) == 0 ? 0 : Marshal.GetLastPInvokeError();
        if (CloseFails?.Invoke(path) is { } injected) result = injected;
        if (result is not (0 or EINTR)) throw new PosixException(result, $"close {PosixNames.Display(path)}: {Describe(result)}");
    }

    /// <summary>Tests: the errno a close of the file at this path reports (null: what close(2) said).</summary>
    internal static Func<string, int?>? CloseFails;

    /// <summary>Raised after each folder sync, with its path (for tests that check a write is durable).</summary>
    internal static event Action<string>? FolderSynced;

    /// <summary>
    /// Puts a file written and synced under a temporary name in place of <paramref name="path"/>, durably: the rename
    /// is on disk (its folder synced) before this returns, so what a caller records next never outlives it in a power cut.
    /// </summary>
    public static void MoveDurably(string temporary, string path)
    {
        File.Move(temporary, path, overwrite: true);
        SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with what <paramref name="write"/> writes, whole and durably: written under a
    /// temporary name made anew (with <paramref name="mode"/> when given: never wider, not even for a moment; else the
    /// umask's), synced, then moved over it (<see cref="MoveDurably"/>).
    /// </summary>
    public static void WriteFileDurably(string path, Action<Stream> write, UnixFileMode? mode = null, int bufferSize = 4096)
    {
        var tmp = path + ".tmp";
        File.Delete(tmp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = bufferSize };
        if (mode is { } m) options.UnixCreateMode = m;
        using (var f = new FileStream(tmp, options))
        {
            write(f);
            f.Flush(true);
        }
        MoveDurably(tmp, path);
    }

    /// <inheritdoc cref="WriteFileDurably(string, Action{Stream}, UnixFileMode?, int)"/>
    public static void WriteFileDurably(string path, byte[] content, UnixFileMode? mode = null) => WriteFileDurably(path, f => f.Write(content), mode);

    [LibraryImport("libc", EntryPoint = "mkdirat", SetLastError = true)]
    private static partial int mkdirat(int dirfd, byte* name, uint mode);

    [LibraryImport("libc", EntryPoint = "renameat", SetLastError = true)]
    private static partial int renameat(int olddirfd, byte* oldname, int newdirfd, byte* newname);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true)]
    private static partial int unlinkat(int dirfd, byte* name, int flags);

    [LibraryImport("libc", EntryPoint = "linkat", SetLastError = true)]
    private static partial int linkat(int olddirfd, byte* oldname, int newdirfd, byte* newname, int flags);

    [LibraryImport("libc", EntryPoint = "symlinkat", SetLastError = true)]
    private static partial int symlinkat(byte* target, int dirfd, byte* name);

    [LibraryImport("libc", EntryPoint = "mknodat", SetLastError = true)]
    private static partial int mknodat(int dirfd, byte* name, uint mode, ulong dev);

    [LibraryImport("libc", EntryPoint = "fchownat", SetLastError = true)]
    private static partial int fchownat(int dirfd, byte* name, uint uid, uint gid, int flags);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    private static partial int fchown(int fd, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int fchmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "futimens", SetLastError = true)]
    private static partial int futimens(int fd, Timespec* times);

    [LibraryImport("libc", EntryPoint = "utimensat", SetLastError = true)]
    private static partial int utimensat_at(int dirfd, byte* name, Timespec* times, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static partial int statx_at(int dirfd, byte* name, int flags, uint mask, Statx* buf);

    /// <summary>A name or path as the NUL-terminated bytes it stands for (PosixNames).</summary>
    private static byte[] CString(string s)
    {
        var bytes = PosixNames.Encode(s);
        Array.Resize(ref bytes, bytes.Length + 1);
        return bytes;
    }

    /// <summary>open(2) of a folder to resolve paths in: O_PATH, the folder itself may be reached through a symlink (the operator named it).</summary>
    internal static int OpenRoot(string path)
    {
        var fd = open_mode(path, OPath | ODirectory | OCloexec, 0);
        if (fd < 0) throw Error("open", path);
        return fd;
    }

    internal static void Close(int fd) => close(fd);

    /// <summary>Whether <paramref name="path"/> is a folder (a symlink to one followed: the operator named it), by its bytes.</summary>
    public static bool IsDirectory(string path)
    {
        var fd = open_mode(path, OPath | ODirectory | OCloexec, 0);
        if (fd < 0) return false;
        close(fd);
        return true;
    }

    /// <summary>Whether the folder <paramref name="path"/> (a symlink to one followed) holds any entry; IOException when it cannot be listed.</summary>
    public static bool HasEntries(string path)
    {
        var fd = open_mode(path, ORdOnlyFlag | ODirectory | OCloexec, 0);
        if (fd < 0) throw Error("open", path);
        using var folder = new SafeFileHandle(fd, ownsHandle: true);
        return ListDirectory(folder, path, out _, most: 1).Count > 0;
    }

    /// <summary>
    /// Makes the folder <paramref name="path"/> (a full path: no "." or ".." in it) with <paramref name="mode"/>, and each
    /// folder missing on the way to it as mkdir -p does (0777), both less the umask, by their bytes: a path that is not
    /// UTF-8 is made as it is. A folder there already is fine; anything else there fails where the path is used next.
    /// Whether this call made the folder itself (false: it was there).
    /// </summary>
    public static bool CreateDirectories(string path, uint mode)
    {
        var trimmed = path.Length > 1 ? path.TrimEnd('/') : path;
        for (var end = trimmed.IndexOf('/', 1); ; end = trimmed.IndexOf('/', end + 1))
        {
            var folder = end < 0 ? trimmed : trimmed[..end];
            var errno = MkdirAt(AtFdcwd, folder, end < 0 ? mode : 0x1FF);
            if (errno is not (0 or EEXIST)) throw new PosixException(errno, $"cannot make the folder {PosixNames.Display(folder)}: {Describe(errno)}");
            if (end < 0) return errno == 0;
        }
    }

    /// <summary>
    /// Why this process (its effective ids) may not make entries in folder <paramref name="path"/> (write and search:
    /// not its owner's, a read-only mount), as a PosixException; null when it may, or when the check itself cannot say
    /// (a container whose seccomp filter refuses faccessat2 with EPERM or ENOSYS: the writes say it then).
    /// </summary>
    public static PosixException? NotWritable(string path)
    {
        const int wOk = 2, xOk = 1, atEaccess = 0x200, erofs = 30;
        if (faccessat(AtFdcwd, path, wOk | xOk, atEaccess) == 0) return null;
        var errno = Marshal.GetLastPInvokeError();
        return errno is EACCES or erofs ? new PosixException(errno, $"the folder {PosixNames.Display(path)} cannot be written to: {Describe(errno)}") : null;
    }

    /// <summary>openat2 below <paramref name="root"/>: never through a symlink (the last name included), never out of it. -errno on failure.</summary>
    internal static int OpenBeneath(int root, string relative, int flags, uint mode) =>
        Openat2(root, relative, flags, mode, ResolveBeneath | ResolveNoSymlinks | ResolveNoMagiclinks);

    /// <summary>openat2(2), close-on-exec, with the path's resolution restricted as <paramref name="resolve"/> says; -errno on failure.</summary>
    private static int Openat2(int dirfd, string path, int flags, uint mode, ulong resolve)
    {
        var how = new OpenHow { Flags = (ulong)(flags | OCloexec), Mode = mode, Resolve = resolve };
        fixed (byte* p = CString(path))
        {
            var fd = syscall_openat2(SysOpenat2, dirfd, p, &how, (nuint)sizeof(OpenHow));
            return fd >= 0 ? (int)fd : -Marshal.GetLastPInvokeError();
        }
    }

    internal static int MkdirAt(int dir, string name, uint mode)
    {
        fixed (byte* p = CString(name)) return mkdirat(dir, p, mode) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/> within one folder (what was at <paramref name="to"/> replaced at once); 0 or the errno.</summary>
    internal static int RenameAt(int dir, string from, string to)
    {
        fixed (byte* f = CString(from))
        fixed (byte* t = CString(to))
            return renameat(dir, f, dir, t) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>renameat2's flag: fail with EEXIST rather than replace what is at the new name.</summary>
    internal const uint RenameNoReplace = 1;

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    private static partial int renameat2(int olddirfd, byte* oldname, int newdirfd, byte* newname, uint flags);

    /// <summary>renameat2 within one folder: 0, or the errno (EINVAL or ENOSYS where the file system or kernel has no such flag).</summary>
    internal static int RenameAt(int dir, string from, string to, uint flags)
    {
        fixed (byte* f = CString(from))
        fixed (byte* t = CString(to))
            return renameat2(dir, f, dir, t, flags) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    internal static int UnlinkAt(int dir, string name)
    {
        fixed (byte* p = CString(name)) return unlinkat(dir, p, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Gives the file <paramref name="fd"/> holds (an O_TMPFILE one: no name yet) the name <paramref name="toName"/> in <paramref name="toDir"/>; 0 or the errno.</summary>
    internal static int LinkHandle(int fd, int toDir, string toName)
    {
        const int AtFdCwd = -100, AtSymlinkFollow = 0x400, AtEmptyPath = 0x1000;
        fixed (byte* f = CString($"/proc/self/fd/{fd}"))
        fixed (byte* t = CString(toName))
        {
            if (linkat(AtFdCwd, f, toDir, t, AtSymlinkFollow) == 0) return 0;
            var errno = Marshal.GetLastPInvokeError();
            // No /proc (a chroot): by the handle itself, which takes CAP_DAC_READ_SEARCH (root). Its error is the one said
            // where /proc was missing (ENOENT would point at the wrong cause).
            fixed (byte* empty = CString(""))
                return linkat(fd, empty, toDir, t, AtEmptyPath) == 0 ? 0 : errno == ENOENT ? Marshal.GetLastPInvokeError() : errno;
        }
    }

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int fdatasync(int fd);

    /// <summary>fdatasync: the file's data on the disk (before a rename puts it in another's place); 0 or the errno.</summary>
    internal static int DataSync(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return fdatasync((int)handle.DangerousGetHandle()) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>linkat without AT_SYMLINK_FOLLOW: a symlink is linked as itself, never followed.</summary>
    internal static int LinkAt(int fromDir, string fromName, int toDir, string toName)
    {
        fixed (byte* f = CString(fromName))
        fixed (byte* t = CString(toName))
            return linkat(fromDir, f, toDir, t, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    internal static int SymlinkAt(ReadOnlySpan<byte> target, int dir, string name)
    {
        var t = new byte[target.Length + 1];
        target.CopyTo(t);
        fixed (byte* tp = t)
        fixed (byte* n = CString(name))
            return symlinkat(tp, dir, n) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    internal static int MknodAt(int dir, string name, uint mode, ulong dev)
    {
        fixed (byte* n = CString(name)) return mknodat(dir, n, mode, dev) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>glibc's makedev encoding.</summary>
    internal static ulong MakeDev(uint major, uint minor) =>
        ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8) | ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);

    /// <summary>chown of the name itself (a symlink is not followed).</summary>
    internal static int LChownAt(int dir, string name, uint uid, uint gid)
    {
        fixed (byte* n = CString(name)) return fchownat(dir, n, uid, gid, AtSymlinkNofollow) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>utimensat's two times: the atime left as it is (UTIME_OMIT) unless recorded.</summary>
    private static void Fill(Timespec* ts, EntryTimes times)
    {
        ts[0] = times.HasAtime ? new Timespec { Sec = times.AtimeSec, Nsec = times.AtimeNsec } : new Timespec { Sec = 0, Nsec = UtimeOmit };
        ts[1] = new Timespec { Sec = times.MtimeSec, Nsec = times.MtimeNsec };
    }

    /// <summary>mtime (and the recorded atime) of the name itself (a symlink is not followed), nanoseconds kept.</summary>
    internal static int SetTimesAt(int dir, string name, EntryTimes times)
    {
        var ts = stackalloc Timespec[2];
        Fill(ts, times);
        fixed (byte* n = CString(name)) return utimensat_at(dir, n, ts, AtSymlinkNofollow) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// Owner, extended attributes, mode and mtime of an open file (its handle: whatever its name leads to meanwhile),
    /// in that order: a chown drops a file capability; a user.* attribute needs write permission, which the final
    /// mode (0444, say) may not give; an ACL and the recorded mode agree, so the chmod after it changes nothing of it.
    /// <paramref name="cleanup"/>: ACLs the file inherited from its folder (and, for a folder reused with --force, its
    /// other attributes) that <paramref name="xattrs"/> does not hold are taken away first. A chown that fails does not stop the rest (mode without setuid and setgid, which must not
    /// outlive the owner they were for, attributes, time). The errno of the first failure of the owner, the mode or the
    /// time; extended attributes that could not be set go to <paramref name="xattrsNotSet"/>, each with why.
    /// </summary>
    internal static int SetMetadata(int fd, uint? uid, uint? gid, uint mode, EntryTimes times,
        IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs, out List<string>? xattrsNotSet,
        out string failedStep, XattrCleanup cleanup = XattrCleanup.None)
    {
        xattrsNotSet = null;
        var first = 0;
        failedStep = "";
        if (uid is not null && fchown(fd, uid.Value, gid!.Value) != 0)
        {
            (first, failedStep) = (Marshal.GetLastPInvokeError(), "set the owner (mode without setuid/setgid, attributes and times set) of");
            mode &= ~0xC00u;
        }
        RemoveXattrsNotIn(fd, xattrs, cleanup, ref xattrsNotSet);
        if (xattrs is { Count: > 0 } && SetXattrs(fd, xattrs) is { Count: > 0 } failed)
        {
            (xattrsNotSet ??= []).AddRange(failed);
            // Its access ACL not set: the mode's group bits (the ACL's mask) must not become the owning group's.
            if (failed.Exists(f => f.StartsWith("system.posix_acl_access:", StringComparison.Ordinal)))
                foreach (var (name, value) in xattrs)
                    if (name.Span.SequenceEqual("system.posix_acl_access"u8)) mode = AclIds.ModeWithoutAcl(mode, value.Span);
        }
        if (fchmod(fd, mode & 0xFFF) != 0 && first == 0) (first, failedStep) = (Marshal.GetLastPInvokeError(), "set the mode of");
        var ts = stackalloc Timespec[2];
        Fill(ts, times);
        if (futimens(fd, ts) != 0 && first == 0) (first, failedStep) = (Marshal.GetLastPInvokeError(), "set the times of");
        return first;
    }

    /// <summary>The kind of what a name in an open folder is (a symlink is not followed); null when there is none.</summary>
    /// <param name="path">what messages call it (its path under the restore target)</param>
    internal static FileKind? KindAt(int dir, string name, string path) => ExistingAt(dir, name, path)?.Kind;

    /// <summary>What is at a name in an open folder (a symlink is not followed): its kind, size, mtime, mode and owner; null when there is none.</summary>
    /// <param name="path">what messages call it (its path under the restore target)</param>
    internal static Existing? ExistingAt(int dir, string name, string path)
    {
        Statx sx;
        fixed (byte* n = CString(name))
            if (statx_at(dir, n, AtSymlinkNofollow, StatxBasicStats, &sx) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is ENOENT or ENOTDIR) return null;
                throw new PosixException(errno, $"stat {path}: {Describe(errno)}");
            }
        return new Existing(KindOf(sx.Mode), sx.Size, sx.Mtime.Sec, sx.Mtime.Nsec, (uint)sx.Mode & 0xFFF, sx.Uid, sx.Gid);
    }

    private static FileKind KindOf(ushort mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0xA000 => FileKind.Symlink,
        0x1000 => FileKind.Fifo,
        0x2000 => FileKind.CharDevice,
        0x6000 => FileKind.BlockDevice,
        0xC000 => FileKind.Socket,
        _ => FileKind.Unknown,
    };

    internal static SafeFileHandle Handle(int fd) => new(fd, ownsHandle: true);

    /// <summary>Which file a handle holds: its device and inode.</summary>
    internal static (uint DevMajor, uint DevMinor, ulong Ino) IdentityOfHandle(SafeFileHandle handle)
    {
        var st = StatOfHandle(handle);
        return ((uint)(st.Device >> 32), (uint)st.Device, st.Inode);
    }

    /// <summary>What lstat says of the file a handle holds.</summary>
    internal static FileStat StatOfHandle(SafeFileHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return StatOf(StatxOfHandle((int)handle.DangerousGetHandle()));
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Whether the names in <paramref name="folder"/> change only with its ctime: a name added, removed or renamed
    /// changes it on the local file systems known to (ext2/3/4, XFS, btrfs, tmpfs, F2FS, ZFS), not on a network one
    /// (whose times a client may cache) nor any other; and not in an encrypted folder (fscrypt: a key added or removed
    /// changes the names it lists, not its times) nor at the top of a file system (ZFS lists .zfs there or not as a
    /// property says; a mount point). False when it cannot say.
    /// </summary>
    public static bool FolderTimesFollowNames(SafeFileHandle folder)
    {
        var added = false;
        folder.DangerousAddRef(ref added);
        try
        {
            var fd = (int)folder.DangerousGetHandle();
            var buf = stackalloc byte[256]; // struct statfs: f_type its first word
            if (fstatfs(fd, buf) != 0 || *(long*)buf is not (0xEF53 or 0x58465342 or BtrfsMagic or 0x01021994 or 0xF2F52010 or 0x2FC12FC1)) return false;
            Statx sx;
            return statx(fd, "", AtEmptyPath, StatxBasicStats, &sx) == 0
                   && (sx.AttributesMask & StatxAttrMountRoot) != 0 // a kernel that tells (5.8 and later)
                   && (sx.Attributes & sx.AttributesMask & (StatxAttrMountRoot | StatxAttrEncrypted)) == 0;
        }
        finally
        {
            if (added) folder.DangerousRelease();
        }
    }

    private const ulong StatxAttrEncrypted = 0x800, StatxAttrMountRoot = 0x2000;

    /// <summary>When this system booted (/proc/stat's btime, seconds since 1970), or null when it cannot say.</summary>
    public static long? BootTime()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/stat"))
                if (line.StartsWith("btime ", StringComparison.Ordinal) && long.TryParse(line.AsSpan(6), out var seconds)) return seconds;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <summary>How many names the file an open handle holds has (0: none left, the last unlinked).</summary>
    internal static uint LinksOfHandle(int fd) => StatxOfHandle(fd).Nlink;

    /// <summary>The kind of what a handle holds (an O_PATH one too).</summary>
    internal static FileKind KindOfHandle(int fd) => KindOf(StatxOfHandle(fd).Mode);

    /// <summary>statx of what a handle holds (an O_PATH one too); a PosixException when it fails.</summary>
    private static Statx StatxOfHandle(int fd)
    {
        Statx sx;
        if (statx(fd, "", AtEmptyPath, StatxBasicStats, &sx) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new PosixException(errno, $"stat: {Describe(errno)}");
        }
        return sx;
    }

    /// <summary>Opens for reading what an O_PATH handle holds (through /proc/self/fd: that inode, no name looked up again); -errno on failure.</summary>
    internal static int Reopen(int fd, int flags)
    {
        var reopened = open($"/proc/self/fd/{fd}", flags | OCloexec);
        return reopened >= 0 ? reopened : -Marshal.GetLastPInvokeError();
    }

    /// <summary>chmod of what an O_PATH handle holds (through /proc/self/fd: the inode of the handle, no name looked up).</summary>
    internal static int ChmodHandle(int fd, uint mode) => chmod($"/proc/self/fd/{fd}", mode & 0xFFF) == 0 ? 0 : Marshal.GetLastPInvokeError();
}
