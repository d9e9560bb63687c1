using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>Storage policies: their library pool and choice rule, a set's chain, and jobs retried on another library or later.</summary>
public class PolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Backoff = TimeSpan.FromSeconds(30);

    private static ManagerState Cell(params string[] libraries)
    {
        var s = new ManagerState().Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" });
        foreach (var l in libraries.Length == 0 ? ["lib1", "lib2", "lib3"] : libraries) s = s.Apply(new LibraryRegistered { Id = l, Node = "n-" + l, Drives = 2 });
        return s;
    }

    private static ManagerState Apply(ManagerState s, IEnumerable<IMessage> events) => events.Aggregate(s, (st, e) => st.Apply(e));

    private static ManagerState Define(ManagerState s, StoragePolicy p)
    {
        var d = s.DecideDefinePolicy(new DefinePolicy { Policy = p }, Now);
        Assert.Null(d.Rejection);
        return Apply(s, d.Events);
    }

    private static List<ManagerState.LibraryLoad> Loads(ManagerState s, Dictionary<string, string>? unusable = null, params string[] down) =>
        s.Libraries.Keys.Select(id => new ManagerState.LibraryLoad(id, !down.Contains(id), 0, 100, 0, unusable?.GetValueOrDefault(id))).ToList();

    private static (ManagerState, string) Queue(ManagerState s, string set, string policy = "", BackupLevel level = BackupLevel.LevelDefault)
    {
        var d = s.DecideStartBackup(new StartBackup { Paths = { "/" + set }, BackupSet = set, Policy = policy, Level = level }, Loads(s), Now);
        Assert.Null(d.Rejection);
        return (Apply(s, d.Events), d.Job!.Id);
    }

    private static ManagerState.DispatchPlan Plan(ManagerState s, List<ManagerState.LibraryLoad>? loads = null, DateTimeOffset? at = null) =>
        s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob>(), null, at ?? Now, loads ?? Loads(s));

    private static ManagerState Start(ManagerState s, ManagerState.DispatchPlan plan) =>
        Apply(s, plan.Start.Select(j => new JobStarted { Job = j.Id, Library = j.Library, Level = j.Level, UnixMs = 1 }));

    private static ManagerState Succeed(ManagerState s, string job)
    {
        var j = s.Job(job)!;
        var m = new SnapshotManifest { Id = "snap" + job, Client = j.Client, BackupSet = j.BackupSet, Library = j.Library, Level = ManagerState.ToEngineLevel(j.Level) };
        return s.Apply(new SnapshotRecorded { Manifest = m.ToByteString() }).Apply(new JobEnded { Job = job, State = JobState.Succeeded, Snapshot = m.Id });
    }

    [Fact]
    public void The_built_in_default_policy_is_every_library_balanced_and_can_be_redefined_not_removed()
    {
        var s = Cell();
        var d = s.PolicyOf("default")!;
        Assert.Equal(["lib1", "lib2", "lib3"], s.Pool(d));
        Assert.Equal(LibraryChoice.Balance, d.Choice);
        Assert.Equal("default", Assert.Single(s.AllPolicies()).Name);
        Assert.Contains("built in", s.DecideRemovePolicy(new RemovePolicy { Name = "default" }, Now).Rejection);
        s = Define(s, new StoragePolicy { Name = "default", Libraries = { "lib2" } });
        Assert.Equal(["lib2"], s.Pool(s.PolicyOf("")!));
        Assert.False(s.PolicyInfoOf(s.PolicyOf("default")!).Implicit);
        s = Apply(s, s.DecideRemovePolicy(new RemovePolicy { Name = "default" }, Now).Events); // back to the built-in one
        Assert.Equal(3, s.Pool(s.PolicyOf("default")!).Count);
    }

    [Fact]
    public void Bad_policies_are_refused_with_the_reason_and_a_used_one_cannot_be_removed()
    {
        var s = Cell();
        string? Refused(StoragePolicy p) => s.DecideDefinePolicy(new DefinePolicy { Policy = p }, Now).Rejection;
        Assert.Contains("unknown library 'lib9': known are lib1, lib2, lib3", Refused(new StoragePolicy { Name = "p", Libraries = { "lib1", "lib9" } }));
        Assert.Contains("named twice", Refused(new StoragePolicy { Name = "p", Libraries = { "lib1", "lib1" } }));
        Assert.Contains("power of two", Refused(new StoragePolicy { Name = "p", ChunkKib = 100 }));
        Assert.Contains("zstd level", Refused(new StoragePolicy { Name = "p", Compression = 30 }));
        Assert.Contains("retries", Refused(new StoragePolicy { Name = "p", Retries = 11 }));
        Assert.Contains("policy name", Refused(new StoragePolicy { Name = "a b" }));
        s = Define(s, new StoragePolicy { Name = "fast", Libraries = { "lib1" } });
        Assert.Contains("exists already", Refused(new StoragePolicy { Name = "fast" }));

        var set = new BackupSetDefinition { Name = "web", Paths = { "/srv" }, Policy = "nope" };
        Assert.Contains("no storage policy 'nope': known are default, fast", s.DecideDefineSet(new DefineBackupSet { Set = set }, Now).Rejection);
        set.Policy = "fast";
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = set }, Now).Events);
        Assert.Contains("used by backup set web", s.DecideRemovePolicy(new RemovePolicy { Name = "fast" }, Now).Rejection);
        Assert.Equal(["web"], s.PolicyInfoOf(s.PolicyOf("fast")!).Sets);
        Assert.Contains("no storage policy", s.DecideRemovePolicy(new RemovePolicy { Name = "slow" }, Now).Rejection);

        // A policy no set uses, but a job queued under it not ended yet (its pool and retries): kept until it ends.
        s = Define(s, new StoragePolicy { Name = "once", Libraries = { "lib2" } });
        (s, var job) = Queue(s, "adhoc", "once");
        Assert.Contains($"is the policy of job {job}, not ended yet: wait for them, or cancel them", s.DecideRemovePolicy(new RemovePolicy { Name = "once" }, Now).Rejection);
        var apply = s.DecideApply(new ApplyDefinitions { Prune = true, Sets = { s.BackupSets.Values }, Policies = { s.Policies.Values.Where(p => p.Name != "once") } }, Now);
        Assert.Contains($"policy 'once' is not in the file but is the policy of job {job}", apply.Decision.Rejection);
        s = s.Apply(new JobEnded { Job = job, State = JobState.Cancelled, UnixMs = 1 });
        Assert.Null(s.DecideRemovePolicy(new RemovePolicy { Name = "once" }, Now).Rejection);

        // A decommissioned host's snapshots keep the policy they were made under: it is not removed from under them
        // (they would fall to the default's retention: an archive deleted, or never let go).
        var archived = new ActorBackup.Engine.Trees.SnapshotManifest { Id = "arch1", Client = "old-host", BackupSet = "gone", Library = "lib2", Policy = "once", FinishedUnixMs = 1 };
        s = s.Apply(new SnapshotRecorded { Manifest = archived.ToByteString() });
        Assert.Contains("decides the retention of 1 snapshot of sets no longer defined (old-host:gone)", s.DecideRemovePolicy(new RemovePolicy { Name = "once" }, Now).Rejection);
        apply = s.DecideApply(new ApplyDefinitions { Prune = true, Sets = { s.BackupSets.Values }, Policies = { s.Policies.Values.Where(p => p.Name != "once") } }, Now);
        Assert.Contains("policy 'once' is not in the file but decides the retention of 1 snapshot", apply.Decision.Rejection);
    }

    [Fact]
    public void Fill_first_takes_the_pool_in_order_and_skips_a_library_that_is_full_or_down()
    {
        var s = Define(Cell(), new StoragePolicy { Name = "ff", Libraries = { "lib3", "lib1" }, Choice = LibraryChoice.FillFirst });
        (s, var a) = Queue(s, "a", "ff");
        (s, var b) = Queue(s, "b", "ff");
        (s, var c) = Queue(s, "c", "ff");
        var plan = Plan(s);
        Assert.Equal(["lib3", "lib3", "lib1"], plan.Start.Select(j => j.Library)); // lib3 has 2 drives: the third goes on to lib1
        Assert.Equal(c, plan.Start[2].Id);
        var full = new Dictionary<string, string> { ["lib3"] = "library lib3 is out of space at /x" };
        plan = Plan(s, Loads(s, full));
        Assert.Equal(["lib1", "lib1"], plan.Start.Select(j => j.Library)); // the full one is passed over while another can take jobs
        Assert.Equal("lib1: 2 of 2 drives busy", plan.Waiting[c]);
        // The other one unreachable: the jobs wait for it (an hour at most) rather than go to the full one and fail there.
        plan = Plan(s, Loads(s, full, "lib1"));
        Assert.Empty(plan.Start);
        Assert.StartsWith("library lib3 is out of space at /x; the job waits for lib1 (unreachable now) until", plan.Waiting[a]);
        // Nothing else reachable after that: the full one is tried all the same (it may have room again; else the job fails with its reason).
        plan = Plan(s, Loads(s, full, "lib1"), Now.AddHours(1).AddSeconds(1));
        Assert.Equal(["lib3", "lib3"], plan.Start.Select(j => j.Library));
        Assert.Equal("lib3: 2 of 2 drives busy", plan.Waiting[c]);
        plan = Plan(s, Loads(s, full, "lib1", "lib3"));
        Assert.Empty(plan.Start);
        Assert.Equal("no library of storage policy 'ff' can take it now: library lib3 is unreachable; library lib1 is unreachable", plan.Waiting[a]);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Jobs_being_started_hold_the_stream_of_the_library_they_were_given()
    {
        // As the manager does when three slots fire at once: each JobQueued is applied and dispatched before
        // any JobStarted, so the jobs being started are still QUEUED, with no library, in the state.
        var s = Cell("lib1", "lib2");
        s = Apply(s, [new LibraryRegistered { Id = "lib1", Node = "n-lib1", Drives = 1 }, new LibraryRegistered { Id = "lib2", Node = "n-lib2", Drives = 1 }]);
        var starting = new Dictionary<string, StartingJob>();
        var started = new List<JobInfo>();
        foreach (var set in new[] { "a", "b", "c" })
        {
            (s, _) = Queue(s, set);
            var plan = s.DecideDispatch(new QueueLimits(), starting, null, Now, Loads(s));
            foreach (var j in plan.Start) starting[j.Id] = new(j.Library, j.Drive);
            started.AddRange(plan.Start);
        }
        Assert.Equal(["lib1", "lib2"], started.Select(j => j.Library).Order());
        Assert.Equal(2, starting.Count); // the third waits for a drive
    }

    [Fact]
    public void A_balanced_set_stays_on_the_library_of_its_chain_and_starts_a_new_one_with_a_full_when_that_is_gone()
    {
        var s = Cell();
        (s, var first) = Queue(s, "web");
        var plan = Plan(s);
        var library = Assert.Single(plan.Start).Library;
        Assert.Equal(BackupLevel.LevelFull, plan.Start[0].Level); // nothing to compare with
        s = Succeed(Start(s, plan), first);

        // Other libraries are idler now (this one ran a job lately); the chain stays where its parent is.
        (s, var second) = Queue(s, "web");
        plan = Plan(s);
        Assert.Equal(library, Assert.Single(plan.Start).Library);
        Assert.Equal(BackupLevel.LevelIncremental, plan.Start[0].Level);
        s = Succeed(Start(s, plan), second);

        // Its library is down: another of the pool takes it, as a full (its parent's chunks are not there).
        (s, var third) = Queue(s, "web", level: BackupLevel.LevelIncremental);
        plan = Plan(s, Loads(s, null, library));
        var other = Assert.Single(plan.Start);
        Assert.NotEqual(library, other.Library);
        Assert.Equal(BackupLevel.LevelFull, other.Level);
        s = Succeed(Start(s, plan), third);
        Assert.Equal(other.Library, s.ChainLibrary("host-a", "web"));
    }

    [Fact]
    public void A_library_fault_retries_on_another_library_of_the_pool_and_fails_when_none_is_left()
    {
        var s = Define(Cell(), new StoragePolicy { Name = "two", Libraries = { "lib1", "lib2" }, Choice = LibraryChoice.FillFirst });
        (s, var job) = Queue(s, "db", "two");
        s = Start(s, Plan(s));
        Assert.Equal("lib1", s.Job(job)!.Library);

        var retry = Assert.IsType<JobRetried>(s.DecideFailure(s.Job(job)!, JobFault.FaultLibrary, "library lib1 is out of space", Now, Backoff));
        Assert.Equal("lib1", retry.AvoidLibrary);
        Assert.Equal(Now.ToUnixTimeMilliseconds(), retry.NotBeforeUnixMs); // at once (the attempt's time: a wait for another library counts from it)
        s = s.Apply(retry);
        Assert.Equal(JobState.Queued, s.Job(job)!.State);
        Assert.Contains("trying lib2", s.Job(job)!.Reason);
        var plan = Plan(s); // lib1 is usable again as far as the manager knows; the job avoids it
        Assert.Equal("lib2", Assert.Single(plan.Start).Library);
        s = Start(s, plan);

        var ended = Assert.IsType<JobEnded>(s.DecideFailure(s.Job(job)!, JobFault.FaultLibrary, "library lib2 is out of space", Now, Backoff));
        Assert.Equal(JobState.Failed, ended.State);
        Assert.Contains("lib2 is out of space", ended.Reason);

        // A single-library pool: the fault is the answer (the same library would fail again).
        var one = Define(s, new StoragePolicy { Name = "one", Libraries = { "lib3" } });
        (one, var solo) = Queue(one, "solo", "one");
        one = Start(one, Plan(one));
        Assert.IsType<JobEnded>(one.DecideFailure(one.Job(solo)!, JobFault.FaultLibrary, "out of space", Now, Backoff));
    }

    [Fact]
    public void A_transient_fault_retries_after_a_growing_backoff_up_to_the_policy_limit()
    {
        var s = Define(Cell(), new StoragePolicy { Name = "p", Retries = 2 });
        (s, var job) = Queue(s, "x", "p");
        var at = Now;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            s = Start(s, Plan(s, at: at));
            var retry = Assert.IsType<JobRetried>(s.DecideFailure(s.Job(job)!, JobFault.FaultTransient, "lost the data plane", at, Backoff));
            Assert.Equal((at + Backoff * (1 << attempt)).ToUnixTimeMilliseconds(), retry.NotBeforeUnixMs);
            s = s.Apply(retry);
            var waiting = Plan(s, at: at.AddSeconds(1));
            Assert.Empty(waiting.Start);
            Assert.Contains($"attempt {attempt + 2} at", waiting.Waiting[job]);
            at = DateTimeOffset.FromUnixTimeMilliseconds(retry.NotBeforeUnixMs);
        }
        s = Start(s, Plan(s, at: at));
        var last = Assert.IsType<JobEnded>(s.DecideFailure(s.Job(job)!, JobFault.FaultTransient, "lost the data plane", at, Backoff));
        Assert.Contains("attempt 3 of 3; no attempt left", last.Reason);
        Assert.IsType<JobEnded>(s.DecideFailure(s.Job(job)!, JobFault.FaultNone, "a bad path", at, Backoff)); // not the kind a retry helps
    }

    [Fact]
    public void The_policy_s_chunk_size_and_compression_travel_with_the_job_and_a_pinned_library_is_kept()
    {
        var s = Define(Cell(), new StoragePolicy { Name = "small", ChunkKib = 256, Compression = 9 });
        (s, var job) = Queue(s, "mail", "small");
        Assert.Equal(256, s.Job(job)!.ChunkKib);
        Assert.Equal(9, s.Job(job)!.Compression);
        s = Apply(s, s.DecideDefineSet(new DefineBackupSet { Set = new BackupSetDefinition { Name = "mail", Paths = { "/var/mail" }, Policy = "small" } }, Now).Events);
        var run = s.DecideRunSet(new RunBackupSet { Name = "mail" }, Loads(s), Now);
        Assert.Equal("small", run.Job!.Policy); // a set's jobs carry its policy
        Assert.Equal(256, run.Job.ChunkKib);
        var d = s.DecideStartBackup(new StartBackup { Paths = { "/p" }, Library = "lib3" }, Loads(s), Now);
        s = Apply(s, d.Events);
        Assert.True(d.Job!.LibraryPinned);
        var plan = Plan(s);
        Assert.Equal("lib3", plan.Start.Single(j => j.Id == d.Job.Id).Library);
        Assert.Equal("library lib3 is unreachable", Plan(s, Loads(s, null, "lib3")).Waiting[d.Job.Id]);
    }
}

/// <summary>A library that cannot write but reads (its disk full, remounted read-only): restores and verifies still go there.</summary>
public class ReadableLibraryTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_restore_goes_to_a_library_that_only_reads_a_backup_pinned_there_waits_and_one_that_reads_nothing_holds_both()
    {
        var s = new ManagerState().Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 4 });
        var m = new SnapshotManifest { Id = "s1", Client = "host-a", BackupSet = "etc", Library = "lib1", Level = ManagerState.ToEngineLevel(BackupLevel.LevelFull) };
        s = s.Apply(new SnapshotRecorded { Manifest = m.ToByteString() });
        List<ManagerState.LibraryLoad> Loads(bool reads) => [new("lib1", true, 0, 0, 0, "library lib1 is out of space at /srv/lib1", null, reads)];
        var restore = s.DecideStartRestore(new StartRestore { Snapshot = "s1", Target = "/srv/r" }, Now);
        Assert.Null(restore.Rejection);
        s = restore.Events.Aggregate(s, (st, e) => st.Apply(e));
        var backup = s.DecideStartBackup(new StartBackup { Paths = { "/etc" }, Library = "lib1" }, Loads(true), Now);
        Assert.Null(backup.Rejection);
        s = backup.Events.Aggregate(s, (st, e) => st.Apply(e));

        var plan = s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob>(), null, Now, Loads(reads: true));
        Assert.Equal(restore.Job!.Id, Assert.Single(plan.Start).Id);
        Assert.Contains("out of space", plan.Waiting[backup.Job!.Id]);

        plan = s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob>(), null, Now, Loads(reads: false));
        Assert.Empty(plan.Start);
        Assert.Contains("out of space", plan.Waiting[restore.Job.Id]);

        // A copy on a library that also writes is read first; the one that only reads is the last resort.
        s = s.Apply(new LibraryRegistered { Id = "lib2", Node = "n2", Drives = 4 }).Apply(new SnapshotCopied { Snapshot = "s1", Library = "lib2", Job = "c1", UnixMs = 1 });
        List<ManagerState.LibraryLoad> both = [.. Loads(reads: true), new("lib2", true, 0, 0)];
        plan = s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob>(), null, Now, both);
        Assert.Equal(("lib2", restore.Job.Id), (Assert.Single(plan.Start).Library, plan.Start[0].Id));
        plan = s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob>(), null, Now, [.. Loads(reads: true), new("lib2", false, 0, 0)]);
        Assert.Equal("lib1", Assert.Single(plan.Start).Library); // the copy's library unreachable: the one that reads
    }
}

/// <summary>'latest' in a cell of many hosts: a restore runs on its snapshot's host, so the cell's newest would roll back whichever host backed up last.</summary>
public class LatestOfWhichHostTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_restore_of_latest_without_a_client_is_refused_once_several_hosts_have_snapshots()
    {
        var s = new ManagerState().Apply(new ClientRegistered { Id = "web1", Address = "akka.tcp://actorbackup@h1/user/client" })
            .Apply(new ClientRegistered { Id = "db7", Address = "akka.tcp://actorbackup@h2/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 4 });
        ManagerState Recorded(ManagerState st, string id, string client, long at) => st.Apply(new SnapshotRecorded
        {
            Manifest = new SnapshotManifest { Id = id, Client = client, BackupSet = "etc", Library = "lib1", Level = Level.Full, Paths = { "/etc" }, FinishedUnixMs = at }.ToByteString(),
        });
        s = Recorded(s, "w1", "web1", 1_000);
        // One host's snapshots: 'latest' is unambiguous, as it always was.
        Assert.Null(s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r" }, Now).Rejection);
        s = Recorded(s, "d1", "db7", 2_000);
        foreach (var cmd in new[] { new StartRestore { Snapshot = "latest", Target = "/r" }, new StartRestore { Snapshot = "", Target = "/r", Paths = { "/etc/fstab" } } })
        {
            var refused = s.DecideStartRestore(cmd, Now).Rejection;
            Assert.Contains("'latest' of which host? the catalog holds snapshots of 2 clients", refused);
            Assert.Contains("give --client HOST", refused);
        }
        // Named: that host's newest, on that host; an id: its own host, as before.
        var web1 = s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r", Client = "web1" }, Now);
        Assert.Equal(("w1", "web1"), (web1.Job!.Snapshot, web1.Job.Client));
        var byId = s.DecideStartRestore(new StartRestore { Snapshot = "d1", Target = "/r" }, Now);
        Assert.Equal(("d1", "db7"), (byId.Job!.Snapshot, byId.Job.Client));

        // abk snapshot list --client, --set, --path: each narrows.
        s = s.Apply(new SnapshotRecorded { Manifest = new SnapshotManifest { Id = "w2", Client = "web1", BackupSet = "www", Library = "lib1", Paths = { "/srv/www" }, FinishedUnixMs = 3_000 }.ToByteString() });
        IEnumerable<string> Listed(ListSnapshots m) => s.Snapshots.Where(ManagerState.Lister(m)).Select(x => x.Id);
        Assert.Equal(["w1", "d1", "w2"], Listed(new ListSnapshots()));
        Assert.Equal(["w1", "w2"], Listed(new ListSnapshots { Client = "web1" }));
        Assert.Equal(["w1", "d1"], Listed(new ListSnapshots { BackupSet = "etc" }));
        Assert.Equal(["w1"], Listed(new ListSnapshots { Client = "web1", BackupSet = "etc" }));
        Assert.Equal(["w1", "d1"], Listed(new ListSnapshots { Path = "/etc/fstab" })); // held by their /etc
        Assert.Equal(["w2"], Listed(new ListSnapshots { Path = "/srv" })); // /srv/www lies below it
        Assert.Empty(Listed(new ListSnapshots { Path = "/home" }));
    }
}
