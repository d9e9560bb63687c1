using System.Text.Json;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>The data lifecycle through a real node and the real `abk`: verify, retention, delete.</summary>
public class LifecycleTests
{
    /// <summary>Waits for <paramref name="condition"/> (asking the node again and again), failing with <paramref name="why"/> after <paramref name="seconds"/>.</summary>
    internal static void Until(Func<bool> condition, Func<string> why, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, why());
            Thread.Sleep(200);
        }
    }

    internal static bool HasCopy(CellProcess cell, string snapshot) =>
        cell.AbkJson("snapshot", "show", snapshot).TryGetProperty("copies", out var copies) && copies.GetArrayLength() > 0;

    private static List<JsonElement> Snapshots(CellProcess cell) =>
        cell.AbkJson("snapshot", "list", "--why").GetProperty("snapshots").EnumerateArray().ToList();

    internal static string Run(CellProcess cell, string level)
    {
        var run = cell.AbkJson("set", "run", "web", "--level", level);
        Assert.Equal("SUCCEEDED", run.GetProperty("state").GetString());
        return run.GetProperty("snapshot").GetString()!;
    }

    [Fact]
    public void Retention_deletes_nothing_until_a_newer_snapshot_is_verified_and_verify_finds_a_flipped_bit()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var data = new byte[3_000_000];
        new Random(5).NextBytes(data); // incompressible: it is most of the library's volume
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi</h1>");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        var policy = cell.Abk("policy", "add", "keep2", "--keep-last", "2");
        Assert.True(policy.ExitCode == 0, policy.Stderr);
        Assert.Contains("retention    last 2", policy.Stdout);
        Assert.Contains("passed a whole verify goes: add --verify-schedule", policy.Stdout); // no verify schedule: said so
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "keep2").ExitCode);

        var a = Run(cell, "full");
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>hi again</h1>");
        var b = Run(cell, "incremental");
        var c = Run(cell, "incremental");
        // No full has passed a verify: retention keeps all three, and says why.
        var listed = Snapshots(cell);
        Assert.Equal([a, b, c], listed.Select(s => s.GetProperty("id").GetString()));
        Assert.Contains("no newer snapshot has passed a verify yet", listed[0].GetProperty("keptBecause").EnumerateArray().Select(r => r.GetString()));

        // A sample reads part of the file chunks back: good, but it does not make the snapshot verified.
        var sample = cell.AbkJson("verify", a, "--share", "50");
        Assert.Equal(("SUCCEEDED", 50), (sample.GetProperty("state").GetString(), sample.GetProperty("verify").GetProperty("sharePercent").GetInt32()));
        Assert.False(Snapshots(cell)[0].GetProperty("verified").GetBoolean());
        var verify = cell.Abk("verify", a);
        Assert.True(verify.ExitCode == 0, verify.Stderr + verify.Stdout);
        Assert.Contains("all good", verify.Stdout);
        Assert.True(Snapshots(cell)[0].GetProperty("verified").GetBoolean());
        Assert.Equal(3, Snapshots(cell).Count); // a verified full keeps itself and everything newer

        var d = Run(cell, "full");
        Assert.Equal(0, cell.Abk("verify", d).ExitCode);
        // D is the newest verified full: what is older than it and not among the last 2 (D, C) goes.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        List<string?> ids;
        while ((ids = Snapshots(cell).Select(s => s.GetProperty("id").GetString()).ToList()).Count > 2 && DateTime.UtcNow < deadline) Thread.Sleep(200);
        Assert.Equal([c, d], ids);

        // An operator's delete: a dry run first, changing nothing; an unknown id refuses the whole delete.
        Assert.Contains($"would delete snapshot {c}", cell.Abk("snapshot", "delete", c, "--dry-run").Stdout);
        Assert.Equal(2, Snapshots(cell).Count);
        var unknown = cell.Abk("snapshot", "delete", c, "nosuch");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no snapshot 'nosuch'", unknown.Stderr);
        Assert.Contains("nothing was deleted", unknown.Stderr);
        Assert.Contains($"deleted snapshot {c}", cell.Abk("snapshot", "delete", c).Stdout);
        Assert.Equal([d], Snapshots(cell).Select(s => s.GetProperty("id").GetString()));
        // The audit trail: who deleted what, the refused delete too; its chain whole.
        var audit = cell.Abk("audit", "list", "--command", "DeleteSnapshots", "--caller", "operator");
        Assert.True(audit.ExitCode == 0, audit.Stderr);
        var deletes = audit.Stdout.Split('\n').Where(l => l.Contains("DeleteSnapshots")).ToList();
        Assert.Equal(3, deletes.Count); // the dry run, the refused one, the delete
        Assert.Contains("refused: no snapshot 'nosuch'", deletes[1]);
        Assert.Contains("taken", deletes[2]);
        Assert.Contains(c!, deletes[2]);
        Assert.Contains("operator operator", deletes[2]);
        var verifyTrail = cell.Abk("audit", "verify");
        Assert.True(verifyTrail.ExitCode == 0, verifyTrail.Stderr);
        Assert.Matches("records, chain whole; head [0-9a-f]{64}", verifyTrail.Stdout);

        // A flipped bit in the library: verify fails, names the file, and the snapshot is no longer verified.
        var volume = Directory.GetFiles(Path.Combine(cell.DataDir, "libraries", "lib1", "volumes"), "*.abv").Single();
        using (var f = new FileStream(volume, FileMode.Open))
        {
            // The largest record is data.bin's: a byte in its middle.
            f.Position = f.Length / 2;
            var x = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(x ^ 0x10));
        }
        var bad = cell.Abk("verify", d);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("/data.bin: ", bad.Stdout);
        Assert.Contains("damaged", bad.Stderr);
        Assert.False(Snapshots(cell).Single().GetProperty("verified").GetBoolean());
        // The media side finds it too, without the key, and names the snapshot that needs the chunk.
        var media = cell.Abk("verify", "--library", "lib1");
        Assert.Equal(1, media.ExitCode);
        Assert.Contains($"snapshots that need a damaged chunk: {d}", media.Stdout);
        Assert.Contains("store them again", media.Stderr + media.Stdout);
        // The host still has data.bin: its next backup, an incremental, stores the damaged chunk again (the library says
        // it lacks it), and the snapshot made before, which names the same chunk, reads back whole again.
        var e = Run(cell, "incremental");
        var healed = cell.Abk("verify", d);
        Assert.True(healed.ExitCode == 0, healed.Stdout + healed.Stderr);
        Assert.Contains("all good", healed.Stdout);
        Assert.Equal(0, cell.Abk("verify", e).ExitCode);
        // A damaged reference list: the check names its snapshot and says what a prune needs.
        var list = Path.Combine(cell.DataDir, "libraries", "lib1", "refs", d + ".ref");
        var listBytes = File.ReadAllBytes(list);
        listBytes[^5] ^= 1;
        File.WriteAllBytes(list, listBytes);
        var lists = cell.Abk("verify", "--library", "lib1");
        Assert.Equal(1, lists.ExitCode);
        Assert.Contains("reference lists damaged: 1", lists.Stdout);
        Assert.Contains($"snapshot {d}: {list}: checksum mismatch", lists.Stdout);
        Assert.Contains("abk snapshot delete SNAPSHOT", lists.Stdout);
        Assert.Contains($"reference lists damaged, of snapshots {d}", lists.Stderr + lists.Stdout);
        Assert.Equal(2, cell.Abk("verify").ExitCode); // neither a snapshot nor a library: a usage error
    }

    private static long VolumeBytes(CellProcess cell) =>
        Directory.GetFiles(Path.Combine(cell.DataDir, "libraries", "lib1", "volumes"), "*.abv").Sum(f => new FileInfo(f).Length);

    [Fact]
    public void A_deleted_snapshot_held_for_the_deletion_delay_survives_a_prune_and_comes_back_whole()
    {
        // A stolen operator key deletes every snapshot and prunes: within the delay, nothing is lost.
        using var dir = new TempDir();
        var src = dir.Sub("data");
        var random = new Random(12);
        var bytes = new byte[6_000_000];
        random.NextBytes(bytes);
        File.WriteAllBytes(Path.Combine(src, "only.bin"), bytes);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.manager.deletion-delay=7d").Start();
        var snapshot = cell.AbkJson("backup", src).GetProperty("snapshot").GetString()!;
        File.Delete(Path.Combine(src, "only.bin")); // the host's data gone too
        Assert.Contains($"deleted snapshot {snapshot}", cell.Abk("snapshot", "delete", snapshot).Stdout);
        Assert.Empty(Snapshots(cell));
        Assert.Equal("SUCCEEDED", cell.AbkJson("prune", "lib1").GetProperty("state").GetString());
        var refused = cell.Abk("restore", snapshot, "--to", Path.Combine(dir.Path, "nothing"));
        Assert.Equal(1, refused.ExitCode); // out of the catalog

        var held = cell.Abk("snapshot", "list", "--deleted");
        Assert.True(held.ExitCode == 0, held.Stderr);
        Assert.Contains(snapshot, held.Stdout);
        Assert.Contains("deleted by", held.Stdout); // and by whom
        var undelete = cell.Abk("snapshot", "undelete", snapshot[..8]);
        Assert.True(undelete.ExitCode == 0, undelete.Stderr + undelete.Stdout);
        Assert.Contains($"snapshot {snapshot} is back", undelete.Stdout);
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.Abk("restore", snapshot, "--to", target);
        Assert.True(restore.ExitCode == 0, restore.Stderr + restore.Stdout);
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(target + src, "only.bin")));
        Assert.DoesNotContain(snapshot, cell.Abk("snapshot", "list", "--deleted").Stdout);

        // A legal hold: the operator key that put it can neither delete the snapshot nor shorten the hold.
        var hold = cell.Abk("snapshot", "hold", snapshot, "--until", "30d", "--reason", "case 2026-114");
        Assert.True(hold.ExitCode == 0, hold.Stderr + hold.Stdout);
        Assert.Contains($"snapshot {snapshot}", hold.Stdout);
        Assert.Contains($"{snapshot} H", cell.Abk("snapshot", "list").Stdout);
        Assert.Contains("HELD until", cell.Abk("snapshot", "show", snapshot).Stdout);
        var notDeleted = cell.Abk("snapshot", "delete", snapshot);
        Assert.Equal(1, notDeleted.ExitCode);
        Assert.Contains("case 2026-114", notDeleted.Stderr);
        Assert.Contains("a hold is not lifted before its end", notDeleted.Stderr);
        var shorter = cell.Abk("snapshot", "hold", snapshot, "--until", "1d", "--reason", "changed my mind");
        Assert.Equal(1, shorter.ExitCode);
        Assert.Contains("a hold is never shortened", shorter.Stderr);
        Assert.Contains("HoldSnapshots", cell.Abk("audit", "list", "--command", "HoldSnapshots").Stdout);
    }

    [Fact]
    public void A_backup_of_a_host_whose_files_were_encrypted_is_suspect_and_holds_its_sets_snapshots()
    {
        using var dir = new TempDir();
        var src = dir.Sub("data");
        var text = string.Concat(Enumerable.Range(0, 4000).Select(i => $"line {i} of a document that compresses well\n"));
        for (var i = 0; i < 120; i++) File.WriteAllText(Path.Combine(src, $"doc{i:D3}.txt"), $"{i}\n" + text); // 120 files, 20 MB
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        var quiet = Enumerable.Range(0, 3).Select(_ => cell.AbkJson("backup", src).GetProperty("snapshot").GetString()!).ToList();
        // Ransomware: every file rewritten as bytes that neither deduplicate nor compress.
        var random = new Random(5);
        foreach (var file in Directory.GetFiles(src))
        {
            var bytes = new byte[new FileInfo(file).Length];
            random.NextBytes(bytes);
            File.WriteAllBytes(file, bytes);
        }
        // Done, but not OK: exit 3, said on stderr (a cron wrapper does not report it good).
        var backup = cell.Abk("--json", "backup", src);
        Assert.True(backup.ExitCode == 3, backup.Stderr + backup.Stdout);
        Assert.Contains("is suspect", backup.Stderr);
        var job = System.Text.Json.JsonDocument.Parse(backup.Stdout).RootElement;
        var encrypted = job.GetProperty("snapshot").GetString()!;
        Assert.Contains("ransomware", job.GetProperty("suspect").GetString());
        var list = cell.Abk("snapshot", "list");
        Assert.Contains($"! snapshot {encrypted}", list.Stdout);
        Assert.Contains("ransomware", list.Stdout);
        Assert.Contains("did not compress", list.Stdout);
        foreach (var id in quiet) Assert.DoesNotContain($"! snapshot {id}", list.Stdout);
        Assert.Contains("SUSPECT", cell.Abk("snapshot", "show", encrypted).Stdout);
        Assert.Contains(cell.AbkJson("snapshot", "list", "--why").GetProperty("snapshots").EnumerateArray(),
            s => s.GetProperty("id").GetString() == quiet[0] && s.GetProperty("keptBecause")[0].GetString()!.Contains("is suspect"));
        var cleared = cell.Abk("snapshot", "clear-suspect", encrypted);
        Assert.True(cleared.ExitCode == 0, cleared.Stderr);
        Assert.DoesNotContain("! snapshot", cell.Abk("snapshot", "list").Stdout);
    }

    [Fact]
    public void Delete_and_prune_give_the_disk_back_and_the_kept_snapshot_restores_byte_for_byte()
    {
        using var dir = new TempDir();
        var src = dir.Sub("data");
        var random = new Random(11);
        byte[] Bytes(int n)
        {
            var b = new byte[n];
            random.NextBytes(b);
            return b;
        }
        File.WriteAllBytes(Path.Combine(src, "kept.bin"), Bytes(2_000_000));
        File.WriteAllBytes(Path.Combine(src, "gone.bin"), Bytes(12_000_000));
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();
        var first = cell.AbkJson("backup", src).GetProperty("snapshot").GetString()!;
        File.Delete(Path.Combine(src, "gone.bin"));
        File.WriteAllBytes(Path.Combine(src, "new.bin"), Bytes(1_000_000));
        var second = cell.AbkJson("backup", src).GetProperty("snapshot").GetString()!;
        var before = VolumeBytes(cell);

        // Deleting frees nothing by itself; a dry run of the prune says what would go and changes nothing.
        Assert.Equal(0, cell.Abk("snapshot", "delete", first).ExitCode);
        var dry = cell.Abk("prune", "lib1", "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.Stderr + dry.Stdout);
        Assert.Contains("would remove", dry.Stdout);
        Assert.Equal(before, VolumeBytes(cell));

        var prune = cell.AbkJson("prune", "lib1");
        Assert.Equal("SUCCEEDED", prune.GetProperty("state").GetString());
        Assert.Equal("PRUNE", prune.GetProperty("kind").GetString());
        var after = VolumeBytes(cell);
        Assert.True(before - after >= 0.9 * 12_000_000, $"the library's volumes went from {before} to {after} bytes");

        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.Abk("restore", second, "--to", target);
        Assert.True(restore.ExitCode == 0, restore.Stderr + restore.Stdout);
        foreach (var name in new[] { "kept.bin", "new.bin" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(src, name)), File.ReadAllBytes(Path.Combine(target + src, name)));
        Assert.False(File.Exists(Path.Combine(target + src, "gone.bin")));
        Assert.Equal(0, cell.Abk("verify", second).ExitCode);

        // Nothing more to remove the second time.
        var again = cell.AbkJson("prune", "lib1");
        Assert.Equal("0", again.GetProperty("prune").GetProperty("chunksDead").GetString());
    }

    [Fact]
    public void Backups_that_run_during_a_prune_restore_byte_for_byte()
    {
        using var dir = new TempDir();
        var random = new Random(12);
        void Fill(string path, int n)
        {
            var b = new byte[n];
            random.NextBytes(b);
            File.WriteAllBytes(path, b);
        }
        var shared = dir.Sub("shared");
        Fill(Path.Combine(shared, "x.bin"), 4_000_000);
        var unique = dir.Sub("unique");
        Fill(Path.Combine(unique, "gone.bin"), 6_000_000);
        var big = dir.Sub("big");
        CellTests.MakeRandomFiles(big, 2); // 16 MiB: at 4 MB/s a backup that runs for seconds
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.backup-rate-limit=4000000").Start();
        var a = cell.AbkJson("backup", shared).GetProperty("snapshot").GetString()!;
        var d = cell.AbkJson("backup", unique).GetProperty("snapshot").GetString()!;
        Assert.Equal(0, cell.Abk("snapshot", "delete", a, d).ExitCode);
        var before = VolumeBytes(cell);

        // A long backup runs; the prune begins meanwhile (and waits for it); a backup of the deleted snapshot's
        // data runs during the prune, finding its chunks still there.
        var c = CellTests.StartAndWaitForBytes(cell, big);
        var prune = cell.Abk("prune", "lib1", "--no-wait").Stdout.Trim();
        Assert.Matches("^[0-9]+$", prune);
        var b = cell.AbkJson("backup", shared);
        Assert.Equal("SUCCEEDED", b.GetProperty("state").GetString());
        var pruned = CellTests.WaitForEnd(cell, prune, seconds: 120);
        Assert.Equal("SUCCEEDED", pruned.GetProperty("state").GetString());
        Assert.Equal("SUCCEEDED", CellTests.WaitForEnd(cell, c, seconds: 120).GetProperty("state").GetString());
        // The deleted snapshot's own data is gone from the disk; the long backup's 16 MiB came in meanwhile.
        var report = pruned.GetProperty("prune");
        Assert.True(long.Parse(report.GetProperty("bytesDead").GetString()!) >= 6_000_000, report.ToString());
        var after = VolumeBytes(cell);
        Assert.True(after <= before + 16 * 1024 * 1024 + 500_000 - 0.9 * 6_000_000, $"volumes {before} -> {after}: {report}");

        foreach (var (snapshot, path) in new[] { (b.GetProperty("snapshot").GetString()!, shared), (CellTests.WaitForEnd(cell, c).GetProperty("snapshot").GetString()!, big) })
        {
            var target = Path.Combine(dir.Path, "restored-" + snapshot);
            var r = cell.Abk("restore", snapshot, "--to", target);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            foreach (var f in Directory.GetFiles(path))
                Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(target + path, Path.GetFileName(f))));
        }
    }

    [Fact]
    public void A_kill_9_after_any_step_of_a_prune_loses_nothing_that_is_kept()
    {
        using var dir = new TempDir();
        var src = dir.Sub("data");
        var random = new Random(13);
        void Fill(string name, int n)
        {
            var b = new byte[n];
            random.NextBytes(b);
            File.WriteAllBytes(Path.Combine(src, name), b);
        }
        Fill("kept.bin", 2_000_000);
        Fill("gone.bin", 8_000_000);
        var nodeDir = Path.Combine(dir.Path, "node");
        var port = Ports.Free();
        string kept;
        long before;
        using (var cell = new CellProcess(nodeDir, port).Start())
        {
            var first = cell.AbkJson("backup", src).GetProperty("snapshot").GetString()!;
            File.Delete(Path.Combine(src, "gone.bin"));
            Fill("new.bin", 1_000_000);
            kept = cell.AbkJson("backup", src).GetProperty("snapshot").GetString()!;
            Assert.Equal(0, cell.Abk("snapshot", "delete", first).ExitCode);
            before = VolumeBytes(cell);
        }

        void RestoresWhole(CellProcess cell, string name)
        {
            var target = Path.Combine(dir.Path, name);
            var r = cell.Abk("restore", kept, "--to", target);
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout + cell.Log);
            foreach (var f in Directory.GetFiles(src))
                Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(target + src, Path.GetFileName(f))));
        }

        foreach (var step in new[] { "swept", "copied", "recycled" })
        {
            using (var cell = new CellProcess(nodeDir, port, "--set", $"actorbackup.testing.prune-stop-after={step}").Start())
            {
                Assert.Equal(0, cell.Abk("prune", "lib1", "--no-wait").ExitCode);
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (!cell.Log.Contains($"stops after step '{step}'") && DateTime.UtcNow < deadline) Thread.Sleep(100);
                Assert.True(cell.Log.Contains($"stops after step '{step}'"), cell.Log);
                cell.Kill(); // kill -9 right there
            }
            using var again = new CellProcess(nodeDir, port).Start();
            RestoresWhole(again, "after-" + step);
        }

        using var last = new CellProcess(nodeDir, port).Start();
        var prune = last.AbkJson("prune", "lib1");
        Assert.Equal("SUCCEEDED", prune.GetProperty("state").GetString());
        Assert.True(before - VolumeBytes(last) >= 0.9 * 8_000_000, $"volumes {before} -> {VolumeBytes(last)}");
        RestoresWhole(last, "at-last");
        Assert.Equal(0, last.Abk("verify", kept).ExitCode);
    }

    [Fact]
    public void A_second_copy_restores_after_the_first_librarys_folder_is_removed()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var data = new byte[3_000_000];
        new Random(14).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        File.WriteAllText(Path.Combine(src, "index.html"), "<h1>copies</h1>");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.libraries=[{id=lib1},{id=lib2}]").Start(libraries: "lib1,lib2");
        var policy = cell.Abk("policy", "add", "two", "--library", "lib1", "--copy-to", "lib2");
        Assert.True(policy.ExitCode == 0, policy.Stderr);
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "two").ExitCode);
        var snapshot = Run(cell, "full");

        // The copy job follows the backup by itself.
        Until(() => HasCopy(cell, snapshot), () => cell.Abk("job", "list").Stdout + cell.Log);
        Assert.Equal("lib1", cell.AbkJson("snapshot", "show", snapshot).GetProperty("library").GetString());
        var copyJob = cell.AbkJson("job", "list").GetProperty("jobs").EnumerateArray().Single(j => j.GetProperty("kind").GetString() == "COPY");
        Assert.Equal("POLICY", copyJob.GetProperty("origin").GetString());

        // lib1's data goes; its media agent notices and says so; the restore reads the copy on lib2.
        Directory.Delete(Path.Combine(cell.DataDir, "libraries", "lib1"), recursive: true);
        Until(() => cell.AbkJson("library", "list").GetProperty("libraries").EnumerateArray().Single(l => l.GetProperty("id").GetString() == "lib1")
                .TryGetProperty("unavailable", out var why) && why.GetString() != "", () => cell.Abk("library", "list").Stdout);
        Assert.Contains("missing", cell.Abk("library", "list").Stdout);
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.AbkJson("restore", snapshot, "--to", target);
        Assert.Equal("SUCCEEDED", restore.GetProperty("state").GetString());
        Assert.Equal("lib2", restore.GetProperty("library").GetString());
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(target + src, "data.bin")));
        Assert.Equal("<h1>copies</h1>", File.ReadAllText(Path.Combine(target + src, "index.html")));
        Assert.Equal(0, cell.Abk("verify", snapshot).ExitCode);
    }

    [Fact]
    public void A_flipped_bit_is_found_by_verify_healed_from_the_copy_and_the_snapshot_restores_from_its_own_library()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var data = new byte[4_000_000];
        new Random(15).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.libraries=[{id=lib1},{id=lib2}]").Start(libraries: "lib1,lib2");
        Assert.Equal(0, cell.Abk("policy", "add", "two", "--library", "lib1", "--copy-to", "lib2").ExitCode);
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "two").ExitCode);
        var snapshot = Run(cell, "full");
        Until(() => HasCopy(cell, snapshot), () => cell.Abk("job", "list").Stdout);

        // A bit flips in lib1: the data is most of its only volume.
        var volume = Directory.GetFiles(Path.Combine(cell.DataDir, "libraries", "lib1", "volumes"), "*.abv").Single();
        using (var f = new FileStream(volume, FileMode.Open))
        {
            f.Position = f.Length / 2;
            var x = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(x ^ 0x04));
        }
        // A restore reads from lib1 and gets the damaged chunk from the copy on lib2, chunk by chunk.
        var whole = Path.Combine(dir.Path, "despite");
        var despite = cell.AbkJson("restore", snapshot, "--to", whole);
        Assert.True(despite.GetProperty("state").GetString() == "SUCCEEDED" && despite.GetProperty("library").GetString() == "lib1", despite + cell.Log);
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(whole + src, "data.bin")));
        Assert.Contains("came from a copy elsewhere", despite.GetProperty("reason").GetString()); // and it says so
        var bad = cell.Abk("verify", snapshot); // a verify checks lib1 alone
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("heals them from the copy on lib2", bad.Stderr);

        // The heal job repairs lib1 from lib2; a verify then passes, and the snapshot restores from lib1.
        Until(() => cell.AbkJson("job", "list").GetProperty("jobs").EnumerateArray()
            .Any(j => j.GetProperty("kind").GetString() == "COPY" && j.TryGetProperty("heal", out _) && j.GetProperty("state").GetString() == "SUCCEEDED"),
            () => cell.Abk("job", "list").Stdout + cell.Log);
        var good = cell.AbkJson("verify", snapshot);
        Assert.Equal("SUCCEEDED", good.GetProperty("state").GetString());
        Assert.Equal("lib1", good.GetProperty("library").GetString());
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.AbkJson("restore", snapshot, "--to", target);
        Assert.Equal("lib1", restore.GetProperty("library").GetString());
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(target + src, "data.bin")));
    }

    [Fact]
    public void After_the_journal_database_is_lost_catalog_rebuild_lists_the_same_snapshots_and_they_restore()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var first = new byte[2_000_000];
        new Random(16).NextBytes(first);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), first);
        var nodeDir = Path.Combine(dir.Path, "node");
        var port = Ports.Free();
        List<string> before;
        using (var cell = new CellProcess(nodeDir, port).Start())
        {
            Assert.Equal(0, cell.Abk("backup", src).ExitCode);
            File.WriteAllText(Path.Combine(src, "new.txt"), "second");
            Assert.Equal(0, cell.Abk("backup", src).ExitCode);
            before = Snapshots(cell).Select(s => s.GetProperty("id").GetString()!).ToList();
            // The manager's tickets carry its journal's sequence number, which the media agent keeps beside its library.
            Assert.Matches("^highest [0-9]+\nrecent [0-9]+:[1-9]", File.ReadAllText(Path.Combine(cell.DataDir, "libraries", "lib1", "manager-journal")));
        } // kill -9
        foreach (var f in Directory.GetFiles(nodeDir, "actorbackup.db*")) File.Delete(f); // the journal: manager and media agents alike

        using var again = new CellProcess(nodeDir, port).Start();
        Assert.Empty(Snapshots(again));
        var rebuild = again.Abk("catalog", "rebuild", "lib1");
        Assert.True(rebuild.ExitCode == 0, rebuild.Stderr + rebuild.Stdout + again.Log);
        Assert.Contains("2 snapshots stored; 2 were missing from the catalog and are back", rebuild.Stdout);
        Assert.Equal(before, Snapshots(again).Select(s => s.GetProperty("id").GetString()!));
        Assert.Contains("0 were missing", again.Abk("catalog", "rebuild", "lib1").Stdout); // again: nothing to add
        // Both rebuilds are in the (new) audit trail, who and what (they reach the manager from the client node).
        var rebuilds = again.Abk("audit", "list", "--command", "RebuildCatalog").Stdout.Split('\n').Where(l => l.Contains("RebuildCatalog")).ToList();
        Assert.Equal(2, rebuilds.Count);
        Assert.All(rebuilds, l => Assert.Contains("operator operator", l));
        Assert.All(rebuilds, l => Assert.Contains("manifests found in library lib1", l));

        var target = Path.Combine(dir.Path, "restored-first");
        Assert.Equal(0, again.Abk("restore", before[0], "--to", target).ExitCode);
        Assert.Equal(first, File.ReadAllBytes(Path.Combine(target + src, "data.bin")));
        Assert.False(File.Exists(Path.Combine(target + src, "new.txt")));
        var latest = Path.Combine(dir.Path, "restored-latest");
        Assert.Equal(0, again.Abk("restore", "latest", "--to", latest).ExitCode);
        Assert.Equal("second", File.ReadAllText(Path.Combine(latest + src, "new.txt")));
    }

    [Fact]
    public void An_aged_snapshot_moves_to_its_tier_and_the_fast_library_gives_its_space_back()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var data = new byte[5_000_000];
        new Random(17).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.libraries=[{id=lib1},{id=lib2}]").Start(libraries: "lib1,lib2");
        var policy = cell.Abk("policy", "add", "tiered", "--library", "lib1", "--tier-to", "lib2", "--tier-after", "3s");
        Assert.True(policy.ExitCode == 0, policy.Stderr);
        Assert.Contains("tier         to lib2 after", policy.Stdout);
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "tiered").ExitCode);
        var snapshot = Run(cell, "full");
        Assert.Equal("lib1", cell.AbkJson("snapshot", "show", snapshot).GetProperty("library").GetString());
        var lib1Before = VolumeBytes(cell);

        Until(() => cell.AbkJson("snapshot", "show", snapshot).GetProperty("library").GetString() == "lib2", () => cell.Abk("job", "list").Stdout + cell.Log, seconds: 90);
        var move = cell.AbkJson("job", "list").GetProperty("jobs").EnumerateArray().Single(j => j.GetProperty("kind").GetString() == "COPY");
        Assert.True(move.GetProperty("tierMove").GetBoolean());
        Assert.True(long.Parse(move.GetProperty("copy").GetProperty("chunksReadBack").GetString()!) > 0);

        var prune = cell.AbkJson("prune", "lib1");
        Assert.Equal("SUCCEEDED", prune.GetProperty("state").GetString());
        Assert.True(lib1Before - VolumeBytes(cell) >= 0.9 * data.Length, $"lib1 {lib1Before} -> {VolumeBytes(cell)}");
        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.AbkJson("restore", snapshot, "--to", target);
        Assert.Equal("lib2", restore.GetProperty("library").GetString());
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(target + src, "data.bin")));
    }

    [Fact]
    public void A_prune_schedule_prunes_every_library_by_itself()
    {
        using var dir = new TempDir();
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.manager.prune-schedule=\"*/2 * * * * *\"").Start();
        Until(() => cell.AbkJson("job", "list").GetProperty("jobs").EnumerateArray()
                .Any(j => j.GetProperty("kind").GetString() == "PRUNE" && j.GetProperty("state").GetString() == "SUCCEEDED"),
            () => cell.Abk("job", "list").Stdout + cell.Log);
        Assert.Contains("schedule:@prune", cell.Abk("job", "list").Stdout);
    }
}
