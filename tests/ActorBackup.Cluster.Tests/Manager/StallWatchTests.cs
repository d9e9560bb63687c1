using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Tests;

/// <summary>When a running attempt counts as stalled: reports that go on with figures that do not move.</summary>
public sealed class StallWatchTests
{
    private static readonly DateTime T0 = new(2026, 12, 7, 2, 0, 0, DateTimeKind.Utc);
    private static readonly TimeSpan After = TimeSpan.FromMinutes(30);

    private static JobProgress At(long files, long bytes = 0, long walked = 0) => new() { Job = "7", FilesDone = files, BytesDone = bytes, Entries = walked };

    /// <summary>The same figures reported every 10 s from <paramref name="from"/> for <paramref name="minutes"/> minutes.</summary>
    private static StallWatch Reporting(StallWatch w, JobProgress p, DateTime from, int minutes)
    {
        for (var t = from; t <= from.AddMinutes(minutes); t = t.AddSeconds(10)) w = w.Heard(p, t);
        return w;
    }

    [Fact]
    public void Figures_that_stay_as_they_are_while_reports_go_on_stall_the_attempt()
    {
        var w = Reporting(new StallWatch(After), At(120, 5_000_000), T0, 29);
        Assert.Null(w.Stalled(T0.AddMinutes(29), "web01"));
        w = Reporting(w, At(120, 5_000_000), T0.AddMinutes(29), 2);
        var why = w.Stalled(T0.AddMinutes(31), "web01");
        Assert.NotNull(why);
        Assert.Contains("no progress on client web01 in 31 min", why);
        Assert.Contains("still at 120 files and 5,000,000 bytes done", why);
        Assert.Contains("stall-timeout", why);
    }

    [Fact]
    public void Any_figure_that_moves_is_progress_an_unchanged_walk_too()
    {
        var w = new StallWatch(After);
        for (var minute = 0; minute <= 120; minute++)
            w = w.Heard(At(0, 0, walked: minute * 1000), T0.AddMinutes(minute)); // an unchanged tree: only the walk moves
        Assert.Null(w.Stalled(T0.AddMinutes(120), "web01"));
        w = Reporting(w, At(0, 0, walked: 120_000), T0.AddMinutes(120), 31);
        Assert.Contains("still at 120,000 entries handled", w.Stalled(T0.AddMinutes(151), "web01"));
        w = w.Heard(At(0, 1), T0.AddMinutes(152)); // a byte read: it moves again
        Assert.Null(w.Stalled(T0.AddMinutes(152), "web01"));
    }

    [Fact]
    public void No_reports_is_no_stall_a_command_or_a_commit_runs_and_a_watch_of_zero_never_stalls()
    {
        // Before the first report (a pre-command, the session opening) and once reports stop (a post-command, the commit).
        Assert.Null(new StallWatch(After).Stalled(T0.AddHours(5), "web01"));
        var w = new StallWatch(After).Heard(At(5), T0);
        Assert.Null(w.Stalled(T0.AddMinutes(45), "web01"));
        Assert.Null(Reporting(new StallWatch(TimeSpan.Zero), At(5), T0, 120).Stalled(T0.AddMinutes(120), "web01"));
    }
}
