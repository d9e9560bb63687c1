namespace ActorBackup.EndToEnd.Tests;

/// <summary>A simulated tape library in a real cell: a backup larger than a cartridge spans cartridges and restores.</summary>
public class TapeTests
{
    /// <summary>The tape demo's libraries with cartridges of 4 MiB and no waiting.</summary>
    private const string Libraries = "actorbackup.libraries=[{id=lib1}, {id=tape1, kind=tape, drives=2, slots=8, cartridge-capacity=4MiB, " +
                                     "cartridges=[AAA001L8, AAA002L8, AAA003L8, AAA004L8, AAA005L8, CLN001L1], timings{scale=0}}]";

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
        Assert.Equal(2, cell.AbkJson("drive", "list", "tape1").GetProperty("drives").GetArrayLength());

        var target = Path.Combine(dir.Path, "restored");
        var restore = cell.Abk("restore", "latest", "--to", target);
        Assert.True(restore.ExitCode == 0, restore.Stderr + restore.Stdout + cell.Log);
        TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
    }
}
