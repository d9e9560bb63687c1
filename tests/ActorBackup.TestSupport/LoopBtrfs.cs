using Xunit;

namespace ActorBackup.TestSupport;

/// <summary>A btrfs of 128 MiB in a file, mounted through a loop device for one test and unmounted at the end.</summary>
public sealed class LoopBtrfs : IDisposable
{
    public string Path { get; }
    private readonly string _image;
    private readonly bool _ownFolder;

    /// <param name="options">mount options beside loop (compress=zstd, say)</param>
    /// <param name="at">an empty folder to mount it on (left there after); null: a temporary folder of its own</param>
    public LoopBtrfs(string? options = null, string? at = null)
    {
        _ownFolder = at is null;
        Path = at ?? Directory.CreateTempSubdirectory("abk-btrfs-").FullName;
        _image = (_ownFolder ? Path : Directory.CreateTempSubdirectory("abk-btrfs-").FullName + "/btrfs") + ".img";
        using (var f = new FileStream(_image, FileMode.CreateNew)) f.SetLength(128L << 20);
        Processes.Run("mkfs.btrfs", "-q", _image);
        Processes.Run("/bin/mount", "-o", options is null ? "loop" : "loop," + options, _image, Path);
    }

    /// <summary>How many of a file's extents btrfs stores compressed (FIEMAP's "encoded", as filefrag -v shows them).</summary>
    public static int CompressedExtents(string file)
    {
        Processes.Run("/bin/sync", "-f", file); // extents are compressed when written back
        return Processes.Run("/usr/sbin/filefrag", "-v", file).Split('\n').Count(l => l.Contains("encoded"));
    }

    public void Dispose()
    {
        try
        {
            Processes.Run("/bin/umount", Path); // not lazy: the loop device is let go with it
            if (_ownFolder) Directory.Delete(Path);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException) { }
        File.Delete(_image);
        if (!_ownFolder) Directory.Delete(System.IO.Path.GetDirectoryName(_image)!);
    }
}

/// <summary>A test on a real btrfs (a loop mount): it needs root and mkfs.btrfs (scripts/test.sh installs btrfs-progs; CI runs as root).</summary>
public sealed class BtrfsFactAttribute : FactAttribute
{
    public BtrfsFactAttribute()
    {
        if (Environment.UserName != "root" || !File.Exists("/bin/mount"))
            Skip = "needs root, to mount a btrfs through a loop device (CI runs as root)";
        else if (!new[] { "/usr/sbin/mkfs.btrfs", "/sbin/mkfs.btrfs", "/usr/bin/mkfs.btrfs" }.Any(File.Exists))
            Skip = "needs mkfs.btrfs (Debian's btrfs-progs, which scripts/test.sh installs as root)";
    }
}
