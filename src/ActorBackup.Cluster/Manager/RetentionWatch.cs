namespace ActorBackup.Cluster.Manager;

/// <summary>
/// When retention looks at the catalog again (every evaluation walks all snapshots: at 200,000 of them, a second of the
/// manager's time): when the catalog changed (snapshots, policies, sets, verifies, copies, suspects, undeletes: the
/// caller's <c>seen</c> key, references of immutable state), when a snapshot that a job held at the last look is no
/// longer held (only that frees a deletion the jobs held back; a job holding one more blocks, never frees), and at
/// least every <see cref="Every"/> (a snapshot stamped ahead of the clock comes into the rules as time passes).
/// </summary>
public sealed class RetentionWatch
{
    public static readonly TimeSpan Every = TimeSpan.FromMinutes(10);

    private object? _seen;
    private IReadOnlySet<string> _held = new HashSet<string>();
    private DateTimeOffset _looked = DateTimeOffset.MinValue;

    /// <summary>Whether to evaluate now; when so, remembers <paramref name="seen"/> and what <paramref name="inUse"/> holds.</summary>
    public bool Due(object seen, Func<IReadOnlySet<string>> inUse, DateTimeOffset now)
    {
        IReadOnlySet<string>? held = null;
        if (Equals(seen, _seen) && now - _looked < Every && now >= _looked)
        {
            if (_held.Count == 0) return false;
            held = inUse();
            if (_held.All(held.Contains)) return false;
        }
        _seen = seen;
        _held = held ?? inUse();
        _looked = now;
        return true;
    }
}
