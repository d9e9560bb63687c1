using System.Buffers.Binary;
using ActorBackup.Engine.Chunking;

namespace ActorBackup.Engine.Archive;

/// <summary>
/// Files that programs rewrite in place, a few small blocks at a time, across their whole length: disk images and
/// databases. With the policy's chunks (1 MiB on average) a change of 1% of an image's 4 KiB blocks, scattered,
/// touches nearly every chunk and the whole image is stored again; these files are cut finer (<see cref="Chunkers"/>:
/// 32 KiB on average up to 32 GiB), so such a change stores about the chunks it touches (scripts/bench.sh peers image,
/// 1 GiB, 1% of the 4 KiB blocks rewritten: 69 MB added against restic's 390 MB; with 64 KiB chunks 115 MB, 29%). The
/// price is more chunks per such file: a reservation, an append under the library's lock, a zstd frame and an index
/// entry each, which cost the full backup of such a file about a quarter of its speed in the cell (docs/benchmarks.md);
/// every other file keeps the policy's chunks. Chosen by size, then by name, else by the file's first bytes (an image
/// or a database whose name says nothing: <see cref="HeadSays"/>). A bigger image is cut less finely, so that one file
/// keeps at most about 2 million entries (<see cref="Level"/>): 64 KiB up to 64 GiB, 128 KiB up to 256 GiB, 256 KiB up to
/// 512 GiB (a 1% scattered change then touches 15%, 28%, 47% of it, where the policy's 1 MiB chunks touch 92%).
/// </summary>
public static class BlockFiles
{
    /// <summary>Below this, a file is cut as any other (a change stores at most a few of its chunks anyway).</summary>
    public const long MinSize = 16L * 1024 * 1024;

    /// <summary>
    /// The finer chunkers, by the size of the file (<see cref="Level"/>): each band's biggest file has at most about 2
    /// million entries, 80 MB of ids and sizes while it is read, its chunk lists two records (NodeExtensions.EntriesPerList)
    /// stored again at each change.
    /// </summary>
    public static readonly ChunkerOptions[] Chunkers =
    [
        new(8 * 1024, 32 * 1024, 128 * 1024), new(16 * 1024, 64 * 1024, 256 * 1024),
        new(32 * 1024, 128 * 1024, 512 * 1024), new(64 * 1024, 256 * 1024, 1024 * 1024),
    ];

    /// <summary>The biggest file of each of <see cref="Chunkers"/>' bands.</summary>
    private static readonly long[] BandEnds = [32L << 30, 64L << 30, 256L << 30, 512L << 30];

    /// <summary>From this size on, a file is cut as any other (a 1% scattered change touches 72% of 512 KiB chunks already).</summary>
    public const long MaxSize = 512L << 30;

    private static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase)
    {
        // disk images
        ".img", ".raw", ".qcow", ".qcow2", ".vmdk", ".vdi", ".vhd", ".vhdx", ".hdd", ".dsk",
        // databases and their journals
        ".db", ".sqlite", ".sqlite3", ".db3", ".mdb", ".accdb", ".ibd", ".mdf", ".ndf", ".ldf", ".dbf", ".wt", ".kdbx", ".frm", ".myd", ".myi",
        ".edb", ".nsf", ".pst", ".ost",
    };

    /// <summary>How many of a file's first bytes <see cref="HeadSays"/> looks at.</summary>
    public const int HeadSize = 4096;

    /// <summary>
    /// Whether the file at <paramref name="path"/>, <paramref name="size"/> bytes, is one to cut finer: by its name, else
    /// by its first bytes (<paramref name="head"/>, asked for only when the size is in range and the name says nothing).
    /// </summary>
    public static bool Are(string path, ulong size, Func<byte[]>? head = null) => Level(path, size, head) is not null;

    /// <summary>
    /// Which of <see cref="Chunkers"/> cuts the file at <paramref name="path"/> (its index, by the file's size), or null
    /// for a file cut as any other (<see cref="Are"/>).
    /// </summary>
    public static int? Level(string path, ulong size, Func<byte[]>? head = null)
    {
        if (size is < MinSize or >= MaxSize) return null;
        var level = 0;
        while ((long)size > BandEnds[level]) level++;
        var name = Path.GetFileName(path.AsSpan());
        if (Extensions.Contains(Path.GetExtension(path))) return level;
        // PostgreSQL's relation files (16384, 16384.1, 16384_fsm) and InnoDB's shared tablespace (ibdata1).
        if (name.StartsWith("ibdata", StringComparison.Ordinal) || IsRelationFile(name)) return level;
        return head is not null && HeadSays(head()) ? level : null;
    }

    /// <summary>
    /// Whether a file's first bytes are those of a disk image or a database, whatever its name: a qcow, VMDK, VDI, VHD,
    /// VHDX, Parallels or LUKS image, an SQLite or bbolt (etcd) database (a browser's History, say), a disk with a partition
    /// table (MBR or GPT) or a boot sector, an LVM physical volume, a swap file, an ext2/3/4 or XFS file system.
    /// </summary>
    public static bool HeadSays(ReadOnlySpan<byte> head)
    {
        ReadOnlySpan<byte> qcow = [(byte)'Q', (byte)'F', (byte)'I', 0xFB], luks = [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE];
        if (head.StartsWith(qcow) || head.StartsWith("KDMV"u8) || head.StartsWith("vhdxfile"u8) || head.StartsWith("conectix"u8)
            || head.StartsWith("WithoutFreeSpace"u8) || head.StartsWith("WithouFreSpacExt"u8) || head.StartsWith(luks)
            || head.StartsWith("SQLite format 3\0"u8) || head.StartsWith("XFSB"u8))
            return true;
        if (head.Length >= 520 && head[512..].StartsWith("LABELONE"u8)) return true; // an LVM physical volume (its label in sector 1)
        if (head.Length >= 4096 && (head[4086..4096].SequenceEqual("SWAPSPACE2"u8) || head[4086..4096].SequenceEqual("SWAP-SPACE"u8))) return true; // a swap file
        if (head.Length >= 20 && BinaryPrimitives.ReadUInt32LittleEndian(head[16..]) == 0xED0CDAED) return true; // bbolt (etcd): its meta page's magic
        if (head.Length >= 68 && BinaryPrimitives.ReadUInt32LittleEndian(head[64..]) == 0xBEDA107F) return true; // VirtualBox's VDI
        if (head.Length >= 520 && head[510] == 0x55 && head[511] == 0xAA)
        {
            if (head[512..].StartsWith("EFI PART"u8)) return true; // GPT
            if (head[0] == 0xE9 || (head[0] == 0xEB && head[2] == 0x90)) return true; // a boot sector's jump (FAT, NTFS)
            // An MBR: each of its four entries inactive or active (0x00, 0x80), one of them used.
            var used = false;
            for (var i = 0; i < 4; i++)
            {
                var entry = head.Slice(446 + 16 * i, 16);
                if (entry[0] is not (0x00 or 0x80)) return false;
                used |= entry[4] != 0;
            }
            return used;
        }
        // ext2/3/4: the superblock at 1024, its magic 0xEF53 and a block size of 1 to 64 KiB.
        return head.Length >= 1024 + 60 && BinaryPrimitives.ReadUInt16LittleEndian(head[(1024 + 56)..]) == 0xEF53
               && BinaryPrimitives.ReadUInt32LittleEndian(head[(1024 + 24)..]) <= 6;
    }

    private static bool IsRelationFile(ReadOnlySpan<char> name)
    {
        var digits = 0;
        while (digits < name.Length && char.IsAsciiDigit(name[digits])) digits++;
        if (digits == 0) return false;
        var rest = name[digits..];
        if (rest is "_fsm" or "_vm" or "_init") return true;
        if (rest.IsEmpty) return true;
        if (rest[0] != '.' || rest.Length == 1) return false;
        foreach (var c in rest[1..])
            if (!char.IsAsciiDigit(c)) return false;
        return true;
    }
}
