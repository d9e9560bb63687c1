using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Trees;
using CsCheck;

namespace ActorBackup.Engine.Tests.Catalog;

/// <summary>What a retention policy keeps, and why, over a set's snapshots.</summary>
public sealed class RetentionTests
{
    private static readonly DateTimeOffset First = new(2026, 10, 1, 1, 0, 0, TimeSpan.Zero);

    /// <summary>One backup a day at 01:00 UTC for 60 days (2026-10-01 .. 2026-11-29): a full on Sundays, else incremental.</summary>
    private static List<SnapshotManifest> SixtyDays() => Enumerable.Range(0, 60).Select(d =>
    {
        var at = First.AddDays(d);
        return new SnapshotManifest
        {
            Id = $"s{d:D2}", BackupSet = "web", Client = "web01", FinishedUnixMs = at.ToUnixTimeMilliseconds(),
            Level = at.DayOfWeek == DayOfWeek.Sunday ? Level.Full : Level.Incremental,
        };
    }).ToList();

    private static string Day(SnapshotManifest s) => DateTimeOffset.FromUnixTimeMilliseconds(s.FinishedUnixMs).ToString("MM-dd");

    private static List<string> Kept(IReadOnlyList<RetentionVerdict> verdicts) => verdicts.Where(v => v.Keep).Select(v => Day(v.Snapshot)).Order().ToList();

    private static bool AllVerified(SnapshotManifest _) => true;

    [Fact]
    public void Grandfather_father_son_over_sixty_days_keeps_exactly_the_newest_of_each_day_week_and_month()
    {
        var verdicts = Retention.Evaluate(SixtyDays(), new RetentionRules(Daily: 7, Weekly: 4, Monthly: 3), TimeZoneInfo.Utc, AllVerified);

        // Days: 11-23 .. 11-29. ISO weeks: W48 (11-29), W47 (11-22), W46 (11-15), W45 (11-08). Months: November
        // (11-29), October (10-31); there is no third month.
        Assert.Equal(["10-31", "11-08", "11-15", "11-22", "11-23", "11-24", "11-25", "11-26", "11-27", "11-28", "11-29"], Kept(verdicts));
        var newest = verdicts[0];
        Assert.Equal("11-29", Day(newest.Snapshot));
        Assert.Contains("daily 2026-11-29", newest.Reasons);
        Assert.Contains("weekly 2026-W48", newest.Reasons);
        Assert.Contains("monthly 2026-11", newest.Reasons);
        Assert.Equal(["monthly 2026-10"], verdicts.Single(v => Day(v.Snapshot) == "10-31").Reasons);
        Assert.Empty(verdicts.Single(v => Day(v.Snapshot) == "10-30").Reasons);
    }

    [Fact]
    public void Yearly_keeps_the_newest_snapshot_of_each_of_the_newest_years()
    {
        // A full on the 15th of each month, 2024-01 .. 2026-12: yearly 2 keeps 2026's newest (12-15) and 2025's (12-15).
        var monthly = Enumerable.Range(0, 36).Select(m =>
        {
            var at = new DateTimeOffset(2024, 1, 15, 1, 0, 0, TimeSpan.Zero).AddMonths(m);
            return new SnapshotManifest { Id = $"m{m:D2}", BackupSet = "web", Client = "web01", FinishedUnixMs = at.ToUnixTimeMilliseconds(), Level = Level.Full };
        }).ToList();
        var verdicts = Retention.Evaluate(monthly, new RetentionRules(Yearly: 2), TimeZoneInfo.Utc, AllVerified);
        Assert.Equal(["2025-12-15", "2026-12-15"], verdicts.Where(v => v.Keep).Select(v => DateTimeOffset.FromUnixTimeMilliseconds(v.Snapshot.FinishedUnixMs).ToString("yyyy-MM-dd")).Order());
        Assert.Contains("yearly 2025", verdicts.Single(v => v.Snapshot.Id == "m23").Reasons);
        Assert.Contains("yearly 2026", verdicts.Single(v => v.Snapshot.Id == "m35").Reasons);
        Assert.False(verdicts.Single(v => v.Snapshot.Id == "m11").Keep); // 2024's newest: a third year
    }

    [Fact]
    public void Nothing_after_the_newest_verified_full_goes_and_without_a_verified_full_nothing_goes()
    {
        var snapshots = SixtyDays();
        // Only the full of 11-15 passed a verify: it and everything newer stay, whatever the rules say.
        var verdicts = Retention.Evaluate(snapshots, new RetentionRules(Last: 2), TimeZoneInfo.Utc, s => Day(s) == "11-15");
        Assert.Equal(Enumerable.Range(15, 15).Select(d => $"11-{d}").ToList(), Kept(verdicts));
        Assert.Contains("the newest verified snapshot", verdicts.Single(v => Day(v.Snapshot) == "11-15").Reasons);
        Assert.Contains("no newer snapshot has passed a verify yet", verdicts.Single(v => Day(v.Snapshot) == "11-20").Reasons);

        var none = Retention.Evaluate(snapshots, new RetentionRules(Last: 2), TimeZoneInfo.Utc, _ => false);
        Assert.All(none, v => Assert.True(v.Keep));
    }

    [Fact]
    public void A_verified_incremental_lets_the_rules_go_on_so_incrementals_after_one_full_are_pruned()
    {
        // One full on day 1, then only incrementals (restic's way); the newest passed a whole verify each night.
        var snapshots = Enumerable.Range(0, 31).Select(d => new SnapshotManifest
        {
            Id = $"i{d:D2}", BackupSet = "web", Client = "web01", FinishedUnixMs = First.AddDays(d).ToUnixTimeMilliseconds(),
            Level = d == 0 ? Level.Full : Level.Incremental,
        }).ToList();
        var verdicts = Retention.Evaluate(snapshots, new RetentionRules(Daily: 7), TimeZoneInfo.Utc, s => s.Id == "i30");
        // Before, only a verified full counted: all 31 stayed for good. The one full stays, the base of differentials.
        Assert.Equal(["10-01", "10-25", "10-26", "10-27", "10-28", "10-29", "10-30", "10-31"], Kept(verdicts));
        Assert.Contains("the newest verified snapshot", verdicts[0].Reasons);
        Assert.Equal(["the newest full (the base of the differentials after it)"], verdicts[^1].Reasons);
    }

    [Fact]
    public void The_newest_full_stays_whatever_the_rules_say_as_the_base_of_the_differentials_after_it()
    {
        // A weekly full (Sundays), daily differentials, the newest verified; last 3 would let the week's full go.
        var snapshots = SixtyDays().Select(s => { var d = s.Clone(); if (d.Level == Level.Incremental) d.Level = Level.Differential; return d; }).ToList();
        var verdicts = Retention.Evaluate(snapshots, new RetentionRules(Last: 3), TimeZoneInfo.Utc, s => Day(s) == "11-28");
        // 11-29 is a Sunday: the newest full itself; a week on, the full of 11-22 is still kept below the last 3.
        Assert.Equal(["11-27", "11-28", "11-29"], Kept(verdicts));
        var weekAfter = Retention.Evaluate(snapshots.Take(58).ToList(), new RetentionRules(Last: 3), TimeZoneInfo.Utc, s => Day(s) == "11-27");
        Assert.Equal(["11-22", "11-25", "11-26", "11-27"], Kept(weekAfter));
    }

    [Fact]
    public void A_snapshot_made_while_a_clock_was_a_year_ahead_is_kept_and_the_rules_count_from_the_newest_of_the_others()
    {
        var snapshots = SixtyDays();
        var now = First.AddDays(59).AddHours(2); // the clock set right, the day of the last real backup
        var ahead = new SnapshotManifest { Id = "ahead", BackupSet = "web", Client = "web01", FinishedUnixMs = First.AddDays(425).ToUnixTimeMilliseconds(), Level = Level.Full };
        snapshots.Insert(30, ahead);

        var verdicts = Retention.Evaluate(snapshots, new RetentionRules(Within: TimeSpan.FromDays(3)), TimeZoneInfo.Utc, AllVerified, now);

        // Before, "within 3d of the newest" counted from the snapshot a year ahead: every real one went.
        Assert.Equal(["11-26", "11-27", "11-28", "11-29", "11-30"], Kept(verdicts)); // 11-30: the one dated 2027-11-30
        Assert.Contains("ahead of the manager's clock", Assert.Single(verdicts, v => v.Snapshot.Id == "ahead").Reasons.Single());
        Assert.DoesNotContain(verdicts, v => v.Snapshot.Id != "ahead" && v.Reasons.Any(r => r.Contains("ahead")));
        // Without now (the engine's own forget), as before.
        Assert.Equal(["11-30"], Kept(Retention.Evaluate(snapshots, new RetentionRules(Within: TimeSpan.FromDays(3)), TimeZoneInfo.Utc, AllVerified)));
    }

    [Fact]
    public void No_rule_keeps_everything_and_a_minimum_overrides_the_rules()
    {
        Assert.All(Retention.Evaluate(SixtyDays(), RetentionRules.KeepEverything, TimeZoneInfo.Utc, AllVerified),
            v => Assert.Contains("no retention rule: everything is kept", v.Reasons));
        Assert.Equal(5, Retention.Evaluate(SixtyDays(), new RetentionRules(Last: 2, Minimum: 5), TimeZoneInfo.Utc, AllVerified).Count(v => v.Keep));
        Assert.Equal(["11-26", "11-27", "11-28", "11-29"],
            Kept(Retention.Evaluate(SixtyDays(), new RetentionRules(Within: TimeSpan.FromDays(3)), TimeZoneInfo.Utc, AllVerified)));
    }

    [Fact]
    public void Days_begin_at_midnight_in_the_sets_time_zone()
    {
        // 23:30 UTC on 11-28 is 00:30 on 11-29 in Paris: the same day there as 11-29 12:00 UTC.
        List<SnapshotManifest> snapshots =
        [
            new() { Id = "a", Level = Level.Full, FinishedUnixMs = new DateTimeOffset(2026, 11, 28, 23, 30, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() },
            new() { Id = "b", Level = Level.Full, FinishedUnixMs = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() },
        ];
        var paris = TimeZoneInfo.FindSystemTimeZoneById("Europe/Paris");
        Assert.Single(Retention.Evaluate(snapshots, new RetentionRules(Daily: 2), paris, AllVerified), v => v.Keep);
        Assert.Equal(2, Retention.Evaluate(snapshots, new RetentionRules(Daily: 2), TimeZoneInfo.Utc, AllVerified).Count(v => v.Keep));
    }

    [Fact]
    public void Retention_is_stable_keeps_the_newest_and_never_drops_what_last_n_or_the_minimum_keep()
    {
        var gen = Gen.Select(
            Gen.Int[0, 10_000].Array[1, 80], // hours after First, one snapshot each
            Gen.Int[0, 6].Array[7],          // the rules
            Gen.Bool.Array[80]);             // which snapshots are fulls
        gen.Sample((hours, r, full) =>
        {
            var snapshots = hours.Distinct().Select((h, i) => new SnapshotManifest
            {
                Id = $"s{i:D3}", FinishedUnixMs = First.AddHours(h).ToUnixTimeMilliseconds(), Level = full[i % full.Length] ? Level.Full : Level.Incremental,
            }).ToList();
            var rules = new RetentionRules(r[0], TimeSpan.FromHours(r[1] * 24), r[2], r[3], r[4], r[5], r[6]);
            bool Verified(SnapshotManifest s) => s.Id.GetHashCode() % 3 != 0; // the same each time
            var verdicts = Retention.Evaluate(snapshots, rules, TimeZoneInfo.Utc, Verified);
            var kept = verdicts.Where(v => v.Keep).Select(v => v.Snapshot).ToList();
            if (!verdicts[0].Keep) return false; // the newest always stays
            if (verdicts.Take(Math.Max(rules.Last, rules.Minimum)).Any(v => !v.Keep)) return false;
            // Applied again to what it kept, it keeps all of it: retention does not creep on each run.
            return Retention.Evaluate(kept, rules, TimeZoneInfo.Utc, Verified).All(v => v.Keep);
        }, iter: 2000);
    }
}
