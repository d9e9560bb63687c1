using Xunit;

namespace ActorBackup.TestSupport;

/// <summary>
/// A test that moves a node's clock with libfaketime (Debian's faketime package; scripts/test.sh installs it when
/// missing and we are root). Skipped where it is missing, except under CI (CI=true), where that fails the test.
/// </summary>
public sealed class FakeClockFactAttribute : FactAttribute
{
    public const string Library = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

    public FakeClockFactAttribute()
    {
        if (!File.Exists(Library) && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = $"needs libfaketime ({Library}: apt-get install faketime) to move a node's clock";
    }
}
