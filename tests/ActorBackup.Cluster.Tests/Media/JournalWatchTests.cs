using ActorBackup.Cluster.Media;

namespace ActorBackup.Cluster.Tests;

/// <summary>Where the manager's journal stands, as a library's media agent saw it: a prune asked for with a number lower than the tickets used well before means the journal went back.</summary>
public sealed class JournalWatchTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 20, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_prune_stamped_lower_than_a_ticket_used_well_before_says_the_journal_went_back_until_it_caught_up()
    {
        using var dir = new TempDir();
        var watch = new JournalWatch(dir.Path);
        watch.Used(0, Now); // a manager that sends none says nothing
        watch.Used(5000, Now);
        // A prune asked for before that ticket was issued may come after it: not judged by it yet.
        Assert.False(watch.Asked(4000, Now.AddMinutes(1)));
        Assert.Null(watch.Behind);
        // Settled: a prune asked for now comes after every ticket used then.
        var later = Now + JournalWatch.Settle;
        Assert.False(watch.Asked(5000 - JournalWatch.Margin, later));
        Assert.True(watch.Asked(4000, later));
        Assert.Contains("saw its sequence number 5000, now 4000, on 2026-12-06 20:30 UTC", watch.Behind);
        Assert.False(watch.Asked(3000, later)); // said once
        watch.Used(9000, later);
        Assert.False(watch.Asked(9500, later + JournalWatch.Settle)); // higher again: still behind (what it lacks is still lacking)
        Assert.NotNull(watch.Behind);
        // Kept in the library's folder, private to the node's user, the numbers not yet settled with it.
        var again = new JournalWatch(dir.Path);
        Assert.Equal(watch.Behind, again.Behind);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir.Path, "manager-journal")));
        watch.CaughtUp(4100, later);
        Assert.Null(watch.Behind);
        Assert.Equal(4100, new JournalWatch(dir.Path).Highest);
        Assert.False(watch.Asked(4101, later));
        Assert.Null(new JournalWatch(dir.Path).Behind);
    }

    [Fact]
    public void An_old_ticket_used_late_raises_nothing_and_numbers_waiting_to_settle_survive_a_restart()
    {
        using var dir = new TempDir();
        var watch = new JournalWatch(dir.Path);
        watch.Used(7000, Now);
        watch.Used(6000, Now.AddMinutes(5)); // a ticket issued long before, used now (a pre-command ran first)
        var restarted = new JournalWatch(dir.Path); // the first number was written at once
        Assert.False(restarted.Asked(6990, Now + JournalWatch.Settle));
        Assert.Equal(7000, restarted.Highest);
        Assert.True(restarted.Asked(6000, Now + JournalWatch.Settle));
    }

    [Fact]
    public void A_damaged_or_hostile_state_file_reads_as_what_it_can_and_bounded()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "manager-journal"), "highest -12\nbehind " + new string('x', 100_000) + "\nhighest 99\n");
        var watch = new JournalWatch(dir.Path);
        Assert.Equal(0, watch.Highest); // not a number it takes, and the rest is past the 4 KiB it reads
        Assert.True(watch.Behind!.Length < 1000);
        File.WriteAllText(Path.Combine(dir.Path, "manager-journal"), "recent 1:5 x:y 2:3 3:9 " + string.Join(' ', Enumerable.Range(10, 500).Select(i => $"{i}:{i}")) + "\n");
        Assert.Equal(0, new JournalWatch(dir.Path).Highest); // recent numbers wait to settle, rising only
    }
}
