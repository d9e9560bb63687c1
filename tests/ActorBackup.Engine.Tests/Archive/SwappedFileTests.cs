using ActorBackup.Engine.Posix;

namespace ActorBackup.Engine.Tests;

/// <summary>A backup reads the very file its walk saw: one swapped since for a symlink, a FIFO or another file is refused.</summary>
public class SwappedFileTests
{
    [Fact]
    public void A_file_swapped_after_the_walk_is_refused_and_none_of_what_it_points_to_is_read()
    {
        using var dir = new TempDir();
        var secret = Path.Combine(dir.Path, "shadow");
        File.WriteAllText(secret, "root:$6$secret-hash");
        var path = Path.Combine(dir.Sub("src"), "notes.txt");

        File.WriteAllText(path, "harmless");
        var walked = Posix.Posix.LStat(path)!.Value;
        using (var same = Posix.Posix.OpenWalked(path, walked)) Assert.False(same.IsInvalid); // unchanged: read as usual

        // Swapped for a symlink to a secret: not followed.
        File.Delete(path);
        File.CreateSymbolicLink(path, secret);
        Assert.Contains("became a symlink", Assert.Throws<FileChangedException>(() => Posix.Posix.OpenWalked(path, walked)).Message);

        // Swapped for a FIFO: refused at once, never waited on (nobody writes to it).
        File.Delete(path);
        Posix.Posix.MkFifo(path, 0x180);
        Assert.Contains("became a FIFO", Assert.Throws<FileChangedException>(() => Posix.Posix.OpenWalked(path, walked)).Message);

        // Swapped for another file (a hard link to the secret, say): not the file the walk saw.
        File.Delete(path);
        Posix.Posix.Link(secret, path);
        Assert.Contains("replaced by another file", Assert.Throws<FileChangedException>(() => Posix.Posix.OpenWalked(path, walked)).Message);
    }
}
