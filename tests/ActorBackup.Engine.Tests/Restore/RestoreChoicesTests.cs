using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests;

/// <summary>What an operator chooses of a restore: entries left out (--exclude), what becomes of files there (--overwrite), a dry run.</summary>
public class RestoreChoicesTests
{
    private const long Then = 1_700_000_000; // the snapshot's files' mtime (seconds)

    private static Node Dated(Node node, long sec, uint nsec = 500)
    {
        node.MtimeSec = sec;
        node.MtimeNsec = nsec;
        return node;
    }

    private static void Date(string path, long sec, uint nsec = 500) =>
        File.SetLastWriteTimeUtc(path, DateTime.UnixEpoch.AddSeconds(sec).AddTicks(nsec / 100));

    private static string Read(string target, string relative) => File.ReadAllText(Path.Combine(target, relative));

    [Fact]
    public void Excluded_names_and_paths_are_not_restored_and_a_folder_left_out_takes_what_is_below_it()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = Path.Combine(f.Dir.Path, "target");
        var root = new[]
        {
            f.Folder("etc", f.File("fstab", "a"), f.File("fstab.tmp", "b"), f.Folder("ssl", f.File("key.pem", "c"))),
            f.Folder("var", f.File("log.tmp", "d"), f.File("mail", "e")),
        };

        var result = f.Restore(target, new RestoreOptions { Excludes = ["*.tmp", "/etc/ssl"] }, root);

        Assert.Equal(2, result.Files);
        Assert.Empty(result.Errors);
        Assert.Equal(["etc", "etc/fstab", "var", "var/mail"],
            Directory.EnumerateFileSystemEntries(target, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(target, p)).Order(StringComparer.Ordinal));

        // A path asked for that only something left out matches: said so, not "it is not there".
        var none = Assert.Throws<FileNotFoundException>(() =>
            f.Restore(Path.Combine(f.Dir.Path, "other"), new RestoreOptions { Include = ["/etc/ssl/key.pem"], Excludes = ["/etc/ssl"] }, root));
        Assert.Contains("once /etc/ssl is left out", none.Message);
    }

    [Fact]
    public void Overwrite_never_restores_only_what_is_missing_and_leaves_the_rest_as_it_is()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        var etc = Directory.CreateDirectory(Path.Combine(target, "etc")).FullName;
        File.SetUnixFileMode(etc, (UnixFileMode)0b111_101_000); // 0750; the snapshot's is 0755
        File.WriteAllText(Path.Combine(etc, "hosts"), "edited since");
        File.WriteAllText(Path.Combine(target, "var"), "a file where the snapshot has a folder");

        var result = f.Restore(target, new RestoreOptions { Force = true, Overwrite = OverwritePolicy.Never },
            f.Folder("etc", f.File("hosts", "from the snapshot"), f.File("fstab", "lost, restored")), f.Folder("var", f.File("mail", "x")));

        Assert.Equal(1, result.Files);
        Assert.Equal(1, result.Kept);
        Assert.Equal("edited since", Read(target, "etc/hosts"));
        Assert.Equal("lost, restored", Read(target, "etc/fstab"));
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(etc));
        Assert.Equal("a file where the snapshot has a folder", Read(target, "var"));
        var error = Assert.Single(result.Errors);
        Assert.Contains("left as it is (--overwrite never)", error.Reason);
    }

    [Fact]
    public void Under_overwrite_never_a_symlink_or_link_name_taken_since_the_plan_is_left_and_two_patterns_that_both_match_are_both_used()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        var link = new Node { Name = "current", Type = NodeType.Symlink, LinkTarget = Google.Protobuf.ByteString.CopyFromUtf8("releases/2") };
        var result = f.Restore(target, new RestoreOptions
        {
            Force = true, Overwrite = OverwritePolicy.Never, Excludes = ["cache", "/srv/cache"],
            Phase = phase => { if (phase == "contents") File.WriteAllText(Path.Combine(target, "current"), "made meanwhile"); },
        }, link, f.Folder("srv", f.Folder("cache", f.File("c", "x")), f.File("data", "d")));

        Assert.Equal("made meanwhile", Read(target, "current"));
        Assert.Equal((1, 0L, 0), (result.Kept, result.NotRestored, result.Errors.Count));
        Assert.False(Directory.Exists(Path.Combine(target, "srv", "cache")));
        Assert.Equal("d", Read(target, "srv/data"));
    }

    [Fact]
    public void Overwrite_never_gives_the_folders_it_finds_to_be_recorded_a_level_at_a_time_before_anything_goes_into_them()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        Directory.CreateDirectory(Path.Combine(target, "a", "b", "c"));
        var told = new List<string>();
        f.Restore(target, new RestoreOptions
        {
            Force = true, Overwrite = OverwritePolicy.Never,
            FoundOnTheWay = found => { lock (told) told.Add("found " + found); },
            FoundLevelDone = () => { lock (told) told.Add("level"); },
            Phase = phase => { lock (told) told.Add(phase); },
        }, f.Folder("a", f.Folder("b", f.Folder("c", f.File("x", "1")))));

        // Each folder found is told before its level is done (one sync a level, not one a folder), all before contents.
        Assert.Equal(["found a", "level", "found a/b", "level", "found a/b/c", "level", "directories"], told.TakeWhile(t => t != "contents"));
        Assert.Equal("1", Read(target, "a/b/c/x"));
    }

    [Fact]
    public void Overwrite_if_changed_leaves_files_of_the_snapshots_size_and_time_and_replaces_the_others()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        // Same size and time as the snapshot's, other bytes: left (proof that it was not written again).
        File.WriteAllText(Path.Combine(target, "same"), "SAME");
        Date(Path.Combine(target, "same"), Then);
        File.WriteAllText(Path.Combine(target, "touched"), "tttt");
        Date(Path.Combine(target, "touched"), Then, 600);
        File.WriteAllText(Path.Combine(target, "grown"), "grown!");
        Date(Path.Combine(target, "grown"), Then);

        var result = f.Restore(target, new RestoreOptions { Force = true, Overwrite = OverwritePolicy.IfChanged },
            Dated(f.File("same", "same"), Then), Dated(f.File("touched", "snap"), Then), Dated(f.File("grown", "orig"), Then), Dated(f.File("new", "made"), Then));

        Assert.Equal(1, result.Kept);
        Assert.Equal(3, result.Files);
        Assert.Equal("SAME", Read(target, "same"));
        Assert.Equal("snap", Read(target, "touched"));
        Assert.Equal("orig", Read(target, "grown"));
        Assert.Equal("made", Read(target, "new"));
    }

    [Fact]
    public void Overwrite_if_newer_replaces_only_files_older_than_the_snapshots()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        File.WriteAllText(Path.Combine(target, "older"), "older");
        Date(Path.Combine(target, "older"), Then - 60);
        File.WriteAllText(Path.Combine(target, "newer"), "newer");
        Date(Path.Combine(target, "newer"), Then + 60);
        // Dated a day from now (its host's clock was ahead): not taken for newer.
        File.WriteAllText(Path.Combine(target, "future"), "future");
        Date(Path.Combine(target, "future"), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 86_400);

        var result = f.Restore(target, new RestoreOptions { Force = true, Overwrite = OverwritePolicy.IfNewer },
            Dated(f.File("older", "from the snapshot"), Then), Dated(f.File("newer", "from the snapshot"), Then), Dated(f.File("future", "from the snapshot"), Then));

        Assert.Equal((2, 1), (result.Files, result.Kept));
        Assert.Equal("from the snapshot", Read(target, "older"));
        Assert.Equal("newer", Read(target, "newer"));
        Assert.Equal("from the snapshot", Read(target, "future"));
    }

    [Fact]
    public void Without_force_the_overwrite_policy_has_nothing_to_keep_and_a_retry_is_not_fooled_by_its_own_files()
    {
        // A retried restore (not forced) finds what its first attempt wrote, whole or not: never kept, whatever the policy.
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        File.WriteAllText(Path.Combine(target, "half"), "ha");
        var result = f.Restore(target, new RestoreOptions { Resumes = true, Overwrite = OverwritePolicy.Never }, f.File("half", "half written"));
        Assert.Equal((1, 0), (result.Files, result.Kept));
        Assert.Equal("half written", Read(target, "half"));
    }

    [Fact]
    public void Under_overwrite_never_no_name_holds_a_file_not_yet_whole_and_one_made_there_meanwhile_is_kept()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        var lost = f.File("lost", "never stored");
        lost.Chunks = Google.Protobuf.ByteString.CopyFrom(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        // The file the restore cannot finish leaves nothing at its name (a retry, or the next run, would keep it); one
        // an application made at its name after the restore looked is kept, not replaced.
        var result = f.Restore(target, new RestoreOptions
        {
            Force = true, Overwrite = OverwritePolicy.Never,
            Phase = phase => { if (phase == "directories") File.WriteAllText(Path.Combine(target, "late"), "made meanwhile"); },
        }, lost, f.File("late", "from the snapshot"), f.File("new", "restored"));

        Assert.False(File.Exists(Path.Combine(target, "lost")));
        Assert.Equal("made meanwhile", Read(target, "late"));
        Assert.Equal("restored", Read(target, "new"));
        Assert.Equal((1, 1, 1), (result.Files, result.Kept, result.NotRestored));
        Assert.Empty(Directory.EnumerateFiles(target, ".abk-restore-*"));
    }

    [Fact]
    public void Overwrite_if_changed_replaces_a_file_whose_mode_alone_differs_and_an_exclude_of_no_path_is_an_error()
    {
        using var f = new PathSafetyTests.Fixture();
        var target = f.Dir.Sub("target");
        File.WriteAllText(Path.Combine(target, "key"), "same");
        Date(Path.Combine(target, "key"), Then);
        File.SetUnixFileMode(Path.Combine(target, "key"), (UnixFileMode)0b111_111_111); // a chmod -R 777 to undo
        var key = Dated(f.File("key", "same"), Then);
        key.Mode = 0b110_000_000;
        // A setuid program as the snapshot has it: a forced restore may give the bit, so it is as it should be.
        File.WriteAllText(Path.Combine(target, "su"), "prog");
        Date(Path.Combine(target, "su"), Then);
        File.SetUnixFileMode(Path.Combine(target, "su"), (UnixFileMode)0b100_111_101_101);
        var su = Dated(f.File("su", "prog"), Then);
        su.Mode = 0b100_111_101_101;
        su.Uid = (uint)Posix.Posix.LStat(Path.Combine(target, "su"))!.Value.Uid; // as it is there (restoring owners when root)
        su.Gid = (uint)Posix.Posix.LStat(Path.Combine(target, "su"))!.Value.Gid;
        key.Uid = su.Uid;
        key.Gid = su.Gid;

        // A dry run judges them as the restore does (the mode it would give, with --force the setuid bit too).
        var planned = f.Restore(target, new RestoreOptions { Force = true, Overwrite = OverwritePolicy.IfChanged, DryRun = true }, key, su);
        Assert.Equal((1, 1), (planned.Files, planned.Kept));
        var result = f.Restore(target, new RestoreOptions { Force = true, Overwrite = OverwritePolicy.IfChanged, Excludes = ["etc/fstab", "*.tmp", "key.old", "/key.old"] }, key, su);

        Assert.Equal((1, 1), (result.Files, result.Kept));
        Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(Path.Combine(target, "key")));
        // etc/fstab (any folder's etc/fstab) and /key.old name no path there: said; a name pattern that meets nothing
        // (key.old, *.tmp) is no mistake.
        Assert.Equal(["/key.old", "etc/fstab"], result.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        var error = result.Errors.Single(e => e.Path == "etc/fstab");
        Assert.Contains("left nothing out", error.Reason);
    }

    [Fact]
    public void A_dry_run_counts_what_would_be_restored_and_left_and_writes_nothing()
    {
        using var f = new PathSafetyTests.Fixture();
        var root = new[] { f.Folder("etc", f.File("hosts", "12345"), f.File("fstab", "123")), f.File("motd", "1") };

        var fresh = Path.Combine(f.Dir.Path, "fresh");
        var planned = f.Restore(fresh, new RestoreOptions { DryRun = true, Excludes = ["motd"] }, root);
        Assert.True(planned.DryRun);
        Assert.Equal((2, 8, 1), (planned.Files, planned.Bytes, planned.Directories));
        Assert.False(Path.Exists(fresh));

        var target = f.Dir.Sub("target");
        Directory.CreateDirectory(Path.Combine(target, "etc"));
        File.WriteAllText(Path.Combine(target, "etc", "hosts"), "there");
        // Refused as the restore itself would be, for the same reason.
        var refused = Assert.Throws<IOException>(() => f.Restore(target, new RestoreOptions { DryRun = true }, root));
        Assert.Contains("give --force", refused.Message);

        var never = f.Restore(target, new RestoreOptions { DryRun = true, Force = true, Overwrite = OverwritePolicy.Never }, root);
        Assert.Equal((2, 4, 1), (never.Files, never.Bytes, never.Kept));
        Assert.Equal("there", Read(target, "etc/hosts"));
        Assert.Equal(["etc", "etc/hosts"],
            Directory.EnumerateFileSystemEntries(target, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(target, p)).Order(StringComparer.Ordinal));
    }
}
