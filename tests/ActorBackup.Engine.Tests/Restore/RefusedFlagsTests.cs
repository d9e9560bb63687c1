using ActorBackup.Engine.Posix;

namespace ActorBackup.Engine.Tests;

/// <summary>A file's flags restored onto a file system that refuses some of them: only those are left off, and named.</summary>
public class RefusedFlagsTests
{
    private const uint NoCow = 0x00800000; // btrfs's chattr +C: ext4 refuses it

    [RootFact("immutable needs CAP_LINUX_IMMUTABLE")]
    public void A_flag_the_target_refuses_leaves_off_only_itself_and_an_immutable_file_stays_immutable()
    {
        using var dir = new TempDir();
        var file = Path.Combine(dir.Path, "journal.log");
        File.WriteAllText(file, "x");
        using var root = new RootedDirectory(dir.Path);
        Assert.NotNull(root.SetFlags("journal.log", directory: false, NoCow)); // this test's file system (ext4) refuses +C
        try
        {
            var why = root.SetFlags("journal.log", directory: false, FileFlags.Immutable | FileFlags.NoDump | NoCow);
            Assert.Equal(FileFlags.Immutable | FileFlags.NoDump, TreeCompare.Flags(file) & (FileFlags.Immutable | FileFlags.NoDump | NoCow));
            Assert.NotNull(why);
            Assert.Contains("file flags C:", why);
        }
        finally
        {
            TreeCompare.SetFlags(file, 0);
        }
    }
}
