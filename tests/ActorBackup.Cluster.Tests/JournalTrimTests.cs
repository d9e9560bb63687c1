using ActorBackup.Cluster.Journal;

namespace ActorBackup.Cluster.Tests;

/// <summary>What a persistent actor deletes behind its snapshots (manager, media agents).</summary>
public class JournalTrimTests
{
    [Fact]
    public void Each_snapshot_deletes_up_to_the_previous_one_in_steps_and_a_restart_goes_on_from_where_the_snapshot_says()
    {
        var trim = new JournalTrim();
        Assert.Null(trim.Saved(200)); // the first: nothing before it to keep in its place
        Assert.Equal((200L, 199L), trim.Saved(400));
        // A long history (after an upgrade): at most Step events a time.
        var big = new JournalTrim();
        big.Recovered(100_000, 0);
        Assert.Equal((JournalTrim.ManagerStep, 99_999L), big.Saved(100_200));
        Assert.Equal((2 * JournalTrim.ManagerStep, 100_199L), big.Saved(100_400));
        // A restart from a snapshot that says how far the deletes got does not walk up from the first event again.
        var again = new JournalTrim();
        again.Recovered(100_400, big.TrimmedUpTo);
        Assert.Equal(big.TrimmedUpTo, again.TrimmedUpTo);
        Assert.Equal((Math.Min(100_400, big.TrimmedUpTo + JournalTrim.ManagerStep), 100_399L), again.Saved(100_600));
        // Answers of two saves in flight that come the other way round: the earlier one's deletes nothing.
        var swapped = new JournalTrim(step: 100);
        swapped.Recovered(1_000, 0);
        Assert.Equal((100L, 999L), swapped.Saved(1_100));
        Assert.Null(swapped.Saved(1_050));
        Assert.Equal((200L, 1_099L), swapped.Saved(1_200)); // a step of 100
        // A snapshot never claims more deleted than its own place.
        var odd = new JournalTrim();
        odd.Recovered(50, 1_000);
        Assert.Equal(50, odd.TrimmedUpTo);
    }
}
