namespace ActorBackup.EndToEnd.Tests;

/// <summary>The `actorbackup engine` commands as an operator runs them: real process, real files.</summary>
public class EngineCliTests
{
    private static readonly Dictionary<string, string> Pass = new() { ["ABK_PASSPHRASE"] = "e2e secret" };

    private static ProcessResult Abk(params string[] args) => Processes.Run(Processes.Actorbackup, ["engine", .. args], Pass);

    [Fact]
    public void Init_backup_change_incremental_restore_verify_through_the_cli()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(Path.Combine(src, "sub"));
        var big = new byte[3 * 1024 * 1024];
        new Random(1).NextBytes(big);
        File.WriteAllBytes(Path.Combine(src, "big.bin"), big);
        File.WriteAllText(Path.Combine(src, "sub", "a.txt"), "version one");
        var repo = Path.Combine(dir.Path, "repo");

        var init = Abk("init", "--repo", repo);
        Assert.True(init.ExitCode == 0, init.Stderr);
        var first = Abk("backup", "--repo", repo, "--level", "full", src);
        Assert.True(first.ExitCode == 0, first.Stderr + first.Stdout);
        Assert.Contains("files 2 (0 unchanged)", first.Stdout);

        File.WriteAllText(Path.Combine(src, "sub", "a.txt"), "version two");
        // big.bin was made right before the first backup began: by default (2 s) it would be read again.
        var second = Abk("backup", "--repo", repo, "--reread-changed-within", "0", src);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Contains("(1 unchanged)", second.Stdout);

        var list = Abk("snapshots", "--repo", repo, "--json");
        Assert.Equal(0, list.ExitCode);
        var ids = System.Text.Json.JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray().Select(e => e.GetProperty("id").GetString()!).ToList();
        Assert.Equal(2, ids.Count);

        var r1 = Path.Combine(dir.Path, "r1");
        Assert.Equal(0, Abk("restore", "--repo", repo, ids[0], "--to", r1).ExitCode);
        Assert.Equal("version one", File.ReadAllText(r1 + src + "/sub/a.txt"));
        Assert.Equal(big, File.ReadAllBytes(r1 + src + "/big.bin"));
        var r2 = Path.Combine(dir.Path, "r2");
        Assert.Equal(0, Abk("restore", "--repo", repo, "latest", "--to", r2, src + "/sub").ExitCode);
        Assert.Equal("version two", File.ReadAllText(r2 + src + "/sub/a.txt"));
        Assert.False(File.Exists(r2 + src + "/big.bin"));

        var ls = Abk("ls", "--repo", repo, "latest", src + "/sub");
        Assert.Contains(src + "/sub/a.txt", ls.Stdout);
        // --json prints what abk ls --json prints: one snapshot tree, each entry with every field.
        var lsJson = System.Text.Json.JsonDocument.Parse(Abk("ls", "--repo", repo, "--json", "latest", src + "/sub").Stdout).RootElement;
        Assert.Equal(ids[1], lsJson.GetProperty("snapshot").GetString());
        var entry = Assert.Single(lsJson.GetProperty("entries").EnumerateArray(), e => e.GetProperty("path").GetString() == src + "/sub/a.txt");
        Assert.Equal("11", entry.GetProperty("size").GetString()); // "version two": a uint64, a string in protobuf JSON
        var verify = Abk("verify", "--repo", repo);
        Assert.True(verify.ExitCode == 0, verify.Stdout);
        Assert.Contains("no damage", verify.Stdout);
        // A damaged reference list (the library's own, no key needed) is damage too, named with its snapshot.
        var refs = Directory.GetFiles(Path.Combine(repo, "library", "refs"), "*.ref").First();
        var refsBytes = File.ReadAllBytes(refs);
        refsBytes[^5] ^= 1;
        File.WriteAllBytes(refs, refsBytes);
        var damaged = Abk("verify", "--repo", repo);
        Assert.Equal(4, damaged.ExitCode);
        Assert.Contains($"reference list of snapshot {Path.GetFileNameWithoutExtension(refs)}: {refs}: checksum mismatch", damaged.Stdout);
    }

    [Fact]
    public void Operator_mistakes_get_a_message_and_a_non_zero_exit()
    {
        using var dir = new TempDir();
        var repo = Path.Combine(dir.Path, "repo");
        Assert.Equal(0, Abk("init", "--repo", repo).ExitCode);

        var wrong = Processes.Run(Processes.Actorbackup, ["engine", "snapshots", "--repo", repo], new Dictionary<string, string> { ["ABK_PASSPHRASE"] = "not it" });
        Assert.Equal(5, wrong.ExitCode);
        Assert.Contains("passphrase is wrong", wrong.Stderr);

        var noRepo = Abk("snapshots", "--repo", Path.Combine(dir.Path, "nothing-here"));
        Assert.Equal(1, noRepo.ExitCode);
        Assert.Contains("not an ActorBackup repository", noRepo.Stderr);

        var missing = Abk("backup", "--repo", repo, Path.Combine(dir.Path, "no-such-folder"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("none of the backup set's paths exists", missing.Stderr);

        var unknown = Abk("restore", "--repo", repo, "deadbeef", "--to", Path.Combine(dir.Path, "r"));
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no snapshot 'deadbeef'", unknown.Stderr);

        var badLevel = Abk("backup", "--repo", repo, "--level", "weekly", dir.Path);
        Assert.Equal(2, badLevel.ExitCode);
        Assert.Contains("unknown level 'weekly'", badLevel.Stderr);
    }

    [Fact]
    public void A_damaged_volume_is_found_by_verify_and_the_library_rebuilds_from_its_volumes()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        for (var i = 0; i < 5; i++) File.WriteAllText(Path.Combine(src, $"f{i}"), new string((char)('a' + i), 100_000 + i));
        var repo = Path.Combine(dir.Path, "repo");
        Assert.Equal(0, Abk("init", "--repo", repo).ExitCode);
        Assert.Equal(0, Abk("backup", "--repo", repo, src).ExitCode);

        File.Delete(Path.Combine(repo, "library", "index.abi"));
        var rebuild = Abk("rebuild", "--repo", repo);
        Assert.True(rebuild.ExitCode == 0, rebuild.Stdout + rebuild.Stderr);
        var target = Path.Combine(dir.Path, "r");
        Assert.Equal(0, Abk("restore", "--repo", repo, "latest", "--to", target).ExitCode);
        Assert.Equal(new string('c', 100_002), File.ReadAllText(target + src + "/f2"));

        var volume = Directory.GetFiles(Path.Combine(repo, "library", "volumes")).Single();
        var bytes = File.ReadAllBytes(volume);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(volume, bytes);
        var verify = Abk("verify", "--repo", repo);
        Assert.Equal(4, verify.ExitCode);
        Assert.Contains("DAMAGE FOUND", verify.Stdout);
        Assert.Contains(volume, verify.Stdout);
    }
}
