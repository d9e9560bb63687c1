namespace ActorBackup.Cluster.Media;

/// <summary>A library this node can reach, as its HOCON declares it.</summary>
/// <param name="Drives">the library's drives: how many jobs may read or write it at once (a disk library's write
/// streams, a tape library's tape drives); each job holds one while it runs, and the manager's queue keeps to them</param>
/// <param name="Reserve">free bytes the library keeps for commits and reference lists (new chunks are refused below it,
/// and backups span into the next library of their pool); negative: the default, 2% of its file system, at most 64 MiB</param>
public sealed record LibraryDeclaration(string Id, string Path, long VolumeCapacity, int Drives = LibraryDeclaration.DefaultDrives, long Reserve = -1)
{
    public const int DefaultDrives = 4;
    public const long MaxDefaultReserve = 64L << 20;

    /// <summary>The reserve in bytes, the default worked out from the file system's size.</summary>
    public long ReserveBytes()
    {
        if (Reserve >= 0) return Reserve;
        try
        {
            return Math.Min(MaxDefaultReserve, new DriveInfo(System.IO.Path.GetFullPath(Path)).TotalSize / 50);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return MaxDefaultReserve;
        }
    }
}
