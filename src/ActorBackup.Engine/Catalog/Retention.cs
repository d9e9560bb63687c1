using System.Globalization;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Catalog;

/// <summary>
/// How long the snapshots of one backup set (of one client, on one copy) are kept. Every rule adds
/// snapshots to keep; what no rule keeps goes. No rule at all keeps everything.
/// </summary>
/// <param name="Last">the newest N</param>
/// <param name="Within">every snapshot at most this much older than the group's newest (not than now: a set
/// whose backups stopped keeps what it had)</param>
/// <param name="Daily">grandfather-father-son: the newest snapshot of each of the last N days that have one;
/// likewise weeks (ISO), months and years; days begin at midnight in the set's time zone</param>
/// <param name="Minimum">the newest N are kept whatever the other rules say</param>
public sealed record RetentionRules(int Last = 0, TimeSpan Within = default, int Daily = 0, int Weekly = 0, int Monthly = 0, int Yearly = 0, int Minimum = 0)
{
    public static readonly RetentionRules KeepEverything = new();

    /// <summary>True when some rule limits what is kept (Minimum alone does not).</summary>
    public bool Limits => Last > 0 || Within > TimeSpan.Zero || Daily > 0 || Weekly > 0 || Monthly > 0 || Yearly > 0;

    public override string ToString()
    {
        if (!Limits) return "keep everything";
        var parts = new List<string>();
        if (Last > 0) parts.Add($"last {Last}");
        if (Within > TimeSpan.Zero) parts.Add($"within {Retention.Format(Within)}");
        if (Daily > 0) parts.Add($"daily {Daily}");
        if (Weekly > 0) parts.Add($"weekly {Weekly}");
        if (Monthly > 0) parts.Add($"monthly {Monthly}");
        if (Yearly > 0) parts.Add($"yearly {Yearly}");
        if (Minimum > 0) parts.Add($"minimum {Minimum}");
        return string.Join(", ", parts);
    }
}

/// <summary>One snapshot of a group, whether retention keeps it and why.</summary>
public sealed record RetentionVerdict(SnapshotManifest Snapshot, bool Keep, IReadOnlyList<string> Reasons);

public static class Retention
{
    /// <summary>
    /// How far ahead of now a snapshot may be stamped before it is taken for one made while a clock was ahead (a host
    /// booted with its clock days off, set right since): such a one is kept, and is never the newest a rule counts from.
    /// </summary>
    public static readonly TimeSpan FutureTolerance = TimeSpan.FromMinutes(5);

    /// <summary>Whether <paramref name="s"/> is stamped later than <paramref name="now"/> by more than <see cref="FutureTolerance"/> (no now: none is).</summary>
    public static bool Ahead(SnapshotManifest s, DateTimeOffset? now) =>
        now is { } n && s.FinishedUnixMs > n.ToUnixTimeMilliseconds() + (long)FutureTolerance.TotalMilliseconds;

    /// <summary>
    /// The verdict on every snapshot of one group (one set of one client on one copy), newest first.
    /// Besides the rules: a snapshot is kept while no newer snapshot of its group has passed a verify
    /// (<paramref name="verified"/>), so that nothing after the last one known to restore is deleted; and the newest
    /// full is kept, the base a differential compares with (without it the next differential runs as a full). A snapshot stamped ahead of <paramref name="now"/> (<see cref="Ahead"/>) is kept, and
    /// the rules count from the newest of the others: one made while a clock was a year ahead would otherwise be "the
    /// newest" for a year, and `within 7d` of it would delete every backup made since the clock was set right.
    /// </summary>
    public static IReadOnlyList<RetentionVerdict> Evaluate(IEnumerable<SnapshotManifest> group, RetentionRules rules, TimeZoneInfo zone,
        Func<SnapshotManifest, bool> verified, DateTimeOffset? now = null)
    {
        var all = group.OrderByDescending(s => s.FinishedUnixMs).ThenByDescending(s => s.Id, StringComparer.Ordinal).ToList();
        var ahead = all.TakeWhile(s => Ahead(s, now)).Select(s => new RetentionVerdict(s, true,
            [$"dated {DateTimeOffset.FromUnixTimeMilliseconds(s.FinishedUnixMs):yyyy-MM-dd HH:mm} UTC, ahead of the manager's clock (a clock was ahead when it was made): kept, and not counted as the newest"])).ToList();
        var newestFirst = all.Skip(ahead.Count).ToList();
        var reasons = newestFirst.Select(_ => new List<string>()).ToList();
        if (!rules.Limits)
        {
            foreach (var r in reasons) r.Add("no retention rule: everything is kept");
        }
        else
        {
            for (var i = 0; i < newestFirst.Count; i++)
            {
                if (i < rules.Last) reasons[i].Add($"last {rules.Last}");
                if (i < rules.Minimum) reasons[i].Add($"minimum {rules.Minimum}");
            }
            if (rules.Within > TimeSpan.Zero && newestFirst.Count > 0)
            {
                var from = newestFirst[0].FinishedUnixMs - (long)rules.Within.TotalMilliseconds;
                for (var i = 0; i < newestFirst.Count && newestFirst[i].FinishedUnixMs >= from; i++)
                    reasons[i].Add($"within {Format(rules.Within)} of the newest");
            }
            Buckets(newestFirst, reasons, rules.Daily, "daily", t => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), zone);
            Buckets(newestFirst, reasons, rules.Weekly, "weekly", t => $"{ISOWeek.GetYear(t.DateTime)}-W{ISOWeek.GetWeekOfYear(t.DateTime):D2}", zone);
            Buckets(newestFirst, reasons, rules.Monthly, "monthly", t => t.ToString("yyyy-MM", CultureInfo.InvariantCulture), zone);
            Buckets(newestFirst, reasons, rules.Yearly, "yearly", t => t.ToString("yyyy", CultureInfo.InvariantCulture), zone);
        }
        // Newest first: the newest verified snapshot and everything newer stay (until one is verified: everything). Of
        // any level: every snapshot is a complete tree, and a whole verify read every chunk of it back, so a verified
        // incremental restores alone as a full does (a set of incrementals after one full would otherwise keep all).
        var newerVerified = false;
        for (var i = 0; i < newestFirst.Count && !newerVerified; i++)
        {
            newerVerified = verified(newestFirst[i]);
            reasons[i].Add(newerVerified ? "the newest verified snapshot" : "no newer snapshot has passed a verify yet");
        }
        if (newestFirst.FindIndex(s => s.Level == Level.Full) is var full and >= 0)
            reasons[full].Add("the newest full (the base of the differentials after it)");
        return ahead.Concat(newestFirst.Select((s, i) => new RetentionVerdict(s, reasons[i].Count > 0, reasons[i]))).ToList();
    }

    /// <summary>A duration as an operator writes it: 30d, 12h, 90m, 45s.</summary>
    public static string Format(TimeSpan d) =>
        d.Ticks % TimeSpan.TicksPerDay == 0 ? $"{d.Ticks / TimeSpan.TicksPerDay}d"
        : d.Ticks % TimeSpan.TicksPerHour == 0 ? $"{d.Ticks / TimeSpan.TicksPerHour}h"
        : d.Ticks % TimeSpan.TicksPerMinute == 0 ? $"{d.Ticks / TimeSpan.TicksPerMinute}m"
        : $"{Math.Round(d.TotalSeconds)}s";

    /// <summary>The newest snapshot of each of the newest <paramref name="count"/> periods that have one.</summary>
    private static void Buckets(List<SnapshotManifest> newestFirst, List<List<string>> reasons, int count, string rule, Func<DateTimeOffset, string> period, TimeZoneInfo zone)
    {
        if (count <= 0) return;
        string? last = null;
        var taken = 0;
        for (var i = 0; i < newestFirst.Count && taken < count; i++)
        {
            var p = period(TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeMilliseconds(newestFirst[i].FinishedUnixMs), zone));
            if (p == last) continue;
            last = p;
            taken++;
            reasons[i].Add($"{rule} {p}");
        }
    }
}
