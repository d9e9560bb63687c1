using System.Runtime.ExceptionServices;

namespace ActorBackup.Engine.Work;

/// <summary>
/// Runs items 0..count-1 on dedicated threads, each with its own context (buffers, codecs) made once per
/// thread. Items are taken in order, so a list sorted largest-first keeps the big ones from starting last.
/// The first exception stops every thread and is rethrown to the caller with its stack.
/// </summary>
public static class WorkQueue
{
    public static void Run<TContext>(int count, int parallelism, string name, Func<TContext> makeContext, Action<TContext, int> work,
        CancellationToken cancel = default) where TContext : IDisposable
    {
        var next = -1;
        Exception? fatal = null;
        var threads = Enumerable.Range(0, Math.Max(1, Math.Min(parallelism, count))).Select(_ => new Thread(() =>
        {
            try
            {
                using var context = makeContext();
                int i;
                while ((i = Interlocked.Increment(ref next)) < count && Volatile.Read(ref fatal) is null)
                {
                    cancel.ThrowIfCancellationRequested();
                    work(context, i);
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref fatal, e, null);
            }
        }) { IsBackground = true, Name = name }).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (fatal is not null) ExceptionDispatchInfo.Capture(fatal).Throw();
        cancel.ThrowIfCancellationRequested();
    }
}
