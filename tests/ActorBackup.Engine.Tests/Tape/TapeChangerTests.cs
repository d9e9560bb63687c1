using ActorBackup.Engine.Tape;
using ActorBackup.TestSupport;

namespace ActorBackup.Engine.Tests;

/// <summary>The simulated tape changer: what an operator's commands do and refuse, tape I/O, the costs of moves, cleaning.</summary>
public class TapeChangerTests
{
    private static readonly ChangerConfig Small = new(Slots: 4, Drives: 2, CartridgeCapacity: 1 << 20, CleaningUses: 2, CleanAfterMounts: 3);

    private static TapeChanger Open(TempDir dir, ChangerConfig? config = null, TapeTimings? timings = null) =>
        TapeChanger.Open(Path.Combine(dir.Path, "tape1"), config ?? Small, timings ?? TapeTimings.Instant);

    private static void Ok(TapeChanger c, ChangerCommand command) => Assert.Null(c.Execute(command));

    private static IEnumerable<(string, Place, string)> Inventory(TapeChanger c) =>
        c.State.Cartridges.Values.Where(x => x.Place.Kind != PlaceKind.Outside).Select(x => (x.Barcode, x.Place, x.Label));

    [Fact]
    public async Task A_drive_says_it_is_mounting_while_the_load_takes_its_time_and_nothing_once_done()
    {
        using var dir = new TempDir();
        // A load of 3 simulated seconds waited in full (scale 1): long enough to be seen on a busy machine.
        using var c = Open(dir, timings: TapeTimings.Instant with { LoadSeconds = 3, Scale = 1 });
        Ok(c, new ImportCartridge("AAA001L8"));
        Assert.Equal("", c.Activity(1));
        // The load on a thread of its own and the looks on the test's: no pool thread a busy machine starves is needed.
        var mount = Task.Factory.StartNew(() => c.Execute(new MountCartridge(1, 1)), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var seen = "";
        while (!mount.IsCompleted && seen == "")
        {
            seen = c.Activity(1);
            Thread.Sleep(5);
        }
        Assert.Null(await mount);
        Assert.Equal("mounting", seen);
        Assert.Equal("", c.Activity(1));
        Assert.Equal("", c.Activity(2));
        Assert.Equal("", c.Activity(9)); // no such drive: nothing
    }

    [Fact]
    public void Inventory_after_import_and_export_is_right_and_a_cartridge_comes_back_with_its_label()
    {
        using var dir = new TempDir();
        using var c = Open(dir);
        Ok(c, new ImportCartridge("AAA001L8"));
        Ok(c, new ImportCartridge("AAA002L8"));
        Ok(c, new ImportCartridge("CLN001L1"));
        Ok(c, new LabelCartridge(2, "VOL0002"));
        Assert.Equal([("AAA001L8", Place.Slot(1), ""), ("AAA002L8", Place.Slot(2), "VOL0002"), ("CLN001L1", Place.Slot(3), "")], Inventory(c));
        Assert.Equal(CartridgeKind.Cleaning, c.State.Cartridge("CLN001L1")!.Kind);

        Ok(c, new ExportCartridge("AAA002L8"));
        Ok(c, new ImportCartridge("AAA003L8")); // takes the first free slot: 2
        Ok(c, new ImportCartridge("AAA002L8")); // back, label and all, in the next free slot
        Assert.Equal([("AAA001L8", Place.Slot(1), ""), ("AAA002L8", Place.Slot(4), "VOL0002"), ("AAA003L8", Place.Slot(2), ""), ("CLN001L1", Place.Slot(3), "")], Inventory(c));

        // What a wrong command gets: a refusal that says what to do, and nothing changes.
        var before = c.State;
        Assert.Contains("already in slot 1: two cartridges cannot share a barcode", c.Execute(new ImportCartridge("AAA001L8")));
        Assert.Contains("all 4 slots are full: export a cartridge first", c.Execute(new ImportCartridge("AAA009L8")));
        Assert.Contains("is not a barcode", c.Execute(new ImportCartridge("aaa 1")));
        Assert.Contains("no cartridge ZZZ999L8 in the library", c.Execute(new ExportCartridge("ZZZ999L8")));
        Assert.Same(before, c.State);

        // The state is the hardware's: a restart finds every cartridge where it was.
        var inventory = Inventory(c).ToList();
        c.Dispose();
        using var again = Open(dir);
        Assert.Equal(inventory, Inventory(again));
    }

    [Fact]
    public void Mounting_and_labelling_refuse_what_a_changer_cannot_do()
    {
        using var dir = new TempDir();
        using var c = Open(dir);
        Ok(c, new ImportCartridge("AAA001L8"));
        Ok(c, new ImportCartridge("AAA002L8"));
        Ok(c, new ImportCartridge("CLN001L1"));
        Assert.Equal("slot 4 is empty: see abk library inventory", c.Execute(new MountCartridge(1, 4)));
        Assert.Contains("there is no drive 3", c.Execute(new MountCartridge(3, 1)));
        Assert.Contains("there is no slot 9", c.Execute(new MountCartridge(1, 9)));
        Assert.Contains("is a cleaning cartridge", c.Execute(new MountCartridge(1, 3)));
        Ok(c, new MountCartridge(1, 1));
        Assert.Equal("drive 1 holds cartridge AAA001L8: unmount it first (abk drive unmount)", c.Execute(new MountCartridge(1, 2)));
        // The cartridge is in drive 1 now: its slot is empty, and what was asked of it says where it is.
        Assert.Equal("slot 1 is empty: its cartridge AAA001L8 is in drive 1; wait for the job using it to end, or unmount it (abk drive unmount) when none is",
            c.Execute(new MountCartridge(2, 1)));
        Assert.StartsWith("slot 1 is empty: its cartridge AAA001L8 is in drive 1", c.Execute(new LabelCartridge(1, "VOL0009")));
        Assert.Contains("is in drive 1: unmount it first", c.Execute(new ExportCartridge("AAA001L8")));
        Assert.Equal("drive 2 is empty", c.Execute(new UnmountCartridge(2)));
        Assert.Contains("slot 2 holds cartridge AAA002L8", c.Execute(new UnmountCartridge(1, 2)));

        Ok(c, new LabelCartridge(2, "VOL0001"));
        Ok(c, new LabelCartridge(2, "VOL0001")); // labelled so already: nothing to do
        Ok(c, new LabelCartridge(2, "VOL0002")); // nothing on it yet: a new label is fine
        Assert.Null(c.Execute(new AssignVolume(7))); // the library writes its volume 7 on it (the only labelled one)
        Assert.Null(c.Execute(new AssignVolume(7))); // asked again (an allocation that failed after it): the same cartridge
        Assert.Equal(7u, c.State.Cartridge("AAA002L8")!.Volume);
        Assert.Contains("is labelled VOL0002 and holds volume 7: a cartridge is labelled again only once recycled", c.Execute(new LabelCartridge(2, "VOL0003")));
        Assert.Contains("no labelled cartridge is free to write on", c.Execute(new AssignVolume(8)));
        Ok(c, new RecycleVolume(7));
        Ok(c, new LabelCartridge(2, "VOL0001"));
        Assert.Contains("slot 3 holds the cleaning cartridge", c.Execute(new LabelCartridge(3, "VOL0003")));
        Assert.Equal("slot 4 is empty: see abk library inventory", c.Execute(new LabelCartridge(4, "VOL0004")));
        Ok(c, new UnmountCartridge(1)); // home: slot 1
        Assert.Equal("label VOL0001 is on cartridge AAA002L8 already: labels are unique in a library", c.Execute(new LabelCartridge(1, "VOL0001")));
        Assert.Equal(Place.Slot(1), c.State.Cartridge("AAA001L8")!.Place);

        // A retired cartridge is refused a label as retired wherever it is, in its slot or in a drive.
        Ok(c, new AssignVolume(8, "AAA002L8"));
        Ok(c, new RetireVolume(8));
        Assert.Equal("cartridge AAA002L8 in slot 2 is retired (out of service): export it (abk library export)", c.Execute(new LabelCartridge(2, "VOL0005")));
        Ok(c, new MountCartridge(2, 2));
        Assert.Equal("cartridge AAA002L8 from slot 2 (now in drive 2) is retired (out of service): export it (abk library export)", c.Execute(new LabelCartridge(2, "VOL0005")));
    }

    [Fact]
    public void Restarted_with_a_cartridge_in_a_drive_the_changer_remembers_it_and_its_counters()
    {
        using var dir = new TempDir();
        var c = Open(dir);
        Ok(c, new ImportCartridge("AAA001L8"));
        Ok(c, new MountCartridge(2, 1));
        c.Charge(2, 0, 900_000);
        c.Dispose();

        using var again = Open(dir);
        Assert.Equal("AAA001L8", again.State.Drives[1].Cartridge);
        Assert.Equal(Place.Drive(2), again.State.Cartridge("AAA001L8")!.Place);
        Assert.Equal(1, again.State.Drives[1].Mounts);
        Assert.Equal(0, again.State.Drives[1].Head); // a drive that restarts has rewound
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir.Path, "tape1", "changer.json"))); // private to the media agent
    }

    [Fact]
    public void Moves_cost_their_time_and_positioning_costs_the_distance_wound()
    {
        using var dir = new TempDir();
        // 1 MB/s of positioning, 2 MB/s of streaming: easy sums.
        var timings = new TapeTimings(MoveSeconds: 5, LoadSeconds: 30, UnloadSeconds: 20, CleanSeconds: 60, PositionBytesPerSecond: 1e6, StreamBytesPerSecond: 2e6);
        using var c = Open(dir, timings: timings);
        Ok(c, new ImportCartridge("AAA001L8"));
        Assert.Equal(5, c.SimulatedSeconds, 6);
        Ok(c, new MountCartridge(1, 1));
        Assert.Equal(35, c.SimulatedSeconds, 6);
        c.Charge(1, 0, 800_000); // written at the head: 0.4 s of streaming
        Assert.Equal(35.4, c.SimulatedSeconds, 6);
        c.Charge(1, 0, 200_000); // read from the start: wind back 800,000 (0.8 s), stream 0.1 s
        Assert.Equal(36.3, c.SimulatedSeconds, 6);
        c.Charge(1, 200_000, 200_000); // already there: stream only
        Assert.Equal(36.4, c.SimulatedSeconds, 6);
        c.Charge(1, 800_000, 200_000); // appended: wind forward 400,000 to the end (0.4 s), stream 0.1 s
        Assert.Equal(36.9, c.SimulatedSeconds, 6);
        Ok(c, new UnmountCartridge(1)); // rewind 1,000,000 (1 s), unload 20 s
        Assert.Equal(57.9, c.SimulatedSeconds, 6);
        Assert.Equal(1.9, c.State.Drives[0].UsedSeconds, 6); // the drive's hours: reading, writing, winding
    }

    [Fact]
    public void A_drive_is_due_for_cleaning_by_policy_or_when_it_asks_and_a_worn_cleaning_cartridge_is_refused()
    {
        using var dir = new TempDir();
        using var c = Open(dir, Small with { CleaningRequiredAfterHours = 1.0 / 3600 }, new TapeTimings(PositionBytesPerSecond: 1e6, StreamBytesPerSecond: 1e6));
        Ok(c, new ImportCartridge("AAA001L8"));
        Assert.Equal("no cleaning cartridge in the library: import one (barcode CLN...)", c.Execute(new CleanDrive(1)));
        Ok(c, new ImportCartridge("CLN001L1"));
        for (var i = 0; i < 3; i++)
        {
            Assert.Null(c.State.CleaningDue(c.State.Drives[0]));
            Ok(c, new MountCartridge(1, 1));
            Ok(c, new UnmountCartridge(1));
        }
        Assert.Equal("3 mounts since its last cleaning (policy: 3)", c.State.CleaningDue(c.State.Drives[0]));
        Ok(c, new MountCartridge(1, 1));
        Assert.Contains("holds cartridge AAA001L8: unmount it first", c.Execute(new CleanDrive(1)));
        Ok(c, new UnmountCartridge(1));
        Ok(c, new CleanDrive(1));
        Assert.Null(c.State.CleaningDue(c.State.Drives[0]));
        Assert.Equal((1, 1), (c.State.Drives[0].Cleanings, c.State.Cartridge("CLN001L1")!.Uses));

        // The drive raises "cleaning required" after a second of use (1 MB streamed at 1 MB/s).
        Ok(c, new MountCartridge(2, 1));
        c.Charge(2, 0, 1_000_000);
        Assert.Equal("the drive reported cleaning required", c.State.CleaningDue(c.State.Drives[1]));
        Ok(c, new UnmountCartridge(2));
        Ok(c, new CleanDrive(2));
        Assert.Null(c.State.CleaningDue(c.State.Drives[1]));
        Assert.True(c.State.Worn(c.State.Cartridge("CLN001L1")!)); // two uses of two
        Assert.Contains("every cleaning cartridge in the library is worn out (2 uses): export it and import a new one", c.Execute(new CleanDrive(1)));
    }

    [Fact]
    public void A_damaged_or_misfit_state_file_stops_the_changer_with_what_to_do()
    {
        using var dir = new TempDir();
        using (var c = Open(dir))
        {
            Ok(c, new ImportCartridge("AAA001L8"));
            Ok(c, new ImportCartridge("AAA002L8"));
            Ok(c, new ImportCartridge("AAA003L8"));
        }
        var misfit = Assert.Throws<InvalidDataException>(() => Open(dir, Small with { Slots = 2 }));
        Assert.Contains("has cartridge AAA003L8 in slot 3, which the library's HOCON (slots = 2, drives = 2) does not", misfit.Message);
        var state = Path.Combine(dir.Path, "tape1", "changer.json");
        File.WriteAllText(state, File.ReadAllText(state).Replace("AAA002L8", "AAA001L8"));
        Assert.Contains("barcode AAA001L8 twice", Assert.Throws<InvalidDataException>(() => Open(dir)).Message);
        File.WriteAllText(state, "{ not json");
        Assert.Contains("is unreadable", Assert.Throws<InvalidDataException>(() => Open(dir)).Message);
        Assert.Contains("drives must be 1 to 64", Assert.Throws<ArgumentException>(() => Open(dir, Small with { Drives = 0 })).Message);
    }
}
