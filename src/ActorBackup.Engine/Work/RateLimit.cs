namespace ActorBackup.Engine.Work;

/// <summary>
/// Holds the threads of one job to an average of so many bytes a second (an operator's bandwidth limit, as
/// restic's --limit-upload or Bacula's MaximumBandwidthPerJob): each thread reports what it took and sleeps
/// while the job is ahead of its allowance. Thread-safe; a limit of 0 or less means none.
/// </summary>
public sealed class RateLimit(long bytesPerSecond)
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private long _taken;

    public static RateLimit? For(long bytesPerSecond) => bytesPerSecond > 0 ? new RateLimit(bytesPerSecond) : null;

    public void Take(long bytes, CancellationToken cancel)
    {
        var taken = Interlocked.Add(ref _taken, bytes);
        var due = TimeSpan.FromSeconds((double)taken / bytesPerSecond) - _clock.Elapsed;
        if (due > TimeSpan.Zero && cancel.WaitHandle.WaitOne(due)) cancel.ThrowIfCancellationRequested();
    }
}
