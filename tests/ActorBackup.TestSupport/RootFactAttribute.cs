using Xunit;

namespace ActorBackup.TestSupport;

/// <summary>
/// A test that needs root (device nodes, trusted.* and security.* attributes, immutable files). Skipped, and said to
/// be, when not run as root, except under CI (CI=true: .ci/run runs as root), where it runs and fails instead of
/// passing without having checked anything.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute(string why)
    {
        if (!Environment.IsPrivilegedProcess && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = $"needs root: {why}";
    }
}
