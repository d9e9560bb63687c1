using Xunit;

namespace ActorBackup.TestSupport;

/// <summary>A test that fills a disk: it mounts a small tmpfs, which needs root (CI runs as root).</summary>
public sealed class SmallDiskFactAttribute : FactAttribute
{
    public SmallDiskFactAttribute()
    {
        if (Environment.UserName != "root" || !File.Exists("/bin/mount"))
            Skip = "needs root, to mount a small tmpfs that the test can fill (CI runs as root)";
    }
}
