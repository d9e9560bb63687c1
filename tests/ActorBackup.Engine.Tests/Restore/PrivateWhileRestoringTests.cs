using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests;

/// <summary>While a restore runs, what it has made is its owner's alone; each entry gets its own mode when it is whole.</summary>
public class PrivateWhileRestoringTests
{
    /// <summary>Reads from the library, and looks at the target the first time a file's content is read.</summary>
    private sealed class Watching(IChunkSource inner, Action firstFileRead) : IChunkSource
    {
        private int _reads;

        public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
        {
            var payload = inner.ReadPayload(id, ref buffer, out flags);
            if ((flags & RecordFlags.Tree) == 0 && Interlocked.Increment(ref _reads) == 1) firstFileRead();
            return payload;
        }
    }

    [Fact]
    public void Folders_are_0700_and_files_0600_until_they_get_their_own_modes()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        Directory.CreateDirectory(Path.Combine(src, "public", "deeper"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                                                          UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.WriteAllBytes(Path.Combine(src, "public", "deeper", "secret.key"), TestRepo.RandomBytes(300_000, 1));
        File.SetUnixFileMode(Path.Combine(src, "public", "deeper", "secret.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllBytes(Path.Combine(src, "public", "readme"), TestRepo.RandomBytes(300_000, 2));
        using var repo = TestRepo.Create(Path.Combine(dir.Path, "repo"));
        var snapshot = repo.Backup(new BackupSet("s", [src], []), Level.Full);
        var target = Path.Combine(dir.Path, "out");
        var seen = new List<string>();
        var source = new Watching(repo.Library, () =>
        {
            // Contents are being written: every folder the restore made is still private.
            foreach (var d in Directory.EnumerateDirectories(target, "*", SearchOption.AllDirectories))
                if (File.GetUnixFileMode(d) != (UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute)) seen.Add($"{d}: {File.GetUnixFileMode(d)}");
            foreach (var f in Directory.EnumerateFiles(target, "*", SearchOption.AllDirectories))
                if ((File.GetUnixFileMode(f) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0) seen.Add($"{f}: {File.GetUnixFileMode(f)}");
        });
        var result = new Restorer(repo.Keys, source).Run(snapshot, target, new RestoreOptions { Parallelism = 1 });
        Assert.Empty(result.Errors);
        Assert.Empty(seen);
        // At the end each has its own mode again.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(target + src + "/public/deeper/secret.key"));
        Assert.True((File.GetUnixFileMode(target + src + "/public") & UnixFileMode.OtherExecute) != 0);
    }
}
