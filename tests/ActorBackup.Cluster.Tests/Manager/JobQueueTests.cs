using CsCheck;
using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The job queue as the manager decides on it: limits per library (drives), per client and per cell; priority, then age.</summary>
public class JobQueueTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);
    private static readonly Dictionary<string, StartingJob> NoneStarting = [];

    private static ManagerState Cell(int drives1 = 1, int drives2 = 1, params string[] clients)
    {
        var s = new ManagerState();
        foreach (var c in clients.Length == 0 ? ["host-a"] : clients) s = s.Apply(new ClientRegistered { Id = c, Address = "akka.tcp://actorbackup@h/user/client" });
        s = s.Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = drives1 });
        return s.Apply(new LibraryRegistered { Id = "lib2", Node = "n2", Drives = drives2 });
    }

    private static readonly List<ManagerState.LibraryLoad> Reachable = [new("lib1", true, 0, 100), new("lib2", true, 0, 100)];

    private static ManagerState Apply(ManagerState s, IEnumerable<IMessage> events) => events.Aggregate(s, (st, e) => st.Apply(e));

    private static (ManagerState, string) Queue(ManagerState s, int priority, string library = "lib1", string client = "host-a", int minute = 0)
    {
        var d = s.DecideStartBackup(new StartBackup { Client = client, Library = library, Paths = { "/data" + priority + library }, Priority = priority }, Reachable, Now.AddMinutes(minute));
        Assert.Null(d.Rejection);
        return (Apply(s, d.Events), d.Job!.Id);
    }

    private static ManagerState Start(ManagerState s, IEnumerable<JobInfo> jobs) =>
        Apply(s, jobs.Select(j => new JobStarted { Job = j.Id, Library = j.Library, Drive = j.Drive, SourceDrive = j.SourceDrive, UnixMs = 1 }));

    private static ManagerState End(ManagerState s, string job) => s.Apply(new JobEnded { Job = job, State = JobState.Succeeded, UnixMs = 2 });

    [Fact]
    public void One_drive_runs_one_job_at_a_time_higher_priority_first_and_the_others_say_why_they_wait()
    {
        var s = Cell();
        (s, var low) = Queue(s, 2);
        (s, var high) = Queue(s, 9, minute: 1);
        (s, var mid) = Queue(s, 5, minute: 2);

        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting);
        Assert.Equal([high], plan.Start.Select(j => j.Id));
        Assert.Equal("lib1: 1 of 1 drives busy", plan.Waiting[mid]);
        Assert.Equal("lib1: 1 of 1 drives busy", plan.Waiting[low]);

        s = Start(s, plan.Start);
        Assert.Empty(s.DecideDispatch(new QueueLimits(), NoneStarting).Start);
        s = End(s, high);
        Assert.Equal([mid], s.DecideDispatch(new QueueLimits(), NoneStarting).Start.Select(j => j.Id));
        // A job being started (its JobStarted not yet persisted) holds its drive.
        Assert.Empty(s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob> { [mid] = new("lib1", 1) }).Start);
    }

    [Fact]
    public void Each_running_job_holds_a_drive_of_its_own_which_is_free_again_when_it_ends_or_is_queued_again()
    {
        var s = Cell(drives1: 3);
        var jobs = new List<string>();
        for (var p = 1; p <= 4; p++)
        {
            (s, var j) = Queue(s, p, minute: p);
            jobs.Add(j);
        }
        // Two start now and one is being started on drive 1: the two take drives 2 and 3; the fourth waits.
        var starting = new Dictionary<string, StartingJob> { [jobs[3]] = new("lib1", 1) };
        var plan = s.DecideDispatch(new QueueLimits(), starting);
        Assert.Equal([(jobs[2], 2), (jobs[1], 3)], plan.Start.Select(j => (j.Id, j.Drive)));
        Assert.Equal("lib1: 3 of 3 drives busy", plan.Waiting[jobs[0]]);
        s = Start(s, plan.Start.Prepend(new JobInfo { Id = jobs[3], Library = "lib1", Drive = 1 }));
        Assert.Equal(2, s.Job(jobs[2])!.Drive);

        // The drive list says who holds what; a backup writes, a restore reads.
        var (drives, _) = s.DecideDriveList("lib1");
        Assert.Equal([(1, "writing", jobs[3]), (2, "writing", jobs[2]), (3, "writing", jobs[1])], drives!.Drives.Select(d => (d.Number, d.State, d.Job)));
        Assert.Equal("host-a", drives.Drives[0].Client);
        Assert.Equal(["idle"], s.DecideDriveList("lib2").Drives!.Drives.Select(d => d.State));
        Assert.Equal(4, s.DecideDriveList("").Drives!.Drives.Count); // every library: 3 + 1
        Assert.Equal("no library lib9: list them with 'abk library list'", s.DecideDriveList("lib9").Rejection);

        // Drive 2 ends, drive 3's job fails and is queued again: the waiting job takes the lowest free drive.
        s = End(s, jobs[2]);
        s = s.Apply(new JobRetried { Job = jobs[1], Reason = "lost", UnixMs = 3 });
        Assert.Equal(0, s.Job(jobs[1])!.Drive);
        Assert.Equal(["idle", "idle"], s.DecideDriveList("lib1").Drives!.Drives.Skip(1).Select(d => d.State));
        plan = s.DecideDispatch(new QueueLimits(), NoneStarting);
        Assert.Equal([(jobs[1], 2), (jobs[0], 3)], plan.Start.Select(j => (j.Id, j.Drive)));
    }

    [Fact]
    public void A_drive_is_not_mounted_unmounted_or_cleaned_while_a_job_runs_on_its_library()
    {
        var s = Cell().Apply(new LibraryRegistered { Id = "tape1", Node = "n3", Kind = "tape", Drives = 2 });
        (s, var job) = Queue(s, 5, library: "tape1");
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting).Start);
        Assert.Equal("tape1", s.Job(job)!.Library);
        foreach (var verb in new[] { TapeVerb.Mount, TapeVerb.Unmount, TapeVerb.Clean })
            Assert.Equal($"library tape1 has 1 job running ({job}): mount, unmount and clean when it is idle (abk drive list; 'abk library disable' lets its jobs finish and starts none), " +
                "or cancel a backup, restore or verify among them (a prune, copy or library check runs to its end)",
                s.DecideChangeTape(new ChangeTape { Library = "tape1", Verb = verb, Drive = 1, Slot = 1 }));
        Assert.Null(s.DecideChangeTape(new ChangeTape { Library = "tape1", Verb = TapeVerb.Import, Barcode = "AAA009L8" })); // the robot and the mail slot: any time
        s = End(s, job);
        Assert.Null(s.DecideChangeTape(new ChangeTape { Library = "tape1", Verb = TapeVerb.Clean, Drive = 1 }));
        Assert.Equal("library lib1 is a disk library: it has no cartridges or changer", s.DecideChangeTape(new ChangeTape { Library = "lib1", Verb = TapeVerb.Clean, Drive = 1 }));
        Assert.Equal("no library lib9: list them with 'abk library list'", s.DecideChangeTape(new ChangeTape { Library = "lib9", Verb = TapeVerb.Import }));
    }

    [Fact]
    public void Tape_cartridges_with_errors_are_retired_by_a_prune_the_cell_queues_once_per_volume()
    {
        var s = Cell().Apply(new LibraryRegistered { Id = "tape1", Node = "n3", Kind = "tape", Drives = 2 });
        IndexReport InError(string library, params uint[] volumes) => new() { Library = library, VolumesInError = { volumes } };
        Assert.Empty(s.DecideRetireDamaged([InError("tape1"), InError("lib1", 3), InError("tape9", 1)], Now)); // none; a disk library heals; not registered

        var events = s.DecideRetireDamaged([InError("lib1", 3), InError("tape1", 4, 2)], Now);
        var job = Assert.IsType<JobQueued>(Assert.Single(events)).Job;
        Assert.Equal((JobKind.Prune, "tape1", JobOrigin.Maintenance), (job.Kind, job.Library, job.Origin));
        Assert.Equal([2u, 4u], job.Retire);
        s = Apply(s, events);
        // Named once: queued, running or ended (a chunk it could not read kept the volume: the operator heals, then retires).
        Assert.Empty(s.DecideRetireDamaged([InError("tape1", 2, 4)], Now));
        var more = s.DecideRetireDamaged([InError("tape1", 2, 4, 7)], Now);
        Assert.Equal([7u], Assert.IsType<JobQueued>(Assert.Single(more)).Job.Retire);
        // Ended, it is kept when the job history is compacted: the volumes are not named again later.
        s = End(s, job.Id);
        Assert.DoesNotContain(job.Id, s.DecideCompaction(0, Now)?.Jobs ?? []);
        Assert.Empty(s.DecideRetireDamaged([InError("tape1", 2, 4)], Now));
    }

    [Fact]
    public void Drives_due_for_cleaning_are_cleaned_when_no_job_runs_or_starts_on_their_library()
    {
        var s = Cell().Apply(new LibraryRegistered { Id = "tape1", Node = "n3", Kind = "tape", Drives = 2 })
            .Apply(new LibraryRegistered { Id = "tape2", Node = "n3", Kind = "tape", Drives = 2 });
        IndexReport Due(string library, params int[] drives) => new() { Library = library, DrivesDueCleaning = { drives } };
        var reports = new[] { Due("tape1", 1), Due("tape2", 2), Due("lib1"), Due("tape9", 1) };
        Assert.Equal(["tape1", "tape2"], s.DecideCleaning(reports, [])); // none due on lib1; tape9 is not registered
        (s, var job) = Queue(s, 5, library: "tape1");
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting).Start);
        Assert.Equal(["tape2"], s.DecideCleaning(reports, [])); // a job runs on tape1: not in its middle
        Assert.Empty(s.DecideCleaning(reports, ["tape2"])); // one is being started on tape2
        s = End(s, job);
        Assert.Equal(["tape1", "tape2"], s.DecideCleaning(reports, []));
        Assert.Empty(s.DecideCleaning([Due("tape1", 1) is var r ? new IndexReport(r) { Unavailable = "not open" } : r], []));
        // Not in a library an operator disabled: someone may be at its robot.
        s = Apply(s, s.DecideSetLibraryEnabled(new SetLibraryEnabled { Library = "tape2" }, Now).Events);
        Assert.Equal(["tape1"], s.DecideCleaning(reports, []));
    }

    [Fact]
    public void A_restore_goes_before_the_backups_queued_beside_it_unless_it_asks_for_a_lower_priority()
    {
        var s = Cell();
        (s, var first) = Queue(s, 5);
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting).Start);
        var snapshot = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "snap1", Client = "host-a", Library = "lib1", BackupSet = "/data5lib1", FinishedUnixMs = 1 };
        s = End(s, first).Apply(new SnapshotRecorded { Manifest = snapshot.ToByteString() });
        (s, var busy) = Queue(s, 5, minute: 1);
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting).Start); // lib1's one drive taken
        // A backup queued before the restore, of the same default priority, went first: a restore waited behind every
        // backup of the night (those with a window even when queued after it: they have less slack).
        (s, var backup) = Queue(s, 5, minute: 2);
        var restore = s.DecideStartRestore(new StartRestore { Client = "host-a", Snapshot = "snap1", Target = "/r" }, Now.AddMinutes(3));
        s = Apply(s, restore.Events);
        Assert.Equal(ManagerState.DefaultRestorePriority, s.Job(restore.Job!.Id)!.Priority);
        s = End(s, busy);
        Assert.Equal([restore.Job.Id], s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(4)).Start.Select(j => j.Id));
        // One that asks for less waits its turn; a priority out of range is refused.
        var low = s.DecideStartRestore(new StartRestore { Client = "host-a", Snapshot = "snap1", Target = "/r2", Priority = 2 }, Now.AddMinutes(3));
        Assert.Equal(2, low.Job!.Priority);
        Assert.Contains("out of range", s.DecideStartRestore(new StartRestore { Client = "host-a", Snapshot = "snap1", Target = "/r2", Priority = 11 }, Now).Rejection);
    }

    [Fact]
    public void A_job_list_is_filtered_by_client_set_state_kind_and_time()
    {
        var job = new JobInfo { Id = "7", Kind = JobKind.Backup, State = JobState.Failed, Client = "web1", BackupSet = "www", QueuedUnixMs = 1_000, FinishedUnixMs = 5_000 };
        Assert.True(ManagerState.Listed(job, new ListJobs()));
        Assert.True(ManagerState.Listed(job, new ListJobs { Client = "web1", Set = "www", States = { JobState.Failed, JobState.Missed }, Kinds = { JobKind.Backup }, SinceUnixMs = 5_000 }));
        Assert.False(ManagerState.Listed(job, new ListJobs { Client = "db1" }));
        Assert.False(ManagerState.Listed(job, new ListJobs { Set = "db" }));
        Assert.False(ManagerState.Listed(job, new ListJobs { States = { JobState.Succeeded } }));
        Assert.False(ManagerState.Listed(job, new ListJobs { Kinds = { JobKind.Restore } }));
        Assert.False(ManagerState.Listed(job, new ListJobs { SinceUnixMs = 5_001 })); // ended before
        // One not ended is listed whatever --since says: it is what an operator looks for.
        Assert.True(ManagerState.Listed(new JobInfo { State = JobState.Queued, QueuedUnixMs = 1 }, new ListJobs { SinceUnixMs = 5_001 }));
    }

    [Fact]
    public void Latest_with_paths_is_the_newest_snapshot_holding_them_and_a_restore_into_a_tree_another_writes_is_refused()
    {
        var s = Cell();
        foreach (var (id, path, at) in new[] { ("etc1", "/etc", 1L), ("home1", "/home/", 2L) })
        {
            var m = new ActorBackup.Engine.Trees.SnapshotManifest { Id = id, Client = "host-a", Library = "lib1", BackupSet = path, FinishedUnixMs = at, Paths = { path } };
            s = s.Apply(new SnapshotRecorded { Manifest = m.ToByteString() });
        }
        StartRestore Restore(string target, params string[] paths) => new() { Client = "host-a", Snapshot = "latest", Target = target, Paths = { paths } };
        // /home's backup ran last: 'latest /etc/fstab' is still /etc's newest; without paths, the newest of all.
        Assert.Equal("etc1", s.DecideStartRestore(Restore("/r", "/etc/fstab"), Now).Job!.Snapshot);
        Assert.Equal("home1", s.DecideStartRestore(Restore("/r"), Now).Job!.Snapshot);
        Assert.Equal("home1", s.DecideStartRestore(Restore("/r", "/home/ann", "*.conf"), Now).Job!.Snapshot);
        Assert.Equal("home1", s.DecideStartRestore(Restore("/r", "/srv"), Now).Job!.Snapshot); // none holds it: the newest, which says so

        var first = s.DecideStartRestore(Restore("/r"), Now);
        s = Apply(s, first.Events);
        foreach (var overlapping in new[] { "/r", "/r/", "/r/etc", "/" })
            Assert.Contains($"restore job {first.Job!.Id} writes into /r on host-a and has not ended", s.DecideStartRestore(Restore(overlapping), Now).Rejection);
        Assert.Null(s.DecideStartRestore(Restore("/r2"), Now).Rejection);
        Assert.NotNull(s.DecideStartRestore(Restore("/r2/../r//x"), Now).Rejection); // as the client resolves it: /r/x
        // Into / of two trees that do not meet: both go; of one inside the other, or a glob's folder: refused.
        var etc = s.DecideStartRestore(Restore("/", "/etc/fstab"), Now);
        var t = Apply(s, etc.Events);
        Assert.Null(t.DecideStartRestore(Restore("/", "/home/ann"), Now).Rejection);
        Assert.NotNull(t.DecideStartRestore(Restore("/", "/etc"), Now).Rejection);
        Assert.NotNull(t.DecideStartRestore(Restore("/", "/e*/x"), Now).Rejection); // a glob's root: /
        Assert.NotNull(t.DecideStartRestore(Restore("/", "/etc/*.conf"), Now).Rejection);
        Assert.Null(t.DecideStartRestore(Restore("/", "/var/*.log"), Now).Rejection);
        s = End(s, first.Job!.Id);
        Assert.Null(s.DecideStartRestore(Restore("/r/etc"), Now).Rejection);
    }

    [Fact]
    public void A_library_report_a_little_older_than_the_last_is_not_taken_but_one_a_clock_step_older_is()
    {
        var last = new IndexReport { Library = "lib1", Node = "n1", UnixMs = 10_000_000, Unavailable = "full" };
        Assert.False(ManagerState.Replaces(last, new IndexReport { Library = "lib1", Node = "n1", UnixMs = 9_995_000 })); // passed on again late
        Assert.True(ManagerState.Replaces(last, new IndexReport { Library = "lib1", Node = "n1", UnixMs = 10_005_000 }));
        Assert.True(ManagerState.Replaces(last, new IndexReport { Library = "lib1", Node = "n1", UnixMs = 10_000_000 - 7_200_000 })); // NTP stepped back 2 h
        Assert.True(ManagerState.Replaces(last, new IndexReport { Library = "lib1", Node = "n2", UnixMs = 1 })); // another node now
        Assert.True(ManagerState.Replaces(null, last));
    }

    [Fact]
    public void A_restores_excludes_overwrite_policy_and_dry_run_reach_its_job_and_a_dry_run_blocks_no_other()
    {
        var s = Cell();
        var m = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "etc1", Client = "host-a", Library = "lib1", BackupSet = "/etc", FinishedUnixMs = 1, Paths = { "/etc" } };
        s = s.Apply(new SnapshotRecorded { Manifest = m.ToByteString() });
        StartRestore Restore() => new() { Client = "host-a", Snapshot = "latest", Target = "/", Force = true };

        // --overwrite decides over what is there, which only --force lets a restore write into.
        var unforced = Restore();
        unforced.Force = false;
        unforced.Overwrite = RestoreOverwrite.OverwriteNever;
        Assert.Contains("give --force too", s.DecideStartRestore(unforced, Now).Rejection);
        var unknown = Restore();
        unknown.Overwrite = (RestoreOverwrite)9;
        Assert.Contains("overwrite policy 9 is not one this manager knows", s.DecideStartRestore(unknown, Now).Rejection);

        var dry = Restore();
        dry.DryRun = true;
        dry.Overwrite = RestoreOverwrite.OverwriteIfChanged;
        dry.Excludes.Add("*.tmp");
        var planned = s.DecideStartRestore(dry, Now);
        Assert.Equal((true, RestoreOverwrite.OverwriteIfChanged, "*.tmp"), (planned.Job!.DryRun, planned.Job.Overwrite, planned.Job.Excludes.Single()));
        s = Apply(s, planned.Events);
        // A dry run writes nothing: a restore into the same tree is not refused for it, and none is refused for one.
        var real = s.DecideStartRestore(Restore(), Now);
        Assert.Null(real.Rejection);
        s = Apply(s, real.Events);
        Assert.Null(s.DecideStartRestore(dry, Now).Rejection);
        Assert.NotNull(s.DecideStartRestore(Restore(), Now).Rejection);
    }

    [Fact]
    public void A_restore_reads_on_its_drive_and_a_job_started_before_drives_were_recorded_shows_on_a_free_one()
    {
        var s = Cell(drives1: 2);
        (s, var backup) = Queue(s, 5);
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting).Start);
        var snapshot = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "snap1", Client = "host-a", Library = "lib1", BackupSet = "/data5lib1", FinishedUnixMs = 1 };
        s = End(s, backup).Apply(new SnapshotRecorded { Manifest = snapshot.ToByteString() });
        var d = s.DecideStartRestore(new StartRestore { Client = "host-a", Snapshot = "snap1", Target = "/r" }, Now);
        Assert.Null(d.Rejection);
        s = Apply(s, d.Events);
        // Recorded by an older manager: no drive number.
        s = s.Apply(new JobStarted { Job = d.Job!.Id, Library = "lib1", UnixMs = 5 });
        var drives = s.DecideDriveList("lib1").Drives!.Drives;
        Assert.Equal([(1, "reading", d.Job.Id), (2, "idle", "")], drives.Select(x => (x.Number, x.State, x.Job)));
        Assert.Equal(JobKind.Restore, drives[0].JobKind);
    }

    [Fact]
    public void A_copy_from_a_tape_library_holds_a_drive_of_it_where_it_reads_besides_one_of_its_target()
    {
        var s = Cell().Apply(new LibraryRegistered { Id = "tape1", Node = "n3", Kind = "tape", Drives = 1 });
        var snapshot = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "snap1", Client = "host-a", Library = "tape1", BackupSet = "/data", FinishedUnixMs = 1 };
        s = s.Apply(new SnapshotRecorded { Manifest = snapshot.ToByteString() });
        var copy = s.DecideStartCopy(new StartCopy { Snapshot = "snap1", Library = "lib1" }, Now);
        Assert.Null(copy.Rejection);
        s = Apply(s, copy.Events);
        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting);
        var started = Assert.Single(plan.Start);
        Assert.Equal(("lib1", 1, "tape1", 1), (started.Library, started.Drive, started.SourceLibrary, started.SourceDrive));
        // Being started (not yet journaled), it already holds tape1's one drive: a backup there waits.
        (s, var backup) = Queue(s, 5, library: "tape1");
        var starting = new Dictionary<string, StartingJob> { [started.Id] = new(started.Library, started.Drive, started.SourceDrive) };
        Assert.Equal("tape1: 1 of 1 drives busy", s.DecideDispatch(new QueueLimits(), starting).Waiting[backup]);
        s = Start(s, [started]);
        Assert.Equal("tape1: 1 of 1 drives busy", s.DecideDispatch(new QueueLimits(), NoneStarting).Waiting[backup]);
        Assert.Equal([(1, "reading", started.Id)], s.DecideDriveList("tape1").Drives!.Drives.Select(d => (d.Number, d.State, d.Job)));
        Assert.Equal((1, "writing", started.Id), s.DecideDriveList("lib1").Drives!.Drives.Select(d => (d.Number, d.State, d.Job)).First());
        Assert.Contains("has 1 job running", s.DecideChangeTape(new ChangeTape { Library = "tape1", Verb = TapeVerb.Clean, Drive = 1 }));
        Assert.Empty(s.DecideCleaning([new IndexReport { Library = "tape1", DrivesDueCleaning = { 1 } }], []));
        var ticket = ActorBackup.Cluster.Trust.JobTickets.For(s.Job(started.Id)!, read: ["tape1"], write: [], Now, holderLibrary: "lib1");
        Assert.Equal((1, 1), (ActorBackup.Cluster.Trust.JobTickets.DriveIn(ticket, "lib1"), ActorBackup.Cluster.Trust.JobTickets.DriveIn(ticket, "tape1")));
        // A second copy from tape1 waits for the drive too, and says why.
        var again = s.DecideStartCopy(new StartCopy { Snapshot = "snap1", Library = "lib2" }, Now);
        s = Apply(s, again.Events);
        Assert.Equal("tape1: 1 of 1 drives busy (the copy reads it)", s.DecideDispatch(new QueueLimits(), NoneStarting).Waiting[again.Job!.Id]);
        // Ended, the drive is free: the backup goes first (older), then the copy.
        s = End(s, started.Id);
        Assert.Equal([backup], s.DecideDispatch(new QueueLimits(), NoneStarting).Start.Select(j => j.Id));
    }

    [Fact]
    public void Equal_priorities_go_oldest_first_and_an_operator_can_move_a_waiting_job()
    {
        var s = Cell();
        (s, var first) = Queue(s, 5);
        (s, var second) = Queue(s, 5, minute: 1);
        (s, var third) = Queue(s, 5, minute: 2);
        Assert.Equal([first], s.DecideDispatch(new QueueLimits(), NoneStarting).Start.Select(j => j.Id));

        var moved = s.DecideSetPriority(new SetJobPriority { Job = third, Priority = 8 });
        Assert.Null(moved.Rejection);
        s = Apply(s, moved.Events);
        Assert.Equal([third], s.DecideDispatch(new QueueLimits(), NoneStarting).Start.Select(j => j.Id));
        Assert.Contains("out of range", s.DecideSetPriority(new SetJobPriority { Job = second, Priority = 11 }).Rejection);
        s = Start(s, [s.Job(third)!]);
        Assert.Contains("only a waiting job", s.DecideSetPriority(new SetJobPriority { Job = third, Priority = 1 }).Rejection);
    }

    [Fact]
    public void Client_and_cell_limits_hold_across_libraries()
    {
        var s = Cell(4, 4, "host-a", "host-b");
        (s, _) = Queue(s, 5, "lib1", "host-a");
        (s, _) = Queue(s, 5, "lib2", "host-a", 1);
        (s, var b) = Queue(s, 5, "lib2", "host-b", 2);
        var perClient = s.DecideDispatch(new QueueLimits(MaxJobsPerClient: 1), NoneStarting);
        Assert.Equal(2, perClient.Start.Count); // one of host-a's, and host-b's
        Assert.Contains(perClient.Waiting.Values, w => w == "client host-a: 1 of 1 jobs running");
        var cell = s.DecideDispatch(new QueueLimits(MaxJobs: 1), NoneStarting);
        Assert.Single(cell.Start);
        Assert.Equal("cell: 1 of 1 jobs running", cell.Waiting[b]);
    }

    [Fact]
    public void However_jobs_arrive_and_end_no_limit_is_ever_exceeded_and_every_job_starts_in_the_end() =>
        // A property: for any seed (CsCheck shrinks a failing one to the smallest it finds), jobs pinned to a
        // library or left to the pool, with random priorities, clients and end times.
        Gen.Int[0, int.MaxValue].Sample(QueueHoldsItsLimits, iter: 60);

    private static void QueueHoldsItsLimits(int seed)
    {
        var random = new Random(seed);
        var limits = new QueueLimits(MaxJobs: 3, MaxJobsPerClient: 2);
        var s = Cell(2, 1, "c1", "c2", "c3");
        var running = new List<string>();
        var queued = 0;
        for (var step = 0; step < 200; step++)
        {
            if (queued < 40 && random.Next(3) > 0)
            {
                (s, _) = Queue(s, random.Next(1, 11), random.Next(3) switch { 0 => "lib1", 1 => "lib2", _ => "" }, $"c{random.Next(1, 4)}", step);
                queued++;
            }
            else if (running.Count > 0)
            {
                var i = random.Next(running.Count);
                s = End(s, running[i]);
                running.RemoveAt(i);
            }
            var plan = s.DecideDispatch(limits, NoneStarting);
            s = Start(s, plan.Start);
            running.AddRange(plan.Start.Select(j => j.Id));
            var busy = s.Jobs.Values.Where(j => j.State == JobState.Running).ToList();
            Assert.True(busy.Count <= limits.MaxJobs);
            Assert.True(busy.Count(j => j.Library == "lib1") <= 2);
            Assert.True(busy.Count(j => j.Library == "lib2") <= 1);
            Assert.All(busy.GroupBy(j => j.Client), g => Assert.True(g.Count() <= limits.MaxJobsPerClient));
            // A waiting job of higher priority than a started one waits for a limit the started one did not meet.
            foreach (var started in plan.Start)
                Assert.DoesNotContain(plan.Waiting.Keys, w => s.Job(w)!.Priority > started.Priority && plan.Waiting[w].StartsWith("cell"));
        }
        while (running.Count > 0 || s.Jobs.Values.Any(j => j.State == JobState.Queued))
        {
            foreach (var j in running) s = End(s, j);
            running.Clear();
            var plan = s.DecideDispatch(limits, NoneStarting);
            Assert.NotEmpty(plan.Start.Concat(s.Jobs.Values.Where(j => j.State == JobState.Running))); // the queue drains: nothing waits forever
            s = Start(s, plan.Start);
            running.AddRange(plan.Start.Select(j => j.Id));
        }
        Assert.Equal(queued, s.Jobs.Values.Count(j => j.State == JobState.Succeeded));
    }

    private static (ManagerState, string) Queued(ManagerState s, string set, int priority, DateTimeOffset at, long windowEndMs = 0)
    {
        var d = s.DecideStartBackup(new StartBackup { Client = "host-a", Library = "lib1", Paths = { "/" + set }, BackupSet = set, Priority = priority }, Reachable, at);
        d.Job!.WindowEndUnixMs = windowEndMs;
        return (Apply(s, d.Events), d.Job.Id);
    }

    [Fact]
    public void A_backup_waits_for_an_unreachable_library_of_its_pool_before_one_that_is_full_or_that_it_failed_on()
    {
        // lib1 is down to its reserve and lib2's node is being patched: the job was sent to lib1, refused, sent back to it at
        // once (lib2 "another library"), and so on until no attempt was left, in a second or two.
        var s = Cell();
        var d = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/data" } }, Reachable, Now);
        s = Apply(s, d.Events);
        var id = d.Job!.Id;
        var limits = new QueueLimits(ClientOfflineWait: TimeSpan.FromMinutes(30));
        List<ManagerState.LibraryLoad> fullAndDown = [new("lib1", true, 0, 100, Full: "lib1 is down to its reserve"), new("lib2", false, 0, 0)];
        var plan = s.DecideDispatch(limits, NoneStarting, now: Now.AddMinutes(5), loads: fullAndDown);
        Assert.Empty(plan.Start);
        Assert.Contains("lib1 is down to its reserve; the job waits for lib2 (unreachable now)", plan.Waiting[id]);

        // lib1 said nothing of its room yet: the job goes there, and is refused (out of space after all).
        List<ManagerState.LibraryLoad> down = [new("lib1", true, 0, 100), new("lib2", false, 0, 0)];
        plan = s.DecideDispatch(limits, NoneStarting, now: Now.AddMinutes(6), loads: down);
        Assert.Equal("lib1", Assert.Single(plan.Start).Library);
        s = Start(s, plan.Start);
        s = s.Apply(Assert.IsType<JobRetried>(s.DecideFailure(s.Job(id)!, JobFault.FaultLibrary, "out of space", Now.AddMinutes(7), TimeSpan.FromSeconds(30))));
        // Not back to lib1 at once: it waits for lib2, counted from the failed attempt.
        plan = s.DecideDispatch(limits, NoneStarting, now: Now.AddMinutes(30), loads: down);
        Assert.Empty(plan.Start);
        Assert.Contains("it failed on lib1 before; the job waits for lib2", plan.Waiting[id]);
        Assert.Equal("lib2", Assert.Single(s.DecideDispatch(limits, NoneStarting, now: Now.AddMinutes(31), loads: Reachable).Start).Library);
        // lib2 still down when the wait is over: lib1 again (it may have room by now; else the job fails saying why).
        Assert.Equal("lib1", Assert.Single(s.DecideDispatch(limits, NoneStarting, now: Now.AddMinutes(38), loads: down).Start).Library);
    }

    [Fact]
    public void A_disabled_library_takes_no_new_job_of_any_kind_while_those_running_finish_and_takes_them_again_once_enabled()
    {
        var s = Cell(drives1: 2, drives2: 2);
        (s, var running) = Queue(s, 5);
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting).Start);
        (s, var pinnedBefore) = Queue(s, 6, minute: 1); // queued for lib1 before it was disabled
        var disable = s.DecideSetLibraryEnabled(new SetLibraryEnabled { Library = "lib1", Reason = "disk swap" }, Now);
        s = Apply(s, disable.Events);
        Assert.Contains("no library lib9: list them with 'abk library list'", s.DecideSetLibraryEnabled(new SetLibraryEnabled { Library = "lib9" }, Now).Rejection);
        Assert.Equal("disk swap", new ManagerState().Apply(s.ToSnapshot()).DisabledLibraries["lib1"]); // across a restart
        Assert.Equal(JobState.Running, s.Job(running)!.State); // it runs to its end

        // A backup of the pool goes to the other library; one pinned to it is refused, saying why; a prune waits.
        var pooled = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/pool" } }, Reachable, Now);
        s = Apply(s, pooled.Events);
        Assert.Contains("library lib1 is disabled (disk swap): 'abk library enable lib1' when its maintenance is done",
            s.DecideStartBackup(new StartBackup { Client = "host-a", Library = "lib1", Paths = { "/x" } }, Reachable, Now).Rejection);
        var prune = s.DecidePrune(new StartPrune { Library = "lib1" }, Now);
        s = Apply(s, prune.Events);
        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting);
        Assert.Equal([(pooled.Job!.Id, "lib2")], plan.Start.Select(j => (j.Id, j.Library)));
        Assert.StartsWith("library lib1 is disabled (disk swap)", plan.Waiting[prune.Job!.Id]);
        Assert.StartsWith("library lib1 is disabled (disk swap)", plan.Waiting[pinnedBefore]);
        // Nor does a backup span into it.
        Assert.DoesNotContain("lib1", s.SpanTargets(plan.Start[0]));
        Assert.Contains("lib1", s.SpanTargets(plan.Start[0], evenDisabled: true)); // where its sessions are closed when it ends

        var enable = s.DecideSetLibraryEnabled(new SetLibraryEnabled { Library = "lib1", Enabled = true }, Now);
        s = Apply(s, enable.Events);
        Assert.Empty(s.DisabledLibraries);
        Assert.Contains("is not disabled", s.DecideSetLibraryEnabled(new SetLibraryEnabled { Library = "lib1", Enabled = true }, Now).Rejection);
        s = End(s, running);
        var after = s.DecideDispatch(new QueueLimits(), NoneStarting).Start.Where(j => j.Library == "lib1").Select(j => j.Id);
        Assert.Equal([pinnedBefore, prune.Job.Id], after.Order());
    }

    [Fact]
    public void A_snapshot_that_spans_into_a_disabled_library_is_not_read_and_a_job_missed_behind_it_says_so()
    {
        var s = Cell(drives1: 2, drives2: 2);
        var spanning = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "big", Client = "host-a", Library = "lib1", BackupSet = "web", FinishedUnixMs = 1, Spans = { "lib2" } };
        s = s.Apply(new SnapshotRecorded { Manifest = spanning.ToByteString() });
        (s, var pinned) = Queue(s, 5, library: "lib2"); // queued before lib2 was disabled, with a window (below)
        s = Apply(s, s.DecideSetLibraryEnabled(new SetLibraryEnabled { Library = "lib2", Reason = "robot" }, Now).Events);
        var restore = s.DecideStartRestore(new StartRestore { Client = "host-a", Snapshot = "big", Target = "/r" }, Now);
        s = Apply(s, restore.Events);
        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(1));
        Assert.Empty(plan.Start);
        Assert.StartsWith("library lib2 is disabled (robot)", plan.Waiting[restore.Job!.Id]);
        // With a whole copy elsewhere, it is read from the copy.
        var withCopy = s.Apply(new LibraryRegistered { Id = "lib3", Node = "n3", Drives = 1 }).Apply(new SnapshotCopied { Snapshot = "big", Library = "lib3" });
        var fromCopy = Assert.Single(withCopy.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(1)).Start, j => j.Id == restore.Job.Id);
        Assert.Equal("lib3", fromCopy.Library);
        // Running, it counts on the library it reads only; read from its home, on the libraries it spans too.
        Assert.Equal(new Dictionary<string, int> { ["lib3"] = 1 }, Start(withCopy, [fromCopy]).JobsOnLibraries());
        var fromHome = fromCopy.Clone();
        fromHome.Library = "lib1";
        Assert.Equal(new Dictionary<string, int> { ["lib1"] = 1, ["lib2"] = 1 }, Start(withCopy, [fromHome]).JobsOnLibraries());

        // A backup pinned to it, missed at its window's end, says what it waited for.
        var job = s.Job(pinned)!.Clone();
        job.WindowEndUnixMs = Now.AddMinutes(10).ToUnixTimeMilliseconds();
        s = s.Apply(new JobQueued { Job = job });
        var missed = Assert.Single(s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(11)).Missed, m => m.Job == pinned);
        Assert.Contains("it waited for library lib2 is disabled (robot)", missed.Reason);
    }

    [Fact]
    public void A_copy_that_needs_a_drive_in_two_libraries_gets_them_once_it_has_waited_an_hour()
    {
        // tape1 of two drives, lib1 of one; the copy from tape1 to lib1 needs a drive of each at once.
        var s = Cell().Apply(new LibraryRegistered { Id = "tape1", Node = "n3", Kind = "tape", Drives = 2 });
        var snapshot = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "snap1", Client = "host-a", Library = "tape1", BackupSet = "/data", FinishedUnixMs = 1 };
        s = s.Apply(new SnapshotRecorded { Manifest = snapshot.ToByteString() });
        (s, var onLib1) = Queue(s, 5, library: "lib1");
        s = Start(s, s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now).Start); // lib1 busy
        var copy = s.DecideStartCopy(new StartCopy { Snapshot = "snap1", Library = "lib1" }, Now);
        s = Apply(s, copy.Events);
        (s, var onTape) = Queue(s, 5, library: "tape1", minute: 1);
        (s, var onTape2) = Queue(s, 4, library: "tape1", minute: 1);
        // Waited a few minutes: tape1's free drives go to the backups there (the copy could not use one yet).
        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(5));
        Assert.Equal([onTape, onTape2], plan.Start.Select(j => j.Id));
        Assert.Equal("lib1: 1 of 1 drives busy", plan.Waiting[copy.Job!.Id]);
        // Waited more than an hour: one drive of tape1, its last free one, is held for it; the other backup there waits, saying for whom.
        plan = s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(65));
        Assert.Equal([onTape], plan.Start.Select(j => j.Id));
        Assert.Equal($"tape1: its free drive is held for job {copy.Job.Id} (a copy that waits for a drive here and in another library at once)", plan.Waiting[onTape2]);
        // Not for a copy that waits for something else than drives (its target out of space): nothing held.
        List<ManagerState.LibraryLoad> full = [new("lib1", true, 0, 100, Full: "lib1 is down to its reserve"), new("lib2", true, 0, 100), new("tape1", true, 0, 100)];
        Assert.Equal([onTape, onTape2], s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(65), loads: full).Start.Select(j => j.Id));
        // lib1 free: the copy takes a drive of each.
        s = End(s, onLib1);
        plan = s.DecideDispatch(new QueueLimits(), NoneStarting, now: Now.AddMinutes(66));
        Assert.Equal([(copy.Job.Id, "lib1", "tape1"), (onTape, "tape1", "")], plan.Start.Select(j => (j.Id, j.Library, j.SourceLibrary)));
    }

    [Fact]
    public void A_waiting_job_gains_priority_with_aging_so_newer_higher_priority_work_cannot_hold_it_back_forever()
    {
        var s = Cell();
        (s, var low) = Queued(s, "low", 1, Now);
        (s, var high) = Queued(s, "high", 6, Now.AddHours(5.5));
        var at = Now.AddHours(6);
        Assert.Equal([high], s.DecideDispatch(new QueueLimits(), NoneStarting, null, at).Start.Select(j => j.Id)); // no aging: strict priority
        Assert.Equal([low], s.DecideDispatch(new QueueLimits(PriorityAging: TimeSpan.FromHours(1)), NoneStarting, null, at).Start.Select(j => j.Id)); // 1 + 6 h > 6
    }

    [Fact]
    public void Among_equal_priorities_the_job_with_the_least_slack_in_its_window_goes_first_and_one_that_cannot_make_it_says_so()
    {
        var s = Cell();
        // Last runs: "big" took 2 h 40 min, "small" 5 min.
        foreach (var (set, minutes) in new[] { ("big", 160), ("small", 5) })
        {
            (s, var done) = Queued(s, set, 5, Now.AddDays(-1));
            s = s.Apply(new JobStarted { Job = done, Library = "lib1", UnixMs = Now.AddDays(-1).ToUnixTimeMilliseconds() })
                .Apply(new JobEnded { Job = done, State = JobState.Succeeded, UnixMs = Now.AddDays(-1).AddMinutes(minutes).ToUnixTimeMilliseconds() });
        }
        (s, var small) = Queued(s, "small", 5, Now, Now.AddHours(1).ToUnixTimeMilliseconds()); // 55 min of slack
        (s, var big) = Queued(s, "big", 5, Now.AddMinutes(1), Now.AddHours(3).ToUnixTimeMilliseconds()); // 20 min of slack
        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting, null, Now.AddMinutes(2));
        Assert.Equal([big], plan.Start.Select(j => j.Id)); // the long one first, though its window ends later
        Assert.Equal("lib1: 1 of 1 drives busy", plan.Waiting[small]);

        s = Start(s, plan.Start);
        var late = s.DecideDispatch(new QueueLimits(), NoneStarting, null, Now.AddMinutes(58));
        Assert.Equal("lib1: 1 of 1 drives busy; its last run took 0:05:00, more than is left of its window", late.Waiting[small]);
    }

    [Fact]
    public void The_history_keeps_the_newest_ended_jobs_of_each_set_and_every_open_one()
    {
        var s = Cell(4, 4);
        var jobs = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var d = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/a" } }, Reachable, Now.AddMinutes(i));
            s = Apply(s, d.Events);
            jobs.Add(d.Job!.Id);
            if (i < 4) s = End(s, d.Job.Id); // the last one stays open
        }
        var other = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/b" } }, Reachable, Now);
        s = End(Apply(s, other.Events), other.Job!.Id);

        var forgotten = s.DecideCompaction(2, Now)!;
        Assert.Equal(jobs.Take(2), forgotten.Jobs); // of /a's four ended jobs the newest two stay; /b's one stays
        s = s.Apply(forgotten);
        Assert.Equal([jobs[2], jobs[3], jobs[4], other.Job.Id], s.Jobs.Values.Select(j => j.Id));
        Assert.Null(s.DecideCompaction(2, Now));
        var next = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/c" } }, Reachable, Now);
        Assert.Equal("7", next.Job!.Id); // numbers are never reused
    }

    [Fact]
    public void A_manager_that_restarts_keeps_queued_jobs_queued_and_interrupts_only_those_that_ran()
    {
        var s = Cell();
        (s, var ran) = Queue(s, 5);
        (s, var waiting) = Queue(s, 5, minute: 1);
        s = Start(s, [s.Job(ran)!]);
        var ended = s.InterruptedJobs(Now, new HashSet<string>()).ToList();
        Assert.Equal([ran], ended.Select(e => e.Job));
        Assert.DoesNotContain(ended, e => e.Job == waiting);
    }

    [Fact]
    public void A_job_without_a_window_waits_for_its_offline_client_spending_no_attempt_and_fails_after_the_offline_wait()
    {
        // A client down for minutes: its job is not started (it failed at once, an attempt spent each time: every retry
        // gone in about 90 s); it waits, and starts when the client is back.
        var s = Cell(4, 4, "host-a");
        (s, var job) = Queue(s, 5);
        var limits = new QueueLimits(ClientOfflineWait: TimeSpan.FromMinutes(30));
        HashSet<string> offline = [];
        var plan = s.DecideDispatch(limits, NoneStarting, offline, Now.AddMinutes(10));
        Assert.Empty(plan.Start);
        Assert.Empty(plan.Missed);
        Assert.Equal($"client host-a is offline (the job waits for it until {Now.AddMinutes(30):u})", plan.Waiting[job]);
        Assert.Equal([job], s.DecideDispatch(limits, NoneStarting, new HashSet<string> { "host-a" }, Now.AddMinutes(29)).Start.Select(j => j.Id));
        // The wait counts from when the manager saw the client go, if later than the job's queueing.
        var wentLater = new Dictionary<string, long> { ["host-a"] = Now.AddMinutes(20).ToUnixTimeMilliseconds() };
        Assert.Empty(s.DecideDispatch(limits, NoneStarting, offline, Now.AddMinutes(45), offlineSince: wentLater).Missed);
        // Still away after it: FAILED, saying what to do (and the last attempt's reason, when it ran before).
        var failed = Assert.Single(s.DecideDispatch(limits, NoneStarting, offline, Now.AddMinutes(31)).Missed);
        Assert.Equal((job, JobState.Failed), (failed.Job, failed.State));
        Assert.StartsWith("client host-a was not connected for 30 min", failed.Reason);
        Assert.Contains("start its node", failed.Reason);
        var retried = s.Apply(new JobStarted { Job = job, Library = "lib1", UnixMs = Now.ToUnixTimeMilliseconds() })
            .Apply(new JobRetried { Job = job, Reason = "attempt 1 of 3 failed: client host-a left", NotBeforeUnixMs = Now.AddMinutes(1).ToUnixTimeMilliseconds() });
        Assert.Empty(retried.DecideDispatch(limits, NoneStarting, offline, Now.AddMinutes(31)).Missed); // from its attempt's time
        Assert.EndsWith("its last attempt: attempt 1 of 3 failed: client host-a left", Assert.Single(retried.DecideDispatch(limits, NoneStarting, offline, Now.AddMinutes(32)).Missed).Reason);
    }

    [Fact]
    public void A_scheduled_job_waits_for_its_offline_client_inside_its_window_and_ends_missed_after_it()
    {
        var s = Cell(4, 4, "host-a");
        var set = new BackupSetDefinition { Name = "web", Paths = { "/srv" }, WindowSeconds = 600, Schedules = { new ScheduleRule { Cron = "0 * * * *" } } };
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = set }, Now).Events);
        var slot = Now.AddHours(1);
        var due = Assert.Single(s.DecideDueSlots(slot, Reachable));
        s = Apply(s, due.Events);
        var job = due.Job!;
        Assert.Equal(slot.AddMinutes(10).ToUnixTimeMilliseconds(), job.WindowEndUnixMs);

        HashSet<string> offline = [];
        var waiting = s.DecideDispatch(new QueueLimits(), NoneStarting, offline, slot.AddMinutes(5));
        Assert.Empty(waiting.Start);
        Assert.Equal("client host-a is offline", waiting.Waiting[job.Id]);
        Assert.Empty(waiting.Missed);

        // Back inside the window: it starts.
        Assert.Equal([job.Id], s.DecideDispatch(new QueueLimits(), NoneStarting, new HashSet<string> { "host-a" }, slot.AddMinutes(9)).Start.Select(j => j.Id));

        // Still away when the window closes: MISSED, with the reason.
        var late = s.DecideDispatch(new QueueLimits(), NoneStarting, offline, slot.AddMinutes(11));
        Assert.Empty(late.Start);
        var missed = Assert.Single(late.Missed);
        Assert.Equal(JobState.Missed, missed.State);
        Assert.Contains("client host-a was offline", missed.Reason);
        Assert.True(ManagerState.IsFinal(s.Apply(missed).Job(job.Id)!.State));

        // One that ran and failed, its next attempt due after the window: FAILED with its attempt's reason, not MISSED.
        var retried = s.Apply(new JobStarted { Job = job.Id, Library = "lib1", UnixMs = slot.AddMinutes(9).ToUnixTimeMilliseconds() })
            .Apply(new JobRetried { Job = job.Id, Reason = "attempt 1 of 3 failed: lost the data plane", NotBeforeUnixMs = slot.AddMinutes(12).ToUnixTimeMilliseconds() });
        var failed = Assert.Single(retried.DecideDispatch(new QueueLimits(), NoneStarting, new HashSet<string> { "host-a" }, slot.AddMinutes(11)).Missed);
        Assert.Equal(JobState.Failed, failed.State);
        Assert.StartsWith("attempt 1 of 3 failed: lost the data plane; no time was left in its window", failed.Reason);

        // The set removed while its scheduled run waits: the run is cancelled, saying why, not run with the old definition.
        // An operator's run of the set (abk set run), asked for explicitly, is left to run.
        var asked = s.DecideRunSet(new RunBackupSet { Name = "web" }, Reachable, slot.AddMinutes(4));
        var removed = Apply(Apply(s, asked.Events), s.DecideRemoveSet(new RemoveBackupSet { Name = "web" }, slot.AddMinutes(5)).Events);
        var cancelled = Assert.Single(removed.DecideDispatch(new QueueLimits(), NoneStarting, new HashSet<string> { "host-a" }, slot.AddMinutes(6)).Missed);
        Assert.Equal((job.Id, JobState.Cancelled), (cancelled.Job, cancelled.State));
        Assert.Contains("backup set web was removed before this scheduled run started", cancelled.Reason);
        // Nor does a scheduled run of a set disabled since (the operator's run still goes).
        var disabled = Apply(Apply(s, asked.Events), s.DecideEnableSet(new EnableBackupSet { Name = "web", Enabled = false }, slot.AddMinutes(5)).Events);
        var off = disabled.DecideDispatch(new QueueLimits(), NoneStarting, new HashSet<string> { "host-a" }, slot.AddMinutes(6));
        Assert.Equal((job.Id, JobState.Cancelled), (Assert.Single(off.Missed).Job, Assert.Single(off.Missed).State));
        Assert.Contains("backup set web was disabled before this scheduled run started", off.Missed[0].Reason);
        Assert.Equal([asked.Job!.Id], off.Start.Select(j => j.Id));
    }

    [Fact]
    public void A_manager_that_just_started_keeps_a_clients_jobs_queued_until_the_client_registers_with_it()
    {
        var s = Cell(4, 4, "host-a", "host-b");
        (s, var a) = Queue(s, 5);
        (s, var b) = Queue(s, 5, client: "host-b", minute: 1);
        // host-a had jobs under the manager before; neither has registered here yet. host-a's job waits for it;
        // host-b's waits as for any client not connected.
        HashSet<string> registering = ["host-a"];
        var plan = s.DecideDispatch(new QueueLimits(), NoneStarting, new HashSet<string>(), Now, Reachable, registering);
        Assert.Empty(plan.Start);
        Assert.Equal("client host-a has not registered with the manager since it started", plan.Waiting[a]);
        Assert.StartsWith("client host-b is offline", plan.Waiting[b]);
        // Registered (connected now, though not yet struck from the list): it starts.
        Assert.Contains(a, s.DecideDispatch(new QueueLimits(), NoneStarting, new HashSet<string> { "host-a" }, Now, Reachable, registering).Start.Select(j => j.Id));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(-1)]
    [InlineData(100)]
    public void A_priority_out_of_range_is_refused_for_a_backup_and_a_library_check_and_an_old_one_is_held_to_the_range(int priority)
    {
        var s = Cell();
        Assert.Contains($"priority {priority} is out of range", s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/data" }, Priority = priority }, Reachable, Now).Rejection);
        Assert.Contains($"priority {priority} is out of range", s.DecideStartVerify(new StartVerify { Library = "lib1", Priority = priority }, Now).Rejection);
        // A job journaled with one before the check (or by hand): it counts as the nearest in the range.
        Assert.Equal(priority > 0 ? ManagerState.MaxPriority : 1, ManagerState.PriorityOf(priority));
    }
}

