using ActorBackup.Engine.Library;

namespace ActorBackup.Engine.Tape;

/// <summary>
/// A tape library's volumes: each volume is one cartridge (its tape the cartridge's file), started on a labelled
/// scratch cartridge and sealed when the tape is full, so that a backup larger than a cartridge goes on on the next
/// (spanning cartridges); the index says (volume, offset), and the changer which cartridge holds the volume. Each
/// drive is a write stream: jobs on different drives (the manager's, named by their tickets) write their own
/// cartridges at once. Before a read or write, the cartridge is mounted (in the drive holding it, else as
/// <see cref="Mount"/> chooses: the job's own drive first; the cartridge a drive held goes back to its slot) and the
/// drive charged for winding and streaming. A volume a
/// prune emptied is erased and its cartridge is scratch again, label kept (Append, Full, Recycle, Append).
/// </summary>
public sealed class TapeMedium : IVolumeMedium
{
    private readonly TapeChanger changer;
    private readonly object _mountLock = new();
    private readonly long[] _lastUse;
    /// <summary>Per drive, the job that last mounted or used it (a data-plane thread says whose it is: <see cref="WorkingFor"/>).</summary>
    private readonly string[] _jobs;
    /// <summary>Per drive, the volume last written there: while its cartridge is in the drive, a write stream's.</summary>
    private readonly uint[] _writtenIn;
    private long _uses;
    private long _mounts;

    [ThreadStatic] private static string? t_job;
    [ThreadStatic] private static int t_drive;
    [ThreadStatic] private static bool t_writes;

    /// <summary>
    /// The medium of library <paramref name="libraryId"/> on <paramref name="changer"/>. A cartridge the changer calls
    /// scratch whose tape starts with a volume header of this library (a changer state lost and the cartridges imported
    /// again) holds that volume again: it is never written over, and the library finds its records.
    /// </summary>
    public TapeMedium(TapeChanger changer, string libraryId)
    {
        this.changer = changer;
        _lastUse = new long[changer.State.Drives.Length];
        _jobs = [.. Enumerable.Repeat("", changer.State.Drives.Length)];
        _writtenIn = new uint[changer.State.Drives.Length];
        File.SetUnixFileMode(Path.Combine(changer.Root, "cartridges"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (var c in changer.State.Scratch.ToList())
            if (Holds(changer.TapePath(c.Barcode)) is { } header && header.LibraryId == libraryId && changer.State.HoldingVolume(header.VolumeNumber) is null)
                changer.Execute(new AssignVolume(header.VolumeNumber, c.Barcode));
    }

    public void Dispose() => changer.Dispose();

    /// <summary>
    /// The job whose reads and writes this thread carries out from now on (a data-plane connection's), or none, and the
    /// drive the manager gave it (0: none named): its cartridges are mounted there and it writes its own volume there.
    /// </summary>
    /// <param name="writes">the job writes this library: its reads go to another drive than the one it writes in</param>
    /// <returns>what puts back the thread's job and drive from before (a call made in place, on a thread that serves a job of its own)</returns>
    public static Served WorkingFor(string? job, int drive = 0, bool writes = false)
    {
        var before = new Served(t_job, t_drive, t_writes);
        t_job = job;
        t_drive = drive;
        t_writes = writes;
        return before;
    }

    /// <summary>A thread's job and drive as they were: disposing puts them back.</summary>
    public readonly struct Served(string? job, int drive, bool writes) : IDisposable
    {
        public void Dispose()
        {
            t_job = job;
            t_drive = drive;
            t_writes = writes;
        }
    }

    /// <summary>The drive this thread's job holds, when the library has it: each drive writes its own cartridge.</summary>
    public int Stream => t_drive >= 1 && t_drive <= _jobs.Length ? t_drive : 0;

    /// <summary>The job that last used <paramref name="drive"/>; empty: none since the library opened.</summary>
    public string JobOn(int drive)
    {
        lock (_mountLock) return drive >= 1 && drive <= _jobs.Length ? _jobs[drive - 1] : "";
    }

    public string Kind => "tape";

    public TapeChanger Changer => changer;

    /// <summary>Cartridges mounted for reads and writes since the library opened (a restore's order shows in it).</summary>
    public long Mounts => Interlocked.Read(ref _mounts);

    public string PathOf(uint volume) => changer.State.HoldingVolume(volume) is { Place.Kind: not PlaceKind.Outside } c
        ? changer.TapePath(c.Barcode)
        : Path.Combine(changer.Root, "cartridges", $"volume-{volume}-is-not-in-the-library"); // no such file: the library reports the volume missing

    public IEnumerable<string> Files() =>
        changer.State.Cartridges.Values.Where(c => c.Volume != 0 && c.Place.Kind != PlaceKind.Outside).OrderBy(c => c.Volume)
            .Select(c => changer.TapePath(c.Barcode)).Where(File.Exists).ToList();

    public (string Path, string Label) Allocate(uint volume, string libraryId)
    {
        // Assigned already (an allocation that failed after it, or a crash before the volume's header reached the tape):
        // the same cartridge again. Else a scratch cartridge whose tape holds no volume (one of another library's is
        // skipped, never written over; the inventory shows it as scratch: export it).
        if (changer.State.HoldingVolume(volume) is null)
        {
            var blank = changer.State.ScratchByReach(Stream).FirstOrDefault(c => Holds(changer.TapePath(c.Barcode)) is null);
            if (blank is null) throw new LibraryFullException($"tape library {libraryId}: {ChangerState.NoScratch}");
            if (changer.Execute(new AssignVolume(volume, blank.Barcode)) is { } why) throw new LibraryFullException($"tape library {libraryId}: {why}");
        }
        var cartridge = changer.State.HoldingVolume(volume)!;
        var path = changer.TapePath(cartridge.Barcode);
        if (Holds(path) is { } header)
        {
            // Written over only when it holds no volume header: a volume the library's table does not know is data lost otherwise.
            changer.Execute(new RecycleVolume(volume)); // the assignment undone (the tape is left as it is)
            throw new IOException($"cartridge {cartridge.Barcode} is to take volume {volume} but holds volume {header.VolumeNumber} of library {header.LibraryId}: " +
                                  "it is not written over; export it, or recycle that volume first");
        }
        File.Delete(path); // the scratch cartridge's tape is written from its start
        Mount(volume, write: true);
        return (path, cartridge.Label);
    }

    public uint HighestWritten() =>
        changer.State.Cartridges.Values.Where(c => c.Volume != 0 && Holds(changer.TapePath(c.Barcode)) is not null).Select(c => c.Volume).DefaultIfEmpty(0u).Max();

    /// <summary>The volume header at the start of the tape file, or null (no file, empty, or no whole header: nothing to keep).</summary>
    private static Volumes.VolumeFormat.Header? Holds(string path)
    {
        if (!File.Exists(path) || new FileInfo(path).Length == 0) return null;
        try
        {
            using var reader = new Volumes.VolumeReader(path);
            return reader.Header;
        }
        catch (Volumes.NewerFormatException)
        {
            // A newer build's volume: kept, as another library's is (never taken for blank and written over).
            return new Volumes.VolumeFormat.Header(0, "(a volume of a newer ActorBackup's format)", "", DateTimeOffset.UnixEpoch, 0);
        }
        catch (Exception e) when (e is Volumes.VolumeCorruptException or FileNotFoundException or DirectoryNotFoundException)
        {
            return null; // unreadable as a volume, or gone since the look
        }
    }

    public void Reading(uint volume, long offset, long length)
    {
        // A volume a prune just recycled: a read that looked its chunk up before still finds the bytes (the library's
        // retired reader holds them), with nothing to mount.
        if (changer.State.HoldingVolume(volume) is null) return;
        changer.Charge(Mount(volume, write: false), offset, length);
    }

    public void Writing(uint volume, long offset, long length) => changer.Charge(Mount(volume, write: true), offset, length);

    public long Release(uint volume, bool retire = false)
    {
        var holder = changer.State.HoldingVolume(volume);
        if (holder is null) return 0;
        var path = changer.TapePath(holder.Barcode);
        var freed = File.Exists(path) ? new FileInfo(path).Length : 0;
        if (retire)
        {
            changer.Execute(new RetireVolume(volume)); // out of service, its tape left as it is: the operator exports it
            return freed;
        }
        File.Delete(path); // erased
        changer.Execute(new RecycleVolume(volume));
        return freed;
    }

    public void Committed(uint volume, long length) => changer.Execute(new WriteFileMark(volume, length));

    public string Where(uint volume, long offset)
    {
        if (changer.State.HoldingVolume(volume) is not { } c) return $"volume {volume} at offset {offset}";
        var (file, within) = c.Position(offset);
        return $"cartridge {c.Barcode} (volume {volume}), tape file {file}, {within} bytes into it";
    }

    /// <summary>Whether this thread's stream should take over the volume: its cartridge is in the stream's drive or in no drive (not in another stream's).</summary>
    public bool Near(uint volume) => changer.State.HoldingVolume(volume) is not { Place.Kind: PlaceKind.Drive } c || c.Place.Number == Stream;

    /// <summary>
    /// What is left on the cartridges being written and on every scratch cartridge a volume may start on: not one whose
    /// tape holds another library's volume (<see cref="Allocate"/> skips it: counted, the library would take backups it
    /// has no room for).
    /// </summary>
    public long? Available(IEnumerable<long> writing)
    {
        var state = changer.State;
        var capacity = state.Config.CartridgeCapacity;
        return writing.Sum(w => Math.Max(0, capacity - w)) + state.Scratch.Count(c => Holds(changer.TapePath(c.Barcode)) is null) * capacity;
    }

    /// <summary>
    /// The drive holding the volume's cartridge, mounted there now if it was not: a write in the drive the thread's job
    /// holds; a read there too, unless the job writes this library (a prune's copy reads one cartridge and writes
    /// another: two drives, not one swapping them); else an empty drive, else the one used least recently whose
    /// cartridge no stream writes, else the job's own (any, for a thread with no drive).
    /// </summary>
    private int Mount(uint volume, bool write)
    {
        lock (_mountLock)
        {
            var state = changer.State;
            var cartridge = state.HoldingVolume(volume) ?? throw new IOException($"no cartridge holds volume {volume} of the tape library: see abk library inventory");
            if (cartridge.Place.Kind == PlaceKind.Outside)
                throw new IOException($"volume {volume} is on cartridge {cartridge.Barcode}, which is outside the library: import it (abk library import)");
            int drive;
            var mounted = false;
            if (cartridge.Place.Kind == PlaceKind.Drive) drive = cartridge.Place.Number;
            else
            {
                var usable = state.Drives.Where(d => d.Failed == "").ToList();
                if (usable.Count == 0) throw new IOException("every drive of the tape library has failed: see abk drive list");
                bool Writes(TapeDrive d) => d.Cartridge != "" && _writtenIn[d.Number - 1] != 0 && state.HoldingVolume(_writtenIn[d.Number - 1])?.Barcode == d.Cartridge;
                // The drive the job holds is its own (the manager gives it to no other job): its writes go there, and so
                // do the reads of a job that does not write this library. A job that writes it (a prune's copy) reads in
                // an empty drive or one no stream writes, so that its two cartridges do not take turns in one drive;
                // with none, in its own. A thread with no drive: an empty one, else the least used no stream writes.
                var own = usable.FirstOrDefault(d => d.Number == Stream);
                var others = usable.Where(d => d.Number != Stream && !Writes(d)).ToList();
                var chosen = (write || !t_writes ? own : null)
                             ?? others.FirstOrDefault(d => d.Cartridge == "") ?? others.MinBy(d => _lastUse[d.Number - 1])
                             ?? own ?? usable.MinBy(d => _lastUse[d.Number - 1])!;
                drive = chosen.Number;
                if (chosen.Cartridge != "" && changer.Execute(new UnmountCartridge(drive)) is { } cannot)
                    throw new IOException($"cannot free drive {drive} for volume {volume}: {cannot}");
                if (changer.Execute(new MountCartridge(drive, changer.State.Cartridge(cartridge.Barcode)!.Place.Number)) is { } refused)
                    throw new IOException($"cannot mount cartridge {cartridge.Barcode} (volume {volume}) in drive {drive}: {refused}");
                Interlocked.Increment(ref _mounts);
                mounted = true;
            }
            _lastUse[drive - 1] = ++_uses;
            if (write) _writtenIn[drive - 1] = volume;
            else if (mounted) _writtenIn[drive - 1] = 0; // it holds a cartridge being read now
            if (t_job is { Length: > 0 } job) _jobs[drive - 1] = job;
            return drive;
        }
    }
}
