using System.Globalization;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>
/// Retention over simulated days: a node whose clock the test moves a day at a time (libfaketime, the offset in
/// a file the node's libc reads), a full backup each day, and at the end the catalog holds exactly what
/// grandfather-father-son keeps.
/// </summary>
public class RetentionDaysTests
{
    [FakeClockFact]
    public void Gfs_retention_over_60_simulated_days_keeps_exactly_the_newest_of_each_day_week_and_month_it_names()
    {
        using var dir = new TempDir();
        var src = dir.Sub("www");
        var clock = Path.Combine(dir.Path, "clock");
        File.WriteAllText(clock, "+0d");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"));
        cell.Environment["LD_PRELOAD"] = FakeClockFactAttribute.Library;
        cell.Environment["FAKETIME_TIMESTAMP_FILE"] = clock;
        cell.Environment["FAKETIME_NO_CACHE"] = "1";
        cell.Environment["DONT_FAKE_MONOTONIC"] = "1"; // Akka's timers and failure detector keep real time
        cell.Start();
        Assert.Equal(0, cell.Abk("policy", "add", "gfs", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "3").ExitCode);
        Assert.Equal(0, cell.Abk("set", "add", "web", "--path", src, "--policy", "gfs").ExitCode);

        var made = new List<(string Id, DateTimeOffset At)>();
        var start = DateTimeOffset.UtcNow;
        for (var day = 0; day < 60; day++)
        {
            File.WriteAllText(clock, $"+{day}d");
            File.WriteAllText(Path.Combine(src, "index.html"), $"day {day}");
            var run = cell.AbkJson("set", "run", "web", "--level", "full");
            Assert.True(run.GetProperty("state").GetString() == "SUCCEEDED", run + cell.Log);
            var id = run.GetProperty("snapshot").GetString()!;
            var at = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(cell.AbkJson("snapshot", "show", id).GetProperty("finishedUnixMs").GetString()!));
            Assert.True(at >= start.AddDays(day), $"day {day}: the node's clock says {at:u}: libfaketime did not move it");
            made.Add((id, at));
        }
        // Nothing goes before a full has passed a verify; the newest one does now.
        Assert.Equal(60, Snapshots(cell).Count);
        Assert.Equal(0, cell.Abk("verify", made[^1].Id).ExitCode);

        // What GFS keeps, worked out here on its own: the newest of each of the last 7 days, 4 ISO weeks, 3 months.
        static IEnumerable<string> NewestOf<TKey>(IEnumerable<(string Id, DateTimeOffset At)> all, Func<DateTimeOffset, TKey> period, int n) =>
            all.GroupBy(s => period(s.At)).Select(g => g.MaxBy(s => s.At)).OrderByDescending(s => s.At).Take(n).Select(s => s.Id);
        var expected = NewestOf(made, t => t.UtcDateTime.Date, 7)
            .Concat(NewestOf(made, t => (ISOWeek.GetYear(t.UtcDateTime), ISOWeek.GetWeekOfYear(t.UtcDateTime)), 4))
            .Concat(NewestOf(made, t => (t.Year, t.Month), 3))
            .ToHashSet();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        List<string> kept;
        while ((kept = Snapshots(cell)).Count != expected.Count && DateTime.UtcNow < deadline) Thread.Sleep(200);
        Assert.Equal(made.Select(m => m.Id).Where(expected.Contains), kept);
        Assert.InRange(kept.Count, 10, 14);
    }

    private static List<string> Snapshots(CellProcess cell) =>
        cell.AbkJson("snapshot", "list").GetProperty("snapshots").EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToList();
}
