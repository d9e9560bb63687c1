using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

/// <summary>
/// Where a library's volumes live and what it takes to reach them: a folder of files (<see cref="DiskMedium"/>), or
/// cartridges behind drives (Tape/TapeMedium), whose reads and writes wait for a mount and cost positioning. The
/// library's volume code (format, recovery, prune, verify) is the same on both: it reads and writes the file
/// <see cref="PathOf"/> gives, and tells the medium first. The library owns its medium (and disposes it).
/// </summary>
public interface IVolumeMedium : IDisposable
{
    /// <summary>disk or tape, as the HOCON says.</summary>
    string Kind { get; }

    /// <summary>The file holding volume <paramref name="volume"/>'s bytes (one that does not exist when the volume is not here).</summary>
    string PathOf(uint volume);

    /// <summary>Every volume file there is (recovery and rebuild read each one's header).</summary>
    IEnumerable<string> Files();

    /// <summary>Where a new volume goes and its label; <see cref="LibraryFullException"/> when there is nowhere.</summary>
    (string Path, string Label) Allocate(uint volume, string libraryId);

    /// <summary>Before <paramref name="length"/> bytes of the volume are read from <paramref name="offset"/>.</summary>
    void Reading(uint volume, long offset, long length);

    /// <summary>Before <paramref name="length"/> bytes are appended to the volume at <paramref name="offset"/>.</summary>
    void Writing(uint volume, long offset, long length);

    /// <summary>
    /// The volume holds nothing any more (a prune moved what was live): its space is given back, or with
    /// <paramref name="retire"/> its medium leaves service (a cartridge with errors). Returns the bytes.
    /// </summary>
    long Release(uint volume, bool retire = false);

    /// <summary>Bytes the library can still write, <paramref name="writing"/> being the lengths of the volumes being written; null: the file system's free space.</summary>
    long? Available(IEnumerable<long> writing);

    /// <summary>
    /// The highest number of a volume the medium holds written (a volume file; a cartridge assigned one whose tape has a
    /// header), whether the library's table knows it or not (a newer build's, a damaged one kept, after the journal went
    /// back): a new volume takes a number above it, never that file's or cartridge's.
    /// </summary>
    uint HighestWritten();

    /// <summary>
    /// Which of the library's write streams this thread appends through: each stream writes its own volume. 0 (a disk
    /// library always): the library's one stream, shared by every writer. On tape, the drive the thread's job holds,
    /// so that jobs on different drives each write their own cartridge.
    /// </summary>
    int Stream { get; }

    /// <summary>Whether this thread's stream should take over the volume being written that no stream holds (on tape: its cartridge is not in another stream's drive).</summary>
    bool Near(uint volume) => true;

    /// <summary>What the library made durable on the volume up to <paramref name="length"/> (a commit, or its seal): on tape, a file mark there.</summary>
    void Committed(uint volume, long length) { }

    /// <summary>Where <paramref name="offset"/> of the volume is, in an operator's words (for a damage report).</summary>
    string Where(uint volume, long offset) => $"volume {volume} at offset {offset}";
}

/// <summary>A disk library's volumes: ROOT/volumes/vol-NNNNNN.abv, read and written at no cost beyond the disk's.</summary>
public sealed class DiskMedium(string root) : IVolumeMedium
{
    private string VolumesDir => Path.Combine(root, "volumes");

    public string Kind => "disk";

    public string PathOf(uint volume) => Path.Combine(VolumesDir, VolumeFormat.VolumeFileName(volume));

    public IEnumerable<string> Files() => Directory.Exists(VolumesDir) ? Directory.EnumerateFiles(VolumesDir, "vol-*.abv").Order(StringComparer.Ordinal) : [];

    public (string Path, string Label) Allocate(uint volume, string libraryId) => (PathOf(volume), VolumeFormat.Label(libraryId, volume));

    public uint HighestWritten()
    {
        uint highest = 0;
        foreach (var file in Files())
        {
            var stem = Path.GetFileNameWithoutExtension(file);
            if (uint.TryParse(stem.AsSpan(4), out var n) && n <= Index.ChunkLocation.MaxVolume) highest = Math.Max(highest, n);
        }
        return highest;
    }

    public void Reading(uint volume, long offset, long length) { }

    public void Writing(uint volume, long offset, long length) { }

    public long Release(uint volume, bool retire = false)
    {
        var path = PathOf(volume);
        var freed = File.Exists(path) ? new FileInfo(path).Length : 0;
        File.Delete(path);
        return freed;
    }

    public long? Available(IEnumerable<long> writing) => null;

    public int Stream => 0;

    public void Dispose() { }
}
