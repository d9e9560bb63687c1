using System.Text.Json;
using System.Text.Json.Serialization;

namespace ActorBackup.Engine.Tape;

/// <summary>
/// How long a simulated tape library takes: the robot's move of a cartridge between a slot and the mail slot, a
/// load (robot move, thread and ready: a mount) and an unload, a cleaning, positioning (tape distance in bytes a
/// second) and streaming (bytes a second). <paramref name="Scale"/>: real seconds waited per simulated second, so
/// that a bench feels the costs in proportion and a test does not wait at all (0). Defaults: an LTO library.
/// </summary>
public sealed record TapeTimings(double MoveSeconds = 10, double LoadSeconds = 30, double UnloadSeconds = 20, double CleanSeconds = 60,
    double PositionBytesPerSecond = 50e6, double StreamBytesPerSecond = 300e6, double Scale = 0)
{
    public static readonly TapeTimings Instant = new(0, 0, 0, 0, double.PositiveInfinity, double.PositiveInfinity);

    public double Position(long distance) => Math.Abs(distance) / PositionBytesPerSecond;
    public double Stream(long bytes) => bytes / StreamBytesPerSecond;
}

/// <summary>
/// A simulated tape library (an autoloader or a changer): slots, drives and cartridges, each cartridge's tape a file
/// under ROOT/cartridges (<see cref="TapePath"/>: the library's volume code writes a volume there, append only, and
/// reads it anywhere, charging the drive for winding and streaming with <see cref="Charge"/>); the changer's state (where each cartridge is, the drives' counters) is what the hardware would remember, kept in
/// ROOT/changer.json. Every move and every read or write costs simulated time (<see cref="TapeTimings"/>), counted in
/// <see cref="SimulatedSeconds"/> and waited in proportion. A real changer (mtx, SCSI) would sit behind the same
/// commands. Thread-safe: a drive does one thing at a time, the robot one move at a time.
/// </summary>
public sealed class TapeChanger : IDisposable
{
    private const long MaxStateBytes = 16 << 20;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };
    private readonly object _lock = new();
    private readonly object[] _driveLocks;
    /// <summary>Per drive, what it is doing while a command's time passes (mounting, unmounting, cleaning), else empty.</summary>
    private readonly string[] _activity;
    private long _simulatedTicks;
    private ChangerState _state;

    public string Root { get; }
    public TapeTimings Timings { get; }

    private TapeChanger(string root, ChangerState state, TapeTimings timings)
    {
        Root = root;
        _state = state;
        Timings = timings;
        _driveLocks = [.. Enumerable.Range(0, state.Drives.Length).Select(_ => new object())];
        _activity = [.. Enumerable.Repeat("", state.Drives.Length)];
    }

    /// <summary>What <paramref name="drive"/> is doing right now: mounting, unmounting or cleaning; empty when none of these.</summary>
    public string Activity(int drive) => drive >= 1 && drive <= _activity.Length ? Volatile.Read(ref _activity[drive - 1]) : "";

    public ChangerState State { get { lock (_lock) return _state; } }

    /// <summary>Simulated seconds spent so far by the robot and every drive.</summary>
    public double SimulatedSeconds => Interlocked.Read(ref _simulatedTicks) / (double)TimeSpan.TicksPerSecond;

    private string StatePath => Path.Combine(Root, "changer.json");
    private string CartridgesDir => Path.Combine(Root, "cartridges");
    public string TapePath(string barcode) => Path.Combine(CartridgesDir, barcode + ".tape");

    /// <summary>
    /// Opens the changer at <paramref name="root"/> (made, private to this user, when new) with the slots and drives
    /// its HOCON declares. A saved state that does not fit them (a cartridge in a slot or drive the config no longer
    /// has) or does not parse stops it, with what to do.
    /// </summary>
    public static TapeChanger Open(string root, ChangerConfig config, TapeTimings timings)
    {
        if (config.Problem() is { } problem) throw new ArgumentException(problem);
        Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(Path.Combine(root, "cartridges"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var state = ChangerState.Empty(config);
        var path = Path.Combine(root, "changer.json");
        if (File.Exists(path))
        {
            Saved saved;
            try
            {
                var length = new FileInfo(path).Length;
                if (length > MaxStateBytes) throw new InvalidDataException($"{length} bytes, more than a changer's state can be");
                saved = JsonSerializer.Deserialize<Saved>(File.ReadAllBytes(path), Json) ?? throw new InvalidDataException("empty");
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException)
            {
                throw new InvalidDataException($"the tape changer's state at {path} is unreadable ({e.Message}): restore it from a copy, or move it away to start with an empty library and import the cartridges again");
            }
            state = saved.Restore(config, path);
        }
        return new TapeChanger(root, state, timings);
    }

    /// <summary>Carries out an operator's (or the media agent's) command: null when done, else why not (nothing changed).</summary>
    public string? Execute(ChangerCommand command)
    {
        ObjectDisposedException.ThrowIf(_disposed, this); // a library opened again has a changer of its own: this one writes no state
        // A mount, unmount or cleaning holds its drive, so that it never swaps a cartridge under a read or write.
        var drive = command switch { MountCartridge m => m.Drive, UnmountCartridge u => u.Drive, CleanDrive c => c.Drive, _ => 0 };
        var driveLock = drive >= 1 && drive <= _driveLocks.Length ? _driveLocks[drive - 1] : new object();
        lock (driveLock)
        {
            ChangerState.Decision decision;
            ChangerState before;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this); // disposed meanwhile: the reopened library's changer owns changer.json
                before = _state;
                decision = _state.Decide(command);
                if (decision.Rejection is not null) return decision.Rejection;
                var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                decision = decision with { Events = [.. decision.Events.Select(e => e is DriveCleaned c ? c with { UnixMs = now } : e)] };
                var after = _state;
                foreach (var e in decision.Events) after = after.Apply(e);
                Save(after); // saved first: a save that fails (a full disk) leaves the state in memory as changer.json has it
                _state = after;
            }
            foreach (var e in decision.Events)
            {
                var doing = e switch { CartridgeMounted => "mounting", CartridgeUnmounted => "unmounting", DriveCleaned => "cleaning", _ => "" };
                if (doing != "" && drive >= 1 && drive <= _activity.Length) Volatile.Write(ref _activity[drive - 1], doing);
                try
                {
                    Carry(e, before);
                }
                finally
                {
                    if (doing != "" && drive >= 1 && drive <= _activity.Length) Volatile.Write(ref _activity[drive - 1], "");
                }
            }
            return null;
        }
    }

    /// <summary>What an applied event takes of time and files (the drive's lock is held).</summary>
    private void Carry(ChangerEvent e, ChangerState before)
    {
        switch (e)
        {
            case CartridgeImported or CartridgeExported:
                Spend(Timings.MoveSeconds);
                break;
            case CartridgeLabelled:
                // The label is the tape's first block: written in a drive like any other (load, write, unload).
                Spend(Timings.LoadSeconds + Timings.UnloadSeconds);
                break;
            case CartridgeMounted:
                Spend(Timings.LoadSeconds);
                break;
            case CartridgeUnmounted u:
                Spend(Timings.Position(before.Drives[u.Drive - 1].Head)); // rewound first
                Spend(Timings.UnloadSeconds);
                break;
            case DriveCleaned:
                Spend(Timings.LoadSeconds + Timings.CleanSeconds + Timings.UnloadSeconds);
                break;
        }
    }

    /// <summary>
    /// Charges the drive for reaching <paramref name="offset"/> from where its head is and streaming
    /// <paramref name="length"/> bytes from there (the library's volume code reads and writes the cartridge's file
    /// itself). The drive's lock is taken: it does one thing at a time.
    /// </summary>
    public void Charge(int drive, long offset, long length)
    {
        if (_disposed) return; // a read still running on a library closed meanwhile: its bytes are there, nothing to charge
        lock (_driveLocks[drive - 1]) Used(drive, offset, offset + length, length);
    }

    /// <summary>The head winds from where it is to <paramref name="from"/>, then streams to <paramref name="to"/>.</summary>
    private void Used(int drive, long from, long to, long bytes)
    {
        double seconds;
        lock (_lock)
        {
            var head = _state.Drives[drive - 1].Head;
            seconds = Timings.Position(from - head) + Timings.Stream(bytes);
            _state = _state.Apply(new DriveUsed(drive, seconds, to));
        }
        Spend(seconds);
    }

    private void Spend(double seconds)
    {
        if (seconds <= 0 || double.IsInfinity(seconds)) return;
        Interlocked.Add(ref _simulatedTicks, (long)(seconds * TimeSpan.TicksPerSecond));
        if (Timings.Scale > 0) Thread.Sleep(TimeSpan.FromSeconds(seconds * Timings.Scale));
    }

    /// <summary>Saves the state (the drives' counters too: call after I/O to keep them across a restart).</summary>
    public void Flush()
    {
        lock (_lock)
            if (!_disposed) Save();
    }

    private void Save() => Save(_state);

    private void Save(ChangerState state) =>
        Posix.Posix.WriteFileDurably(StatePath, f => JsonSerializer.Serialize(f, Saved.Of(state), Json), UnixFileMode.UserRead | UnixFileMode.UserWrite);

    private volatile bool _disposed;

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            // Each change was saved as it was made: this save is belt and braces, and one that fails (a full disk) must not
            // stop the library's close (its writer lock and files would stay held, and a reopen crash on it again).
            try
            {
                Save();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>The state as changer.json holds it.</summary>
    private sealed record Saved(int Slots, int Drives, List<Cartridge> Cartridges, List<TapeDrive> DriveStates)
    {
        public static Saved Of(ChangerState s) => new(s.Config.Slots, s.Config.Drives, [.. s.Cartridges.Values], [.. s.Drives]);

        public ChangerState Restore(ChangerConfig config, string path)
        {
            var state = ChangerState.Empty(config);
            string Misfit(string what) =>
                $"the tape changer's state at {path} has {what}, which the library's HOCON (slots = {config.Slots}, drives = {config.Drives}) does not: " +
                "declare the slots and drives the library has, or export the cartridges first";
            var barcodes = new HashSet<string>(StringComparer.Ordinal);
            var places = new HashSet<Place>();
            foreach (var c in Cartridges ?? [])
            {
                if (c?.Barcode is null) throw new InvalidDataException($"the tape changer's state at {path} is damaged: a cartridge without a barcode");
                if (ChangerState.BadBarcode(c.Barcode) is { } bad) throw new InvalidDataException($"the tape changer's state at {path} is damaged: {bad}");
                if (!barcodes.Add(c.Barcode)) throw new InvalidDataException($"the tape changer's state at {path} is damaged: barcode {c.Barcode} twice");
                if (c.Place.Kind != PlaceKind.Outside && !places.Add(c.Place)) throw new InvalidDataException($"the tape changer's state at {path} is damaged: two cartridges in {c.Place}");
                if (c.Place is { Kind: PlaceKind.Slot, Number: var s } && (s < 1 || s > config.Slots)) throw new InvalidDataException(Misfit($"cartridge {c.Barcode} in slot {s}"));
                if (c.Place is { Kind: PlaceKind.Drive, Number: var d } && (d < 1 || d > config.Drives)) throw new InvalidDataException(Misfit($"cartridge {c.Barcode} in drive {d}"));
                state = state with { Cartridges = state.Cartridges.SetItem(c.Barcode, c with { Kind = ChangerState.KindOf(c.Barcode), Label = c.Label ?? "" }) };
            }
            foreach (var d in DriveStates ?? [])
            {
                if (d is null || d.Number < 1 || d.Number > config.Drives) continue; // a drive the library no longer declares, empty (checked above)
                var holds = state.Cartridges.Values.FirstOrDefault(c => c.Place == Place.Drive(d.Number))?.Barcode ?? "";
                state = state with { Drives = state.Drives.SetItem(d.Number - 1, d with { Cartridge = holds, Head = 0, Failed = d.Failed ?? "" }) };
            }
            return state;
        }
    }
}
