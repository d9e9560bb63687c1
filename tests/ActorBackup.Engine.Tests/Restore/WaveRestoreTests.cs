using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;
using ActorBackup.TestSupport;

namespace ActorBackup.Engine.Tests;

/// <summary>A restore planned and written in waves, so that its memory does not grow with the number of files.</summary>
public class WaveRestoreTests
{
    [Fact]
    public void A_tree_restored_in_waves_is_identical_with_its_hard_links_across_waves_and_no_more_files_planned_at_once()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        var files = 0;
        foreach (var folder in new[] { "a", "b/deep/er", "c" })
        {
            var d = Path.Combine(src, folder);
            Directory.CreateDirectory(d);
            for (var i = 0; i < 20; i++, files++) File.WriteAllBytes(Path.Combine(d, $"f{i:D2}"), TestRepo.RandomBytes(100 + i * 37, files + 1));
        }
        File.WriteAllBytes(Path.Combine(src, "a", "big"), TestRepo.RandomBytes(300_000, 99)); // several chunks
        files++;
        // Hard links whose first name is restored waves before them, and one within its own folder.
        Posix.Posix.Link(Path.Combine(src, "a", "f03"), Path.Combine(src, "c", "link-to-a"));
        Posix.Posix.Link(Path.Combine(src, "a", "big"), Path.Combine(src, "b", "deep", "link-to-big"));
        Posix.Posix.Link(Path.Combine(src, "c", "f19"), Path.Combine(src, "c", "link-to-c"));
        File.CreateSymbolicLink(Path.Combine(src, "b", "sym"), "deep/er/f00");
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"), new RepositoryConfig { ChunkMin = 16 << 10, ChunkAvg = 64 << 10, ChunkMax = 128 << 10 });
        var snapshot = repo.Backup(new BackupSet("s", [src], []), Level.Full);

        (RestoreResult Result, int Peak) Restore(string target, int wave)
        {
            var restorer = new Restorer(repo.Keys, repo.Library) { WaveFiles = wave };
            var options = new RestoreOptions();
            var result = restorer.Run(snapshot, target, options);
            Assert.Empty(result.Errors);
            TreeCompare.AssertSame(TreeCompare.Describe(src), target + src);
            // Its threads' decoders go from one wave to the next: no more made than one wave's threads, however many waves.
            Assert.InRange(restorer.DecodersMade, 1, options.Parallelism);
            return (result, restorer.PeakWaveFiles);
        }
        var whole = Restore(Path.Combine(dir.Path, "whole"), int.MaxValue);
        Assert.Equal(files, whole.Peak); // every file planned before any is written
        var waves = Restore(Path.Combine(dir.Path, "waves"), 7);
        Assert.InRange(waves.Peak, 1, 7);
        Assert.Equal(whole.Result.Files, waves.Result.Files);
        Assert.Equal(whole.Result.Bytes, waves.Result.Bytes);
        Assert.Equal(whole.Result.Links, waves.Result.Links);
    }
}
