using System.Buffers.Binary;
using ActorBackup.Engine.Chunking;

namespace ActorBackup.Engine.Archive;

/// <summary>
/// Files that programs rewrite in place, a few small blocks at a time, across their whole length: disk images and
/// databases. With the policy's chunks (1 MiB on average) a change of 1% of an image's 4 KiB blocks, scattered,
/// touches nearly every chunk and the whole image is stored again; these files are cut finer (<see cref="Chunker"/>:
/// 32 KiB on average), so such a change stores about the chunks it touches (scripts/bench.sh peers image, 1 GiB,
/// 1% of the 4 KiB blocks rewritten: 69 MB added against restic's 390 MB; with 64 KiB chunks 115 MB, 29%). The
/// price is more chunks per such file: a reservation, an append under the library's lock, a zstd frame and an index
/// entry each, which cost the full backup of such a file about a quarter of its speed in the cell (docs/benchmarks.md);
/// every other file keeps the policy's chunks. Chosen by size, then by name, else by the file's first bytes (an image
/// or a database whose name says nothing: <see cref="HeadSays"/>).
/// </summary>
public static class BlockFiles
{
    /// <summary>Below this, a file is cut as any other (a change stores at most a few of its chunks anyway).</summary>
    public const long MinSize = 16L * 1024 * 1024;

    /// <summary>
    /// From this size on, a file is cut as any other: at 32 KiB a chunk, a bigger one would pass the entries a node
    /// lists itself (NodeExtensions.EntriesPerList) and have its chunk lists stored again at each change.
    /// </summary>
    public const long MaxSize = 32L << 30;

    public static readonly ChunkerOptions Chunker = new(8 * 1024, 32 * 1024, 128 * 1024);

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
    public static bool Are(string path, ulong size, Func<byte[]>? head = null)
    {
        if (size is < MinSize or >= MaxSize) return false;
        var name = Path.GetFileName(path.AsSpan());
        if (Extensions.Contains(Path.GetExtension(path))) return true;
        // PostgreSQL's relation files (16384, 16384.1, 16384_fsm) and InnoDB's shared tablespace (ibdata1).
        if (name.StartsWith("ibdata", StringComparison.Ordinal) || IsRelationFile(name)) return true;
        return head is not null && HeadSays(head());
    }

    /// <summary>
    /// Whether a file's first bytes are those of a disk image or a database, whatever its name: a qcow, VMDK, VDI, VHD,
    /// VHDX, Parallels or LUKS image, an SQLite database (a browser's History, say), a disk with a partition table (MBR or
    /// GPT) or a boot sector, an ext2/3/4 or XFS file system.
    /// </summary>
    public static bool HeadSays(ReadOnlySpan<byte> head)
    {
        ReadOnlySpan<byte> qcow = [(byte)'Q', (byte)'F', (byte)'I', 0xFB], luks = [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE];
        if (head.StartsWith(qcow) || head.StartsWith("KDMV"u8) || head.StartsWith("vhdxfile"u8) || head.StartsWith("conectix"u8)
            || head.StartsWith("WithoutFreeSpace"u8) || head.StartsWith("WithouFreSpacExt"u8) || head.StartsWith(luks)
            || head.StartsWith("SQLite format 3\0"u8) || head.StartsWith("XFSB"u8))
            return true;
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
