using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests;

/// <summary>A restore's progress moves where files and bytes do not: folders, links and their metadata (the manager's stall watch reads it).</summary>
public sealed class RestoreEntriesProgressTests
{
    private sealed class Last : IProgress<Restore.RestoreProgress>
    {
        public Restore.RestoreProgress? Seen;
        public void Report(Restore.RestoreProgress value) => Seen = value;
    }

    [Fact]
    public void A_restore_of_folders_and_links_only_reports_entries_without_files()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        for (var i = 0; i < 20; i++) Directory.CreateDirectory(Path.Combine(src, $"d{i}", "inner"));
        File.CreateSymbolicLink(Path.Combine(src, "d0", "link"), "/nowhere");
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snap = repo.Backup(new BackupSet("s", [src]), Level.Full);
        var last = new Last();
        Assert.Empty(repo.Restore(snap.Id, Path.Combine(dir.Path, "r"), progress: last).Errors);
        Assert.NotNull(last.Seen);
        Assert.Equal(0, last.Seen.FilesDone);
        Assert.True(last.Seen.Entries >= 41 * 2, $"entries {last.Seen.Entries}"); // each planned, then made or set
    }
}
