using System.Diagnostics;
using ActorBackup.Engine.Work;

namespace ActorBackup.Engine.Tests;

public class RateLimitTests
{
    [Fact]
    public void No_limit_is_no_limiter() => Assert.Null(RateLimit.For(0));

    [Fact]
    public void Two_threads_together_stay_at_the_limit()
    {
        var clock = Stopwatch.StartNew(); // before the limiter's own: a pause between the two lines shortens nothing measured
        var limit = RateLimit.For(10_000_000)!;
        Parallel.For(0, 2, _ =>
        {
            for (var i = 0; i < 15; i++) limit.Take(100_000, CancellationToken.None);
        });
        // 3 MB at 10 MB/s: the last take may not return before 0.3 s (a lower bound; no upper bound is asserted).
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.29), $"{clock.Elapsed}");
    }

    [Fact]
    public void A_cancelled_job_stops_waiting()
    {
        var limit = RateLimit.For(1_000)!;
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.ThrowsAny<OperationCanceledException>(() => limit.Take(1_000_000, cancel.Token)); // would wait 1,000 s
    }
}
