namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// A listening socket's failed accepts, after which it goes on listening: out of file handles (EMFILE, ENFILE), out
/// of memory for a socket, a connection reset before it was taken. The connection that failed stays queued, so trying
/// again at once would spin a core: each failure in a row waits twice as long as the last (10 ms up to 1 s), and the
/// first of a run is logged, saying what to look at, as is the first accept after it.
/// </summary>
public sealed class AcceptFailures(string listener, Action<string> log)
{
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);
    private int _inRow;

    /// <summary>An accept failed with <paramref name="e"/>: how long to wait before the next.</summary>
    public TimeSpan Failed(Exception e)
    {
        if (_inRow++ == 0)
            log($"{listener}: accepting a connection failed ({e.Message}); it goes on trying. Out of file handles? " +
                "(ls /proc/PID/fd | wc -l against 'ulimit -n', or LimitNOFILE= in the node's systemd unit)");
        var delay = TimeSpan.FromMilliseconds(10L << Math.Min(_inRow - 1, 10));
        return delay < MaxDelay ? delay : MaxDelay;
    }

    /// <summary>An accept succeeded.</summary>
    public void Accepted()
    {
        if (_inRow > 0) log($"{listener}: accepting connections again after {_inRow} failed");
        _inRow = 0;
    }
}
