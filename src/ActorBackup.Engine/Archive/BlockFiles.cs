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
/// every other file keeps the policy's chunks. Chosen by name and size, before a byte is read.
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

    /// <summary>Whether the file at <paramref name="path"/>, <paramref name="size"/> bytes, is one to cut finer.</summary>
    public static bool Are(string path, ulong size)
    {
        if (size is < MinSize or >= MaxSize) return false;
        var name = Path.GetFileName(path.AsSpan());
        if (Extensions.Contains(Path.GetExtension(path))) return true;
        // PostgreSQL's relation files (16384, 16384.1, 16384_fsm) and InnoDB's shared tablespace (ibdata1).
        return name.StartsWith("ibdata", StringComparison.Ordinal) || IsRelationFile(name);
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
