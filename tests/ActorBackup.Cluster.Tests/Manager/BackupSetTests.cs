using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>Backup sets as the manager decides on them: checked whole, persisted as events, scheduled by cron.</summary>
public class BackupSetTests
{
    // Wednesday 2 December 2026, 01:00 UTC.
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    private static ManagerState Cell(params string[] clients)
    {
        var s = new ManagerState();
        foreach (var c in clients) s = s.Apply(new ClientRegistered { Id = c, Address = "akka.tcp://actorbackup@h/user/client" });
        return s.Apply(new LibraryRegistered { Id = "lib1", Node = "n1" });
    }

    private static BackupSetDefinition Set(string name = "web", params string[] schedules)
    {
        var set = new BackupSetDefinition { Name = name, Paths = { "/srv/www/", "/etc" } };
        foreach (var rule in schedules)
        {
            var parts = rule.Split('=');
            set.Schedules.Add(new ScheduleRule { Cron = parts[0], Level = parts.Length > 1 ? Protocol.Commands.SharedOptions.ParseLevel(parts[1]) : BackupLevel.LevelDefault });
        }
        return set;
    }

    private static ManagerState Apply(ManagerState s, IEnumerable<IMessage> events) => events.Aggregate(s, (st, e) => st.Apply(e));

    /// <summary>A full snapshot of the set, to be the parent of what runs next (without one, any level runs full).</summary>
    private static ManagerState WithFull(ManagerState s, string set) => s.Apply(new SnapshotRecorded
    {
        Manifest = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "full-" + set, Client = "host-a", Library = "lib1", BackupSet = set, Level = ActorBackup.Engine.Trees.Level.Full, FinishedUnixMs = 1 }.ToByteString(),
    });

    /// <summary>The job started and ended (succeeded).</summary>
    private static ManagerState Ended(ManagerState s, JobInfo job) =>
        s.Apply(new JobStarted { Job = job.Id, Library = "lib1" }).Apply(new JobEnded { Job = job.Id, State = JobState.Succeeded });

    [Fact]
    public void A_set_takes_the_only_client_and_the_default_priority_and_policy_and_survives_a_manager_snapshot()
    {
        var s = Cell("host-a");
        var d = s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 2 * * *") }, Now);
        Assert.Null(d.Rejection);
        s = Apply(s, d.Events);
        var set = s.BackupSets["web"];
        Assert.Equal("host-a", set.Client);
        Assert.Equal(ManagerState.DefaultPriority, set.Priority);
        Assert.Equal("default", set.Policy);
        Assert.Equal(["/etc", "/srv/www"], set.Paths);
        Assert.Equal(set, new ManagerState().Apply(s.ToSnapshot()).BackupSets["web"]);

        Assert.Contains("exists already", s.DecideDefineSet(new DefineBackupSet { Set = Set("web") }, Now).Rejection);
        s = Apply(s, s.DecideRemoveSet(new RemoveBackupSet { Name = "web" }, Now).Events);
        Assert.Empty(s.BackupSets);
        Assert.Contains("no backup set 'web'", s.DecideRemoveSet(new RemoveBackupSet { Name = "web" }, Now).Rejection);
    }

    [Theory]
    [InlineData("61 2 * * *", "does not parse")]
    [InlineData("0 2 *", "3 fields")]
    public void A_cron_rule_that_does_not_parse_is_refused_with_the_reason_and_changes_nothing(string cron, string reason)
    {
        var s = Cell("host-a");
        var d = s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 3 * * *", cron) }, Now);
        Assert.Contains($"schedule '{cron}' does not parse", d.Rejection);
        Assert.Contains(reason, d.Rejection);
        Assert.Empty(d.Events);
    }

    [Fact]
    public void Bad_definitions_say_what_is_wrong()
    {
        var s = Cell("host-a", "host-b");
        string? Why(BackupSetDefinition set) => s.DecideDefineSet(new DefineBackupSet { Set = set }, Now).Rejection;
        Assert.Contains("several clients", Why(Set()));
        var one = Cell("host-a");
        string? WhyOne(BackupSetDefinition set) => one.DecideDefineSet(new DefineBackupSet { Set = set }, Now).Rejection;
        Assert.Contains("unknown client 'nope'", WhyOne(new BackupSetDefinition { Name = "x", Client = "nope", Paths = { "/a" } }));
        Assert.Contains("at least one path", WhyOne(new BackupSetDefinition { Name = "x" }));
        Assert.Contains("is not absolute", WhyOne(new BackupSetDefinition { Name = "x", Paths = { "srv" } }));
        Assert.Contains("a set name is", WhyOne(new BackupSetDefinition { Name = "a b", Paths = { "/a" } }));
        Assert.Contains("unknown time zone", WhyOne(new BackupSetDefinition { Name = "x", Paths = { "/a" }, TimeZone = "Mars/Olympus" }));
        Assert.Contains("priority 11", WhyOne(new BackupSetDefinition { Name = "x", Paths = { "/a" }, Priority = 11 }));
        Assert.Contains("no storage policy 'gold'", WhyOne(new BackupSetDefinition { Name = "x", Paths = { "/a" }, Policy = "gold" }));
    }

    [Fact]
    public void The_next_run_is_the_soonest_slot_of_any_rule_and_a_full_wins_a_slot_it_shares()
    {
        var daily = Set("web", "0 2 * * *");
        Assert.Equal((new DateTimeOffset(2026, 12, 2, 2, 0, 0, TimeSpan.Zero), BackupLevel.LevelDefault), ManagerState.NextRun(daily, Now));

        // Sunday 6 December: the weekly full and the daily incremental share 02:00; the full runs.
        var both = Set("web", "0 2 * * *=incremental", "0 2 * * 0=full");
        var sunday = new DateTimeOffset(2026, 12, 6, 1, 0, 0, TimeSpan.Zero);
        Assert.Equal((new DateTimeOffset(2026, 12, 6, 2, 0, 0, TimeSpan.Zero), BackupLevel.LevelFull), ManagerState.NextRun(both, sunday));
        Assert.Equal(BackupLevel.LevelIncremental, ManagerState.NextRun(both, Now)!.Value.Level);

        // Rules are read in the set's time zone: 02:00 in Paris is 01:00 UTC in December.
        var paris = Set("web", "0 2 * * *");
        paris.TimeZone = "Europe/Paris";
        Assert.Equal(new DateTimeOffset(2026, 12, 3, 1, 0, 0, TimeSpan.Zero), ManagerState.NextRun(paris, Now)!.Value.When);

        // Six fields: seconds first.
        Assert.Equal(new DateTimeOffset(2026, 12, 2, 1, 0, 30, TimeSpan.Zero), ManagerState.NextRun(Set("web", "30 * * * * *"), Now)!.Value.When);

        daily.Disabled = true;
        Assert.Null(ManagerState.NextRun(daily, Now));
        Assert.Null(ManagerState.NextRun(Set("adhoc"), Now));
    }

    [Fact]
    public void Running_a_set_queues_a_backup_of_its_paths_under_its_name_and_disabling_keeps_that_working()
    {
        var s = Cell("host-a");
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 2 * * *") }, Now).Events);
        s = Apply(s, s.DecideEnableSet(new EnableBackupSet { Name = "web", Enabled = false }, Now).Events);
        Assert.True(s.BackupSets["web"].Disabled);
        Assert.Equal(0, s.SetInfo(s.BackupSets["web"], Now).NextRunUnixMs);

        var run = s.DecideRunSet(new RunBackupSet { Name = "web" }, [new("lib1", true, 0, 100)], Now);
        Assert.Null(run.Rejection);
        Assert.Equal("web", run.Job!.BackupSet);
        Assert.Equal(["/etc", "/srv/www"], run.Job.Paths);
        Assert.Equal(BackupLevel.LevelFull, run.Job.Level); // nothing to compare with yet
        Assert.Contains("no backup set 'nope'", s.DecideRunSet(new RunBackupSet { Name = "nope" }, [new("lib1", true, 0, 100)], Now).Rejection);
    }

    private static readonly List<ManagerState.LibraryLoad> OneLibrary = [new("lib1", true, 0, 100)];

    private static ManagerState Tick(ManagerState s, DateTimeOffset now, List<JobInfo> jobs, List<SlotMissed>? missed = null, IReadOnlyList<ManagerState.LibraryLoad>? loads = null)
    {
        foreach (var d in s.DecideDueSlots(now, loads ?? OneLibrary))
        {
            Assert.Null(d.Rejection);
            if (d.Job is not null) jobs.Add(d.Job);
            missed?.AddRange(d.Events.OfType<SlotMissed>());
            s = Apply(s, d.Events);
        }
        return s;
    }

    [Fact]
    public void Every_slot_runs_once_a_downtime_runs_once_and_the_clock_survives_a_manager_snapshot()
    {
        var s = Cell("host-a");
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "*/10 * * * * *") }, Now).Events); // every 10 s
        var jobs = new List<JobInfo>();
        s = Tick(s, Now.AddSeconds(5), jobs);
        Assert.Empty(jobs); // no slot since the set was defined
        s = Tick(s, Now.AddSeconds(10), jobs);
        s = Tick(s, Now.AddSeconds(10.5), jobs); // the same slot again: nothing
        s = Tick(s, Now.AddSeconds(11), jobs);
        Assert.Single(jobs);
        Assert.Equal(JobOrigin.Schedule, jobs[0].Origin);
        Assert.Equal(Now.AddSeconds(10).ToUnixTimeMilliseconds(), jobs[0].SlotUnixMs);
        Assert.Equal("web", jobs[0].BackupSet);

        // The manager restarts from its snapshot: the slot it ran is not run again.
        s = new ManagerState().Apply(s.ToSnapshot());
        s = Tick(s, Now.AddSeconds(12), jobs);
        Assert.Single(jobs);

        // Down for a minute (the first job done meanwhile): the six missed slots make one job, for the latest of them.
        s = Ended(s, jobs[0]);
        s = Tick(s, Now.AddSeconds(75), jobs);
        Assert.Equal(2, jobs.Count);
        Assert.Equal(Now.AddSeconds(70).ToUnixTimeMilliseconds(), jobs[1].SlotUnixMs);
        Assert.NotEqual(jobs[0].Id, jobs[1].Id);
    }

    [Fact]
    public void A_schedule_run_while_the_managers_clock_was_a_year_ahead_goes_on_from_now_once_it_is_right_and_says_so()
    {
        var s = Cell("host-a");
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 * * * *") }, Now).Events); // hourly
        var jobs = new List<JobInfo>();
        var missed = new List<SlotMissed>();
        // The manager's host booted a year ahead: it ran that slot.
        s = Tick(s, Now.AddYears(1), jobs, missed);
        s = Ended(s, Assert.Single(jobs));
        // Its clock set right: before, nothing ran until real time caught up with the slot (a year), and nothing said so.
        s = Tick(s, Now.AddMinutes(90), jobs, missed);
        Assert.Contains("the manager's clock went back", Assert.Single(missed).Reason);
        Assert.Single(jobs);
        s = Tick(s, Now.AddHours(2), jobs, missed);
        Assert.Equal(Now.AddHours(2).ToUnixTimeMilliseconds(), jobs[^1].SlotUnixMs);
        // A few minutes ahead (NTP's steps) is not a clock gone back: the next slot runs as it comes.
        s = Ended(s, jobs[^1]);
        s = Tick(s, Now.AddHours(3).AddMinutes(5), jobs, missed);
        s = Ended(s, jobs[^1]);
        s = Tick(s, Now.AddHours(3), jobs, missed);
        Assert.Single(missed);
        s = Tick(s, Now.AddHours(4), jobs, missed);
        Assert.Equal(Now.AddHours(4).ToUnixTimeMilliseconds(), jobs[^1].SlotUnixMs);
    }

    [Fact]
    public void A_slot_that_cannot_start_is_recorded_as_missed_with_the_reason_once_and_a_disabled_set_does_not_catch_up()
    {
        var s = Cell("host-a");
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 * * * *") }, Now).Events); // hourly
        var jobs = new List<JobInfo>();
        var missed = new List<SlotMissed>();
        List<ManagerState.LibraryLoad> down = [new("lib1", false, 0, 100)];
        // Right after the manager started (the library's node not joined again yet): the slot waits, nothing recorded.
        Assert.Empty(s.DecideDueSlots(Now.AddHours(1), down, settling: true));
        s = Tick(s, Now.AddHours(1), jobs, missed, down);
        s = Tick(s, Now.AddHours(1).AddSeconds(1), jobs, missed, down);
        Assert.Empty(jobs);
        Assert.Contains("no library is reachable", Assert.Single(missed).Reason);
        Assert.Contains("no library is reachable", s.SetInfo(s.BackupSets["web"], Now).LastMissed);

        // Disabled over three slots, then enabled: nothing from that time runs; the next slot does.
        s = Apply(s, s.DecideEnableSet(new EnableBackupSet { Name = "web", Enabled = false }, Now.AddHours(1.5)).Events);
        s = Tick(s, Now.AddHours(4.5), jobs);
        s = Apply(s, s.DecideEnableSet(new EnableBackupSet { Name = "web", Enabled = true }, Now.AddHours(4.5)).Events);
        s = Tick(s, Now.AddHours(4.6), jobs);
        Assert.Empty(jobs);
        s = Tick(s, Now.AddHours(5), jobs);
        Assert.Equal(Now.AddHours(5).ToUnixTimeMilliseconds(), Assert.Single(jobs).SlotUnixMs);
    }

    [Fact]
    public void A_deferred_run_skips_the_slots_until_then_and_runs_once_at_the_time_asked_for()
    {
        var s = Cell("host-a");
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 * * * *", "0 3 * * *=full") }, Now).Events); // hourly, a full at 03:00
        List<ManagerState.LibraryLoad> loads = [new("lib1", true, 0, 100)];
        var until = Now.AddHours(2.5); // 03:30: the 02:00 and 03:00 slots pass
        var deferred = s.DecideDefer(new DeferBackupSet { Name = "web", UntilUnixMs = until.ToUnixTimeMilliseconds() }, Now);
        Assert.Null(deferred.Rejection);
        s = Apply(s, deferred.Events);
        var info = s.SetInfo(s.BackupSets["web"], Now);
        Assert.Equal(until.ToUnixTimeMilliseconds(), info.NextRunUnixMs);
        Assert.Equal(Now.AddHours(1).ToUnixTimeMilliseconds(), info.DeferredSlotUnixMs);

        Assert.Empty(s.DecideDueSlots(Now.AddHours(1), loads)); // 02:00: deferred
        Assert.Empty(s.DecideDueSlots(Now.AddHours(2), loads)); // 03:00: deferred too
        var due = Assert.Single(s.DecideDueSlots(until, loads));
        var job = Assert.IsType<JobQueued>(Assert.Single(due.Events)).Job;
        Assert.Equal(until.ToUnixTimeMilliseconds(), job.SlotUnixMs);
        Assert.Equal(BackupLevel.LevelFull, job.Level); // the 03:00 full it passed over
        s = Apply(s, due.Events);
        Assert.Empty(s.DecideDueSlots(until.AddMinutes(10), loads)); // once
        s = Ended(s, job);
        Assert.Single(s.DecideDueSlots(Now.AddHours(3), loads)); // 04:00 runs as usual

        Assert.Contains("the next run is at", s.DecideDefer(new DeferBackupSet { Name = "web", UntilUnixMs = Now.AddHours(3).AddMinutes(30).ToUnixTimeMilliseconds() }, Now.AddHours(3).AddMinutes(10)).Rejection);
        // Deferred again, to before the slot it moves: refused (that slot would come and run a second time); after it, taken.
        var twice = Apply(Cell("host-a"), Cell("host-a").DecideDefineSet(new DefineBackupSet { Set = Set("db", "0 2 * * *") }, Now).Events);
        twice = Apply(twice, twice.DecideDefer(new DeferBackupSet { Name = "db", UntilUnixMs = Now.AddHours(5).ToUnixTimeMilliseconds() }, Now).Events);
        Assert.Contains("the run deferred is the one of 2026-12-02 02:00:00Z", twice.DecideDefer(new DeferBackupSet { Name = "db", UntilUnixMs = Now.AddMinutes(30).ToUnixTimeMilliseconds() }, Now).Rejection);
        Assert.Null(twice.DecideDefer(new DeferBackupSet { Name = "db", UntilUnixMs = Now.AddHours(2).ToUnixTimeMilliseconds() }, Now).Rejection);
        Assert.Contains("in the future", s.DecideDefer(new DeferBackupSet { Name = "web", UntilUnixMs = Now.AddHours(-1).ToUnixTimeMilliseconds() }, Now).Rejection);
        Assert.Contains("no backup set 'nope'", s.DecideDefer(new DeferBackupSet { Name = "nope", UntilUnixMs = until.ToUnixTimeMilliseconds() }, Now).Rejection);
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("manual") }, Now).Events);
        Assert.Contains("no scheduled run to defer", s.DecideDefer(new DeferBackupSet { Name = "manual", UntilUnixMs = until.ToUnixTimeMilliseconds() }, Now).Rejection);

        // The schedule changed (abk apply) while a run is deferred: the deferral stays, the run moved still comes, at its level.
        var changed = Apply(Cell("host-a"), Cell("host-a").DecideDefineSet(new DefineBackupSet { Set = Set("db", "0 * * * *", "0 3 * * *=full") }, Now).Events);
        changed = Apply(changed, changed.DecideDefer(new DeferBackupSet { Name = "db", UntilUnixMs = until.ToUnixTimeMilliseconds() }, Now).Events);
        var (_, reapplied) = changed.DecideApply(new ApplyDefinitions { Sets = { Set("db", "0 * * * *", "0 3 * * *=full", "30 * * * *") } }, Now.AddMinutes(30));
        changed = Apply(changed, reapplied.Events);
        Assert.Empty(changed.DecideDueSlots(Now.AddHours(2), loads));
        var kept = Assert.Single(changed.DecideDueSlots(until, loads));
        Assert.Equal(BackupLevel.LevelFull, Assert.IsType<JobQueued>(Assert.Single(kept.Events)).Job.Level);
        // Disabled over the time a run was deferred to, then enabled: that run does not come at once (nothing from before does).
        var paused = Apply(changed, changed.DecideEnableSet(new EnableBackupSet { Name = "db", Enabled = false }, Now.AddHours(1)).Events);
        paused = Apply(paused, paused.DecideEnableSet(new EnableBackupSet { Name = "db", Enabled = true }, Now.AddHours(3)).Events);
        Assert.Empty(paused.DecideDueSlots(Now.AddHours(3).AddSeconds(20), loads));

        // The manager was down past the time asked for and a slot: one job, and the clock past that slot too.
        var down = Apply(Cell("host-a"), Cell("host-a").DecideDefineSet(new DefineBackupSet { Set = Set("db", "0 * * * *") }, Now).Events);
        down = Apply(down, down.DecideDefer(new DeferBackupSet { Name = "db", UntilUnixMs = Now.AddHours(1.5).ToUnixTimeMilliseconds() }, Now).Events);
        var back = Now.AddHours(3).AddMinutes(5); // 04:05: 02:00 deferred, 02:30 asked for, 03:00 and 04:00 passed
        var once = Assert.Single(down.DecideDueSlots(back, loads));
        Assert.Equal(Now.AddHours(3).ToUnixTimeMilliseconds(), Assert.IsType<JobQueued>(Assert.Single(once.Events)).Job.SlotUnixMs);
        Assert.Empty(Apply(down, once.Events).DecideDueSlots(back.AddMinutes(1), loads));
    }

    [Fact]
    public void A_set_whose_schedule_or_time_zone_changes_starts_its_new_schedule_from_the_change()
    {
        // Run by hand for three weeks, then given a daily schedule with a Sunday full: nothing of those weeks runs at once
        // (the highest slot among them, a full, did); the next slot of the new rules does.
        var s = Cell("host-a");
        var defined = Now.AddDays(-21);
        s = WithFull(Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web") }, defined).Events), "web");
        // Changed by `abk apply` (a set is defined once; its definition changes there).
        static ManagerState Applied(ManagerState s, BackupSetDefinition set, DateTimeOffset at)
        {
            var (result, decision) = s.DecideApply(new ApplyDefinitions { Sets = { set } }, at);
            Assert.Null(decision.Rejection);
            return Apply(s, decision.Events);
        }
        s = Applied(s, Set("web", "0 2 * * 1-6", "0 2 * * 0=full"), Now);
        var jobs = new List<JobInfo>();
        s = Tick(s, Now.AddMinutes(1), jobs);
        Assert.Empty(jobs);
        s = Tick(s, Now.AddHours(1), jobs); // Wednesday 02:00
        Assert.Equal(BackupLevel.LevelIncremental, Assert.Single(jobs).Level);
        s = Ended(s, jobs[0]);

        // Its 02:00 run done, moved to 03:00 at 03:10: no second run that night; the next is tomorrow's 03:00.
        s = Applied(s, Set("web", "0 3 * * *"), Now.AddHours(2).AddMinutes(10));
        s = Tick(s, Now.AddHours(2).AddMinutes(11), jobs);
        Assert.Single(jobs);
        // The same rules given again with another change (a path, the priority) keep the clock (the last slot acted on,
        // shown by `abk set show`, stays that of the run it made), and tomorrow's 03:00 run, deferred to 05:00, stays deferred.
        s = Apply(s, s.DecideDefer(new DeferBackupSet { Name = "web", UntilUnixMs = Now.AddDays(1).AddHours(4).ToUnixTimeMilliseconds() }, Now.AddHours(3)).Events);
        var otherwise = Set("web", "0 3 * * *");
        otherwise.Paths.Add("/var/lib/www");
        otherwise.Priority = 8;
        var clock = s.SetClocks["web"].LastSlotUnixMs;
        s = Applied(s, otherwise, Now.AddDays(1));
        Assert.Equal(clock, s.SetClocks["web"].LastSlotUnixMs);
        s = Tick(s, Now.AddDays(1).AddHours(2).AddMinutes(1), jobs);
        Assert.Single(jobs);
        s = Tick(s, Now.AddDays(1).AddHours(4).AddMinutes(1), jobs);
        Assert.Equal(2, jobs.Count);
        // Another time zone, the same rule: its slots from the change on. Its 03:00 run done (03:00 UTC), the set moved to
        // the Azores at 04:15 UTC, where 03:00 is 04:00 UTC: that slot, before the change, does not run a second time.
        s = Ended(s, jobs[1]);
        var zoned = Set("web", "0 3 * * *");
        zoned.TimeZone = "Atlantic/Azores";
        s = Applied(s, zoned, Now.AddDays(1).AddHours(3).AddMinutes(15));
        s = Tick(s, Now.AddDays(1).AddHours(3).AddMinutes(16), jobs);
        Assert.Equal(2, jobs.Count);
    }

    /// <summary>Set "web" defined on Saturday 5 December 12:00 with <paramref name="daily"/> and a full on Sundays at 02:00, a full of it recorded.</summary>
    private static ManagerState SundayFull(string daily)
    {
        var s = Cell("host-a");
        var saturday = new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
        return WithFull(Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", daily, "0 2 * * 0=full") }, saturday).Events), "web");
    }

    [Fact]
    public void A_scheduled_full_that_made_no_snapshot_is_owed_by_the_next_runs_until_one_is_recorded()
    {
        // Daily incremental at 02:00, the full on Sundays. Sunday's full fails: Monday's run is a full, not an
        // incremental against last week's; once a full is recorded, Tuesday's is an incremental again.
        var s = SundayFull("0 2 * * 1-6=incremental");
        var jobs = new List<JobInfo>();
        s = Tick(s, new DateTimeOffset(2026, 12, 6, 2, 0, 0, TimeSpan.Zero), jobs);
        Assert.Equal(BackupLevel.LevelFull, Assert.Single(jobs).Level);
        s = s.Apply(new JobStarted { Job = jobs[0].Id, Library = "lib1" }).Apply(new JobEnded { Job = jobs[0].Id, State = JobState.Failed, Reason = "the client's disk failed" });
        s = new ManagerState().Apply(s.ToSnapshot()); // and the manager restarted meanwhile: still owed
        Assert.Equal(BackupLevel.LevelFull, s.SetInfo(s.BackupSets["web"], new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero)).NextLevel); // abk set show says so
        s = Tick(s, new DateTimeOffset(2026, 12, 7, 2, 0, 0, TimeSpan.Zero), jobs);
        Assert.Equal(BackupLevel.LevelFull, jobs[1].Level);
        s = s.Apply(new JobEnded { Job = jobs[1].Id, State = JobState.Cancelled, Reason = "cancelled by an operator" }); // still no full: still owed
        s = Tick(s, new DateTimeOffset(2026, 12, 8, 2, 0, 0, TimeSpan.Zero), jobs);
        Assert.Equal(BackupLevel.LevelFull, jobs[2].Level);
        s = Ended(s, jobs[2]).Apply(new SnapshotRecorded
        {
            Manifest = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "full-tuesday", Client = "host-a", Library = "lib1", BackupSet = "web", Level = ActorBackup.Engine.Trees.Level.Full, FinishedUnixMs = 2 }.ToByteString(),
        });
        s = Tick(s, new DateTimeOffset(2026, 12, 9, 2, 0, 0, TimeSpan.Zero), jobs);
        Assert.Equal(BackupLevel.LevelIncremental, jobs[3].Level);

        // A full slot missed (no library reachable) is owed the same way.
        s = Ended(s, jobs[3]);
        List<ManagerState.LibraryLoad> down = [new("lib1", false, 0, 100)];
        s = Tick(s, new DateTimeOffset(2026, 12, 13, 2, 0, 0, TimeSpan.Zero), jobs, loads: down); // Sunday: missed
        s = Tick(s, new DateTimeOffset(2026, 12, 14, 2, 0, 0, TimeSpan.Zero), jobs, loads: down); // Monday too: still owed
        s = Tick(s, new DateTimeOffset(2026, 12, 15, 2, 0, 0, TimeSpan.Zero), jobs);
        Assert.Equal(BackupLevel.LevelFull, jobs[4].Level);
    }

    [Fact]
    public void A_downtime_over_a_weekly_full_runs_one_full_not_the_daily_incremental_after_it()
    {
        // Daily incremental at 02:00, the full on Sundays at 02:00. Down from Saturday 5 December 12:00 to Monday 03:00.
        var s = SundayFull("0 2 * * *=incremental");
        var jobs = new List<JobInfo>();
        s = Tick(s, new DateTimeOffset(2026, 12, 7, 3, 0, 0, TimeSpan.Zero), jobs);
        var job = Assert.Single(jobs);
        Assert.Equal(BackupLevel.LevelFull, job.Level);
        Assert.Equal(new DateTimeOffset(2026, 12, 7, 2, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(), job.SlotUnixMs); // the latest slot
        // The next day's incremental is an incremental again.
        s = Ended(s, job);
        Assert.Equal(BackupLevel.LevelIncremental, ManagerState.LatestSlot(s.BackupSets["web"], new DateTimeOffset(2026, 12, 7, 2, 0, 0, TimeSpan.Zero),
            new DateTimeOffset(2026, 12, 8, 2, 30, 0, TimeSpan.Zero))!.Value.Level);
    }

    [Fact]
    public void Slots_that_come_while_the_sets_backup_still_runs_wait_for_it_and_then_run_once_at_their_highest_level()
    {
        var s = Cell("host-a");
        s = WithFull(Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("web", "0 * * * *=incremental", "0 3 * * *=full") }, Now).Events), "web"); // hourly, a full at 03:00
        var jobs = new List<JobInfo>();
        s = Tick(s, Now.AddHours(1), jobs); // 02:00
        var first = Assert.Single(jobs);
        Assert.Equal(BackupLevel.LevelIncremental, first.Level);
        s = s.Apply(new JobStarted { Job = first.Id, Library = "lib1" });
        // 03:00 (the full) and 04:00 come while it runs: no second job of the set beside it.
        s = Tick(s, Now.AddHours(2), jobs);
        s = Tick(s, Now.AddHours(3), jobs);
        Assert.Single(jobs);
        Assert.Equal(Now.AddHours(1).ToUnixTimeMilliseconds(), s.SetInfo(s.BackupSets["web"], Now.AddHours(3)).LastSlotUnixMs); // still due
        // Another set of the client is not held back by it.
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = Set("db", "30 * * * *") }, Now.AddHours(3)).Events);
        s = Tick(s, Now.AddHours(3.5), jobs);
        Assert.Equal("db", jobs[^1].BackupSet);
        // It ends at 04:10: one job for the slots that waited, at the highest of their levels (the 03:00 full).
        s = Ended(s, first);
        s = Tick(s, Now.AddHours(3).AddMinutes(40), jobs);
        var after = jobs[^1];
        Assert.Equal(3, jobs.Count);
        Assert.Equal(("web", BackupLevel.LevelFull, Now.AddHours(3).ToUnixTimeMilliseconds()), (after.BackupSet, after.Level, after.SlotUnixMs));
        s = Tick(s, Now.AddHours(3).AddMinutes(41), jobs);
        Assert.Equal(3, jobs.Count); // once
    }
}

/// <summary>A backup of other paths under a defined set's name (an operator's): the set's in all but its paths.</summary>
public class NamedAfterSetTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_backup_named_after_a_set_takes_its_policy_excludes_options_and_priority_unless_given()
    {
        var s = new ManagerState().Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1" });
        s = s.DecideDefinePolicy(new DefinePolicy { Policy = new StoragePolicy { Name = "gold", Libraries = { "lib1" } } }, Now).Events.Aggregate(s, (st, e) => st.Apply(e));
        var set = new BackupSetDefinition { Name = "web", Paths = { "/srv/www" }, Policy = "gold", Excludes = { "*.tmp" }, OneFileSystem = true, Priority = 8 };
        s = s.DecideDefineSet(new DefineBackupSet { Set = set }, Now).Events.Aggregate(s, (st, e) => st.Apply(e));
        List<ManagerState.LibraryLoad> loads = [new("lib1", true, 0, 100)];

        var job = s.DecideStartBackup(new StartBackup { Paths = { "/srv/www/uploads" }, BackupSet = "web", Excludes = { "*.log" } }, loads, Now).Job!;
        Assert.Equal("gold", job.Policy);
        Assert.Equal(["*.log", "*.tmp"], job.Excludes.Order());
        Assert.True(job.OneFileSystem);
        Assert.Equal(8, job.Priority);
        // What the command gives wins; a set of another client's, or no set, lends nothing.
        var own = s.DecideStartBackup(new StartBackup { Paths = { "/srv/www" }, BackupSet = "web", Policy = "default", Priority = 3 }, loads, Now).Job!;
        Assert.Equal(("default", 3), (own.Policy, own.Priority));
        var other = s.DecideStartBackup(new StartBackup { Paths = { "/srv/www" } }, loads, Now).Job!;
        Assert.Equal(("default", ManagerState.DefaultPriority, false), (other.Policy, other.Priority, other.OneFileSystem));
        Assert.Empty(other.Excludes);
    }
}

public class ScheduleRuleTests
{
    [Theory]
    [InlineData("0 2 * * 0=full", "0 2 * * 0", BackupLevel.LevelFull)]
    [InlineData("0 2 * * 1-6=diff", "0 2 * * 1-6", BackupLevel.LevelDifferential)]
    [InlineData("0 2 * * 1-6 = incr", "0 2 * * 1-6", BackupLevel.LevelIncremental)]
    [InlineData("0 2 * * *", "0 2 * * *", BackupLevel.LevelDefault)]
    public void A_schedule_rule_takes_the_level_names_level_takes_short_ones_too(string text, string cron, BackupLevel level)
    {
        var rule = Protocol.Commands.SharedOptions.ParseScheduleRule(text);
        Assert.Equal((cron, level), (rule.Cron, rule.Level));
    }
}

/// <summary>`abk client remove`: a decommissioned host off the list, never one still in use.</summary>
public class RemoveClientTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_client_is_removed_only_without_sets_open_jobs_or_a_connected_node_and_its_snapshots_stay()
    {
        var s = new ManagerState().Apply(new ClientRegistered { Id = "old", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new ClientRegistered { Id = "web1", Address = "akka.tcp://actorbackup@w/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1" });
        s = s.DecideDefineSet(new DefineBackupSet { Set = new BackupSetDefinition { Name = "etc", Client = "old", Paths = { "/etc" } } }, Now).Events.Aggregate(s, (st, e) => st.Apply(e));
        s = s.Apply(new SnapshotRecorded { Manifest = new Engine.Trees.SnapshotManifest { Id = "s1", Client = "old", BackupSet = "etc", Library = "lib1", Level = Engine.Trees.Level.Full, FinishedUnixMs = 1 }.ToByteString() });
        RemoveClient Remove(string c) => new() { Client = c };

        Assert.Contains("unknown client 'nobody'", s.DecideRemoveClient(Remove("nobody"), false, Now).Rejection);
        Assert.Contains("has backup sets (etc): remove them first", s.DecideRemoveClient(Remove("old"), false, Now).Rejection);
        s = s.DecideRemoveSet(new RemoveBackupSet { Name = "etc" }, Now).Events.Aggregate(s, (st, e) => st.Apply(e));
        var backup = s.DecideStartBackup(new StartBackup { Paths = { "/srv" }, Client = "old" }, [new("lib1", true, 0, 100)], Now);
        var withJob = backup.Events.Aggregate(s, (st, e) => st.Apply(e));
        Assert.Contains($"has jobs not ended ({backup.Job!.Id})", withJob.DecideRemoveClient(Remove("old"), false, Now).Rejection);
        Assert.Contains("node is connected", s.DecideRemoveClient(Remove("old"), true, Now).Rejection);

        var removed = s.DecideRemoveClient(Remove("old"), false, Now);
        Assert.Null(removed.Rejection);
        Assert.Equal(1, Assert.IsType<ClientRemoved>(Assert.Single(removed.Events)).Snapshots);
        s = removed.Events.Aggregate(s, (st, e) => st.Apply(e));
        Assert.Equal(["web1"], s.Clients.Keys);
        Assert.Equal("s1", Assert.Single(s.Snapshots).Id); // its snapshots stay
        Assert.Contains("is of client old, which is not registered now", s.DecideStartRestore(new StartRestore { Snapshot = "s1", Target = "/r" }, Now).Rejection);
        Assert.Null(s.DecideStartRestore(new StartRestore { Snapshot = "s1", Target = "/r", Client = "web1" }, Now).Rejection);
        Assert.Equal(["web1"], new ManagerState().Apply(s.ToSnapshot()).Clients.Keys); // across a manager snapshot
        // Its node connects again: it is registered anew.
        Assert.Contains("old", s.Apply(new ClientRegistered { Id = "old", Address = "akka.tcp://actorbackup@h/user/client" }).Clients.Keys);
    }
}
