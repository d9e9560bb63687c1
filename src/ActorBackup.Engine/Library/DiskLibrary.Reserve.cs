namespace ActorBackup.Engine.Library;

/// <summary>
/// An append refused because the library's file system is down to its reserve. Nothing is broken: what was
/// appended before still commits (the reserve is the room for commits and reference lists), reads go on, and a
/// backup goes on in the next library of its pool (spanning).
/// </summary>
public sealed class LibraryFullException(string message) : IOException(message);

// The reserve: free space a library keeps for commits and reference lists, so that a full library still
// commits what it took and a backup can span into the next library.
public sealed partial class DiskLibrary
{
    /// <summary>
    /// New chunks are refused (<see cref="LibraryFullException"/> from TryReserve) when fewer bytes than this are
    /// free on the library's file system; 0: none (appends go on until the disk is full, which breaks the library).
    /// It must hold the chunks reserved before (each writer's in flight) and the reference lists of a commit.
    /// </summary>
    public long ReserveBytes { get; set; }

    /// <summary>The file system's free bytes (a test gives its own).</summary>
    internal Func<long> AvailableBytes { get; set; } = () => 0;

    private long _freeAtCheck = long.MaxValue;
    private long _appendedSinceCheck;
    private string? _full;
    /// <summary>Free space is looked at again after this many bytes appended (statvfs is a system call).</summary>
    private const long RecheckEvery = 1 << 20;

    private long Available() => AvailableBytes() is var a and > 0 ? a : new DriveInfo(Path.GetFullPath(Root)).AvailableFreeSpace;

    /// <summary>Why the library takes no new appends (down to its reserve), or null.</summary>
    public string? Full { get { lock (_lock) return _full; } }

    /// <summary>
    /// Under the lock, before a new chunk is reserved: throws when the library is down to its reserve. The
    /// appends of chunks reserved before go on (they eat into the reserve, which is sized for them), so that
    /// a writer hears "full" on a question it waits for, never on an append it sent and forgot.
    /// </summary>
    private void CheckReserve()
    {
        if (ReserveBytes <= 0) return;
        if (_full is null && _appendedSinceCheck < RecheckEvery && _freeAtCheck - _appendedSinceCheck > ReserveBytes + RecheckEvery) return;
        _freeAtCheck = Available();
        _appendedSinceCheck = 0;
        if (_freeAtCheck >= ReserveBytes)
        {
            _full = null;
            return;
        }
        _full = $"library {Id} is out of space at {Root}: it keeps {ReserveBytes >> 20} MiB free for commits (only {Math.Max(0, _freeAtCheck) >> 20} MiB are), " +
                "so backups go on in the next library of their pool; free space there, prune it, or add a library";
        throw new LibraryFullException(_full);
    }

    /// <summary>Looks at the free space again (the media agent's health check): a library that has room again takes appends.</summary>
    public void CheckRoom()
    {
        lock (_lock)
        {
            CloseRetiredReadersLocked(); // a prune's deleted volumes give their space back only once closed
            if (_full is null || ReserveBytes <= 0) return;
            _freeAtCheck = Available();
            _appendedSinceCheck = 0;
            if (_freeAtCheck >= 2 * ReserveBytes) _full = null;
        }
    }
}
