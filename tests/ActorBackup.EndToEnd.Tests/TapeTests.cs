namespace ActorBackup.EndToEnd.Tests;

/// <summary>A simulated tape library in a real cell: a backup larger than a cartridge spans cartridges and restores.</summary>
public class TapeTests
{
    /// <summary>The tape demo's libraries with cartridges of 4 MiB and no waiting.</summary>
    /// <summary>Seven data cartridges (28 MiB, for 16 MiB of chunks whose cut points vary with the cell's key: each sealed cartridge wastes up to a chunk).</summary>
    private const string Libraries = "actorbackup.libraries=[{id=lib1}, {id=tape1, kind=tape, drives=2, slots=10, cartridge-capacity=4MiB, " +
                                     "cartridges=[AAA001L8, AAA002L8, AAA003L8, AAA004L8, AAA005L8, AAA006L8, AAA007L8, CLN001L1], timings{scale=0}}]";

    [Fact]
    public void A_backup_larger_than_a_cartridge_spans_cartridges_and_restores_identical()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        CellTests.MakeRandomFiles(src, 2); // 16 MiB: four cartridges of 4 MiB
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", Libraries).Start(libraries: "lib1,tape1");

        var libraries = cell.AbkJson("library", "list").GetProperty("libraries").EnumerateArray().ToDictionary(l => l.GetProperty("id").GetString()!, l => l.GetProperty("kind").GetString());
        Assert.Equal("tape", libraries["tape1"]);
        var backup = cell.Abk("backup", "--library", "tape1", src);
        Assert.True(backup.ExitCode == 0, backup.Stderr + backup.Stdout + cell.Log);
        var volumes = cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").EnumerateArray().ToList();
        // Each volume a cartridge, named by its label; those the backup filled are full (sealed).
        Assert.True(volumes.Count >= 4, string.Join("\n", volumes));
        Assert.Equal(["AAA001L8", "AAA002L8", "AAA003L8", "AAA004L8"], volumes.Take(4).Select(v => v.GetProperty("label").GetString()));
        Assert.All(volumes.Take(3), v => Assert.Equal("Full", v.GetProperty("state").GetString()));
        // Each cartridge the backup wrote holds at least one tape file (a file mark at its seal or the commit).
        Assert.All(cell.AbkJson("library", "inventory", "tape1").GetProperty("cartridges").EnumerateArray().Where(c => c.GetProperty("volume").GetUInt32() > 0),
            c => Assert.True(c.GetProperty("files").GetInt32() >= 1, c.ToString()));
        Assert.Equal(2, cell.AbkJson("drive", "list", "tape1").GetProperty("drives").GetArrayLength());
        Assert.DoesNotContain("writing", cell.Abk("drive", "list", "tape1").Stdout); // the job ended: its drives are idle

        // The restore reads in tape order: each cartridge that holds the snapshot is mounted once at most.
        int Mounts() => cell.AbkJson("library", "inventory", "tape1").GetProperty("drives").EnumerateArray().Sum(d => d.GetProperty("mounts").GetInt32());
        var before = Mounts();
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.Abk("restore", "latest", "--to", target);
        Assert.True(restore.ExitCode == 0, restore.Stderr + restore.Stdout + cell.Log);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        Assert.InRange(Mounts() - before, 1, volumes.Count + 1); // + 1: the trees, read first, are on the last
    }

    [Fact]
    public void An_operator_imports_labels_mounts_cleans_and_exports_cartridges_and_wrong_input_gets_a_clear_refusal()
    {
        using var dir = new TempDir();
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", Libraries).Start(libraries: "lib1,tape1");
        void Refused(string expected, params string[] args)
        {
            var r = cell.Abk(args);
            Assert.True(r.ExitCode == 1, $"abk {string.Join(' ', args)}: {r.Stdout}{r.Stderr}");
            Assert.Contains(expected, r.Stderr);
        }
        System.Text.Json.JsonElement Ok(params string[] args)
        {
            var r = cell.Abk(["--json", .. args]);
            Assert.True(r.ExitCode == 0, $"abk {string.Join(' ', args)}: {r.Stdout}{r.Stderr}");
            return System.Text.Json.JsonDocument.Parse(r.Stdout).RootElement.Clone();
        }
        static string Where(System.Text.Json.JsonElement inventory, string barcode) =>
            inventory.GetProperty("cartridges").EnumerateArray().Where(c => c.GetProperty("barcode").GetString() == barcode)
                .Select(c => $"{c.GetProperty("place").GetString()} {(c.TryGetProperty("number", out var n) ? n.GetInt32() : 0)}").Single();

        var inventory = Ok("library", "inventory", "tape1");
        Assert.Equal("slot 8", Where(inventory, "CLN001L1"));
        Assert.Equal("slot 9", Where(Ok("library", "import", "tape1", "BBB001L8"), "BBB001L8"));
        Refused("a cartridge with barcode BBB001L8 is already in slot 9: two cartridges cannot share a barcode", "library", "import", "tape1", "BBB001L8");
        Ok("volume", "label", "tape1", "9", "VOL009");
        Refused("label AAA001L8 is on cartridge AAA001L8 already", "volume", "label", "tape1", "9", "AAA001L8");
        Refused("slot 10 is empty", "drive", "mount", "tape1", "1", "10");
        Assert.Equal("drive 1", Where(Ok("drive", "mount", "tape1", "1", "9"), "BBB001L8"));
        Refused("drive 1 holds cartridge BBB001L8: unmount it first", "drive", "mount", "tape1", "1", "2");
        Refused("unmount it first", "drive", "clean", "tape1", "1");
        var drives = cell.Abk("drive", "list", "tape1").Stdout;
        Assert.Matches(@"tape1\s+1\s+idle\s+BBB001L8", drives);
        Ok("drive", "unmount", "tape1", "1");
        var cleaned = Ok("drive", "clean", "tape1", "1");
        Assert.Equal(1, cleaned.GetProperty("drives")[0].GetProperty("cleanings").GetInt32());
        Assert.Equal(1, cleaned.GetProperty("cartridges").EnumerateArray().Single(c => c.GetProperty("barcode").GetString() == "CLN001L1").GetProperty("uses").GetInt32());
        Assert.Equal("outside 0", Where(Ok("library", "export", "tape1", "BBB001L8"), "BBB001L8"));
        Refused("no cartridge ZZZ001L8 in the library", "library", "export", "tape1", "ZZZ001L8");
        Refused("library lib1 is a disk library", "drive", "clean", "lib1", "1");
        Refused("library lib1 is a disk library", "library", "inventory", "lib1");
        Refused("unknown library 'lib9'", "library", "inventory", "lib9");
    }

    [Fact]
    public void A_drive_reaching_its_cleaning_limit_is_cleaned_after_the_job_and_a_worn_cleaning_cartridge_is_reported()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        CellTests.MakeRandomFiles(src, 1);
        // One drive, cleaned after every mount; the cleaning cartridge gives one cleaning.
        var libraries = Libraries.Replace("drives=2", "drives=1").Replace("timings{scale=0}", "clean-after-mounts=1, cleaning-uses=1, timings{scale=0}");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", libraries).Start(libraries: "lib1,tape1");
        System.Text.Json.JsonElement Inventory() => cell.AbkJson("library", "inventory", "tape1");
        int Cleanings(System.Text.Json.JsonElement i) => i.GetProperty("drives").EnumerateArray().Sum(d => d.GetProperty("cleanings").GetInt32());

        var job = cell.AbkJson("backup", "--library", "tape1", src);
        Assert.Equal("SUCCEEDED", job.GetProperty("state").GetString());
        var finished = long.Parse(job.GetProperty("finishedUnixMs").GetString()!);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var inventory = Inventory();
        while (Cleanings(inventory) == 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(200);
            inventory = Inventory();
        }
        var cleaned = inventory.GetProperty("drives").EnumerateArray().First(d => d.GetProperty("cleanings").GetInt32() > 0);
        // Cleaned once the job had ended, never in its middle (a cartridge may be in the drive again by now).
        Assert.True(long.Parse(cleaned.GetProperty("lastCleanedUnixMs").GetString()!) >= finished, inventory.ToString());
        var cln = inventory.GetProperty("cartridges").EnumerateArray().Single(c => c.GetProperty("barcode").GetString() == "CLN001L1");
        Assert.True(cln.GetProperty("worn").GetBoolean());
        Assert.Contains("cleaning cartridge CLN001L1 is worn out: export it and import a new one", cell.Abk("library", "inventory", "tape1").Stdout);

        // The next job's mount makes the drive due again: with no usable cleaning cartridge, abk library list says so.
        Assert.DoesNotContain("cannot be cleaned", cell.Abk("library", "list").Stdout);
        Assert.Equal(0, cell.Abk("backup", "--library", "tape1", "--level", "full", src).ExitCode);
        deadline = DateTime.UtcNow.AddSeconds(60);
        string listed;
        while (!(listed = cell.Abk("library", "list").Stdout).Contains("cannot be cleaned") && DateTime.UtcNow < deadline) Thread.Sleep(200);
        Assert.Contains("tape1: drive", listed);
        Assert.Contains("every cleaning cartridge in the library is worn out", listed);
    }

    [Fact]
    public void A_policy_keeps_a_tape_copy_of_the_fulls_which_restores_when_the_disk_library_is_gone()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var data = new byte[3_000_000];
        new Random(21).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>tape</h1>");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", Libraries).Start(libraries: "lib1,tape1");
        // The typical policy: the disk copy kept 14 days, a tape copy of each full kept a year of weeklies.
        var policy = cell.Abk("policy", "add", "typical", "--library", "lib1", "--keep-within", "14d", "--copy-to", "tape1", "--copy-fulls-only", "--copy-keep", "weekly=52");
        Assert.True(policy.ExitCode == 0, policy.Stderr);
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "typical").ExitCode);
        var snapshot = LifecycleTests.Run(cell, "full");
        LifecycleTests.Until(() => LifecycleTests.HasCopy(cell, snapshot), () => cell.Abk("job", "list").Stdout + cell.Log);
        Assert.True(cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").GetArrayLength() >= 1); // on a cartridge

        // The disk library goes: the restore reads the tape copy.
        Directory.Delete(Path.Combine(cell.DataDir, "libraries", "lib1"), recursive: true);
        LifecycleTests.Until(() => cell.Abk("library", "list").Stdout.Contains("missing"), () => cell.Abk("library", "list").Stdout);
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.AbkJson("restore", snapshot, "--to", target);
        Assert.True(restore.GetProperty("state").GetString() == "SUCCEEDED", restore + cell.Log);
        Assert.Equal("tape1", restore.GetProperty("library").GetString());
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(target + src, "data.bin")));
        Assert.Equal("<h1>tape</h1>", File.ReadAllText(Path.Combine(target + src, "index.html")));
    }

    [Fact]
    public void A_retired_cartridge_has_its_data_copied_away_and_is_never_written_again()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        CellTests.MakeRandomFiles(src, 2);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", Libraries).Start(libraries: "lib1,tape1");
        Assert.Equal(0, cell.Abk("backup", "--library", "tape1", src).ExitCode);
        System.Text.Json.JsonElement Cartridge(string barcode) => cell.AbkJson("library", "inventory", "tape1").GetProperty("cartridges").EnumerateArray()
            .Single(c => c.GetProperty("barcode").GetString() == barcode);
        Assert.Equal(1u, Cartridge("AAA001L8").GetProperty("volume").GetUInt32());

        var retire = cell.Abk("volume", "retire", "tape1", "1");
        Assert.True(retire.ExitCode == 0, retire.Stderr + retire.Stdout + cell.Log);
        Assert.Contains("retired  volume 1", retire.Stdout);
        Assert.True(Cartridge("AAA001L8").GetProperty("retired").GetBoolean());
        Assert.Contains("cartridge AAA001L8 is retired: export it", cell.Abk("library", "inventory", "tape1").Stdout);
        Assert.DoesNotContain(cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").EnumerateArray(),
            v => v.GetProperty("number").GetUInt32() == 1 && v.GetProperty("state").GetString() != "Recycle");
        // Its data was copied away: the snapshot restores whole.
        var target = Path.Combine(dir.Path, "restored");
        Assert.Equal(0, cell.Abk("restore", "latest", "--to", target).ExitCode);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        // Never written again, nor labelled: it goes out through the mail slot.
        File.WriteAllBytes(Path.Combine(src, "more.bin"), new byte[3 << 20].Select((_, i) => (byte)(i * 7)).ToArray());
        Assert.Equal(0, cell.Abk("backup", "--library", "tape1", src).ExitCode);
        Assert.Equal(0u, Cartridge("AAA001L8").GetProperty("volume").GetUInt32());
        var relabel = cell.Abk("volume", "label", "tape1", "1", "NEW001L8");
        Assert.Equal(1, relabel.ExitCode);
        Assert.Contains("is retired (out of service): export it", relabel.Stderr);
        // Exported once no job holds the library (a backup's file index read from it in the background gives way).
        LifecycleTests.Until(() => cell.Abk("library", "export", "tape1", "AAA001L8").ExitCode == 0,
            () => cell.Abk("library", "export", "tape1", "AAA001L8").Stderr + cell.Abk("drive", "list", "tape1").Stdout);
        var unknown = cell.Abk("volume", "retire", "tape1", "99");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("has no volume 99 in service", unknown.Stderr + unknown.Stdout);
    }

    [Fact]
    public void The_drive_list_shows_a_running_backup_on_the_drive_whose_cartridge_it_writes()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        CellTests.MakeRandomFiles(src, 2);
        // Held to 0.5 MB/s: the backup runs about 32 s, long enough to be looked at however slow the looks (it is cancelled after).
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", Libraries, "--set", "actorbackup.backup-rate-limit=500000").Start(libraries: "lib1,tape1");
        var job = cell.Abk("backup", "--no-wait", "--library", "tape1", src).Stdout.Trim();
        Assert.Matches("^[0-9]+$", job);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        System.Text.Json.JsonElement held = default;
        while (DateTime.UtcNow < deadline)
        {
            var drives = cell.AbkJson("drive", "list", "tape1").GetProperty("drives").EnumerateArray().ToList();
            // The drive the queue gave the job shows it at once, and its cartridge once mounted.
            if (drives.FirstOrDefault(d => d.GetProperty("job").GetString() == job && d.GetProperty("cartridge").GetString() != "") is { ValueKind: System.Text.Json.JsonValueKind.Object } found)
            {
                held = found;
                break;
            }
            Assert.Equal("RUNNING", cell.AbkJson("job", "show", job).GetProperty("state").GetString());
            Thread.Sleep(200);
        }
        Assert.True(held.ValueKind == System.Text.Json.JsonValueKind.Object, cell.Abk("drive", "list", "tape1").Stdout + cell.Log);
        Assert.Equal("writing", held.GetProperty("state").GetString());
        var cartridge = held.GetProperty("cartridge").GetString();
        Assert.StartsWith("AAA00", cartridge);
        // The cartridge in that drive holds one of the volumes the backup writes.
        Assert.Contains(cartridge, cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").EnumerateArray().Select(v => v.GetProperty("label").GetString()));
        cell.Abk("job", "cancel", job); // no need to wait for the rest
    }

    /// <summary>A tape library of <paramref name="drives"/> drives and four cartridges of 64 MiB, beside the disk library lib1.</summary>
    private static string TapeOf(int drives) =>
        $"actorbackup.libraries=[{{id=lib1}}, {{id=tape1, kind=tape, drives={drives}, slots=6, cartridge-capacity=64MiB, cartridges=[AAA001L8, AAA002L8, AAA003L8, AAA004L8], timings{{scale=0}}}}]";

    [Fact]
    public void Two_backups_at_once_write_their_own_cartridges_each_in_the_drive_the_queue_gave_it()
    {
        using var dir = new TempDir();
        var a = Path.Combine(dir.Path, "a");
        var b = Path.Combine(dir.Path, "b");
        CellTests.MakeRandomFiles(a, 3); // 24 MiB each, held to 0.5 MB/s: both run for about 50 s, each look taking 2-3 shells (at 1 MB/s a loaded machine may see one end first)
        CellTests.MakeRandomFiles(b, 3, seed: 100); // other bytes: neither finds its chunks stored by the other
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", TapeOf(2), "--set", "actorbackup.backup-rate-limit=500000")
            .Start(libraries: "lib1,tape1");
        var jobs = new[] { a, b }.Select(src => cell.Abk("backup", "--no-wait", "--library", "tape1", src).Stdout.Trim()).ToList();
        Assert.All(jobs, j => Assert.Matches("^[0-9]+$", j));

        // Both write at once, each on the drive its job holds (abk job show), each on a cartridge of its own.
        var deadline = DateTime.UtcNow.AddSeconds(90);
        List<System.Text.Json.JsonElement> writing = [];
        while (DateTime.UtcNow < deadline)
        {
            writing = cell.AbkJson("drive", "list", "tape1").GetProperty("drives").EnumerateArray()
                .Where(d => jobs.Contains(d.GetProperty("job").GetString() ?? "") && d.GetProperty("cartridge").GetString() != "").ToList();
            if (writing.Count == 2) break;
            // Both must still be running for the look to mean anything; if one ended first, say what the drives showed.
            foreach (var j in jobs)
                if (cell.AbkJson("job", "show", j).GetProperty("state").GetString() is not ("QUEUED" or "RUNNING") and var state)
                    Assert.Fail($"job {j} is {state} before both were seen writing:\n{cell.Abk("drive", "list", "tape1").Stdout}{cell.Abk("job", "list").Stdout}{cell.Log}");
            Thread.Sleep(200);
        }
        Assert.True(writing.Count == 2, cell.Abk("drive", "list", "tape1").Stdout + cell.Abk("job", "list").Stdout + cell.Log);
        Assert.Equal(2, writing.Select(d => d.GetProperty("number").GetInt32()).Distinct().Count());
        Assert.Equal(2, writing.Select(d => d.GetProperty("cartridge").GetString()).Distinct().Count());
        foreach (var d in writing)
        {
            Assert.Equal("writing", d.GetProperty("state").GetString());
            var job = cell.AbkJson("job", "show", d.GetProperty("job").GetString()!);
            Assert.Equal(d.GetProperty("number").GetInt32(), job.GetProperty("drive").GetInt32());
        }

        Assert.All(jobs, j => Assert.Equal("SUCCEEDED", CellTests.WaitForEnd(cell, j, 180).GetProperty("state").GetString()));
        // Two volumes written side by side, one a cartridge; each snapshot restores whole.
        var volumes = cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").EnumerateArray().ToList();
        Assert.Equal(2, volumes.Count);
        foreach (var (src, job) in new[] { a, b }.Zip(jobs))
        {
            var snapshot = cell.AbkJson("job", "show", job).GetProperty("snapshot").GetString()!;
            var target = Path.Combine(dir.Path, "restored-" + job);
            var restore = cell.Abk("restore", snapshot, "--to", target);
            Assert.True(restore.ExitCode == 0, restore.Stderr + restore.Stdout + cell.Log);
            TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
        }
    }

    [Fact]
    public void Two_backups_at_once_on_a_tape_library_of_one_drive_run_one_after_the_other()
    {
        using var dir = new TempDir();
        var a = Path.Combine(dir.Path, "a");
        var b = Path.Combine(dir.Path, "b");
        CellTests.MakeRandomFiles(a, 2);
        CellTests.MakeRandomFiles(b, 1, seed: 100);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", TapeOf(1), "--set", "actorbackup.backup-rate-limit=3000000")
            .Start(libraries: "lib1,tape1");
        var first = cell.Abk("backup", "--no-wait", "--library", "tape1", a).Stdout.Trim();
        var second = cell.Abk("backup", "--no-wait", "--library", "tape1", b).Stdout.Trim();
        Assert.All(new[] { first, second }, j => Assert.Matches("^[0-9]+$", j));
        var ends = new[] { first, second }.Select(j => CellTests.WaitForEnd(cell, j, 120)).ToList();
        Assert.All(ends, e => Assert.Equal("SUCCEEDED", e.GetProperty("state").GetString()));
        long Ms(System.Text.Json.JsonElement e, string field) => long.Parse(e.GetProperty(field).GetString()!);
        var (early, late) = Ms(ends[0], "startedUnixMs") <= Ms(ends[1], "startedUnixMs") ? (ends[0], ends[1]) : (ends[1], ends[0]);
        Assert.True(Ms(late, "startedUnixMs") >= Ms(early, "finishedUnixMs"), "the second backup started while the first ran on the library's one drive");
        Assert.All(ends, e => Assert.Equal(1, e.GetProperty("drive").GetInt32()));
        // One after the other on the one drive: the second goes on the cartridge the first left half written.
        var volumes = cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").EnumerateArray().ToList();
        Assert.Single(volumes);
    }

    [Fact]
    public void A_cartridge_with_read_errors_is_retired_by_the_cell_its_readable_data_copied_away_and_the_rest_after_a_heal()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        CellTests.MakeRandomFiles(src, 1); // 8 MiB on cartridges of 4 MiB
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", Libraries).Start(libraries: "lib1,tape1");
        var backup = cell.AbkJson("backup", "--library", "tape1", src);
        Assert.True(backup.GetProperty("state").GetString() == "SUCCEEDED", backup + cell.Log);
        var snapshot = backup.GetProperty("snapshot").GetString()!;
        var copy = cell.AbkJson("snapshot", "copy", snapshot, "--to", "lib1");
        Assert.True(copy.GetProperty("state").GetString() == "SUCCEEDED", copy + cell.Log);
        Assert.InRange(copy.GetProperty("sourceDrive").GetInt32(), 1, 2); // a copy from tape held a drive of it to read in

        // A byte turns in the middle of the first cartridge's tape; the library check finds it.
        var tape = Directory.GetFiles(cell.DataDir, "AAA001L8.tape", SearchOption.AllDirectories).Single();
        using (var f = new FileStream(tape, FileMode.Open))
        {
            f.Position = f.Length / 2;
            var x = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(x ^ 0x04));
        }
        Assert.Equal(1, cell.Abk("verify", "--library", "tape1").ExitCode);
        System.Text.Json.JsonElement Volume1() => cell.AbkJson("volume", "list", "tape1").GetProperty("volumes").EnumerateArray().Single(v => v.GetProperty("number").GetUInt32() == 1);
        Assert.Equal("Error", Volume1().GetProperty("state").GetString());
        Assert.Contains("at cartridge AAA001L8 (volume 1), tape file ", Volume1().GetProperty("error").GetString()); // where on the tape

        // The cell retires the cartridge by itself: a prune of its own copies every chunk it can read to other
        // cartridges; the damaged one keeps it in service, and the job says what to do.
        System.Text.Json.JsonElement? Maintenance() => cell.AbkJson("job", "list").GetProperty("jobs").EnumerateArray()
            .Where(j => j.GetProperty("kind").GetString() == "PRUNE" && j.GetProperty("origin").GetString() == "MAINTENANCE").Select(j => (System.Text.Json.JsonElement?)j).FirstOrDefault();
        LifecycleTests.Until(() => Maintenance() is { } j && j.GetProperty("state").GetString() is "SUCCEEDED" or "FAILED", () => cell.Abk("job", "list").Stdout + cell.Log);
        var retirement = cell.AbkJson("job", "show", Maintenance()!.Value.GetProperty("id").GetString()!);
        Assert.Equal("FAILED", retirement.GetProperty("state").GetString());
        Assert.Contains("volume 1 not retired", retirement.GetProperty("reason").GetString());
        Assert.Contains("abk verify SNAPSHOT", retirement.GetProperty("reason").GetString());
        Assert.Equal([1u], retirement.GetProperty("retire").EnumerateArray().Select(v => v.GetUInt32()));
        Assert.Equal("Error", Volume1().GetProperty("state").GetString()); // still out of use for writing, and shown

        // A verify finds the damaged chunk and heals it from the copy on lib1; then the operator retires the cartridge.
        Assert.Equal(1, cell.Abk("verify", snapshot).ExitCode);
        LifecycleTests.Until(() => cell.AbkJson("job", "list").GetProperty("jobs").EnumerateArray()
            .Any(j => j.GetProperty("kind").GetString() == "COPY" && j.TryGetProperty("heal", out _) && j.GetProperty("state").GetString() == "SUCCEEDED"),
            () => cell.Abk("job", "list").Stdout + cell.Log);
        var retire = cell.Abk("volume", "retire", "tape1", "1");
        Assert.True(retire.ExitCode == 0, retire.Stderr + retire.Stdout + cell.Log);
        Assert.Contains("cartridge AAA001L8 is retired: export it", cell.Abk("library", "inventory", "tape1").Stdout);
        Assert.Equal(0, cell.Abk("verify", snapshot).ExitCode);
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.AbkJson("restore", snapshot, "--to", target);
        Assert.Equal("tape1", restore.GetProperty("library").GetString());
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }
}
