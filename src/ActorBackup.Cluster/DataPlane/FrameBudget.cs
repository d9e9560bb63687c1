namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The bytes of large frames (a chunk or tree record above <see cref="SocketFrames.MaxRequest"/>) that all the
/// connections of a data-plane server hold at once: at most <paramref name="limit"/>; a connection waits for room.
/// Without it, each of the 256 connections could hold a 256 MiB record's buffer (64 GiB).
/// </summary>
internal sealed class FrameBudget(long limit)
{
    private readonly object _lock = new();
    private long _used;

    /// <summary>Waits until <paramref name="bytes"/> fit (one frame alone always does), at most <paramref name="wait"/>; then a
    /// <see cref="Engine.Library.LibraryBusyException"/> (the job is tried again later).</summary>
    public void Take(long bytes, TimeSpan wait)
    {
        var deadline = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        lock (_lock)
        {
            while (_used > 0 && _used + bytes > limit)
            {
                var left = deadline - Environment.TickCount64;
                if (left <= 0 || !Monitor.Wait(_lock, TimeSpan.FromMilliseconds(left)))
                    throw new Engine.Library.LibraryBusyException($"the media node holds {_used >> 20} MiB of large records for other connections and had no room for {bytes >> 20} MiB more " +
                                          $"within {wait.TotalMinutes:F0} min: try again later");
            }
            _used += bytes;
        }
    }

    public void Give(long bytes)
    {
        lock (_lock)
        {
            _used -= bytes;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>The bytes held now (tests).</summary>
    public long Used
    {
        get
        {
            lock (_lock) return _used;
        }
    }
}
