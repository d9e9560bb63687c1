using ActorBackup.Cluster.Media;
using Akka.Actor;

namespace ActorBackup.Cluster.Tests.Media;

/// <summary>A media agent whose journal failed waits before it tries again, longer after each failure in a row.</summary>
public sealed class JournalFailuresTests
{
    [Fact]
    public void A_failed_journal_holds_the_library_for_a_backoff_that_doubles_up_to_ten_minutes_and_a_write_clears_it()
    {
        using var system = ActorSystem.Create("jf", "akka.loglevel = OFF");
        using var other = ActorSystem.Create("jf", "akka.loglevel = OFF");
        const string library = "libj";
        var t0 = new DateTime(2026, 12, 7, 4, 0, 0, DateTimeKind.Utc);
        Assert.Null(JournalFailures.Holding(system, library, t0));
        JournalFailures.Record(system, library, "database or disk is full", t0);
        var held = JournalFailures.Holding(system, library, t0.AddSeconds(29));
        Assert.NotNull(held);
        Assert.Contains("could not be written (database or disk is full)", held);
        Assert.Contains("tries again in 1 s", held);
        Assert.Null(JournalFailures.Holding(system, library, t0.AddSeconds(30)));
        Assert.Null(JournalFailures.Holding(other, library, t0)); // another actor system's agent of the same library: its own

        var t = t0.AddSeconds(30);
        var waits = new List<TimeSpan>();
        for (var i = 0; i < 8; i++)
        {
            JournalFailures.Record(system, library, "full", t);
            var until = t;
            while (JournalFailures.Holding(system, library, until) is not null) until = until.AddSeconds(1);
            waits.Add(until - t);
            t = until;
        }
        Assert.Equal(TimeSpan.FromSeconds(60), waits[0]);
        Assert.Equal(TimeSpan.FromSeconds(120), waits[1]);
        Assert.Equal(JournalFailures.Longest, waits[^1]);

        JournalFailures.Record(system, library, "full", t);
        JournalFailures.Cleared(system, library);
        Assert.Null(JournalFailures.Holding(system, library, t));
        JournalFailures.Record(system, library, "full", t); // a new run starts short again
        Assert.Null(JournalFailures.Holding(system, library, t + JournalFailures.First));
    }
}
