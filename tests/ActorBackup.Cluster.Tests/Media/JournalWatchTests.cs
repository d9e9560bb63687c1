using ActorBackup.Cluster.Media;

namespace ActorBackup.Cluster.Tests;

/// <summary>Where the manager's journal stands, as a library's media agent saw it: a number lower than it saw means the journal went back.</summary>
public sealed class JournalWatchTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 20, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_number_lower_than_the_highest_seen_by_more_than_the_margin_says_the_journal_went_back_until_it_caught_up()
    {
        using var dir = new TempDir();
        var watch = new JournalWatch(dir.Path);
        Assert.False(watch.Saw(0, Now)); // a manager that sends none says nothing
        Assert.False(watch.Saw(5000, Now));
        Assert.False(watch.Saw(5000 - JournalWatch.Margin, Now)); // a manager that recovered without its last few events
        Assert.Null(watch.Behind);
        Assert.True(watch.Saw(4000, Now));
        Assert.Contains("saw its sequence number 5000, now 4000, on 2026-12-06 20:00 UTC", watch.Behind);
        Assert.False(watch.Saw(3000, Now)); // said once
        Assert.False(watch.Saw(9000, Now)); // higher again: still behind (what it lacks is still lacking)
        Assert.NotNull(watch.Behind);
        // Kept in the library's folder, private to the node's user.
        Assert.Equal(watch.Behind, new JournalWatch(dir.Path).Behind);
        Assert.Equal(9000, new JournalWatch(dir.Path).Highest);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir.Path, "manager-journal")));
        watch.CaughtUp(4100);
        Assert.Null(watch.Behind);
        Assert.Equal(4100, new JournalWatch(dir.Path).Highest);
        Assert.False(watch.Saw(4101, Now));
        Assert.Null(new JournalWatch(dir.Path).Behind);
    }

    [Fact]
    public void A_damaged_or_hostile_state_file_reads_as_what_it_can_and_bounded()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "manager-journal"), "highest -12\nbehind " + new string('x', 100_000) + "\nhighest 99\n");
        var watch = new JournalWatch(dir.Path);
        Assert.Equal(0, watch.Highest); // not a number it takes; the third line is past the two it reads
        Assert.True(watch.Behind!.Length < 1000);
    }
}
