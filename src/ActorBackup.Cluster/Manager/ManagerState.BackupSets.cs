using ActorBackup.Protocol;
using System.Collections.Immutable;
using Cronos;

namespace ActorBackup.Cluster.Manager;

// Backup sets: what to back up on a client and when. Definitions are checked whole before anything is
// persisted, so a bad one changes nothing and says which part is wrong.
public sealed partial record ManagerState
{
    public const int DefaultPriority = 5;

    /// <summary>A restore's priority unless it asks for another: above the backups' default.</summary>
    public const int DefaultRestorePriority = 7;

    /// <summary>Defines a new set; the client defaults to the only registered one.</summary>
    public Decision DecideDefineSet(DefineBackupSet cmd, DateTimeOffset now)
    {
        var set = cmd.Set?.Clone() ?? new BackupSetDefinition();
        if (BackupSets.ContainsKey(set.Name)) return Reject($"backup set '{set.Name}' exists already: change it with 'abk apply FILE' (its clock, deferral and queued runs kept), " +
                                                                 $"or remove it first ('abk set remove {set.Name}': its queued runs are cancelled and its clock starts again)");
        var client = ResolveClient(set.Client, out var why);
        if (client is null) return Reject($"backup set '{set.Name}': {why}");
        set.Client = client;
        Normalize(set);
        if (Invalid(set) is { } reason) return Reject($"backup set '{set.Name}': {reason}");
        // A set added again under a name it had: its old snapshots are judged by its policy from then on.
        return UnlessStranded(new BackupSetDefined { Set = set, UnixMs = now.ToUnixTimeMilliseconds() }, $"backup set '{set.Name}'");
    }

    public Decision DecideRemoveSet(RemoveBackupSet cmd, DateTimeOffset now)
    {
        if (!BackupSets.ContainsKey(cmd.Name)) return Reject(UnknownSet(cmd.Name));
        // Its snapshots are judged by the policy each was made under from then on (RetentionOf).
        return UnlessStranded(new BackupSetRemoved { Name = cmd.Name, UnixMs = now.ToUnixTimeMilliseconds() }, $"backup set '{cmd.Name}'");
    }

    public Decision DecideEnableSet(EnableBackupSet cmd, DateTimeOffset now)
    {
        if (!BackupSets.TryGetValue(cmd.Name, out var set)) return Reject(UnknownSet(cmd.Name));
        var changed = set.Clone();
        changed.Disabled = !cmd.Enabled;
        return new Decision([new BackupSetDefined { Set = changed, UnixMs = now.ToUnixTimeMilliseconds() }], null);
    }

    /// <summary>`abk set run NAME`: a backup of the set now, as an operator's request.</summary>
    public Decision DecideRunSet(RunBackupSet cmd, IReadOnlyList<LibraryLoad> loads, DateTimeOffset now)
    {
        if (!BackupSets.TryGetValue(cmd.Name, out var set)) return Reject(UnknownSet(cmd.Name));
        return DecideStartBackup(StartOf(set, cmd.Level, JobOrigin.Operator), loads, now);
    }

    /// <summary>`abk set defer NAME --until TIME`, or a client's request: the set's next run moves to TIME.</summary>
    public Decision DecideDefer(DeferBackupSet cmd, DateTimeOffset now)
    {
        if (!BackupSets.TryGetValue(cmd.Name, out var set)) return Reject(UnknownSet(cmd.Name));
        if (!SetClocks.TryGetValue(set.Name, out var clock) || NextRun(set, now) is not { } next)
            return Reject($"backup set '{set.Name}' has no scheduled run to defer{(set.Disabled ? ": it is disabled" : "")}");
        if (cmd.UntilUnixMs <= now.ToUnixTimeMilliseconds()) return Reject("defer to a time in the future");
        if (clock.DeferredUntilUnixMs == 0 && cmd.UntilUnixMs <= next.When.ToUnixTimeMilliseconds())
            return Reject($"the next run is at {next.When:u} already: defer to a later time, or run the set now ('abk set run {set.Name}')");
        // Deferred again: to a time after the slot it moves (before it, that slot would come and run a second time).
        if (clock.DeferredUntilUnixMs > 0 && cmd.UntilUnixMs <= clock.DeferredSlotUnixMs)
            return Reject($"the run deferred is the one of {DateTimeOffset.FromUnixTimeMilliseconds(clock.DeferredSlotUnixMs):u}: defer it to a later time, " +
                          $"or run the set now ('abk set run {set.Name}')");
        // Deferring again moves the same run; the slot it replaces stays the first one deferred.
        var (slot, level) = clock.DeferredUntilUnixMs > 0 ? (clock.DeferredSlotUnixMs, clock.DeferredLevel) : (next.When.ToUnixTimeMilliseconds(), next.Level);
        return new Decision([new SlotDeferred { Set = set.Name, SlotUnixMs = slot, UntilUnixMs = cmd.UntilUnixMs, Level = level, UnixMs = now.ToUnixTimeMilliseconds() }], null);
    }

    private static StartBackup StartOf(BackupSetDefinition set, BackupLevel level, JobOrigin origin)
    {
        var start = new StartBackup { Client = set.Client, Level = level, BackupSet = set.Name, OneFileSystem = set.OneFileSystem, Atime = set.Atime, Origin = origin, Priority = set.Priority, Policy = set.Policy };
        start.Paths.AddRange(set.Paths);
        start.Excludes.AddRange(set.Excludes);
        return start;
    }

    /// <summary>
    /// The slots due at <paramref name="now"/>: per enabled set, the latest slot of its schedule after the last
    /// one acted on — one job however many slots a downtime skipped, at the highest level among them. Each decision is
    /// a queued backup that carries its slot, or, when none can start (no library reachable, say), a SlotMissed with
    /// the reason; either moves the set's clock on, so a slot is acted on once. While a backup of the set is still
    /// queued or running, its due slots wait (no second job of the set beside it, each slot one job from the same
    /// parent): once it ends, one job runs for them, at the highest of their levels.
    /// </summary>
    /// <param name="settling">the manager started moments ago: a slot that cannot start now (its library's node has not
    /// joined again yet, after a restart of the cell) waits for the next look instead of being recorded as missed</param>
    public IReadOnlyList<Decision> DecideDueSlots(DateTimeOffset now, IReadOnlyList<LibraryLoad> loads, bool settling = false)
    {
        // The quiet tick: while neither the sets nor their clocks changed, nothing is due before the earliest
        // slot the last look found.
        var nowMs = now.ToUnixTimeMilliseconds();
        if (QuietUntil.TryGetValue(SetClocks, out var quiet) && ReferenceEquals(quiet.Sets, BackupSets) && nowMs < quiet.EarliestMs) return [];
        var earliest = long.MaxValue;
        var decisions = new List<Decision>();
        var state = this;
        HashSet<(string Client, string Set)>? open = null;
        foreach (var set in BackupSets.Values)
        {
            if (set.Disabled || set.Schedules.Count == 0 || !SetClocks.TryGetValue(set.Name, out var clock)) continue;
            if (ClockWentBack(clock, now) is { } back)
            {
                // Said (a missed slot: its on-failure command, its metric) and started again from now.
                var again = new SlotMissed { Set = set.Name, SlotUnixMs = nowMs, Reason = back };
                decisions.Add(new Decision([again], null));
                state = state.Apply(again);
                earliest = Math.Min(earliest, nowMs + 1000);
                continue;
            }
            var latest = LatestSlot(set, DateTimeOffset.FromUnixTimeMilliseconds(clock.LastSlotUnixMs), now);
            if (latest is null) earliest = Math.Min(earliest, FirstSlots.GetOrCreateValue(set).FirstMs);
            (DateTimeOffset When, BackupLevel Level)? slot = latest;
            if (clock.DeferredUntilUnixMs > 0)
            {
                // Deferred: nothing runs before the time asked for; then one job, at the higher level of the
                // slot it replaces and of any slot that passed meanwhile.
                if (nowMs < clock.DeferredUntilUnixMs)
                {
                    earliest = Math.Min(earliest, clock.DeferredUntilUnixMs);
                    continue;
                }
                var level = latest is { } l && Rank(l.Level) > Rank(clock.DeferredLevel) ? l.Level : clock.DeferredLevel;
                // The clock moves past every slot that passed while deferred (a downtime after the time asked
                // for included), so that none of them runs again.
                var at = DateTimeOffset.FromUnixTimeMilliseconds(clock.DeferredUntilUnixMs);
                slot = (latest is { } passed && passed.When > at ? passed.When : at, level);
            }
            if (slot is not { } due) continue;
            // A full or differential that made no snapshot is owed: this run takes its level (until one is recorded).
            if (Rank(clock.OwedLevel) > Rank(due.Level)) due = (due.When, clock.OwedLevel);
            open ??= Jobs.Values.Where(j => j.Kind == JobKind.Backup && !IsFinal(j.State)).Select(j => (j.Client, j.BackupSet)).ToHashSet();
            if (open.Contains((set.Client, set.Name)))
            {
                earliest = Math.Min(earliest, nowMs + 1000); // looked at again each tick until that job ends
                continue;
            }
            var d = state.DecideStartBackup(StartOf(set, due.Level, JobOrigin.Schedule), loads, now);
            var slotMs = due.When.ToUnixTimeMilliseconds();
            if (d.Rejection is not null && settling)
            {
                earliest = Math.Min(earliest, nowMs + 1000);
                continue;
            }
            if (d.Rejection is not null)
                d = new Decision([new SlotMissed { Set = set.Name, SlotUnixMs = slotMs, Reason = d.Rejection, Level = due.Level }], null);
            else
            {
                d.Job!.SlotUnixMs = slotMs; // the job in the JobQueued event
                if (set.WindowSeconds > 0) d.Job.WindowEndUnixMs = slotMs + set.WindowSeconds * 1000;
            }
            decisions.Add(d);
            state = d.Events.Aggregate(state, (st, e) => st.Apply(e)); // job numbers stay unique within one tick
        }
        if (decisions.Count == 0) QuietUntil.AddOrUpdate(SetClocks, new Quiet(BackupSets, earliest));
        return decisions;
    }

    /// <summary>Per clocks object (the state never changes one in place): the sets it was seen with and the earliest slot then.</summary>
    private sealed record Quiet(ImmutableSortedDictionary<string, BackupSetDefinition> Sets, long EarliestMs);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ImmutableSortedDictionary<string, SetClock>, Quiet> QuietUntil = new();

    /// <summary>The latest slot in (after, now] of any of the set's rules, with the highest level of any rule that had a slot
    /// in it (a weekly full that passed in a downtime is not lost to the daily incremental after it).</summary>
    public static (DateTimeOffset When, BackupLevel Level)? LatestSlot(BackupSetDefinition set, DateTimeOffset after, DateTimeOffset now)
    {
        // The quiet tick, every second for every set: its first slot after the clock is remembered (per
        // definition object, which the state never changes in place) until it comes.
        var first = FirstSlots.GetOrCreateValue(set);
        var afterMs = after.ToUnixTimeMilliseconds();
        if (first.AfterMs == afterMs && first.FirstMs > now.ToUnixTimeMilliseconds()) return null;
        var found = LatestSlotOf(set, after, now, out var firstMs);
        first.AfterMs = afterMs;
        first.FirstMs = firstMs;
        return found;
    }

    private sealed class FirstSlot
    {
        public long AfterMs = long.MinValue;
        public long FirstMs;
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<BackupSetDefinition, FirstSlot> FirstSlots = new();

    /// <param name="firstMs">the earliest slot of any rule after <paramref name="after"/> (long.MaxValue: none)</param>
    private static (DateTimeOffset When, BackupLevel Level)? LatestSlotOf(BackupSetDefinition set, DateTimeOffset after, DateTimeOffset now, out long firstMs)
    {
        firstMs = long.MaxValue;
        if (Zone(set.TimeZone) is not { } zone) return null;
        DateTimeOffset? latest = null;
        var level = BackupLevel.LevelDefault;
        foreach (var rule in set.Schedules)
        {
            if (ParseCron(rule.Cron, out _) is not { } cron) continue;
            if (cron.GetNextOccurrence(after.UtcDateTime, zone) is not { } first) continue;
            firstMs = Math.Min(firstMs, new DateTimeOffset(first, TimeSpan.Zero).ToUnixTimeMilliseconds());
            if (first > now.UtcDateTime) continue;
            var last = cron.GetOccurrences(first, now.UtcDateTime, zone, fromInclusive: true, toInclusive: true).Last();
            var when = new DateTimeOffset(last, TimeSpan.Zero);
            if (latest is null || when > latest.Value) latest = when;
            if (Rank(rule.Level) > Rank(level)) level = rule.Level;
        }
        return latest is { } at ? (at, level) : null;
    }

    public string UnknownSet(string name) =>
        $"no backup set '{name}': {(BackupSets.Count == 0 ? "none is defined yet; add one with 'abk set add'" : "known are " + Some(BackupSets.Keys, "abk set list"))}";

    /// <summary>What is wrong with a definition, or null.</summary>
    public string? Invalid(BackupSetDefinition set)
    {
        if (InvalidName(set.Name, "set") is { } name) return name;
        if (set.Paths.Count == 0) return "a set needs at least one path (--path)";
        if (set.Paths.FirstOrDefault(p => !p.StartsWith('/')) is { } relative) return $"path '{relative}' is not absolute: give paths as the client sees them, from /";
        if (set.Priority is < 1 or > 10) return $"priority {set.Priority} is out of range: 1 (lowest) to 10 (highest)";
        if (set.WindowSeconds < 0) return "a start window cannot be negative";
        if (InvalidMaxRun(set.MaxRunSeconds) is { } maxRun) return maxRun;
        if (BadMarkers(set.ExcludeIfPresent) is { } marker) return marker;
        if (set.CommandTimeoutSeconds < 0) return "a command timeout cannot be negative";
        if (new[] { set.PreCommand, set.PostCommand, set.OnSuccess, set.OnFailure }.Any(c => c.Length > 4096)) return "a command is at most 4096 characters (put a longer one in a script)";
        if (PolicyOf(set.Policy) is null) return UnknownPolicy(set.Policy);
        if (set.TimeZone != "" && Zone(set.TimeZone) is null) return $"unknown time zone '{set.TimeZone}': give an IANA id such as Europe/Paris, or leave it out for UTC";
        foreach (var rule in set.Schedules)
            if (ParseCron(rule.Cron, out var error) is null) return $"schedule '{rule.Cron}' does not parse: {error}";
        return null;
    }

    /// <summary>Parsed rules by their text: the schedule tick reads every set's rules each second.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (CronExpression? Cron, string? Error)> Crons = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, TimeZoneInfo?> Zones = new();

    /// <summary>A cron rule of 5 fields (minute hour day month weekday) or 6 (seconds first); null with the reason when it does not parse.</summary>
    public static CronExpression? ParseCron(string cron, out string? error)
    {
        var parsed = Crons.GetOrAdd(cron, c => (ParseCronOnce(c, out var e), e));
        error = parsed.Error;
        return parsed.Cron;
    }

    private static CronExpression? ParseCronOnce(string cron, out string? error)
    {
        error = null;
        var fields = cron.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (fields is not (5 or 6))
        {
            error = $"{fields} fields; a rule has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)";
            return null;
        }
        try
        {
            return CronExpression.Parse(cron, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        }
        catch (CronFormatException e)
        {
            error = e.Message;
            return null;
        }
    }

    private static TimeZoneInfo? Zone(string id) => id == "" ? TimeZoneInfo.Utc : Zones.GetOrAdd(id, FindZone);

    private static TimeZoneInfo? FindZone(string id)
    {
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(id);
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            return null;
        }
    }

    /// <summary>The set's next slot after <paramref name="now"/> and the level it takes; null when it has none (no rule, or disabled).</summary>
    public static (DateTimeOffset When, BackupLevel Level)? NextRun(BackupSetDefinition set, DateTimeOffset now)
    {
        if (set.Disabled || Zone(set.TimeZone) is not { } zone) return null;
        (DateTimeOffset When, BackupLevel Level)? next = null;
        foreach (var rule in set.Schedules)
        {
            if (ParseCron(rule.Cron, out _)?.GetNextOccurrence(now.UtcDateTime, zone) is not { } at) continue;
            var when = new DateTimeOffset(at, TimeSpan.Zero);
            // Two rules on one slot (a weekly full over a daily incremental): the higher level wins.
            if (next is null || when < next.Value.When || (when == next.Value.When && Rank(rule.Level) > Rank(next.Value.Level)))
                next = (when, rule.Level);
        }
        return next;
    }

    internal static int Rank(BackupLevel level) => level switch
    {
        BackupLevel.LevelFull => 3,
        BackupLevel.LevelDifferential => 2,
        BackupLevel.LevelIncremental => 1,
        _ => 0,
    };

    public BackupSetInfo SetInfo(BackupSetDefinition set, DateTimeOffset now)
    {
        var info = new BackupSetInfo { Set = set };
        if (NextRun(set, now) is { } next)
        {
            info.NextRunUnixMs = next.When.ToUnixTimeMilliseconds();
            info.NextLevel = next.Level;
        }
        if (Snapshots.LastOrDefault(s => s.BackupSet == set.Name && s.Client == set.Client) is { } last)
        {
            info.LastSnapshot = last.Id;
            info.LastSnapshotUnixMs = last.FinishedUnixMs;
        }
        if (SetClocks.TryGetValue(set.Name, out var clock))
        {
            info.LastSlotUnixMs = clock.LastSlotUnixMs;
            info.LastMissed = clock.LastMissed;
            if (clock.DeferredUntilUnixMs > 0 && !set.Disabled)
            {
                info.NextRunUnixMs = clock.DeferredUntilUnixMs;
                info.NextLevel = clock.DeferredLevel;
                info.DeferredSlotUnixMs = clock.DeferredSlotUnixMs;
            }
            // A full or differential owed (one that made no snapshot): the next run takes it (abk set show, schedule list).
            if (info.NextRunUnixMs > 0 && Rank(clock.OwedLevel) > Rank(info.NextLevel)) info.NextLevel = clock.OwedLevel;
        }
        return info;
    }
}
