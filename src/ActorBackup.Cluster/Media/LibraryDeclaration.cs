using ActorBackup.Engine.Tape;

namespace ActorBackup.Cluster.Media;

/// <summary>A library this node can reach, as its HOCON declares it.</summary>
/// <param name="Drives">the library's drives: how many jobs may read or write it at once (a disk library's write
/// streams, a tape library's tape drives); each job holds one while it runs, and the manager's queue keeps to them</param>
/// <param name="Reserve">free bytes the library keeps for commits and reference lists (new chunks are refused below it,
/// and backups span into the next library of their pool); negative: the default, 2% of its file system, at most 64 MiB</param>
/// <param name="Tape">a tape library (kind = tape): its changer, timings and the cartridges a new one starts with; null: a disk library</param>
public sealed record LibraryDeclaration(string Id, string Path, long VolumeCapacity, int Drives = LibraryDeclaration.DefaultDrives, long Reserve = -1, TapeDeclaration? Tape = null)
{
    public string Kind => Tape is null ? "disk" : "tape";

    public const int DefaultDrives = 4;
    public const long MaxDefaultReserve = 64L << 20;

    /// <summary>The reserve in bytes, the default worked out from the file system's size.</summary>
    public long ReserveBytes()
    {
        if (Reserve >= 0) return Reserve;
        // On tape: room for the chunks writers have reserved and a commit, on the cartridges left (not the disk's).
        if (Tape is { } tape) return Math.Min(MaxDefaultReserve, tape.Changer.CartridgeCapacity / 4);
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

/// <summary>
/// A simulated tape library as its HOCON declares it: the changer (slots, drives, cartridge capacity, cleaning), the
/// timings, and the cartridges a new library starts with (imported; data cartridges labelled with their barcode).
/// </summary>
public sealed record TapeDeclaration(ChangerConfig Changer, TapeTimings Timings, IReadOnlyList<string> Cartridges);
