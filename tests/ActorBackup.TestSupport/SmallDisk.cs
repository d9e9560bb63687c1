
namespace ActorBackup.TestSupport;

/// <summary>A tmpfs of a few MiB, mounted for one test and unmounted at the end.</summary>
public sealed class SmallDisk : IDisposable
{
    public string Path { get; }
    private readonly bool _ownFolder;

    /// <param name="at">an empty folder to mount it on (a mount point inside a tree); null: a temporary folder of its own</param>
    /// <param name="readOnly">mounted read-only (a folder no write can go into)</param>
    public SmallDisk(int mebibytes, string? at = null, bool readOnly = false)
    {
        _ownFolder = at is null;
        Path = at ?? Directory.CreateTempSubdirectory("abk-small-disk-").FullName;
        Processes.Run("/bin/mount", "-t", "tmpfs", "-o", $"{(readOnly ? "ro," : "")}size={mebibytes}m", "tmpfs", Path);
    }

    /// <summary>Takes all but <paramref name="leaveBytes"/> of the free space with a file of its own.</summary>
    public void Fill(long leaveBytes)
    {
        using var f = new FileStream(System.IO.Path.Combine(Path, "filler"), FileMode.Create); // a filler from before is emptied first
        var free = new DriveInfo(Path).AvailableFreeSpace;
        var block = new byte[1 << 20];
        for (var left = free - leaveBytes; left > 0; left -= block.Length) f.Write(block, 0, (int)Math.Min(block.Length, left));
    }

    public void Free() => File.Delete(System.IO.Path.Combine(Path, "filler"));

    public void Dispose()
    {
        try
        {
            Processes.Run("/bin/umount", "-l", Path);
            if (_ownFolder) Directory.Delete(Path);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException) { }
    }
}
