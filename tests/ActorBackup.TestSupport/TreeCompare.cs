using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace ActorBackup.TestSupport;

/// <summary>
/// What a folder held, as the kernel tells it, with calls of its own (not the product's): every entry by the bytes
/// of its name, with its kind, content, mode, owner, mtime to the nanosecond, symlink target, hard-link group,
/// device numbers, extended attributes (POSIX ACLs and file capabilities are xattrs too), file flags (chattr) and, when
/// asked, access times, to compare a restore
/// with its source. Names and targets are shown printable ASCII as they are, every other byte as \xHH.
/// </summary>
public static unsafe partial class TreeCompare
{
    /// <summary>Every entry below <paramref name="root"/> (not the root itself), by its path relative to it.</summary>
    /// <param name="atimes">the access times too (a backup that recorded them)</param>
    public static Dictionary<string, string> Describe(string root, bool atimes = false) => Describe(Encoding.UTF8.GetBytes(root), atimes);

    /// <summary>As <see cref="Describe(string, bool)"/>, below a root named by its bytes (a folder whose name is not UTF-8).</summary>
    public static Dictionary<string, string> Describe(byte[] root, bool atimes = false)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var firstOfInode = new Dictionary<(ulong, ulong), string>();
        Walk(root, (key, path, st) =>
        {
            var what = new StringBuilder();
            var kind = (st.Mode & 0xF000) switch
            {
                0x8000 => "file", 0x4000 => "dir", 0xA000 => "symlink", 0x1000 => "fifo", 0x2000 => "chardev", 0x6000 => "blockdev", 0xC000 => "socket",
                _ => "unknown",
            };
            what.Append($"{kind} mode {Convert.ToString(st.Mode & 0xFFF, 8)} owner {st.Uid}:{st.Gid} mtime {st.Mtime.Sec}.{st.Mtime.Nsec:D9}");
            // Not a symlink's: reading one (readlink, the backup's too) sets its atime, and no flag says otherwise.
            if (atimes && kind != "symlink") what.Append($" atime {st.Atime.Sec}.{st.Atime.Nsec:D9}");
            if (kind is "file" or "dir" && (Flags(path) & SettableFlags) is var flags and not 0) what.Append($" flags {flags:x}");
            // A further name of an inode (a file, symlink, FIFO, socket or device of several hard links): which one's.
            var device = ((ulong)st.DevMajor << 32) | st.DevMinor;
            if (kind != "dir" && st.Nlink > 1)
            {
                if (firstOfInode.TryGetValue((device, st.Ino), out var first))
                {
                    result[key] = what.Append($" hard link of {first}").ToString();
                    return;
                }
                firstOfInode[(device, st.Ino)] = key;
            }
            switch (kind)
            {
                case "file":
                    what.Append($" size {st.Size} sha256 {Hash(path)}");
                    break;
                case "symlink":
                    what.Append(" -> ").Append(Show(ReadLink(path)));
                    break;
                case "chardev" or "blockdev":
                    what.Append($" device {st.RdevMajor}:{st.RdevMinor}");
                    break;
            }
            foreach (var (attribute, value) in Xattrs(path)) what.Append($" xattr {attribute}={Convert.ToHexString(value)}");
            result[key] = what.ToString();
        });
        return result;
    }

    /// <summary>Each entry below <paramref name="root"/>, folders before what they hold, names in byte order: its key (as Describe's), path and stat.</summary>
    private static void Walk(string root, Action<string, byte[], Statx> each) => Walk(Encoding.UTF8.GetBytes(root), each);

    private static void Walk(byte[] root, Action<string, byte[], Statx> each)
    {
        void Below(byte[] dir, string rel)
        {
            foreach (var name in List(dir).OrderBy(n => n, ByteOrder.Instance))
            {
                var path = Join(dir, name);
                var key = rel == "" ? Show(name) : rel + "/" + Show(name);
                var st = Stat(path);
                each(key, path, st);
                if ((st.Mode & 0xF000) == 0x4000) Below(path, key);
            }
        }
        Below(root, "");
    }

    /// <summary>
    /// Each regular file below <paramref name="actualRoot"/> takes no more disk than its namesake below
    /// <paramref name="expectedRoot"/> plus one block for each of that one's data extents (a restore leaves holes as
    /// holes and allocates nothing past them; a file system may round an extent up to a block).
    /// </summary>
    public static void AssertAllocatedNoLarger(string expectedRoot, string actualRoot)
    {
        var expected = new Dictionary<string, (ulong Blocks, int Extents)>(StringComparer.Ordinal);
        Walk(expectedRoot, (key, path, st) =>
        {
            if ((st.Mode & 0xF000) == 0x8000) expected[key] = (st.Blocks, DataExtents(path));
        });
        var larger = new List<string>();
        Walk(actualRoot, (key, path, st) =>
        {
            if ((st.Mode & 0xF000) != 0x8000 || !expected.TryGetValue(key, out var e)) return;
            var allowed = e.Blocks * 512 + (ulong)e.Extents * 4096;
            if (st.Blocks * 512 > allowed) larger.Add($"{key}: {st.Blocks * 512} bytes allocated, at most {allowed} expected ({e.Blocks * 512} in the source, {e.Extents} extents)");
        });
        Assert.True(expected.Count > 0, $"no regular file below {expectedRoot}");
        Assert.True(larger.Count == 0, "restored files take more disk than their sources:\n" + string.Join("\n", larger));
    }

    /// <summary>Opens <paramref name="path"/> itself for reading (O_RDONLY|O_NOFOLLOW|O_CLOEXEC and <paramref name="flags"/>): its descriptor.</summary>
    private static int Open(byte[] path, int flags)
    {
        int fd;
        fixed (byte* p = Terminated(path)) fd = open(p, 0x20000 | 0x80000 | flags, 0);
        if (fd < 0) throw new IOException($"open {Show(path)}: errno {Marshal.GetLastPInvokeError()}");
        return fd;
    }

    /// <summary>How many runs of data (SEEK_DATA to SEEK_HOLE) a file holds.</summary>
    private static int DataExtents(byte[] path)
    {
        var fd = Open(path, 0x40000); // O_NOATIME
        try
        {
            var extents = 0;
            for (long at = 0, data; (data = lseek(fd, at, 3)) >= 0; extents++) at = lseek(fd, data, 4); // SEEK_DATA, SEEK_HOLE
            return extents;
        }
        finally
        {
            close(fd);
        }
    }

    public static void AssertSame(Dictionary<string, string> expected, string actualRoot, bool atimes = false) =>
        AssertSame(expected, Encoding.UTF8.GetBytes(actualRoot), atimes);

    /// <summary>As <see cref="AssertSame(Dictionary{string, string}, string, bool)"/>, below a root named by its bytes.</summary>
    public static void AssertSame(Dictionary<string, string> expected, byte[] actualRoot, bool atimes = false)
    {
        var actual = Describe(actualRoot, atimes);
        var missing = expected.Keys.Except(actual.Keys).ToList();
        var extra = actual.Keys.Except(expected.Keys).ToList();
        var different = expected.Keys.Intersect(actual.Keys).Where(k => expected[k] != actual[k]).Select(k => $"{k}: {actual[k]}\n  expected {expected[k]}").ToList();
        Assert.True(missing.Count + extra.Count + different.Count == 0,
            $"restore differs from the source:\nmissing {string.Join(", ", missing)}\nextra {string.Join(", ", extra)}\n{string.Join("\n", different)}");
    }

    /// <summary>A FIFO (type 0x1000) or a device (0x2000 character, 0x6000 block; major and minor as glibc's makedev packs them for small numbers) at <paramref name="path"/>.</summary>
    public static void MakeNode(string path, uint typeAndMode, uint major = 0, uint minor = 0)
    {
        var dev = ((ulong)major << 8) | minor;
        fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path)))
            if (mknod(p, typeAndMode, dev) != 0) throw new IOException($"mknod {path}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Owner and group of <paramref name="path"/> itself (a symlink is not followed).</summary>
    public static void Chown(string path, uint uid, uint gid)
    {
        fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path)))
            if (lchown(p, uid, gid) != 0) throw new IOException($"chown {path}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Sets an extended attribute of <paramref name="path"/> (not followed through a symlink).</summary>
    public static void SetXattr(string path, string name, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path)))
        fixed (byte* n = Terminated(Encoding.UTF8.GetBytes(name)))
        fixed (byte* v = value)
            if (lsetxattr(p, n, v, value.Length, 0) != 0) throw new IOException($"setxattr {path} {name}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Removes an extended attribute of <paramref name="path"/> (not followed through a symlink).</summary>
    public static void RemoveXattr(string path, string name)
    {
        fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path)))
        fixed (byte* n = Terminated(Encoding.UTF8.GetBytes(name)))
            if (lremovexattr(p, n) != 0) throw new IOException($"removexattr {path} {name}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>The modification time of <paramref name="path"/> itself, seconds and nanoseconds.</summary>
    public static (long Sec, uint Nsec) Mtime(string path)
    {
        var st = Stat(Encoding.UTF8.GetBytes(path));
        return (st.Mtime.Sec, st.Mtime.Nsec);
    }

    /// <summary>The status change time (ctime) of <paramref name="path"/> itself, in nanoseconds since the epoch.</summary>
    public static long CtimeNs(string path)
    {
        var st = Stat(Encoding.UTF8.GetBytes(path));
        return st.Ctime.Sec * 1_000_000_000 + st.Ctime.Nsec;
    }

    /// <summary>Sets the modification time of <paramref name="path"/> itself (a symlink is not followed) to the nanosecond; the access time stays.</summary>
    public static void SetMtime(string path, long sec, uint nsec)
    {
        var times = stackalloc long[4];
        times[0] = 0;
        times[1] = (1L << 30) - 2; // UTIME_OMIT: the access time as it is
        times[2] = sec;
        times[3] = nsec;
        fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path)))
            if (utimensat(-100, p, times, 0x100) != 0) throw new IOException($"utimensat {path}: errno {Marshal.GetLastPInvokeError()}"); // AT_FDCWD, AT_SYMLINK_NOFOLLOW
    }

    /// <summary>A POSIX ACL as system.posix_acl_access / _default hold it: (tag, permissions, id) entries in the kernel's order.</summary>
    public static byte[] Acl(params (ushort Tag, ushort Perm, uint Id)[] entries)
    {
        var acl = new byte[4 + 8 * entries.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(acl, 2); // POSIX_ACL_XATTR_VERSION
        for (var i = 0; i < entries.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(acl.AsSpan(4 + 8 * i), entries[i].Tag);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(acl.AsSpan(6 + 8 * i), entries[i].Perm);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(acl.AsSpan(8 + 8 * i), entries[i].Id);
        }
        return acl;
    }

    /// <summary>The flags chattr sets (immutable 0x10, append-only 0x20, nodump 0x40, noatime 0x80, ...), not those a file system sets itself (extents, htree index).</summary>
    public const uint SettableFlags = 0x000380FF | 0x400 | 0x4000 | 0x800000 | 0x20000000;

    /// <summary>A file's or folder's flags (FS_IOC_GETFLAGS), all of them.</summary>
    public static uint Flags(string path) => Flags(Encoding.UTF8.GetBytes(path));

    private static uint Flags(byte[] path)
    {
        var fd = Open(path, 0x800); // O_NONBLOCK: a FIFO's open does not wait
        try
        {
            long flags = 0;
            return ioctl(fd, 0x80086601, &flags) == 0 ? (uint)flags : 0;
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Sets a file's or folder's flags (chattr), as root for immutable and append-only.</summary>
    public static void SetFlags(string path, uint flags)
    {
        int fd;
        fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path))) fd = open(p, 0x20000 | 0x80000 | 0x800, 0);
        if (fd < 0) throw new IOException($"open {path}: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            long current = 0;
            if (ioctl(fd, 0x80086601, &current) != 0) throw new IOException($"get flags of {path}: errno {Marshal.GetLastPInvokeError()}");
            long wanted = (uint)((current & ~SettableFlags) | flags);
            if (ioctl(fd, 0x40086602, &wanted) != 0) throw new IOException($"set flags of {path}: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Clears immutable and append-only below <paramref name="root"/> (chattr -R -ia), so that it can be removed.</summary>
    public static void Unlock(string root)
    {
        try
        {
            using var chattr = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("chattr", ["-R", "-f", "-i", "-a", "--", root]) { RedirectStandardError = true });
            chattr?.WaitForExit(30_000);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // no chattr: nothing can have set them either
        }
    }

    /// <summary>The access time of <paramref name="path"/> itself, seconds and nanoseconds.</summary>
    public static (long Sec, uint Nsec) Atime(string path)
    {
        var st = Stat(Encoding.UTF8.GetBytes(path));
        return (st.Atime.Sec, st.Atime.Nsec);
    }

    /// <summary>What <paramref name="path"/> takes on disk (its allocated blocks), not following a symlink.</summary>
    public static long AllocatedBytes(string path) => (long)Stat(Encoding.UTF8.GetBytes(path)).Blocks * 512;

    /// <summary>The bytes a file holds on disk, its path as bytes (a name that is not UTF-8 on the way).</summary>
    public static long AllocatedBytes(byte[] path) => (long)Stat(path).Blocks * 512;

    /// <summary>Bytes as shown in the keys: printable ASCII but the backslash as it is, everything else as \xHH.</summary>
    public static string Show(ReadOnlySpan<byte> bytes)
    {
        var s = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
            if (b is >= 0x20 and < 0x7f && b != (byte)'\\') s.Append((char)b);
            else s.Append($"\\x{b:x2}");
        return s.ToString();
    }

    /// <summary>Creates a regular file whose name is <paramref name="name"/>'s bytes (not necessarily UTF-8) in <paramref name="dir"/> (a name may hold '/': a path below it).</summary>
    public static void WriteFile(string dir, ReadOnlySpan<byte> name, ReadOnlySpan<byte> content)
    {
        var path = Join(Encoding.UTF8.GetBytes(dir), name.ToArray());
        int fd;
        fixed (byte* p = Terminated(path)) fd = open(p, 0x41 | 0x200 | 0x80000, 0x1a4); // O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644
        if (fd < 0) throw new IOException($"create {Show(path)}: errno {Marshal.GetLastPInvokeError()}");
        using var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write);
        stream.Write(content);
    }

    /// <summary>Creates a folder whose name is <paramref name="name"/>'s bytes in <paramref name="dir"/> (a name may hold '/': a path below it).</summary>
    public static void MakeDirectory(string dir, ReadOnlySpan<byte> name)
    {
        var path = Join(Encoding.UTF8.GetBytes(dir), name.ToArray());
        fixed (byte* p = Terminated(path))
            if (mkdir(p, 0x1ed) != 0) throw new IOException($"mkdir {Show(path)}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Makes a symlink named <paramref name="name"/> in <paramref name="dir"/> pointing at <paramref name="target"/> (both raw bytes).</summary>
    public static void Symlink(string dir, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target)
    {
        var path = Join(Encoding.UTF8.GetBytes(dir), name.ToArray());
        fixed (byte* t = Terminated(target.ToArray()))
        fixed (byte* p = Terminated(path))
            if (symlink(t, p) != 0) throw new IOException($"symlink {Show(path)}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>A hard link named <paramref name="name"/> in <paramref name="dir"/> to <paramref name="existing"/> in the same folder (raw bytes).</summary>
    public static void HardLink(string dir, ReadOnlySpan<byte> existing, ReadOnlySpan<byte> name)
    {
        var d = Encoding.UTF8.GetBytes(dir);
        fixed (byte* e = Terminated(Join(d, existing.ToArray())))
        fixed (byte* n = Terminated(Join(d, name.ToArray())))
            if (link(e, n) != 0) throw new IOException($"link {Show(name)}: errno {Marshal.GetLastPInvokeError()}");
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();
        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }

    private static byte[] Join(byte[] dir, byte[] name)
    {
        var path = new byte[dir.Length + 1 + name.Length];
        dir.CopyTo(path, 0);
        path[dir.Length] = (byte)'/';
        name.CopyTo(path, dir.Length + 1);
        return path;
    }

    private static byte[] Terminated(byte[] bytes)
    {
        var t = new byte[bytes.Length + 1];
        bytes.CopyTo(t, 0);
        return t;
    }

    private static List<byte[]> List(byte[] dir)
    {
        int fd;
        fixed (byte* p = Terminated(dir)) fd = open(p, 0x10000 | 0x80000 | 0x40000, 0); // O_DIRECTORY|O_CLOEXEC|O_NOATIME: looking changes no atime
        var handle = fd < 0 ? 0 : fdopendir(fd);
        if (handle == 0) throw new IOException($"opendir {Show(dir)}: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            var names = new List<byte[]>();
            for (var entry = readdir64(handle); entry is not null; entry = readdir64(handle))
            {
                var name = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(entry + 19); // d_name in struct dirent64
                if (name is [(byte)'.'] or [(byte)'.', (byte)'.']) continue;
                names.Add(name.ToArray());
            }
            return names;
        }
        finally
        {
            closedir(handle);
        }
    }

    private static Statx Stat(byte[] path)
    {
        Statx sx;
        fixed (byte* p = Terminated(path))
            if (statx(-100, p, 0x100, 0x7ff, &sx) != 0) throw new IOException($"stat {Show(path)}: errno {Marshal.GetLastPInvokeError()}");
        return sx;
    }

    private static string Hash(byte[] path)
    {
        var fd = Open(path, 0x40000); // O_NOATIME: looking changes no atime
        using var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    private static byte[] ReadLink(byte[] path)
    {
        var buffer = new byte[4096];
        nint n;
        fixed (byte* p = Terminated(path))
        fixed (byte* b = buffer)
            n = readlink(p, b, buffer.Length);
        if (n < 0) throw new IOException($"readlink {Show(path)}: errno {Marshal.GetLastPInvokeError()}");
        return buffer.AsSpan(0, (int)n).ToArray();
    }

    /// <summary>The entry's extended attributes (not followed through a symlink), by name.</summary>
    private static List<(string Name, byte[] Value)> Xattrs(byte[] path)
    {
        var result = new List<(string, byte[])>();
        var p = Terminated(path);
        var names = new byte[64 * 1024];
        nint length;
        fixed (byte* pp = p)
        fixed (byte* np = names)
            length = llistxattr(pp, np, names.Length);
        if (length < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == 95) return result; // EOPNOTSUPP: a file system without xattrs
            throw new IOException($"listxattr {Show(path)}: errno {errno}");
        }
        var value = new byte[64 * 1024];
        foreach (var raw in names.AsSpan(0, (int)length).ToArray().Split0())
        {
            nint size;
            fixed (byte* pp = p)
            fixed (byte* np = Terminated(raw))
            fixed (byte* vp = value)
                size = lgetxattr(pp, np, vp, value.Length);
            if (size < 0) throw new IOException($"getxattr {Show(path)} {Show(raw)}: errno {Marshal.GetLastPInvokeError()}");
            result.Add((Show(raw), value.AsSpan(0, (int)size).ToArray()));
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return result;
    }

    private static IEnumerable<byte[]> Split0(this byte[] list)
    {
        var start = 0;
        for (var i = 0; i < list.Length; i++)
            if (list[i] == 0)
            {
                if (i > start) yield return list[start..i];
                start = i + 1;
            }
    }

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

    [LibraryImport("libc", SetLastError = true)] private static partial int statx(int dirfd, byte* path, int flags, uint mask, Statx* buf);
    [LibraryImport("libc", SetLastError = true)] private static partial int open(byte* path, int flags, uint mode);
    [LibraryImport("libc")] private static partial int close(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial long lseek(int fd, long offset, int whence);
    [LibraryImport("libc", SetLastError = true)] private static partial int ioctl(int fd, ulong request, long* arg);
    [LibraryImport("libc", SetLastError = true)] private static partial int mkdir(byte* path, uint mode);
    [LibraryImport("libc", SetLastError = true)] private static partial int mknod(byte* path, uint mode, ulong dev);
    [LibraryImport("libc", SetLastError = true)] private static partial int lchown(byte* path, uint uid, uint gid);
    [LibraryImport("libc", SetLastError = true)] private static partial int symlink(byte* target, byte* path);
    [LibraryImport("libc", SetLastError = true)] private static partial int link(byte* existing, byte* path);
    [LibraryImport("libc", SetLastError = true)] private static partial nint fdopendir(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial byte* readdir64(nint dir);
    [LibraryImport("libc")] private static partial int closedir(nint dir);
    [LibraryImport("libc", SetLastError = true)] private static partial nint readlink(byte* path, byte* buf, nint size);
    [LibraryImport("libc", SetLastError = true)] private static partial nint llistxattr(byte* path, byte* list, nint size);
    [LibraryImport("libc", SetLastError = true)] private static partial nint lgetxattr(byte* path, byte* name, byte* value, nint size);
    [LibraryImport("libc", SetLastError = true)] private static partial int lremovexattr(byte* path, byte* name);
    [LibraryImport("libc", SetLastError = true)] private static partial int utimensat(int dirfd, byte* path, long* times, int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int lsetxattr(byte* path, byte* name, byte* value, nint size, int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int inotify_init1(int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int inotify_add_watch(int fd, byte* path, uint mask);
    [LibraryImport("libc", SetLastError = true)] private static partial nint read(int fd, byte* buffer, nint count);

    /// <summary>
    /// Tells whether a file was opened since the watch began (inotify IN_OPEN, queued by the open itself): an O_PATH
    /// handle, which opens nothing (no device acts, no FIFO's writer wakes), is no open.
    /// </summary>
    public sealed class OpenWatch : IDisposable
    {
        private readonly int _fd;

        public OpenWatch(string path)
        {
            _fd = inotify_init1(0x800 | 0x80000); // IN_NONBLOCK | IN_CLOEXEC
            if (_fd < 0) throw new IOException($"inotify_init1: errno {Marshal.GetLastPInvokeError()}");
            fixed (byte* p = Terminated(Encoding.UTF8.GetBytes(path)))
                if (inotify_add_watch(_fd, p, 0x20) < 0) throw new IOException($"inotify_add_watch {path}: errno {Marshal.GetLastPInvokeError()}"); // IN_OPEN
        }

        public bool Opened()
        {
            var buffer = stackalloc byte[4096];
            return read(_fd, buffer, 4096) > 0; // nothing queued: -1, EAGAIN
        }

        public void Dispose() => close(_fd);
    }
}
