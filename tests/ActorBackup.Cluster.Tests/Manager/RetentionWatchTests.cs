using ActorBackup.Cluster.Manager;

namespace ActorBackup.Cluster.Tests;

/// <summary>When the manager's retention looks at the catalog again, and when it saves a snapshot of its state.</summary>
public class RetentionWatchTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 22, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Retention_looks_again_when_the_catalog_changed_a_held_snapshot_was_let_go_or_ten_minutes_passed_not_at_every_tick()
    {
        var watch = new RetentionWatch();
        var catalog = new object();
        var held = new HashSet<string> { "s1", "s2" };
        var asked = 0;
        IReadOnlySet<string> InUse()
        {
            asked++;
            return held.ToHashSet();
        }

        Assert.True(watch.Due(catalog, InUse, Now));
        // Jobs hold s1 and s2: while they still do, the ticks do not evaluate again (before: every tick, while any job read a snapshot).
        Assert.False(watch.Due(catalog, InUse, Now.AddSeconds(1)));
        held.Add("s3"); // one more held only blocks more
        Assert.False(watch.Due(catalog, InUse, Now.AddSeconds(2)));
        held.Remove("s1"); // a job let go of s1: what it held back may go now
        Assert.True(watch.Due(catalog, InUse, Now.AddSeconds(3)));
        Assert.False(watch.Due(catalog, InUse, Now.AddSeconds(4)));
        // A changed catalog: at once, whatever is held.
        catalog = new object();
        Assert.True(watch.Due(catalog, InUse, Now.AddSeconds(5)));

        // Nothing held: the jobs are not even walked until the catalog changes or 10 minutes pass.
        held.Clear();
        Assert.True(watch.Due(catalog = new object(), InUse, Now.AddSeconds(6)));
        asked = 0;
        Assert.False(watch.Due(catalog, InUse, Now.AddMinutes(9)));
        Assert.Equal(0, asked);
        Assert.True(watch.Due(catalog, InUse, Now.AddMinutes(11)));
        // A clock set back: looked at again rather than waiting for the old time.
        Assert.True(watch.Due(catalog, InUse, Now.AddMinutes(1)));
    }

    [Fact]
    public void A_state_snapshot_is_saved_every_n_events_but_never_while_the_last_save_has_not_answered()
    {
        var turns = new SnapshotTurns(3);
        Assert.Equal([false, false, true], Enumerable.Range(0, 3).Select(_ => turns.Journaled()));
        // The save is slow: the busy hour's events do not start another.
        Assert.All(Enumerable.Range(0, 10), _ => Assert.False(turns.Journaled()));
        Assert.True(turns.Answered()); // the events meanwhile reached the count: saved as soon as the last answered
        Assert.False(turns.Journaled()); // one event towards the next
        Assert.False(turns.Answered()); // a failed save answers too; one event is not yet a save
        Assert.Equal([false, true], Enumerable.Range(0, 2).Select(_ => turns.Journaled()));
    }
}
