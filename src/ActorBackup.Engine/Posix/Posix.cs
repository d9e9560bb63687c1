using System.Runtime.InteropServices;
using System.Text;

namespace ActorBackup.Engine.Posix;

/// <summary>The POSIX calls .NET does not expose (statx, lchown, utimensat, link, mknod, raw readlink), on Linux glibc.</summary>
public static unsafe partial class Posix
{
    private const int AtFdcwd = -100;
    private const int AtSymlinkNofollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;
    private const long UtimeOmit = (1L << 30) - 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct StatxTimestamp { public long Sec; public uint Nsec; public int Reserved; }

    [StructLayout(LayoutKind.Sequential, Size = 256)]
    private struct Statx
    {
        public uint Mask, Blksize;
        public ulong Attributes;
        public uint Nlink, Uid, Gid;
        public ushort Mode, Spare0;
        public ulong Ino, Size, Blocks, AttributesMask;
        public StatxTimestamp Atime, Btime, Ctime, Mtime;
        public uint RdevMajor, RdevMinor, DevMajor, DevMinor;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Sec; public long Nsec; }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int statx(int dirfd, string path, int flags, uint mask, Statx* buf);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int gettid();

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int setpriority(int which, uint who, int priority);

    /// <summary>
    /// The calling thread (only it: Linux gives each thread its own nice value) at the lowest CPU priority, nice 19, for
    /// background work that should take only the CPU nothing else wants. Best effort: where it is refused the thread
    /// runs as before.
    /// </summary>
    public static bool YieldThisThread() => setpriority(0 /* PRIO_PROCESS: a thread id names one thread */, (uint)gettid(), 19) == 0;

    /// <summary>The calling thread's nice value (tests).</summary>
    internal static int NiceOfThisThread() => int.Parse(File.ReadAllText($"/proc/thread-self/stat").Split(") ")[1].Split(' ')[16]);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int posix_fadvise(int fd, long offset, long length, int advice);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int lchown(string path, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "chmod", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int chmod(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "utimensat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int utimensat(int dirfd, string path, Timespec* times, int flags);

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int link(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "readlink", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial nint readlink(string path, byte* buf, nint size);

    [LibraryImport("libc", EntryPoint = "mknod", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int mknod(string path, uint mode, ulong dev);

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial int mkfifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint geteuid();

    [LibraryImport("libc", EntryPoint = "strerror")]
    private static partial nint strerror(int errnum);

    public static bool IsRoot => geteuid() == 0;

    public const int ENOENT = 2, EACCES = 13, EEXIST = 17, ENOTDIR = 20, ENOSPC = 28, EINTR = 4, EDQUOT = 122, EWOULDBLOCK = 11;

    /// <summary>True when a write failed because the file system is full, or its writer's disk quota is used up (our own
    /// calls, or .NET's file I/O): either way nothing more can be written there.</summary>
    public static bool IsNoSpace(Exception e) =>
        e is PosixException { Errno: ENOSPC or EDQUOT } || e.HResult is ENOSPC or EDQUOT
        || e.Message.Contains("No space left", StringComparison.Ordinal) || e.Message.Contains("Disk quota exceeded", StringComparison.Ordinal);

    [LibraryImport("libc", EntryPoint = "statvfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int statvfs(string path, byte* buf);

    /// <summary>
    /// The inodes <paramref name="path"/>'s file system has left for an unprivileged writer, and how many it has in all
    /// (statvfs f_favail, f_files; 64-bit glibc layout); null when it cannot be read. A file system with inodes made on
    /// demand (btrfs) says 0 in all.
    /// </summary>
    public static (ulong Free, ulong Total)? Inodes(string path)
    {
        var buf = stackalloc byte[256]; // struct statvfs is 112 bytes on 64-bit Linux
        if (statvfs(path, buf) != 0) return null;
        return (*(ulong*)(buf + 7 * 8), *(ulong*)(buf + 5 * 8));
    }

    public static string Describe(int errno) => Marshal.PtrToStringUTF8(strerror(errno)) ?? $"errno {errno}";

    private static IOException Error(string what, string path)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new PosixException(errno, $"{what} {PosixNames.Display(path)}: {Describe(errno)}");
    }

    private const int ORdOnly = 0, ONonblock = 0x800, OCloexec = 0x80000, ELOOP = 40;
    internal const int ONofollow = 0x20000, ONonblockFlag = 0x800, ONoatime = 0x40000, ONoctty = 0x100, EPERM = 1;
    private const int AtEmptyPath = 0x1000;

    /// <summary>
    /// Opens a file the walk found for reading, as root may: never opening a device, never waking or waiting on a FIFO,
    /// never following a symlink swapped in, there or on its way, and only when the handle is the very file the walk
    /// saw (same device, inode and type): a file swapped for a symlink, a FIFO, a device or another file between the
    /// walk and the read is refused with the reason, and none of its bytes are read.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenWalked(string path, FileStat walked)
    {
        // O_PATH first: it opens nothing (no device's open runs: a watchdog armed, a tape that rewinds on close; no
        // FIFO's writer wakes), whatever the name leads to by now; that handle's device, inode and type are checked
        // against the walk's, and only the walked regular file is then opened for reading, through the handle
        // (/proc/self/fd: that inode, no name looked up again). Without /proc: opened through no symlink where it can
        // be (below), O_NOFOLLOW and O_NONBLOCK, and checked after the open.
        var checkedBefore = false;
        var fd = Volatile.Read(ref _noProcReopen) ? -ENOSYS : OpenThroughPathHandle(path, walked, out checkedBefore);
        if (fd == -ENOSYS)
        {
            checkedBefore = false;
            // Through no symlink at all (openat2, RESOLVE_NO_SYMLINKS: a folder on its way swapped for one cannot lead to
            // /dev); a path with one on its way (the operator's /home -> /data/home) by its path, O_NOFOLLOW covering the
            // last name alone. O_NOATIME: reading leaves its access time as it was (allowed to its owner and to root).
            const int Flags = ORdOnly | ONonblock | ONoctty | ONofollow;
            fd = WithNoatime(path, Flags, static (p, f) => OpenWithoutSymlinks(p, f));
            if (fd is -ELOOP or -ENOSYS or -EPERM) fd = WithNoatime(path, Flags, static (p, f) => OpenPath(p, f));
        }
        if (fd < 0)
        {
            var errno = -fd;
            if (errno == ELOOP) throw new FileChangedException($"became a symlink after the walk: not followed, not backed up");
            if (errno is ENOENT or ENOTDIR or ESTALE) throw new FileNotFoundException($"{PosixNames.Display(path)} vanished before it could be read", path);
            if (errno == EACCES) throw new UnauthorizedAccessException($"open {PosixNames.Display(path)}: {Describe(errno)}");
            throw new PosixException(errno, $"open {PosixNames.Display(path)}: {Describe(errno)}");
        }
        var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        if (!checkedBefore && CheckWalked(fd, walked, path) is { } changed)
        {
            handle.Dispose();
            throw changed;
        }
        // POSIX_FADV_SEQUENTIAL: read ahead further, as FileOptions.SequentialScan did (a file within the kernel's own
        // read-ahead gains nothing from it: the call is left out).
        if (walked.Size > SequentialAdviceFrom) posix_fadvise(fd, 0, 0, 2);
        return handle;
    }

    /// <summary>/proc is not mounted here: a walked file is opened by its path and checked after (<see cref="OpenWalked"/>).</summary>
    private static bool _noProcReopen;

    /// <summary>openat2 of a path that no symlink may be on, its last name included; -errno on failure (-ENOSYS before Linux 5.6).</summary>
    private static int OpenWithoutSymlinks(string path, int flags) => Openat2(AtFdcwd, path, flags, 0, ResolveNoSymlinks);

    /// <summary>
    /// A folder's file flags (chattr), all of them, not the few statx tells; null when it cannot be opened (a symlink
    /// is not followed: its target's flags are not its own).
    /// </summary>
    internal static uint? FolderFlags(string path)
    {
        var fd = OpenPath(path, ORdOnlyFlag | ODirectory | ONonblockFlag | ONofollow);
        if (fd < 0) return null;
        try
        {
            return FileFlags.Get(fd);
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>open(2), close-on-exec; -errno on failure.</summary>
    private static int OpenPath(string path, int flags)
    {
        var fd = open(path, flags | OCloexec);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// An open with O_NOATIME (reading leaves the access time as it was), once more without it where the kernel says
    /// EPERM (O_NOATIME is the owner's and root's alone): the fd, or -errno.
    /// </summary>
    private static int WithNoatime<T>(T what, int flags, Func<T, int, int> open)
    {
        var fd = open(what, flags | ONoatime);
        return fd == -EPERM ? open(what, flags) : fd;
    }

    private const int ESTALE = 116;
    /// <summary>statx: ask the server (NFS) for the attributes now, not from its cache: a file changed by another client is seen.</summary>
    private const int AtStatxForceSync = 0x2000;

    /// <summary>Why the file open as <paramref name="fd"/> is not the regular file the walk saw; null when it is.</summary>
    private static Exception? CheckWalked(int fd, FileStat walked, string path)
    {
        Statx sx;
        // Forced to the server on NFS: an O_PATH handle does no close-to-open check, this does (and the cached pages of
        // a file another client changed are dropped); a local file system answers as ever.
        if (statx(fd, "", AtEmptyPath | AtStatxForceSync, StatxBasicStats, &sx) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return new PosixException(errno, $"stat {PosixNames.Display(path)}: {Describe(errno)}");
        }
        var device = ((ulong)sx.DevMajor << 32) | sx.DevMinor;
        if ((sx.Mode & 0xF000) == 0x8000 && sx.Ino == walked.Inode && device == walked.Device) return null;
        return new FileChangedException((sx.Mode & 0xF000) switch
        {
            0xA000 => "became a symlink after the walk: not followed, not backed up",
            0x1000 => "became a FIFO after the walk: not read, not backed up",
            0x2000 or 0x6000 => "became a device after the walk: not opened, not backed up",
            0x8000 => "was replaced by another file after the walk: not backed up (the next backup takes the new one)",
            _ => "changed its type after the walk: not backed up",
        });
    }

    /// <summary>
    /// A walked file opened O_PATH (the last name not followed), checked to be the walked regular file, then opened
    /// for reading through that handle; -errno on failure (-ENOSYS: /proc is not there to open it through). A file
    /// that is not the walked one throws (<see cref="CheckWalked"/>): it was never opened.
    /// </summary>
    private static int OpenThroughPathHandle(string path, FileStat walked, out bool checkedBefore)
    {
        checkedBefore = true;
        var located = open(path, OPath | ONofollow | OCloexec);
        if (located < 0) return -Marshal.GetLastPInvokeError();
        try
        {
            if (CheckWalked(located, walked, path) is { } changed) throw changed;
            const int Flags = ORdOnly | ONonblock | ONoctty; // no O_NOFOLLOW: /proc/self/fd/N is itself a (magic) link, to the inode checked
            var fd = WithNoatime(located, Flags, static (handle, f) => Reopen(handle, f));
            if (fd == -ENOENT && !Directory.Exists("/proc/self/fd"))
            {
                Volatile.Write(ref _noProcReopen, true);
                return -ENOSYS;
            }
            return fd;
        }
        finally
        {
            close(located);
        }
    }

    [LibraryImport("libc", EntryPoint = "pread64", SetLastError = true)]
    private static partial nint pread64(int fd, byte* buffer, nuint count, long offset);

    /// <summary>
    /// pread(2) of an open file: what RandomAccess.Read does, without its lseek on every new handle (a syscall a
    /// file, on a walk of small files). 0 at the end of the file.
    /// </summary>
    public static int PRead(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            fixed (byte* p = buffer)
                while (true)
                {
                    var n = pread64((int)handle.DangerousGetHandle(), p, (nuint)buffer.Length, offset);
                    if (n >= 0) return (int)n;
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR) throw new PosixException(errno, $"read: {Describe(errno)}");
                }
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>Files larger than this are read with POSIX_FADV_SEQUENTIAL (the kernel reads 128 KiB ahead by default).</summary>
    private const ulong SequentialAdviceFrom = 256 * 1024;

    /// <summary>lstat: never follows a symlink. Null when the path does not exist.</summary>
    public static FileStat? LStat(string path) => LStatAt(AtFdcwd, path, path);

    /// <summary>
    /// lstat of a name in a folder opened by <see cref="OpenDirectory"/>: the name is looked up in that folder alone
    /// (no path walked again from the root; a folder renamed meanwhile is still the one listed). Null when there is
    /// no such name. Thread-safe: the walk stats a folder's names on every core.
    /// </summary>
    public static FileStat? LStatAt(Microsoft.Win32.SafeHandles.SafeFileHandle folder, string name, string path)
    {
        var added = false;
        folder.DangerousAddRef(ref added);
        try
        {
            return LStatAt((int)folder.DangerousGetHandle(), name, path);
        }
        finally
        {
            if (added) folder.DangerousRelease();
        }
    }

    /// <summary>stat: what the path leads to, through symlinks. Null when it leads nowhere (a symlink loop included).</summary>
    public static FileStat? Stat(string path) => StatAt(AtFdcwd, path, path, follow: true);

    private static FileStat? LStatAt(int dirfd, string name, string path) => StatAt(dirfd, name, path, follow: false);

    private static FileStat? StatAt(int dirfd, string name, string path, bool follow)
    {
        Statx sx;
        if (statx(dirfd, name, follow ? 0 : AtSymlinkNofollow, StatxBasicStats, &sx) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is ENOENT or ENOTDIR || (follow && errno == ELOOP_)) return null;
            throw new PosixException(errno, $"stat {PosixNames.Display(path)}: {Describe(errno)}");
        }
        return StatOf(sx);
    }

    private static FileStat StatOf(in Statx sx)
    {
        var kind = KindOf(sx.Mode);
        return new FileStat(kind, (uint)(sx.Mode & 0xFFF), sx.Uid, sx.Gid, sx.Size, sx.Ino,
            ((ulong)sx.DevMajor << 32) | sx.DevMinor, sx.Nlink, sx.Mtime.Sec, sx.Mtime.Nsec, sx.Ctime.Sec, sx.Ctime.Nsec,
            sx.RdevMajor, sx.RdevMinor, sx.Blocks, sx.Atime.Sec, sx.Atime.Nsec, (uint)(sx.Attributes & sx.AttributesMask & 0x74));
    }

    [LibraryImport("libc", EntryPoint = "readdir64", SetLastError = true)]
    private static partial byte* readdir64(nint dir);

    [LibraryImport("libc", EntryPoint = "closedir")]
    private static partial int closedir(nint dir);

    /// <summary>Where d_name starts in glibc's struct dirent64 (d_ino 8, d_off 8, d_reclen 2, d_type 1).</summary>
    private const int DirentName = 19;

    [LibraryImport("libc", EntryPoint = "fdopendir", SetLastError = true)]
    private static partial nint fdopendir(int fd);

    /// <summary>
    /// The names in a folder (not . and ..), in the order the file system gives them, each decoded from its bytes by
    /// PosixNames: a name that is not valid UTF-8 is listed (.NET's Directory would hand it back mangled).
    /// </summary>
    public static List<string> ListDirectory(string path) => ListDirectory(path, out _);

    /// <summary>The names in a folder, and its file flags (<see cref="FileFlags"/>). Listed without changing its access time where allowed.</summary>
    public static List<string> ListDirectory(string path, out uint flags)
    {
        using var folder = OpenDirectory(path);
        return ListDirectory(folder, path, out flags);
    }

    /// <summary>
    /// Opens a folder to list and to stat its names in (<see cref="LStatAt"/>): never through a symlink (a folder
    /// swapped for one since the walk saw it is not listed through the link), without changing its access time where
    /// allowed.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenDirectory(string path)
    {
        var fd = WithNoatime(path, ORdOnly | ODirectory | ONofollow, static (p, f) => OpenPath(p, f));
        if (fd < 0)
        {
            var errno = -fd;
            if (errno is ENOENT or ENOTDIR) throw new DirectoryNotFoundException($"{PosixNames.Display(path)} vanished before it could be listed");
            if (errno == ELOOP) throw new FileChangedException("became a symlink after the walk: not followed, not listed");
            if (errno == EACCES) throw new UnauthorizedAccessException($"open {PosixNames.Display(path)}: {Describe(errno)}");
            throw new PosixException(errno, $"open {PosixNames.Display(path)}: {Describe(errno)}");
        }
        return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// <see cref="OpenDirectory"/> of a folder the walk saw as <paramref name="device"/> and <paramref name="inode"/>, only
    /// when the handle is that very folder: O_NOFOLLOW covers the last name alone, so a folder higher up swapped for a
    /// symlink meanwhile would lead the open elsewhere (a root backup listing another tree into a user's snapshot).
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenWalkedDirectory(string path, ulong device, ulong inode) =>
        OpenWalkedDirectory(path, device, inode, out _);

    /// <inheritdoc cref="OpenWalkedDirectory(string, ulong, ulong)"/>
    /// <param name="now">what the handle's folder is as it was opened (its times among it)</param>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle OpenWalkedDirectory(string path, ulong device, ulong inode, out FileStat now)
    {
        var handle = OpenDirectory(path);
        try
        {
            now = StatOfHandle(handle);
            if (now.Inode == inode && now.Device == device) return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        handle.Dispose();
        throw new FileChangedException($"{PosixNames.Display(path)} is not the folder the walk saw (it, or a folder on its way, was replaced, by a symlink say): not listed, not backed up");
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_int(int fd, int cmd, int arg);

    private const int FDupfdCloexec = 1030;

    /// <summary>The names in a folder opened by <see cref="OpenDirectory"/> (<paramref name="path"/> names it in messages), and its file flags.</summary>
    /// <param name="most">stop after this many names (whether a folder holds any: 1)</param>
    public static List<string> ListDirectory(Microsoft.Win32.SafeHandles.SafeFileHandle folder, string path, out uint flags, int most = int.MaxValue)
    {
        var fd = (int)folder.DangerousGetHandle();
        flags = FileFlags.Get(fd);
        // readdir's stream owns (and closes) a copy of the handle: the folder stays open for LStatAt.
        var copy = fcntl_int(fd, FDupfdCloexec, 0);
        var dir = copy < 0 ? 0 : fdopendir(copy);
        if (dir == 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (copy >= 0) close(copy);
            throw new PosixException(errno, $"list {PosixNames.Display(path)}: {Describe(errno)}");
        }
        try
        {
            var names = new List<string>();
            while (true)
            {
                Marshal.SetLastPInvokeError(0);
                var entry = readdir64(dir);
                if (entry is null)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != 0) throw new PosixException(errno, $"list {PosixNames.Display(path)}: {Describe(errno)}");
                    return names;
                }
                var name = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(entry + DirentName);
                if (name is [(byte)'.'] or [(byte)'.', (byte)'.']) continue;
                names.Add(PosixNames.Decode(name));
                if (names.Count >= most) return names;
            }
        }
        finally
        {
            closedir(dir); // closes the copy
        }
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    private const int SeekSet = 0, SeekData = 3, SeekHole = 4, ENXIO = 6;

    /// <summary>
    /// The data extents of an open file of <paramref name="size"/> bytes, in order (SEEK_DATA / SEEK_HOLE): what lies
    /// between them are holes, which read as zeros and take no space. A file system that cannot say gives the whole
    /// file as one extent. The handle's offset is back at the start when it returns (SEEK_HOLE moves it).
    /// </summary>
    public static List<(long Offset, long Length)> DataExtents(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long size) => DataExtents(handle, 0, size);

    /// <summary>The data extents between <paramref name="from"/> and <paramref name="to"/> (a part of a file read in parts), as <see cref="DataExtents(Microsoft.Win32.SafeHandles.SafeFileHandle, long)"/>.</summary>
    public static List<(long Offset, long Length)> DataExtents(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long from, long to)
    {
        var extents = new List<(long, long)>();
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            var fd = (int)handle.DangerousGetHandle();
            for (var at = from; at < to;)
            {
                var data = lseek(fd, at, SeekData);
                if (data < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == ENXIO) break; // only a hole from here to the end
                    return [(from, to - from)]; // EINVAL: no hole support, read it all
                }
                if (data >= to) break;
                var hole = lseek(fd, data, SeekHole);
                if (hole < 0) return [(from, to - from)];
                hole = Math.Min(hole, to);
                extents.Add((data, hole - data));
                at = hole;
            }
            return extents;
        }
        finally
        {
            lseek((int)handle.DangerousGetHandle(), 0, SeekSet); // a reader of the handle starts at 0, not where SEEK_HOLE left it
            if (added) handle.DangerousRelease();
        }
    }

    [LibraryImport("libc", EntryPoint = "llistxattr", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial nint llistxattr(string path, byte* list, nint size);

    [LibraryImport("libc", EntryPoint = "lgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial nint lgetxattr(string path, byte* name, byte* value, nint size);

    [LibraryImport("libc", EntryPoint = "fsetxattr", SetLastError = true)]
    private static partial int fsetxattr(int fd, byte* name, byte* value, nint size, int flags);

    /// <summary>The most a name list or a value may hold (Linux: XATTR_LIST_MAX, XATTR_SIZE_MAX).</summary>
    public const int XattrMax = 64 * 1024;

    private const int ENODATA = 61, EOPNOTSUPP = 95;

    private const int ERANGE = 34;

    /// <summary>A thread's buffer for name lists and values: most files have none or a few short ones, so no call allocates (a 64 KiB buffer per file did, 3.6 GB in an unchanged backup of 57,000 files).</summary>
    [ThreadStatic] private static byte[]? _xattrBuffer;

    /// <summary>
    /// The extended attributes of <paramref name="path"/> itself (a symlink is not followed), sorted by name: empty
    /// where the file system has none. A value that vanishes meanwhile is left out.
    /// </summary>
    public static IReadOnlyList<(byte[] Name, byte[] Value)> ReadXattrs(string path) => ReadXattrs(AtFdcwd, null, path);

    /// <summary>
    /// The extended attributes of a name in a folder opened by <see cref="OpenDirectory"/> (<paramref name="path"/> names
    /// it in messages): looked up in that folder alone, the name itself not followed (listxattrat and getxattrat, Linux
    /// 6.13), so that a folder on its way swapped for a symlink meanwhile cannot hand over another file's attributes (a
    /// file capability, say). Before Linux 6.13 by the name below the folder's handle in /proc/self/fd, which pins the
    /// folder as well (<see cref="ReadXattrsPinned"/>). Thread-safe.
    /// </summary>
    public static IReadOnlyList<(byte[] Name, byte[] Value)> ReadXattrsAt(Microsoft.Win32.SafeHandles.SafeFileHandle folder, string name, string path)
    {
        var added = false;
        folder.DangerousAddRef(ref added);
        try
        {
            var fd = (int)folder.DangerousGetHandle();
            return NoXattrAt ? ReadXattrsPinned(fd, name, path) : ReadXattrs(fd, CString(name), path, name);
        }
        finally
        {
            if (added) folder.DangerousRelease();
        }
    }

    /// <summary>
    /// Before Linux 6.13: llistxattr / lgetxattr of /proc/self/fd/FOLDER/NAME: the folder is the handle's (a folder on
    /// its way swapped meanwhile is not walked), the name is looked up in it alone and not followed. By the path itself
    /// only where /proc is not mounted.
    /// </summary>
    private static IReadOnlyList<(byte[] Name, byte[] Value)> ReadXattrsPinned(int folder, string name, string path) =>
        ReadXattrs(AtFdcwd, null, path, via: ProcFds ? $"/proc/self/fd/{folder}/{name}" : path);

    private static readonly bool ProcFds = Directory.Exists("/proc/self/fd");

    /// <summary>The kernel has no listxattrat / getxattrat (before Linux 6.13): attributes are read by the folder's /proc path.</summary>
    private static bool _noXattrAt;

    /// <summary>Whether attributes are read as before Linux 6.13 (tests set it to take that way on a newer kernel).</summary>
    internal static bool NoXattrAt
    {
        get => Volatile.Read(ref _noXattrAt);
        set => Volatile.Write(ref _noXattrAt, value);
    }

    private const long SysGetxattrat = 464, SysListxattrat = 465; // the same numbers on every Linux architecture
    private const uint AtSymlinkNofollowFlag = 0x100;

    [StructLayout(LayoutKind.Sequential)]
    private struct XattrArgs { public ulong Value; public uint Size, Flags; }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial nint syscall_listxattrat(long number, int dirfd, byte* name, uint atFlags, byte* list, nint size);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial nint syscall_getxattrat(long number, int dirfd, byte* name, uint atFlags, byte* attribute, XattrArgs* args, nint size);

    /// <summary>llistxattr of <paramref name="path"/> (<paramref name="name"/> null), or listxattrat of a name in a folder.</summary>
    private static nint ListXattrs(int dirfd, byte[]? name, string path, byte[] buffer)
    {
        fixed (byte* l = buffer)
        {
            if (name is null) return llistxattr(path, l, buffer.Length);
            fixed (byte* n = name) return syscall_listxattrat(SysListxattrat, dirfd, n, AtSymlinkNofollowFlag, l, buffer.Length);
        }
    }

    /// <summary>lgetxattr of <paramref name="path"/> (<paramref name="name"/> null), or getxattrat of a name in a folder.</summary>
    private static nint GetXattr(int dirfd, byte[]? name, string path, byte[] attribute, byte[] buffer)
    {
        fixed (byte* a = attribute)
        fixed (byte* v = buffer)
        {
            if (name is null) return lgetxattr(path, a, v, buffer.Length);
            var args = new XattrArgs { Value = (ulong)v, Size = (uint)buffer.Length };
            fixed (byte* n = name) return syscall_getxattrat(SysGetxattrat, dirfd, n, AtSymlinkNofollowFlag, a, &args, sizeof(XattrArgs));
        }
    }

    /// <param name="at">the name in folder <paramref name="dirfd"/> (as bytes; <paramref name="atName"/> as a string), or null: by path</param>
    /// <param name="path">where it is, for messages (and for the calls by path, unless <paramref name="via"/> says another)</param>
    private static IReadOnlyList<(byte[] Name, byte[] Value)> ReadXattrs(int dirfd, byte[]? at, string path, string? atName = null, string? via = null)
    {
        var buffer = _xattrBuffer ??= new byte[4096];
        var byPath = via ?? path;
        nint length;
        while (true)
        {
            length = ListXattrs(dirfd, at, byPath, buffer);
            if (length >= 0) break;
            var errno = Marshal.GetLastPInvokeError();
            if (errno is ENOSYS or EPERM && at is not null) // before Linux 6.13, or a seccomp filter that does not know the call
            {
                NoXattrAt = true;
                return ReadXattrsPinned(dirfd, atName!, path);
            }
            if (errno is EOPNOTSUPP or ENOENT) return [];
            if (errno == ERANGE && buffer.Length < XattrMax)
            {
                buffer = _xattrBuffer = new byte[XattrMax]; // the kernel's bound on a list and on a value
                continue;
            }
            throw new PosixException(errno, $"list the extended attributes of {PosixNames.Display(path)}: {Describe(errno)}");
        }
        if (length == 0) return [];
        var result = new List<(byte[], byte[])>();
        foreach (var name in XattrNames(buffer.AsSpan(0, (int)length))) // copied out: the buffer takes the values next
        {
            while (true)
            {
                var size = GetXattr(dirfd, at, byPath, name, buffer);
                if (size >= 0)
                {
                    result.Add((name[..^1], buffer[..(int)size]));
                    break;
                }
                var errno = Marshal.GetLastPInvokeError();
                if (errno == ENODATA) break; // removed meanwhile
                if (errno == ERANGE && buffer.Length < XattrMax)
                {
                    buffer = _xattrBuffer = new byte[XattrMax];
                    continue;
                }
                throw new PosixException(errno, $"read extended attribute {PosixNames.Display(PosixNames.Decode(name.AsSpan(0, name.Length - 1)))} of {PosixNames.Display(path)}: {Describe(errno)}");
            }
        }
        result.Sort((a, b) => a.Item1.AsSpan().SequenceCompareTo(b.Item1));
        return result;
    }

    /// <summary>The names of a list (l/f/listxattr's answer), each with its NUL, as the calls that take one want it.</summary>
    private static List<byte[]> XattrNames(ReadOnlySpan<byte> list)
    {
        var names = new List<byte[]>();
        while (list.IndexOf((byte)0) is var end and >= 0) // the kernel ends every name with a NUL
        {
            names.Add(list[..(end + 1)].ToArray());
            list = list[(end + 1)..];
        }
        return names;
    }

    /// <summary>Sets one extended attribute (its name NUL-terminated) on the open file; 0, or the errno.</summary>
    internal static int SetXattr(int fd, ReadOnlySpan<byte> nameWithNul, ReadOnlySpan<byte> value)
    {
        fixed (byte* np = nameWithNul)
        fixed (byte* vp = value)
            return fsetxattr(fd, np, vp, value.Length, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>The errno of an operation the file system does not have (extended attributes on vfat, say).</summary>
    internal const int NotSupported = EOPNOTSUPP;

    /// <summary>Sets extended attributes on an open file or folder; the ones that could not be set, each with why.</summary>
    internal static List<string> SetXattrs(int fd, IEnumerable<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)> xattrs)
    {
        var failed = new List<string>();
        foreach (var (name, value) in xattrs)
        {
            var n = new byte[name.Length + 1];
            name.Span.CopyTo(n);
            int rc;
            fixed (byte* np = n)
            fixed (byte* vp = value.Span)
                rc = fsetxattr(fd, np, vp, value.Length, 0);
            if (rc != 0) failed.Add($"{PosixNames.Display(PosixNames.Decode(name.Span))}: {Describe(Marshal.GetLastPInvokeError())}");
        }
        return failed;
    }

    [LibraryImport("libc", EntryPoint = "fremovexattr", SetLastError = true)]
    private static partial int fremovexattr(int fd, byte* name);

    /// <summary>The two ACL attributes' names, NUL-terminated for the calls (the name is all but the last byte).</summary>
    private static readonly byte[] AclAccess = "system.posix_acl_access\0"u8.ToArray(), AclDefault = "system.posix_acl_default\0"u8.ToArray();

    /// <summary>
    /// Whether the folder at <paramref name="path"/> has a default ACL: what is created in it then inherits an ACL
    /// (and a folder, the default ACL too) that its snapshot may not hold.
    /// </summary>
    public static bool HasDefaultAcl(string path)
    {
        fixed (byte* n = AclDefault) return getxattr(path, n, null, 0) >= 0; // a target that is a symlink to a folder: the folder's
    }

    [LibraryImport("libc", EntryPoint = "getxattr", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(PosixNameMarshaller))]
    private static partial nint getxattr(string path, byte* name, byte* value, nint size);

    /// <summary>
    /// Takes away the ACLs an entry inherited from its folder that <paramref name="xattrs"/> (what its snapshot holds)
    /// does not name (a default ACL on a file: nothing to take); with <see cref="XattrCleanup.AllNotHeld"/> (a folder
    /// that was there, reused by a restore with --force) its user.* and trusted.* attributes the snapshot does not hold
    /// too (security.*, an SELinux label say, stays: the host's, not the snapshot's). The ones that could not be taken
    /// away go to <paramref name="failed"/>, each with why. None there, or none on this file system: nothing to do.
    /// </summary>
    internal static void RemoveXattrsNotIn(int fd, IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs, XattrCleanup cleanup,
        ref List<string>? failed)
    {
        if (cleanup == XattrCleanup.None) return;
        var names = new List<byte[]> { AclAccess, AclDefault };
        if (cleanup == XattrCleanup.AllNotHeld)
        {
            var buffer = new byte[XattrMax];
            nint length;
            fixed (byte* l = buffer) length = flistxattr(fd, l, buffer.Length);
            if (length > 0)
                foreach (var name in XattrNames(buffer.AsSpan(0, (int)length)))
                    if (name.AsSpan().StartsWith("user."u8) || name.AsSpan().StartsWith("trusted."u8)) names.Add(name);
        }
        foreach (var name in names)
        {
            if (Holds(xattrs, name.AsSpan(0, name.Length - 1))) continue;
            int rc;
            fixed (byte* n = name) rc = fremovexattr(fd, n);
            if (rc == 0) continue;
            var errno = Marshal.GetLastPInvokeError();
            if (errno is ENODATA or EOPNOTSUPP) continue;
            (failed ??= []).Add($"{PosixNames.Display(PosixNames.Decode(name.AsSpan(0, name.Length - 1)))} (not in the snapshot) could not be taken away: {Describe(errno)}");
        }
    }

    /// <summary>
    /// Takes the access ACL away from what an O_PATH handle holds (a FIFO, a socket, a device node: through
    /// /proc/self/fd, no device opened) when <paramref name="cleanup"/> asks for it and <paramref name="xattrs"/> does not
    /// hold one; null when done (or there was none), else why it stays.
    /// </summary>
    internal static string? RemoveInheritedAclOnPathHandle(int fd, IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs, XattrCleanup cleanup)
    {
        if (cleanup == XattrCleanup.None || Holds(xattrs, AclAccess.AsSpan(0, AclAccess.Length - 1))) return null;
        var proc = ProcFd(fd);
        int rc;
        fixed (byte* pp = proc)
        fixed (byte* np = AclAccess)
            rc = removexattr(pp, np);
        if (rc == 0) return null;
        var errno = Marshal.GetLastPInvokeError();
        return errno is ENODATA or EOPNOTSUPP ? null : $"system.posix_acl_access (inherited from its folder, not in the snapshot) could not be taken away: {Describe(errno)}";
    }

    /// <summary>Whether <paramref name="xattrs"/> (what a snapshot holds of an entry) names <paramref name="name"/>.</summary>
    private static bool Holds(IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs, ReadOnlySpan<byte> name)
    {
        if (xattrs is null) return false;
        foreach (var x in xattrs)
            if (x.Name.Span.SequenceEqual(name)) return true;
        return false;
    }

    /// <summary>/proc/self/fd/FD, NUL-terminated: what a handle holds (an O_PATH one included), for the calls that take a path.</summary>
    private static byte[] ProcFd(int fd) => Encoding.ASCII.GetBytes($"/proc/self/fd/{fd}\0");

    [LibraryImport("libc", EntryPoint = "removexattr", SetLastError = true)]
    private static partial int removexattr(byte* path, byte* name);

    [LibraryImport("libc", EntryPoint = "flistxattr", SetLastError = true)]
    private static partial nint flistxattr(int fd, byte* list, nint size);

    [LibraryImport("libc", EntryPoint = "setxattr", SetLastError = true)]
    private static partial int setxattr(byte* path, byte* name, byte* value, nint size, int flags);

    /// <summary>
    /// Sets extended attributes on what an O_PATH handle holds, a symlink or a special file included (through
    /// /proc/self/fd: the inode of the handle, never a name looked up again, no device opened); the ones that could
    /// not be set, each with why. (Linux takes user.* attributes on files and folders only.)
    /// </summary>
    internal static List<string> SetXattrsOnPathHandle(int fd, IEnumerable<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)> xattrs)
    {
        var failed = new List<string>();
        var proc = ProcFd(fd);
        foreach (var (name, value) in xattrs)
        {
            var n = new byte[name.Length + 1];
            name.Span.CopyTo(n);
            int rc;
            fixed (byte* pp = proc)
            fixed (byte* np = n)
            fixed (byte* vp = value.Span)
                rc = setxattr(pp, np, vp, value.Length, 0);
            if (rc != 0) failed.Add($"{PosixNames.Display(PosixNames.Decode(name.Span))}: {Describe(Marshal.GetLastPInvokeError())}");
        }
        return failed;
    }

    public static byte[] ReadLink(string path)
    {
        var size = 256;
        while (true)
        {
            var buf = new byte[size];
            nint n;
            fixed (byte* p = buf) n = readlink(path, p, size);
            if (n < 0) throw Error("readlink", path);
            if (n < size) return buf.AsSpan(0, (int)n).ToArray();
            size *= 4;
        }
    }

    public static void LChown(string path, uint uid, uint gid)
    {
        if (lchown(path, uid, gid) != 0) throw Error("chown", path);
    }

    public static void Chmod(string path, uint mode)
    {
        if (chmod(path, mode & 0xFFF) != 0) throw Error("chmod", path);
    }

    /// <summary>Sets mtime with full nanosecond precision on the path itself (a symlink is not followed); atime untouched.</summary>
    public static void SetMtime(string path, long sec, uint nsec)
    {
        var times = stackalloc Timespec[2];
        times[0] = new Timespec { Sec = 0, Nsec = UtimeOmit };
        times[1] = new Timespec { Sec = sec, Nsec = nsec };
        if (utimensat(AtFdcwd, path, times, AtSymlinkNofollow) != 0) throw Error("set times of", path);
    }

    public static void Link(string existing, string newPath)
    {
        if (link(existing, newPath) != 0) throw Error($"hard link to {existing} at", newPath);
    }

    public static void MkFifo(string path, uint mode)
    {
        if (mkfifo(path, mode & 0xFFF) != 0) throw Error("mkfifo", path);
    }

    public static void MkNod(string path, FileKind kind, uint mode, uint major, uint minor)
    {
        var type = kind switch { FileKind.CharDevice => 0x2000u, FileKind.BlockDevice => 0x6000u, _ => throw new ArgumentException("mknod makes devices only") };
        if (mknod(path, type | (mode & 0xFFF), MakeDev(major, minor)) != 0) throw Error("mknod", path);
    }
}
