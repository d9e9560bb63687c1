using System.Collections.Immutable;
using System.Text.RegularExpressions;

namespace ActorBackup.Engine.Tape;

/// <summary>
/// What a tape library is made of, as its HOCON declares it: storage slots, drives, the capacity of a data
/// cartridge, how many cleanings a cleaning cartridge gives, and the cleaning policy (a drive is due for cleaning
/// after so many mounts or hours of use since its last; 0: no such limit). <paramref name="CleaningRequiredAfterHours"/>:
/// the simulated drive itself raises "cleaning required" after that much use (0: never), as real drives do.
/// </summary>
public sealed record ChangerConfig(int Slots, int Drives, long CartridgeCapacity, int CleaningUses = 50, int CleanAfterMounts = 0, double CleanAfterHours = 0,
    double CleaningRequiredAfterHours = 0)
{
    public const int MaxSlots = 10_000;
    public const int MaxDrives = 64;
    public const long MaxCartridgeCapacity = 1L << 40;

    /// <summary>Why these numbers make no library, or null.</summary>
    public string? Problem() =>
        Slots is < 1 or > MaxSlots ? $"slots must be 1 to {MaxSlots}, got {Slots}"
        : Drives is < 1 or > MaxDrives ? $"drives must be 1 to {MaxDrives}, got {Drives}"
        : CartridgeCapacity < 1 << 20 || CartridgeCapacity > MaxCartridgeCapacity ? $"cartridge-capacity must be 1 MiB to 1 TiB (a volume is one cartridge), got {CartridgeCapacity}"
        : CleaningUses < 1 ? $"cleaning-uses must be at least 1, got {CleaningUses}"
        : CleanAfterMounts < 0 || CleanAfterHours < 0 || CleaningRequiredAfterHours < 0 ? "cleaning limits cannot be negative"
        : null;
}

public enum CartridgeKind { Data, Cleaning }

public enum PlaceKind { Slot, Drive, Outside }

/// <summary>Where a cartridge is: a storage slot, a drive (both numbered from 1), or outside the library (exported).</summary>
public readonly record struct Place(PlaceKind Kind, int Number)
{
    public static Place Slot(int n) => new(PlaceKind.Slot, n);
    public static Place Drive(int n) => new(PlaceKind.Drive, n);
    public static readonly Place Outside = new(PlaceKind.Outside, 0);

    public override string ToString() => Kind switch
    {
        PlaceKind.Slot => $"slot {Number}",
        PlaceKind.Drive => $"drive {Number}",
        _ => "outside the library",
    };
}

/// <summary>
/// A cartridge the library has held: the barcode on its case (cleaning cartridges' start with CLN, the industry's
/// convention), the volume label written on its tape (empty: blank), where it is, the slot it goes back to when
/// unloaded, for a cleaning cartridge how often it has cleaned (worn out at the config's cleaning-uses), and the
/// library volume written on it (0: none: a labelled cartridge without one is scratch, free to write on).
/// </summary>
/// <param name="Retired">out of service (its volume retired, its data copied away): never written again</param>
/// <param name="Marks">where the file marks on its tape are (byte offsets, ascending): each commit of the volume and its seal end a tape file</param>
public sealed record Cartridge(string Barcode, CartridgeKind Kind, Place Place, int Home, string Label = "", int Uses = 0, uint Volume = 0, bool Retired = false,
    IReadOnlyList<long>? Marks = null)
{
    /// <summary>Where <paramref name="offset"/> is on the tape as a drive positions: the tape file (0: up to the first file mark) and the bytes into it.</summary>
    public (int File, long Within) Position(long offset)
    {
        var marks = Marks ?? [];
        var file = 0;
        while (file < marks.Count && marks[file] <= offset) file++;
        return (file, offset - (file == 0 ? 0 : marks[file - 1]));
    }
}

/// <summary>
/// A drive: the cartridge in it, where its head is (bytes from the start of the tape), and the counters the
/// cleaning policy reads (all mounts and use; those since its last cleaning); Failed: why it is out of service.
/// </summary>
public sealed record TapeDrive(int Number, string Cartridge = "", long Head = 0, int Mounts = 0, double UsedSeconds = 0, int MountsSinceCleaning = 0,
    double UsedSecondsSinceCleaning = 0, bool CleaningRequired = false, int Cleanings = 0, string Failed = "", long LastCleanedUnixMs = 0);

// What an operator or the media agent asks of the changer.
public abstract record ChangerCommand;
/// <summary>A cartridge put into the mail slot is taken into the first free storage slot.</summary>
public sealed record ImportCartridge(string Barcode) : ChangerCommand;
/// <summary>A cartridge is put out through the mail slot (it keeps its data, and can be imported again).</summary>
public sealed record ExportCartridge(string Barcode) : ChangerCommand;
/// <summary>The cartridge in a slot gets a volume label written on its tape.</summary>
public sealed record LabelCartridge(int Slot, string Label) : ChangerCommand;
public sealed record MountCartridge(int Drive, int Slot) : ChangerCommand;
/// <summary>Slot 0: back to the cartridge's home slot (or the first free one when that was taken).</summary>
public sealed record UnmountCartridge(int Drive, int Slot = 0) : ChangerCommand;
public sealed record CleanDrive(int Drive) : ChangerCommand;
/// <summary>The library starts volume <paramref name="Volume"/>: on a labelled scratch cartridge (one in a drive first).</summary>
/// <param name="Barcode">that cartridge (a volume found again on its tape); empty: the changer picks one</param>
public sealed record AssignVolume(uint Volume, string Barcode = "") : ChangerCommand;
/// <summary>Volume <paramref name="Volume"/> holds nothing any more (a prune moved its chunks): its cartridge is scratch again, label kept.</summary>
public sealed record RecycleVolume(uint Volume) : ChangerCommand;
/// <summary>Volume <paramref name="Volume"/> was emptied to take its cartridge out of service: retired, never written again.</summary>
public sealed record RetireVolume(uint Volume) : ChangerCommand;

/// <summary>A file mark at <paramref name="At"/> on the volume's cartridge (the end of its data there): what a commit or a seal writes.</summary>
public sealed record WriteFileMark(uint Volume, long At) : ChangerCommand;

// What happened, applied to the state (and saved with it).
public abstract record ChangerEvent;
public sealed record CartridgeImported(string Barcode, CartridgeKind Kind, int Slot) : ChangerEvent;
public sealed record CartridgeExported(string Barcode) : ChangerEvent;
public sealed record CartridgeLabelled(string Barcode, string Label) : ChangerEvent;
public sealed record CartridgeMounted(string Barcode, int Drive) : ChangerEvent;
public sealed record CartridgeUnmounted(string Barcode, int Drive, int Slot) : ChangerEvent;
/// <summary>UnixMs: when (the changer stamps it as it applies the event).</summary>
public sealed record DriveCleaned(int Drive, string CleaningCartridge, long UnixMs = 0) : ChangerEvent;
/// <summary>A drive read, wrote or positioned for so many (simulated) seconds, ending with its head there.</summary>
public sealed record DriveUsed(int Drive, double Seconds, long Head) : ChangerEvent;
public sealed record VolumeAssigned(string Barcode, uint Volume) : ChangerEvent;
public sealed record VolumeRecycled(string Barcode) : ChangerEvent;
public sealed record CartridgeRetired(string Barcode) : ChangerEvent;
public sealed record FileMarkWritten(string Barcode, long At) : ChangerEvent;

/// <summary>
/// The state of a (simulated) tape changer: its cartridges and drives. Decide checks an operator's or the media
/// agent's command against it and says what happens, or why not, in words an operator can act on; Apply moves the
/// state on. No I/O here: <see cref="TapeChanger"/> times the moves, keeps the cartridges' data and saves the state.
/// </summary>
public sealed partial record ChangerState(ChangerConfig Config, ImmutableSortedDictionary<string, Cartridge> Cartridges, ImmutableArray<TapeDrive> Drives)
{
    public static ChangerState Empty(ChangerConfig config) =>
        new(config, ImmutableSortedDictionary.Create<string, Cartridge>(StringComparer.Ordinal), [.. Enumerable.Range(1, config.Drives).Select(n => new TapeDrive(n))]);

    [GeneratedRegex("^[A-Z0-9]{1,16}$")]
    private static partial Regex BarcodePattern();

    public const string CleaningPrefix = "CLN";

    public static CartridgeKind KindOf(string barcode) => barcode.StartsWith(CleaningPrefix, StringComparison.Ordinal) ? CartridgeKind.Cleaning : CartridgeKind.Data;

    /// <summary>Why <paramref name="barcode"/> is not a barcode, or null.</summary>
    public static string? BadBarcode(string barcode) =>
        BarcodePattern().IsMatch(barcode) ? null : $"'{barcode}' is not a barcode: 1 to 16 capital letters and digits, such as ABC123L8 (cleaning cartridges: CLN001L1)";

    public Cartridge? InSlot(int slot) => Cartridges.Values.FirstOrDefault(c => c.Place == Place.Slot(slot));

    public Cartridge? Cartridge(string barcode) => Cartridges.GetValueOrDefault(barcode);

    /// <summary>The cartridge whose home is <paramref name="slot"/> while a drive holds it, or null.</summary>
    public Cartridge? OutOfSlot(int slot) => Cartridges.Values.FirstOrDefault(c => c.Home == slot && c.Place.Kind == PlaceKind.Drive);

    /// <summary>Why nothing can be taken from <paramref name="slot"/>: empty, or its cartridge is in a drive (which, and what to do).</summary>
    private string EmptySlot(int slot) => OutOfSlot(slot) is { } away
        ? $"slot {slot} is empty: its cartridge {away.Barcode} is in {away.Place}; wait for the job using it to end, or unmount it (abk drive unmount) when none is"
        : $"slot {slot} is empty: see abk library inventory";

    /// <summary>The data cartridge in the library whose tape carries <paramref name="label"/>.</summary>
    public Cartridge? Labelled(string label) => Cartridges.Values.FirstOrDefault(c => c.Label == label);

    /// <summary>The cartridge holding library volume <paramref name="volume"/>, in the library or not.</summary>
    public Cartridge? HoldingVolume(uint volume) => volume == 0 ? null : Cartridges.Values.FirstOrDefault(c => c.Volume == volume);

    /// <summary>Labelled data cartridges in the library that hold no volume: what the library can still write on.</summary>
    public IEnumerable<Cartridge> Scratch => Cartridges.Values.Where(c => c is { Kind: CartridgeKind.Data, Volume: 0, Retired: false } && c.Label != "" && c.Place.Kind != PlaceKind.Outside);

    /// <summary><see cref="Scratch"/> in the order a new volume takes them: one in a drive first (no mount), then by slot.</summary>
    /// <summary>
    /// The scratch cartridges in the order a write for <paramref name="drive"/> takes them: one in that drive (no mount),
    /// then those in slots, then those in other drives (whose jobs they would be taken from). Drive 0 (a write no drive
    /// was named for): one in any drive first.
    /// </summary>
    public IEnumerable<Cartridge> ScratchByReach(int drive = 0) =>
        Scratch.OrderBy(c => c.Place.Kind != PlaceKind.Drive ? 1 : drive == 0 || c.Place.Number == drive ? 0 : 2).ThenBy(c => c.Place.Number);

    public const string NoScratch = "no labelled cartridge is free to write on: import cartridges and label them (abk library import, abk volume label), or prune to recycle some";

    public bool Worn(Cartridge c) => c.Kind == CartridgeKind.Cleaning && c.Uses >= Config.CleaningUses;

    /// <summary>Why the drive is due for cleaning (the drive asked, or a policy limit was reached), or null.</summary>
    public string? CleaningDue(TapeDrive d) =>
        d.CleaningRequired ? "the drive reported cleaning required"
        : Config.CleanAfterMounts > 0 && d.MountsSinceCleaning >= Config.CleanAfterMounts ? $"{d.MountsSinceCleaning} mounts since its last cleaning (policy: {Config.CleanAfterMounts})"
        : Config.CleanAfterHours > 0 && d.UsedSecondsSinceCleaning >= Config.CleanAfterHours * 3600 ? $"{d.UsedSecondsSinceCleaning / 3600:F1} hours of use since its last cleaning (policy: {Config.CleanAfterHours})"
        : null;

    private int? FreeSlot(int preferred = 0)
    {
        if (preferred > 0 && preferred <= Config.Slots && InSlot(preferred) is null) return preferred;
        var taken = Cartridges.Values.Where(c => c.Place.Kind == PlaceKind.Slot).Select(c => c.Place.Number).ToHashSet();
        for (var s = 1; s <= Config.Slots; s++)
            if (!taken.Contains(s)) return s;
        return null;
    }

    public sealed record Decision(IReadOnlyList<ChangerEvent> Events, string? Rejection)
    {
        public static Decision Reject(string why) => new([], why);
        public static Decision Of(params ChangerEvent[] events) => new(events, null);
    }

    private string? BadDrive(int drive) => drive < 1 || drive > Drives.Length ? $"there is no drive {drive}: the library has drives 1 to {Drives.Length}" : null;
    private string? BadSlot(int slot) => slot < 1 || slot > Config.Slots ? $"there is no slot {slot}: the library has slots 1 to {Config.Slots}" : null;

    public Decision Decide(ChangerCommand command)
    {
        switch (command)
        {
            case ImportCartridge i:
            {
                if (BadBarcode(i.Barcode) is { } bad) return Decision.Reject(bad);
                if (Cartridge(i.Barcode) is { Place.Kind: not PlaceKind.Outside } here)
                    return Decision.Reject($"a cartridge with barcode {i.Barcode} is already in {here.Place}: two cartridges cannot share a barcode");
                if (FreeSlot(Cartridge(i.Barcode)?.Home ?? 0) is not { } slot)
                    return Decision.Reject($"all {Config.Slots} slots are full: export a cartridge first (abk library export)");
                return Decision.Of(new CartridgeImported(i.Barcode, KindOf(i.Barcode), slot));
            }
            case ExportCartridge e:
            {
                var c = Cartridge(e.Barcode);
                if (c is null || c.Place.Kind == PlaceKind.Outside) return Decision.Reject($"no cartridge {e.Barcode} in the library: see abk library inventory");
                if (c.Place.Kind == PlaceKind.Drive) return Decision.Reject($"cartridge {e.Barcode} is in {c.Place}: unmount it first (abk drive unmount)");
                return Decision.Of(new CartridgeExported(e.Barcode));
            }
            case LabelCartridge l:
            {
                if (BadSlot(l.Slot) is { } badSlot) return Decision.Reject(badSlot);
                if (BadBarcode(l.Label) is { } bad) return Decision.Reject(bad.Replace("is not a barcode", "is not a label"));
                // The slot's own cartridge, also while a drive has it (a job, or a file index read after a backup, mounted it):
                // what stands against labelling it is said first, then that it must come back to its slot.
                if ((InSlot(l.Slot) ?? OutOfSlot(l.Slot)) is not { } c) return Decision.Reject(EmptySlot(l.Slot));
                var at = c.Place.Kind == PlaceKind.Slot ? $"in slot {l.Slot}" : $"from slot {l.Slot} (now in {c.Place})";
                if (c.Kind == CartridgeKind.Cleaning) return Decision.Reject($"slot {l.Slot} holds the cleaning cartridge {c.Barcode}, which takes no label");
                if (c.Label == l.Label) return Decision.Of(); // labelled so already
                if (c.Volume != 0) return Decision.Reject($"cartridge {c.Barcode} {at} is labelled {c.Label} and holds volume {c.Volume}: a cartridge is labelled again only once recycled");
                if (c.Retired) return Decision.Reject($"cartridge {c.Barcode} {at} is retired (out of service): export it (abk library export)");
                if (c.Place.Kind != PlaceKind.Slot) return Decision.Reject(EmptySlot(l.Slot));
                if (Labelled(l.Label) is { } other) return Decision.Reject($"label {l.Label} is on cartridge {other.Barcode} already: labels are unique in a library");
                return Decision.Of(new CartridgeLabelled(c.Barcode, l.Label));
            }
            case MountCartridge m:
            {
                if ((BadDrive(m.Drive) ?? BadSlot(m.Slot)) is { } bad) return Decision.Reject(bad);
                var drive = Drives[m.Drive - 1];
                if (drive.Failed != "") return Decision.Reject($"drive {m.Drive} has failed ({drive.Failed}): use another");
                if (InSlot(m.Slot) is not { } c) return Decision.Reject(EmptySlot(m.Slot));
                if (drive.Cartridge != "") return Decision.Reject($"drive {m.Drive} holds cartridge {drive.Cartridge}: unmount it first (abk drive unmount)");
                if (c.Kind == CartridgeKind.Cleaning) return Decision.Reject($"{c.Barcode} is a cleaning cartridge: clean a drive with abk drive clean");
                return Decision.Of(new CartridgeMounted(c.Barcode, m.Drive));
            }
            case UnmountCartridge u:
            {
                if (BadDrive(u.Drive) is { } bad) return Decision.Reject(bad);
                if (u.Slot != 0 && BadSlot(u.Slot) is { } badSlot) return Decision.Reject(badSlot);
                var drive = Drives[u.Drive - 1];
                if (drive.Cartridge == "") return Decision.Reject($"drive {u.Drive} is empty");
                if (u.Slot != 0 && InSlot(u.Slot) is { } there) return Decision.Reject($"slot {u.Slot} holds cartridge {there.Barcode}: name an empty slot, or none (its home slot)");
                if (FreeSlot(u.Slot != 0 ? u.Slot : Cartridge(drive.Cartridge)!.Home) is not { } slot) return Decision.Reject("no slot is free: export a cartridge first");
                return Decision.Of(new CartridgeUnmounted(drive.Cartridge, u.Drive, slot));
            }
            case CleanDrive cd:
            {
                if (BadDrive(cd.Drive) is { } bad) return Decision.Reject(bad);
                var drive = Drives[cd.Drive - 1];
                if (drive.Failed != "") return Decision.Reject($"drive {cd.Drive} has failed ({drive.Failed}): cleaning does not mend it");
                if (drive.Cartridge != "") return Decision.Reject($"drive {cd.Drive} holds cartridge {drive.Cartridge}: unmount it first");
                var cleaning = Cartridges.Values.Where(c => c is { Kind: CartridgeKind.Cleaning, Place.Kind: PlaceKind.Slot } && !Worn(c)).OrderBy(c => c.Uses).FirstOrDefault();
                if (cleaning is null)
                    return Decision.Reject(Cartridges.Values.Any(c => c is { Kind: CartridgeKind.Cleaning, Place.Kind: PlaceKind.Slot })
                        ? $"every cleaning cartridge in the library is worn out ({Config.CleaningUses} uses): export it and import a new one (barcode {CleaningPrefix}...)"
                        : $"no cleaning cartridge in the library: import one (barcode {CleaningPrefix}...)");
                return Decision.Of(new DriveCleaned(cd.Drive, cleaning.Barcode));
            }
            case AssignVolume a:
            {
                if (HoldingVolume(a.Volume) is { } has)
                    return has.Barcode == a.Barcode || a.Barcode == "" ? Decision.Of() // assigned already: the same cartridge
                        : Decision.Reject($"volume {a.Volume} is on cartridge {has.Barcode} already");
                var scratch = a.Barcode != "" ? Scratch.FirstOrDefault(c => c.Barcode == a.Barcode) : ScratchByReach().FirstOrDefault();
                if (scratch is null) return Decision.Reject(NoScratch);
                return Decision.Of(new VolumeAssigned(scratch.Barcode, a.Volume));
            }
            case RecycleVolume r:
                return HoldingVolume(r.Volume) is { } holder ? Decision.Of(new VolumeRecycled(holder.Barcode)) : Decision.Of();
            case RetireVolume r:
                return HoldingVolume(r.Volume) is { } retiring ? Decision.Of(new CartridgeRetired(retiring.Barcode)) : Decision.Of();
            case WriteFileMark w:
                // Nothing written since the last mark: none (a file mark is not written twice in a row).
                return HoldingVolume(w.Volume) is { } marked && w.At > 0 && (marked.Marks is not { Count: > 0 } marks || marks[^1] != w.At)
                    ? Decision.Of(new FileMarkWritten(marked.Barcode, w.At)) : Decision.Of();
            default:
                return Decision.Reject($"unknown changer command {command.GetType().Name}");
        }
    }

    private ChangerState WithDrive(int number, Func<TapeDrive, TapeDrive> change) => this with { Drives = Drives.SetItem(number - 1, change(Drives[number - 1])) };

    private ChangerState WithCartridge(string barcode, Func<Cartridge, Cartridge> change) => this with { Cartridges = Cartridges.SetItem(barcode, change(Cartridges[barcode])) };

    public ChangerState Apply(ChangerEvent e) => e switch
    {
        CartridgeImported i => this with
        {
            Cartridges = Cartridges.SetItem(i.Barcode, Cartridge(i.Barcode) is { } known
                ? known with { Place = Place.Slot(i.Slot), Home = i.Slot }
                : new Cartridge(i.Barcode, i.Kind, Place.Slot(i.Slot), i.Slot)),
        },
        CartridgeExported x => WithCartridge(x.Barcode, c => c with { Place = Place.Outside }),
        CartridgeLabelled l => WithCartridge(l.Barcode, c => c with { Label = l.Label }),
        VolumeAssigned v => WithCartridge(v.Barcode, c => c with { Volume = v.Volume }),
        VolumeRecycled r => WithCartridge(r.Barcode, c => c with { Volume = 0, Marks = null }),
        // A mark past the end of the data (a torn tail recovery cut) is gone: the tape was written over from there.
        FileMarkWritten f => WithCartridge(f.Barcode, c => c with { Marks = [.. (c.Marks ?? []).Where(m => m < f.At), f.At] }),
        CartridgeRetired r => WithCartridge(r.Barcode, c => c with { Volume = 0, Retired = true }),
        CartridgeMounted m => WithCartridge(m.Barcode, c => c with { Place = Place.Drive(m.Drive) })
            .WithDrive(m.Drive, d => d with { Cartridge = m.Barcode, Head = 0, Mounts = d.Mounts + 1, MountsSinceCleaning = d.MountsSinceCleaning + 1 }),
        CartridgeUnmounted u => WithCartridge(u.Barcode, c => c with { Place = Place.Slot(u.Slot), Home = u.Slot })
            .WithDrive(u.Drive, d => d with { Cartridge = "", Head = 0 }),
        DriveCleaned c => WithCartridge(c.CleaningCartridge, x => x with { Uses = x.Uses + 1 })
            .WithDrive(c.Drive, d => d with { MountsSinceCleaning = 0, UsedSecondsSinceCleaning = 0, CleaningRequired = false, Cleanings = d.Cleanings + 1, LastCleanedUnixMs = c.UnixMs }),
        DriveUsed u => WithDrive(u.Drive, d => d with
        {
            Head = u.Head, UsedSeconds = d.UsedSeconds + u.Seconds, UsedSecondsSinceCleaning = d.UsedSecondsSinceCleaning + u.Seconds,
            CleaningRequired = d.CleaningRequired || (Config.CleaningRequiredAfterHours > 0 && d.UsedSecondsSinceCleaning + u.Seconds >= Config.CleaningRequiredAfterHours * 3600),
        }),
        _ => this,
    };
}
