using System.Runtime.InteropServices;
using System.Text;

namespace ActorBackup.Engine.Posix;

/// <summary>
/// File flags (chattr / lsattr): immutable, append-only, nodump, noatime and the rest a user can set, read and set
/// through FS_IOC_GETFLAGS / FS_IOC_SETFLAGS on an open file or folder. A file system without them (tmpfs before
/// Linux 6.0, NFS) answers none.
/// </summary>
public static unsafe partial class FileFlags
{
    private const ulong GetFlagsRequest = 0x80086601, SetFlagsRequest = 0x40086602; // _IOR/_IOW('f', 1/2, long)

    /// <summary>
    /// The flags a backup keeps: those chattr sets (FS_FL_USER_MODIFIABLE, with nocow, nocompress, journal-data and
    /// project-inherit), never those a file system reports about itself (extents, inline data, encrypted, verity).
    /// </summary>
    public const uint Kept = 0x000380FF | 0x00000400 | 0x00004000 | 0x00800000 | 0x20000000;

    public const uint Immutable = 0x10, AppendOnly = 0x20, NoDump = 0x40;

    /// <summary>
    /// Flags a file system takes on a file only while it is empty (btrfs: no copy-on-write, compress, do not compress;
    /// set on a file with data, they are silently ignored): a restore sets them when it creates the file, before its data.
    /// </summary>
    public const uint BeforeData = Compress | 0x400 | 0x00800000;

    /// <summary>Compress (chattr +c).</summary>
    public const uint Compress = 0x4;

    /// <summary>Flags that forbid changing the entry once set: set last, after links, times and attributes.</summary>
    public const uint Locking = Immutable | AppendOnly;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, long* arg);

    /// <summary>The kept flags of an open file or folder; 0 where the file system has none.</summary>
    public static uint Get(int fd)
    {
        long flags = 0; // the kernel reads and writes an int through the pointer, whatever the request's size says
        return ioctl(fd, GetFlagsRequest, &flags) == 0 ? (uint)flags & Kept : 0;
    }

    /// <summary>The kept flags of an open file.</summary>
    public static uint Get(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return Get((int)handle.DangerousGetHandle());
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Sets the flags (the kept ones; those the file system sets itself are left as they are); 0 or the errno. None
    /// asked for on a file system without flags is done.
    /// </summary>
    internal static int Set(int fd, uint flags)
    {
        long current = 0;
        if (ioctl(fd, GetFlagsRequest, &current) != 0) return (flags & Kept) == 0 ? 0 : Marshal.GetLastPInvokeError();
        long wanted = (uint)((current & ~Kept) | (flags & Kept));
        if (wanted == current) return 0;
        return ioctl(fd, SetFlagsRequest, &wanted) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    private static readonly (uint Bit, char Letter)[] Letters =
    [
        (0x1, 's'), (0x2, 'u'), (0x4, 'c'), (0x8, 'S'), (0x10, 'i'), (0x20, 'a'), (0x40, 'd'), (0x80, 'A'),
        (0x400, 'm'), (0x4000, 'j'), (0x8000, 't'), (0x10000, 'D'), (0x20000, 'T'), (0x800000, 'C'), (0x20000000, 'P'),
    ];

    /// <summary>The flags as chattr writes them ("ia" for immutable and append-only); "" for none.</summary>
    public static string Show(uint flags)
    {
        var sb = new StringBuilder();
        foreach (var (bit, letter) in Letters)
            if ((flags & bit) != 0) sb.Append(letter);
        return sb.ToString();
    }
}
