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

    private long _freeAtCheck; // 0: the first reservation looks
    private long _appendedSinceCheck;
    private string? _full;
    /// <summary>Free space is looked at again after this many bytes appended (statvfs is a system call).</summary>
    private const long RecheckEvery = 1 << 20;

    private long Available() => AvailableBytes() is var a and > 0 ? a : _medium.Available(WritingLengths) ?? new DriveInfo(Path.GetFullPath(Root)).AvailableFreeSpace;

    /// <summary>What the medium says is left to write on (a tape library: its cartridges); null: the file system's free space.</summary>
    public long? RoomLeft { get { lock (_lock) return _medium.Available(WritingLengths); } }

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
        // Once full, it takes chunks again at twice its reserve (as CheckRoom), so that it does not flap.
        if (_freeAtCheck >= (_full is null ? ReserveBytes : 2 * ReserveBytes))
        {
            _full = null;
            return;
        }
        _full = OutOfSpace("chunks (a backup goes on in the next library of its pool, when it has one)");
        throw new LibraryFullException(_full);
    }

    /// <summary>Why the library takes no new <paramref name="what"/>, and what an operator does about it.</summary>
    private string OutOfSpace(string what) => _medium.Kind == "tape"
        ? $"tape library {Id} is nearly full: {Size(Math.Max(0, _freeAtCheck))} left on its cartridges and it keeps {Size(ReserveBytes)}, so it takes no new {what}; " +
          "import cartridges and label them (abk library import, abk volume label), or prune it"
        : $"library {Id} is out of space at {Root}: it keeps {Size(ReserveBytes)} free for commits and only {Size(Math.Max(0, _freeAtCheck))} are, " +
          $"so it takes no new {what}; free space there, prune it, or add a library";

    private static string Size(long bytes) => bytes >= 1 << 20 ? $"{bytes >> 20} MiB" : $"{bytes >> 10} KiB";

    /// <summary>
    /// Looks at the free space again (the media agent's health check): a library below its reserve is full, one
    /// with twice its reserve free again takes new chunks.
    /// </summary>
    public void CheckRoom()
    {
        lock (_lock)
        {
            CloseRetiredReadersLocked(); // a prune's deleted volumes give their space back only once closed
            if (ReserveBytes <= 0)
            {
                // Full without a reserve: an append found nowhere to start a volume (no scratch cartridge); room again now?
                if (_full is not null && _medium.Available(WritingLengths) is > 0) _full = null;
                return;
            }
            _freeAtCheck = Available();
            _appendedSinceCheck = 0;
            if (_full is null && _freeAtCheck < ReserveBytes)
                _full = OutOfSpace("backups");
            else if (_full is not null && _freeAtCheck >= 2 * ReserveBytes) _full = null;
        }
    }
}
