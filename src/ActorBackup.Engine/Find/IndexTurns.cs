namespace ActorBackup.Engine.Find;

/// <summary>
/// One file-index build or search at a time on a node, finds first. A background build (a backup's index, made right
/// after it at the lowest CPU priority) takes its turn only while no find waits or runs, and one that is running is
/// cancelled when a find comes: it stops before its next folder, and the find builds what it needs at its own
/// priority instead of waiting behind a build that gets little CPU while backups run.
/// </summary>
public sealed class IndexTurns : IDisposable
{
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly ManualResetEventSlim _noFinds = new(true);
    private readonly object _lock = new();
    private int _finds;
    private CancellationTokenSource? _background;

    /// <summary>Finds waiting for their turn or holding it (tests wait for a find to be queued).</summary>
    internal int Finds
    {
        get
        {
            lock (_lock) return _finds;
        }
    }

    /// <summary>A background build's turn, once no find waits for one (blocks until then). Dispose it when the build is done.</summary>
    public Turn TakeBackground()
    {
        while (true)
        {
            _noFinds.Wait();
            _turn.Wait();
            lock (_lock)
                if (_finds == 0)
                {
                    var cancel = _background = new CancellationTokenSource();
                    return new Turn(this, cancel);
                }
            _turn.Release(); // a find came between the two waits: it goes first
        }
    }

    /// <summary>A find's turn (blocks until the build or search before it is done; a background build stops for it). Dispose it when done.</summary>
    public Turn TakeFind()
    {
        lock (_lock)
        {
            if (_finds++ == 0) _noFinds.Reset();
            _background?.Cancel();
        }
        _turn.Wait();
        return new Turn(this, null);
    }

    private void End(CancellationTokenSource? background)
    {
        lock (_lock)
        {
            if (background is not null) _background = null;
            else if (--_finds == 0) _noFinds.Set();
        }
        background?.Dispose();
        _turn.Release();
    }

    public void Dispose()
    {
        _turn.Dispose();
        _noFinds.Dispose();
    }

    /// <summary>A turn held: <see cref="Token"/> is cancelled when a find comes for a background build's (never for a find's).</summary>
    public sealed class Turn : IDisposable
    {
        private readonly IndexTurns _owner;
        private readonly CancellationTokenSource? _background;
        private int _ended;

        internal Turn(IndexTurns owner, CancellationTokenSource? background)
        {
            _owner = owner;
            _background = background;
            Token = background?.Token ?? CancellationToken.None;
        }

        public CancellationToken Token { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) _owner.End(_background);
        }
    }
}
