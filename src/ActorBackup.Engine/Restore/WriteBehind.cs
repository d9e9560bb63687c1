using ActorBackup.Engine.Posix;

namespace ActorBackup.Engine.Restore;

/// <summary>
/// Has what a restore wrote so far written back, every <c>every</c>, while it goes on writing
/// (<see cref="RootedDirectory.WriteBehind"/>, one at a time, on a thread of the pool). Disposed, it waits for a write-back
/// under way: none runs on the folder's handle once the folder is disposed (its number may be another file's by then).
/// </summary>
internal sealed class WriteBehind : IDisposable
{
    private readonly RootedDirectory _root;
    private readonly Timer _timer;
    private int _running;

    public WriteBehind(RootedDirectory root, TimeSpan every)
    {
        _root = root;
        _timer = new Timer(_ => Once(), null, every, every);
    }

    private void Once()
    {
        if (Interlocked.Exchange(ref _running, 1) != 0) return;
        try
        {
            _root.WriteBehind();
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    public void Dispose()
    {
        using var stopped = new ManualResetEvent(false);
        if (_timer.Dispose(stopped)) stopped.WaitOne();
    }
}
