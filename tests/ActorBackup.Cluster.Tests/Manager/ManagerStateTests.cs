using CsCheck;
using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

public class ManagerStateTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);

    private static ManagerState Cell(params string[] clients)
    {
        var s = new ManagerState();
        foreach (var c in clients) s = s.Apply(new ClientRegistered { Id = c, Address = "akka.tcp://actorbackup@h/user/client" });
        s = s.Apply(new LibraryRegistered { Id = "lib1", Node = "n1" });
        return s.Apply(new LibraryRegistered { Id = "lib2", Node = "n2" });
    }

    private static List<ManagerState.LibraryLoad> Loads(ManagerState s, ulong free1 = 100, ulong free2 = 50) =>
    [
        new("lib1", true, s.ActiveJobsOn("lib1"), free1, s.RecentJobsOn("lib1", Now)),
        new("lib2", true, s.ActiveJobsOn("lib2"), free2, s.RecentJobsOn("lib2", Now)),
    ];

    private static ManagerState Apply(ManagerState s, IEnumerable<IMessage> events) => events.Aggregate(s, (st, e) => st.Apply(e));

    [Fact]
    public void A_backups_recorded_snapshot_is_its_own_not_an_older_jobs_of_the_same_id_brought_back_by_a_rebuild()
    {
        // The manager's journal lost, a catalog rebuild brings back a snapshot of job 3 (ids began again): new jobs are
        // numbered above it, and a job 3 of the new journal (one queued before the rebuild) does not take it for its own.
        var s = Cell("web1");
        var d = s.DecideStartBackup(new StartBackup { Client = "web1", Paths = { "/srv" } }, Loads(s), Now);
        s = Apply(s, d.Events).Apply(new JobStarted { Job = d.Job!.Id, Library = "lib1", UnixMs = Now.ToUnixTimeMilliseconds() });
        var job = s.Job(d.Job.Id)!;
        SnapshotManifest Of(string id, DateTimeOffset started) => new()
        {
            Id = id, Client = "web1", BackupSet = "/srv", Library = "lib1", Level = Level.Full, Job = job.Id, RootTree = ByteString.CopyFrom(new byte[32]),
            StartedUnixMs = started.ToUnixTimeMilliseconds(), FinishedUnixMs = started.AddMinutes(1).ToUnixTimeMilliseconds(),
        };
        var old = s.Apply(new SnapshotRecorded { Manifest = Of("0000000000000old", Now.AddDays(-30)).ToByteString() });
        Assert.Null(old.RecordedBy(job));
        var rebuilt = s.Apply(new SnapshotRecorded { Manifest = new SnapshotManifest(Of("00000000000000ff", Now.AddDays(-30))) { Job = "900" }.ToByteString() });
        Assert.Equal(901, rebuilt.NextJob);
        // A manifest's bytes naming a huge job id (a hostile client's) do not wrap the numbering.
        var huge = s.Apply(new SnapshotRecorded { Manifest = new SnapshotManifest(Of("00000000000000fe", Now.AddDays(-30))) { Job = "9223372036854775806" }.ToByteString() });
        Assert.Equal(s.NextJob, huge.NextJob);
        // Its own, begun after its attempt started (within the clocks' tolerance): that one.
        Assert.Equal("0000000000000new", old.Apply(new SnapshotRecorded { Manifest = Of("0000000000000new", Now.AddMinutes(-2)).ToByteString() }).RecordedBy(job)?.Id);
    }

    [Fact]
    public void A_rebuild_names_the_lists_of_snapshots_whose_manifests_are_in_another_library()
    {
        // A backup that went on from lib1 into lib2: its manifest is in lib2, its list in both. Rebuilt from lib1 first, it
        // is named (and the manager does not take lib1 as caught up: a prune would take its data as an orphan's).
        var s = Cell("web1");
        var spanned = new SnapshotManifest { Id = "0badc0ffee000001", Client = "web1", BackupSet = "/srv", Library = "lib1", Level = Level.Full, RootTree = ByteString.CopyFrom(new byte[32]), Spans = { "lib2" } };
        var own = new SnapshotManifest { Id = "0badc0ffee000002", Client = "web1", BackupSet = "/srv", Library = "lib1", Level = Level.Full, RootTree = ByteString.CopyFrom(new byte[32]) };
        var (first, events) = s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib1", Manifests = { own.ToByteString() }, Referenced = { own.Id, spanned.Id } });
        Assert.Equal([spanned.Id], first.Unaccounted);
        s = Apply(s, events);
        Assert.Empty(s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { spanned.ToByteString() }, Referenced = { spanned.Id } }).Answer.Unaccounted);
        s = Apply(s, s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { spanned.ToByteString() }, Referenced = { spanned.Id } }).Events);
        Assert.Empty(s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib1", Manifests = { own.ToByteString() }, Referenced = { own.Id, spanned.Id } }).Answer.Unaccounted);
    }

    [Fact]
    public void A_catalog_rebuilt_from_a_library_holding_a_copy_records_the_copy_so_that_its_prunes_keep_it()
    {
        var s = Cell("web1");
        var manifest = new SnapshotManifest { Id = "a1b2c3d4e5f60718", Client = "web1", BackupSet = "/srv", Library = "lib1", Level = Level.Full, RootTree = ByteString.CopyFrom(new byte[32]) };
        // A manifest in lib2 without the snapshot's reference list there (a copy that failed before its end): no copy.
        var (partial, noCopy) = s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { manifest.ToByteString() } });
        Assert.Equal(1, partial.Added);
        Assert.DoesNotContain("a1b2c3d4e5f60718", Apply(s, noCopy).KeptOn("lib2"));
        // Rebuilt first from lib2, which holds a whole copy (its list too): recorded, with lib2 as a copy of it.
        var (answer, events) = s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { manifest.ToByteString() }, Referenced = { "a1b2c3d4e5f60718" } });
        Assert.Equal(1, answer.Added);
        Assert.Equal(1, answer.CopiesRecorded);
        Assert.Equal(0, partial.CopiesRecorded);
        s = Apply(s, events);
        Assert.Contains("a1b2c3d4e5f60718", s.KeptOn("lib2"));
        Assert.Contains("a1b2c3d4e5f60718", s.KeptOn("lib1"));
        // Its own library and lib2 again: nothing more to record.
        Assert.Empty(s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib1", Manifests = { manifest.ToByteString() } }).Events);
        Assert.Empty(s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { manifest.ToByteString() }, Referenced = { "a1b2c3d4e5f60718" } }).Events);
        // Known, and found in a library the catalog did not have it in: that library holds a copy.
        var other = Cell("web1").Apply(new SnapshotRecorded { Manifest = manifest.ToByteString() });
        Assert.DoesNotContain("a1b2c3d4e5f60718", other.KeptOn("lib2"));
        other = Apply(other, other.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { manifest.ToByteString() }, Referenced = { "a1b2c3d4e5f60718" } }).Events);
        Assert.Contains("a1b2c3d4e5f60718", other.KeptOn("lib2"));
        // A library the catalog is letting it go from (a dropped copy, a tier move) does not get it back.
        var dropped = other.Apply(new CopyDropped { Snapshot = "a1b2c3d4e5f60718", Library = "lib2" });
        Assert.DoesNotContain("a1b2c3d4e5f60718", dropped.KeptOn("lib2"));
        Assert.Empty(dropped.DecideRecordSnapshots(new RecordSnapshots { Library = "lib2", Manifests = { manifest.ToByteString() }, Referenced = { "a1b2c3d4e5f60718" } }).Events);
        // Nor does a snapshot deleted and not pruned yet come back (its data may be swept by a prune running meanwhile).
        var deleted = Apply(other, other.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "a1b2c3d4e5f60718" } }, Now).Decision.Events);
        Assert.Empty(deleted.Snapshots);
        Assert.Empty(deleted.DecideRecordSnapshots(new RecordSnapshots { Library = "lib1", Manifests = { manifest.ToByteString() }, Referenced = { "a1b2c3d4e5f60718" } }).Events);
    }

    private static StartBackup Backup(params string[] paths)
    {
        var b = new StartBackup();
        b.Paths.AddRange(paths);
        return b;
    }

    /// <summary>Dispatches what the queue allows now and applies the JobStarted events, as the manager does.</summary>
    private static (ManagerState, IReadOnlyList<JobInfo>) Dispatch(ManagerState s, DateTimeOffset now)
    {
        var plan = s.DecideDispatch(new QueueLimits(), new Dictionary<string, StartingJob>(), null, now, Loads(s));
        return (Apply(s, plan.Start.Select(j => new JobStarted { Job = j.Id, Library = j.Library, Level = j.Level, UnixMs = now.ToUnixTimeMilliseconds() })), plan.Start);
    }

    [Fact]
    public void A_backup_takes_its_sets_maximum_run_time_and_is_overrun_only_while_running_past_it()
    {
        var s = Cell("host-a").Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, MaxRunSeconds = 3600 } });
        Assert.Equal(3600, s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" }, BackupSet = "web" }, Loads(s), Now).Job!.MaxRunSeconds);
        Assert.Equal(60, s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" }, BackupSet = "web", MaxRunSeconds = 60 }, Loads(s), Now).Job!.MaxRunSeconds);
        Assert.Equal(0, s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" } }, Loads(s), Now).Job!.MaxRunSeconds);
        Assert.Contains("cannot be negative", s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" }, MaxRunSeconds = -1 }, Loads(s), Now).Rejection);
        Assert.Contains("at most 366 days", s.Invalid(new BackupSetDefinition { Name = "x", Paths = { "/x" }, Priority = 5, MaxRunSeconds = 400L * 86400 }));

        var queued = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" }, BackupSet = "web" }, Loads(s), Now);
        s = Apply(s, queued.Events);
        var id = queued.Job!.Id;
        var nowMs = Now.ToUnixTimeMilliseconds();
        Assert.Null(ManagerState.Overran(s.Job(id)!, nowMs + 7_200_000)); // queued: the window's business, not this
        (s, _) = Dispatch(s, Now);
        Assert.Null(ManagerState.Overran(s.Job(id)!, nowMs + 3_599_000));
        Assert.Contains("past its maximum run time of 1 h", ManagerState.Overran(s.Job(id)!, nowMs + 3_600_000));
        // The set's first backup, a full: the next ones would be fulls too until one completes, and the end says so.
        Assert.Equal(BackupLevel.LevelFull, s.Job(id)!.Level);
        Assert.Contains("next backups are fulls until one completes", ManagerState.Overran(s.Job(id)!, nowMs + 3_600_000));
        s = s.Apply(new JobEnded { Job = id, State = JobState.Succeeded });
        Assert.Null(ManagerState.Overran(s.Job(id)!, nowMs + 7_200_000)); // ended
    }

    [Fact]
    public void A_backup_leaves_out_folders_marked_by_its_sets_names_and_its_own()
    {
        var s = Cell("host-a").Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, ExcludeIfPresent = { ".nobackup" } } });
        Assert.Equal([".nobackup", "CACHEDIR.TAG"], s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" }, BackupSet = "web", ExcludeIfPresent = { "CACHEDIR.TAG" } }, Loads(s), Now).Job!.ExcludeIfPresent.Order(StringComparer.Ordinal));
        Assert.Contains("not a file name", s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/www" }, ExcludeIfPresent = { "a/b" } }, Loads(s), Now).Rejection);
        Assert.Contains("not a file name", s.Invalid(new BackupSetDefinition { Name = "x", Paths = { "/x" }, Priority = 5, ExcludeIfPresent = { ".." } }));
    }

    [Fact]
    public void Two_concurrent_backups_land_on_two_libraries()
    {
        var s = Cell("host-a", "host-b");
        var first = s.DecideStartBackup(new StartBackup { Client = "host-a", Paths = { "/a" } }, Loads(s), Now);
        Assert.Null(first.Rejection);
        Assert.Equal("", first.Job!.Library); // chosen when it starts
        s = Apply(s, first.Events);
        (s, var started) = Dispatch(s, Now);
        Assert.Equal("lib1", Assert.Single(started).Library); // more free space while both are idle
        var second = s.DecideStartBackup(new StartBackup { Client = "host-b", Paths = { "/b" } }, Loads(s), Now);
        s = Apply(s, second.Events);
        (s, started) = Dispatch(s, Now);
        Assert.Equal("lib2", Assert.Single(started).Library);
        Assert.NotEqual(first.Job.Id, second.Job!.Id);
    }

    [Fact]
    public void Back_to_back_backups_of_new_sets_take_turns_when_the_first_has_already_ended()
    {
        var s = Cell("a");
        var first = s.DecideStartBackup(Backup("/a"), Loads(s), Now);
        (s, var one) = Dispatch(Apply(s, first.Events), Now);
        s = s.Apply(new JobEnded { Job = first.Job!.Id, State = JobState.Succeeded });
        var second = s.DecideStartBackup(Backup("/b"), Loads(s), Now.AddSeconds(5));
        (_, var two) = Dispatch(Apply(s, second.Events), Now.AddSeconds(5));
        Assert.Equal("lib1", Assert.Single(one).Library);
        Assert.Equal("lib2", Assert.Single(two).Library);
    }

    [Fact]
    public void Media_selection_skips_unreachable_libraries_and_prefers_the_least_busy()
    {
        Assert.Equal("b", ManagerState.ChooseLibrary([new("a", false, 0, 1000), new("b", true, 3, 1), new("c", true, 4, 9999)]));
        Assert.Equal("c", ManagerState.ChooseLibrary([new("b", true, 1, 5), new("c", true, 1, 6)]));
        Assert.Null(ManagerState.ChooseLibrary([new("a", false, 0, 1)]));
    }

    [Fact]
    public void Bad_requests_are_rejected_with_what_to_do()
    {
        var empty = new ManagerState();
        Assert.Contains("no client has registered", empty.DecideStartBackup(Backup("/x"), [], Now).Rejection);
        var s = Cell("a", "b");
        Assert.Contains("name one with --client", s.DecideStartBackup(Backup("/x"), Loads(s), Now).Rejection);
        Assert.Contains("unknown client 'zz'", s.DecideStartBackup(new StartBackup { Client = "zz", Paths = { "/x" } }, Loads(s), Now).Rejection);
        Assert.Contains("absolute", s.DecideStartBackup(new StartBackup { Client = "a", Paths = { "relative" } }, Loads(s), Now).Rejection);
        Assert.Contains("unknown library 'lib9'", s.DecideStartBackup(new StartBackup { Client = "a", Paths = { "/x" }, Library = "lib9" }, Loads(s), Now).Rejection);
        Assert.Contains("not reachable", s.DecideStartBackup(new StartBackup { Client = "a", Paths = { "/x" }, Library = "lib2" },
            [new("lib1", true, 0, 1), new("lib2", false, 0, 1)], Now).Rejection);
        Assert.Contains("no snapshot yet", s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r" }, Now).Rejection);
        Assert.Contains("absolute target", s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "r" }, Now).Rejection);
    }

    [Fact]
    public void A_jobs_paths_and_excludes_are_bounded_and_a_refusal_names_at_most_twenty_clients()
    {
        var s = Cell(Enumerable.Range(0, 30).Select(i => $"host{i:D2}").ToArray());
        var many = new StartBackup { Client = "host00", Paths = { "/srv" } };
        many.Excludes.AddRange(Enumerable.Range(0, 1001).Select(i => $"*.t{i}"));
        Assert.Contains("at most 1,000 paths and 1,000 excludes", s.DecideStartBackup(many, Loads(s), Now).Rejection);
        var longPath = new StartBackup { Client = "host00", Paths = { "/" + new string('a', 5000) } };
        Assert.Contains("at most 4,096 characters", s.DecideStartBackup(longPath, Loads(s), Now).Rejection);
        Assert.Contains("control character", s.DecideStartBackup(new StartBackup { Client = "host00", Paths = { "/srv" }, BackupSet = "a\nb" }, Loads(s), Now).Rejection);
        Assert.Contains("at most 4,096 characters", s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/" + new string('t', 5000) }, Now).Rejection);
        Assert.Null(s.DecideStartBackup(new StartBackup { Client = "host00", Paths = { "/srv" }, Excludes = { "*.tmp" } }, Loads(s), Now).Rejection);

        var unknown = s.DecideStartBackup(new StartBackup { Client = "nohost", Paths = { "/srv" } }, Loads(s), Now).Rejection!;
        Assert.Contains("host19 and 10 more ('abk client list')", unknown);
        Assert.DoesNotContain("host20", unknown);
    }

    [Fact]
    public void Levels_find_their_parent_and_an_incremental_without_one_is_a_full()
    {
        var s = Cell("a");
        var first = s.DecideStartBackup(new StartBackup { Paths = { "/data" }, Level = BackupLevel.LevelIncremental }, Loads(s), Now);
        Assert.Equal(BackupLevel.LevelFull, first.Job!.Level);
        s = Apply(s, first.Events);
        var full = new SnapshotManifest { Id = "f1", Client = "a", BackupSet = "/data", Level = Level.Full };
        var incr = new SnapshotManifest { Id = "i1", Client = "a", BackupSet = "/data", Level = Level.Incremental, Parent = "f1" };
        s = s.Apply(new SnapshotRecorded { Manifest = full.ToByteString() }).Apply(new SnapshotRecorded { Manifest = incr.ToByteString() });
        Assert.Equal("i1", s.ParentFor("a", "/data", BackupLevel.LevelIncremental, Now)!.Id);
        Assert.Equal("f1", s.ParentFor("a", "/data", BackupLevel.LevelDifferential, Now)!.Id);
        Assert.Null(s.ParentFor("a", "/data", BackupLevel.LevelFull, Now));
        Assert.Null(s.ParentFor("a", "/other", BackupLevel.LevelIncremental, Now));
        // One made while the host's clock was a year ahead (set right since): kept, but neither a parent nor 'latest'.
        var ahead = new SnapshotManifest { Id = "x1", Client = "a", BackupSet = "/data", Level = Level.Full, FinishedUnixMs = Now.AddYears(1).ToUnixTimeMilliseconds() };
        var t = s.Apply(new SnapshotRecorded { Manifest = ahead.ToByteString() });
        Assert.Equal(("i1", "f1"), (t.ParentFor("a", "/data", BackupLevel.LevelIncremental, Now)!.Id, t.ParentFor("a", "/data", BackupLevel.LevelDifferential, Now)!.Id));
        Assert.Equal("x1", t.ParentFor("a", "/data", BackupLevel.LevelIncremental, Now.AddYears(1))!.Id); // once real time is there
        Assert.Equal("i1", t.FindSnapshot("latest", "", Now).Id);
        Assert.Equal("i1", t.FindSnapshot("latest", "a", Now).Id);
        Assert.Equal("i1", t.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r", Paths = { "/data/x" } }, Now).Job!.Snapshot);
        Assert.Equal("x1", t.FindSnapshot("x1").Id); // named, it is there
        // A client whose snapshots are all ahead: its newest is still its latest (not "no snapshot yet"), but no parent.
        var other = t.Apply(new ClientRegistered { Id = "b", Address = "akka.tcp://actorbackup@b/user/client" })
            .Apply(new SnapshotRecorded { Manifest = new SnapshotManifest { Id = "y1", Client = "b", BackupSet = "/data", Level = Level.Full, FinishedUnixMs = Now.AddYears(1).ToUnixTimeMilliseconds() }.ToByteString() });
        Assert.Equal("y1", other.FindSnapshot("latest", "b", Now).Id);
        Assert.Null(other.ParentFor("b", "/data", BackupLevel.LevelIncremental, Now));
        var next = s.DecideStartBackup(new StartBackup { Paths = { "/data/" } }, Loads(s), Now);
        Assert.Equal(BackupLevel.LevelIncremental, next.Job!.Level); // default level, parent exists; trailing '/' is the same set
        // A path is kept in the one form listings show: an escape's case, a trailing '/' or a second mention make no other set.
        Assert.Equal([@"/data/caf\xe9"], s.DecideStartBackup(new StartBackup { Paths = { @"/data/caf\xE9/", @"/data/caf\xe9" } }, Loads(s), Now).Job!.Paths);
        Assert.Equal("i1", s.FindSnapshot("i").Id);
        Assert.Equal("i1", s.FindSnapshot("latest").Id);
        // A restore's job carries every option the operator gave to the client that runs it.
        var restore = s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r", Paths = { @"/data/caf\xe9" }, Force = true, NumericOwner = true, Sparse = true }, Now).Job!;
        Assert.Equal(("i1", "/r", true, true, true), (restore.Snapshot, restore.Target, restore.Force, restore.NumericOwner, restore.Sparse));
        Assert.Equal([@"/data/caf\xe9"], restore.Paths);
        var plain = s.DecideStartRestore(new StartRestore { Snapshot = "f1", Target = "/r" }, Now).Job!;
        Assert.Equal(("f1", false, false, false), (plain.Snapshot, plain.Force, plain.NumericOwner, plain.Sparse));
    }

    [Fact]
    public void Latest_with_a_client_named_is_that_clients_newest_snapshot_not_the_cells()
    {
        var s = Cell("web1", "db1", "new1");
        foreach (var (id, client) in new[] { ("w1", "web1"), ("d1", "db1") })
            s = s.Apply(new SnapshotRecorded { Manifest = new SnapshotManifest { Id = id, Client = client, BackupSet = "/srv", Library = "lib1", Level = Level.Full }.ToByteString() });
        Assert.Equal("d1", s.FindSnapshot("latest").Id); // the cell's newest, where no client is named
        var restore = s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r", Client = "web1" }, Now).Job!;
        Assert.Equal(("w1", "web1"), (restore.Snapshot, restore.Client));
        Assert.False(s.RestoresElsewhere(new StartRestore { Snapshot = "latest", Target = "/r", Client = "web1" }));
        Assert.Equal("w1", s.DecideStartVerify(new StartVerify { Snapshot = "latest", Client = "web1" }, Now).Job!.Snapshot);
        // Another host's data goes onto a client only named by its id.
        Assert.Contains("client new1 has no snapshot yet", s.DecideStartRestore(new StartRestore { Snapshot = "latest", Target = "/r", Client = "new1" }, Now).Rejection);
        Assert.Equal("d1", s.DecideStartRestore(new StartRestore { Snapshot = "d1", Target = "/r", Client = "new1" }, Now).Job!.Snapshot);
        Assert.True(s.RestoresElsewhere(new StartRestore { Snapshot = "d1", Target = "/r", Client = "new1" }));
    }

    [Fact]
    public void Paths_as_listings_show_them_read_back_to_their_bytes_and_normalize_once()
    {
        // Any bytes of a path (no NUL): shown, read back, they are the same bytes; the manager's one form is a fixed point.
        var bytes = Gen.OneOf(Gen.Byte[1, 255], Gen.Const((byte)'\\'), Gen.Const((byte)'/'), Gen.Const((byte)'x')).Array[1, 40];
        Gen.Select(bytes, bytes).Sample((a, b) =>
        {
            var path = "/" + Engine.Posix.PosixNames.Decode(a);
            var shown = Engine.Posix.PosixNames.Display(path);
            Assert.Equal(a, Engine.Posix.PosixNames.Encode(Engine.Posix.PosixNames.Parse(shown))[1..]);
            var once = ManagerState.NormalPaths([shown, "/" + Engine.Posix.PosixNames.Display(Engine.Posix.PosixNames.Decode(b)), shown + "/"]);
            Assert.Equal(once, ManagerState.NormalPaths(once));
            Assert.True(once.Count is 1 or 2, string.Join(" | ", once)); // the first path and its form with a '/' are one
            Assert.All(once, p => Assert.True(p.StartsWith('/') && (p == "/" || !p.EndsWith('/')), p));
            // The first path's bytes less its trailing '/' (all of them '/': the root) are one of them.
            byte[] full = [(byte)'/', .. a];
            var end = full.Length;
            while (end > 1 && full[end - 1] == '/') end--;
            Assert.Contains(once, p => Engine.Posix.PosixNames.Encode(Engine.Posix.PosixNames.Parse(p)).AsSpan().SequenceEqual(full.AsSpan(0, end)));
        }, iter: 2000);
    }

    [Fact]
    public void Jobs_running_when_the_manager_stopped_are_recorded_as_interrupted()
    {
        var s = Cell("a");
        var d1 = s.DecideStartBackup(Backup("/x"), Loads(s), Now);
        s = Apply(s, d1.Events).Apply(new JobStarted { Job = d1.Job!.Id, Library = "lib1" });
        var d2 = s.DecideStartBackup(Backup("/y"), Loads(s), Now);
        s = Apply(s, d2.Events).Apply(new JobStarted { Job = d2.Job!.Id, Library = "lib2" })
            .Apply(new JobEnded { Job = d2.Job.Id, State = JobState.Succeeded, Snapshot = "s" });
        Assert.Empty(s.InterruptedJobs(Now, new HashSet<string> { d1.Job.Id })); // its client says it still runs it
        var interrupted = s.InterruptedJobs(Now, new HashSet<string>()).ToList();
        Assert.Equal([d1.Job.Id], interrupted.Select(e => e.Job));
        s = Apply(s, interrupted);
        Assert.Equal(JobState.Interrupted, s.Job(d1.Job.Id)!.State);
        Assert.Contains("run it again", s.Job(d1.Job.Id)!.Reason);
        Assert.Equal(JobState.Succeeded, s.Job(d2.Job.Id)!.State);
    }

    [Fact]
    public void An_interrupted_scheduled_backup_or_restore_is_queued_again_and_anything_else_interrupted_ends_so()
    {
        var s = Cell("a");
        var scheduled = Backup("/x");
        scheduled.Origin = JobOrigin.Schedule;
        var d1 = s.DecideStartBackup(scheduled, Loads(s), Now);
        s = Apply(s, d1.Events);
        var d2 = s.DecideStartBackup(Backup("/y"), Loads(s), Now);
        s = Apply(s, d2.Events).Apply(new JobStarted { Job = d1.Job!.Id, Library = "lib1" }).Apply(new JobStarted { Job = d2.Job!.Id, Library = "lib2" });
        // A scheduled one: another attempt after the backoff (its slot is not lost to a restart of its node).
        var again = Assert.IsType<JobRetried>(s.DecideInterrupted(s.Job(d1.Job.Id)!, "client a shut down while the job ran", Now, TimeSpan.FromSeconds(30)));
        Assert.Equal(Now.AddSeconds(30).ToUnixTimeMilliseconds(), again.NotBeforeUnixMs);
        Assert.Contains("client a shut down while the job ran", again.Reason);
        // An operator's: ended INTERRUPTED, as it was asked for once.
        Assert.Equal(JobState.Interrupted, Assert.IsType<JobEnded>(s.DecideInterrupted(s.Job(d2.Job.Id)!, "stopped", Now, TimeSpan.FromSeconds(30))).State);
        // A scheduled one with no attempt left: INTERRUPTED, not FAILED.
        var last = s.Job(d1.Job.Id)!.Clone();
        last.Attempt = 2; // the default policy tries a job three times
        var ended = Assert.IsType<JobEnded>(s.DecideInterrupted(last, "stopped", Now, TimeSpan.FromSeconds(30)));
        Assert.Equal((JobState.Interrupted, "stopped"), (ended.State, ended.Reason));
        // A restore: queued again too, to go on where it stopped (its client's claim on the target is kept by job).
        s = s.Apply(new SnapshotRecorded { Manifest = new SnapshotManifest { Id = "s1", Client = "a", Library = "lib1", Level = Level.Full }.ToByteString() });
        var restore = s.DecideStartRestore(new StartRestore { Client = "a", Snapshot = "s1", Target = "/r" }, Now);
        s = Apply(s, restore.Events).Apply(new JobStarted { Job = restore.Job!.Id, Library = "lib1" });
        Assert.IsType<JobRetried>(s.DecideInterrupted(s.Job(restore.Job.Id)!, "client a shut down while the job ran", Now, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void A_snapshot_of_the_state_rebuilds_the_same_state()
    {
        var s = Cell("a");
        var d = s.DecideStartBackup(Backup("/x"), Loads(s), Now);
        s = Apply(s, d.Events).Apply(new SnapshotRecorded { Manifest = new SnapshotManifest { Id = "s1", Client = "a" }.ToByteString() });
        var back = new ManagerState().Apply(s.ToSnapshot());
        Assert.Equal(s.ToSnapshot(), back.ToSnapshot());
        Assert.Equal(s.NextJob, back.NextJob);
    }
}
