using ActorBackup.Cluster.Client;
using ActorBackup.Cluster.DataPlane;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The client against a stand-in media agent (a real library, no journal) and a probe for the manager.</summary>
public sealed class ClientActorTests : TestKit, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-client-").FullName;

    public ClientActorTests() : base("akka.actor.provider = cluster\nakka.remote.dot-netty.tcp.port = 0\nakka.loglevel = WARNING\n" + SlowMachine.Expect) { }

    void IDisposable.Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>Grants sessions on one library and commits them, as the media agent does (without the journal).</summary>
    private sealed class StandInMedia : ReceiveActor
    {
        public StandInMedia(DiskLibrary library, string? refuse, ManifestIds? manifests = null, CommandRejected? commitRefusal = null)
        {
            Receive<OpenSession>(m =>
            {
                if (refuse is not null) Sender.Tell(new CommandRejected { Reason = refuse });
                else Sender.Tell(new SessionOpened { Library = m.Library, Ticket = DataPlaneSessions.Get(Context.System).Open(library, Self, m.Library, m.Write) });
            });
            Receive<CommitSession>(m =>
            {
                if (commitRefusal is not null)
                {
                    Sender.Tell(commitRefusal);
                    return;
                }
                var batch = library.Commit();
                Sender.Tell(new SessionCommitted { Ticket = m.Ticket, Chunks = batch.Count });
            });
            Receive<CloseSession>(m => DataPlaneSessions.Get(Context.System).Close(m.Ticket));
            Receive<ListManifests>(_ => Sender.Tell(manifests ?? new ManifestIds())); // by default a library that holds no manifest
        }
    }

    private (IActorRef Client, Akka.TestKit.TestProbe Manager, DiskLibrary Library) Start(string? refuse = null, long rateLimit = 0, Trust.NodeTrust? trust = null, KeyRing? keyRing = null,
        ManifestIds? manifests = null, CommandRejected? commitRefusal = null)
    {
        var library = DiskLibrary.Create(Path.Combine(_dir, "lib"), "lib1");
        var media = Sys.ActorOf(Props.Create(() => new StandInMedia(library, refuse, manifests, commitRefusal)));
        var manager = CreateTestProbe();
        var keys = keyRing ?? new KeyRing(MasterKey.Generate());
        var client = Sys.ActorOf(ClientActor.Props(new ClientSettings("host-t", ChunkerOptions.ForAverage(64 * 1024), 3, rateLimit,
            RestoreClaimsDir: Path.Combine(_dir, "claims")), keys, manager.Ref, media, trust));
        var register = manager.ExpectMsg<RegisterClient>();
        Assert.Equal("host-t", register.Id);
        manager.Reply(new Registered { Id = "host-t" });
        return (client, manager, library);
    }

    [Fact]
    public void A_restore_of_more_errors_than_its_reason_holds_lists_every_one_in_a_file_its_reason_names()
    {
        var (client, manager, _) = Start();
        var (src, backup) = BackUpOneFile(client, manager, "50", "data.txt", "backed up");
        var target = Path.Combine(_dir, "many-errors");
        var job = new JobInfo { Id = "51", Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target, Paths = { src + "/data.txt" } };
        for (var i = 0; i < 8; i++) job.Paths.Add($"{src}/missing-{i}"); // each matches nothing: an error of the restore
        client.Tell(new RestoreAssignment { Job = job, Manifest = backup.Manifest });
        var done = Finished(manager);

        Assert.True(done.Ok, done.Reason);
        Assert.Equal(8, done.Errors);
        Assert.Equal("backed up", File.ReadAllText(target + src + "/data.txt"));
        var listed = Path.Combine(_dir, "claims", "errors-51.txt");
        Assert.Contains($"... and 3 more, every one listed in {listed} on host-t", done.Reason);
        var lines = File.ReadAllLines(listed);
        Assert.Equal(8, lines.Length);
        Assert.Contains($"{src}/missing-7: not restored: nothing in snapshot", lines[7]);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(listed));
    }

    [Fact]
    public void A_restore_that_restored_nothing_of_what_it_was_asked_for_fails_instead_of_succeeding_with_errors()
    {
        var (client, manager, _) = Start();
        var (src, backup) = BackUpOneFile(client, manager, "60", "data.txt", "backed up");
        var target = Path.Combine(_dir, "nothing-restored");
        Directory.CreateDirectory(Path.Combine(target + src, "data.txt", "inside")); // a folder where the snapshot has the file
        client.Tell(new RestoreAssignment { Job = new JobInfo { Id = "61", Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target, Force = true }, Manifest = backup.Manifest });
        var done = Finished(manager);

        Assert.False(done.Ok);
        Assert.Equal(JobState.Failed, done.Outcome);
        Assert.Equal(JobFault.FaultNone, done.Fault); // another attempt would meet the same
        Assert.StartsWith("none of the files, links and special files was restored: 1 entries not restored", done.Reason);
        Assert.Contains("is an existing directory where the snapshot has a file", done.Reason);
    }

    private static JobFinished Finished(Akka.TestKit.TestProbe manager) =>
        (JobFinished)manager.FishForMessage(m => m is JobFinished, TimeSpan.FromSeconds(30));

    [Fact]
    public void At_most_two_catalog_rebuilds_run_on_a_client_node_at_once_and_one_that_ends_makes_room()
    {
        var (client, manager, _) = Start();
        var requester = CreateTestProbe();
        // Each holds its thread until the manager answers what it found (none: the library holds no manifest).
        for (var i = 0; i < ClientActor.MaxRebuilds; i++) client.Tell(new RebuildCatalog { Library = "lib1" }, requester.Ref);
        var held = Enumerable.Range(0, ClientActor.MaxRebuilds).Select(_ =>
        {
            manager.FishForMessage(m => m is RecordSnapshots, TimeSpan.FromSeconds(30));
            return manager.LastSender;
        }).ToList();
        client.Tell(new RebuildCatalog { Library = "lib1" }, requester.Ref);
        Assert.Contains($"runs {ClientActor.MaxRebuilds} catalog rebuilds already", requester.ExpectMsg<CommandRejected>().Reason);

        foreach (var h in held) h.Tell(new CatalogRebuilt());
        requester.ExpectMsg<CatalogRebuilt>();
        requester.ExpectMsg<CatalogRebuilt>();
        client.Tell(new RebuildCatalog { Library = "lib1" }, requester.Ref); // room again once they ended
        manager.FishForMessage(m => m is RecordSnapshots, TimeSpan.FromSeconds(30));
        manager.Reply(new CatalogRebuilt());
        requester.ExpectMsg<CatalogRebuilt>();
    }

    [Fact]
    public void A_catalog_rebuild_names_each_manifest_it_could_not_open_in_its_answer()
    {
        // The library lists a manifest record it no longer holds (damage): the rebuild records what it could open
        // (nothing here) and tells the operator which one it left out, so the shell does not report a clean rebuild.
        var lost = new byte[ActorBackup.Engine.Hashing.ChunkId.Size];
        lost[0] = 7;
        var (client, manager, _) = Start(manifests: new ManifestIds { Ids = { ByteString.CopyFrom(lost) } });
        var requester = CreateTestProbe();
        client.Tell(new RebuildCatalog { Library = "lib1" }, requester.Ref);
        var record = (RecordSnapshots)manager.FishForMessage(m => m is RecordSnapshots, TimeSpan.FromSeconds(30));
        Assert.Empty(record.Manifests);
        manager.Reply(new CatalogRebuilt { Library = "lib1" });
        var answer = requester.ExpectMsg<CatalogRebuilt>();
        var problem = Assert.Single(answer.Problems);
        Assert.Contains($"the manifest in record {new ActorBackup.Engine.Hashing.ChunkId(lost).Short} cannot be opened", problem);
    }

    [Fact]
    public void At_most_eight_finds_run_on_a_client_node_at_once_and_one_that_ends_makes_room()
    {
        var (client, manager, _) = Start();
        var requester = CreateTestProbe();
        SearchFileIndex Find() => new() { Query = new FindFiles { Pattern = "*.conf" }, Snapshots = { new IndexedSnapshot { Id = "s1", Client = "host-t" } } };
        // The first holds the index's turn while the manager does not answer for its snapshot; seven wait for it.
        for (var i = 0; i < ClientActor.MaxFinds; i++) client.Tell(Find(), requester.Ref);
        manager.FishForMessage(m => m is GetSnapshot, TimeSpan.FromSeconds(30));
        var held = manager.LastSender;
        client.Tell(Find(), requester.Ref);
        var refused = requester.FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(30));
        Assert.Contains($"runs {ClientActor.MaxFinds} finds already", refused.Reason);

        // One after the other each ends (the manager refuses its snapshot: not searched, said so); then a find is taken again.
        held.Tell(new CommandRejected { Reason = "no such snapshot" });
        for (var ended = 1; ; ended++)
        {
            var found = requester.FishForMessage<FilesFound>(_ => true, TimeSpan.FromSeconds(30)); // progress beats aside
            Assert.Contains(found.NotSearched, n => n.StartsWith("s1:", StringComparison.Ordinal));
            if (ended == ClientActor.MaxFinds) break;
            manager.FishForMessage(m => m is GetSnapshot, TimeSpan.FromSeconds(30)); // the next one's turn
            manager.Reply(new CommandRejected { Reason = "no such snapshot" });
        }
        client.Tell(Find(), requester.Ref);
        manager.FishForMessage(m => m is GetSnapshot, TimeSpan.FromSeconds(30));
        manager.Reply(new CommandRejected { Reason = "no such snapshot" });
        requester.FishForMessage(m => m is FilesFound, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Backs_up_through_the_media_agent_reports_progress_and_restores_what_it_stored()
    {
        var (client, manager, library) = Start();
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        var data = new byte[3 * 1024 * 1024];
        new Random(3).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        var job = new JobInfo { Id = "7", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } };
        client.Tell(new BackupAssignment { Job = job });
        var finished = Finished(manager);
        Assert.True(finished.Ok, finished.Reason);
        var manifest = SnapshotManifest.Parser.ParseFrom(finished.Manifest);
        Assert.Equal("host-t", manifest.Client);
        Assert.Equal("7", manifest.Job);
        Assert.Equal(1ul, manifest.Stats.Files);
        Assert.True(library.ChunkCount > 10, "the chunks went to the media agent's library");

        var target = Path.Combine(_dir, "restore");
        client.Tell(new RestoreAssignment { Job = new JobInfo { Id = "8", Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target }, Manifest = manifest.ToByteString() });
        var restored = Finished(manager);
        Assert.True(restored.Ok, restored.Reason);
        Assert.Equal(data, File.ReadAllBytes(target + src + "/data.bin"));
    }

    /// <summary>A full backup (job <paramref name="job"/>) of a folder "src" holding one file: the folder and the job's end.</summary>
    private (string Src, JobFinished Finished) BackUpOneFile(IActorRef client, Akka.TestKit.TestProbe manager, string job, string file, string content)
    {
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, file), content);
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = job, Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
        var finished = Finished(manager);
        Assert.True(finished.Ok, finished.Reason);
        return (src, finished);
    }

    [Fact]
    public void A_retried_restore_goes_on_over_what_is_in_its_target_only_if_an_earlier_attempt_claimed_it()
    {
        var (client, manager, _) = Start();
        var (src, backup) = BackUpOneFile(client, manager, "40", "data.txt", "backed up");
        var claims = new RestoreClaims(Path.Combine(_dir, "claims"));
        JobFinished RestoreAttempt(string job, string target, int attempt = 1)
        {
            client.Tell(new RestoreAssignment
            {
                Job = new JobInfo { Id = job, Attempt = attempt, Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target }, Manifest = backup.Manifest,
            });
            return Finished(manager);
        }

        // The first attempt never reached the target (the client was not connected, the data plane failed first): the
        // retry is checked as a first attempt, and an operator's folder is not written over without --force.
        var occupied = Path.Combine(_dir, "occupied");
        Directory.CreateDirectory(occupied);
        File.WriteAllText(Path.Combine(occupied, "mine"), "the operator's");
        var refused = RestoreAttempt("41", occupied);
        Assert.False(refused.Ok);
        Assert.Contains("exists and is not empty", refused.Reason);
        Assert.Equal(["mine"], Directory.GetFileSystemEntries(occupied).Select(Path.GetFileName));

        // The first attempt claimed its target and died part-way (its claim left on disk): the retry goes on over its files.
        var resumed = Path.Combine(_dir, "resumed");
        Directory.CreateDirectory(resumed + src);
        File.WriteAllText(resumed + src + "/data.txt", "half");
        claims.Claim("42", resumed, made: true);
        var done = RestoreAttempt("42", resumed);
        Assert.True(done.Ok, done.Reason);
        Assert.Equal("backed up", File.ReadAllText(resumed + src + "/data.txt"));
        Assert.Null(claims.Find("42", resumed)); // the attempt returned: its claim is let go

        // A first attempt lets its claim go when it returns.
        var fresh = Path.Combine(_dir, "fresh");
        var first = RestoreAttempt("43", fresh, attempt: 0);
        Assert.True(first.Ok, first.Reason);
        Assert.Null(claims.Find("43", fresh));
    }

    [Fact]
    public void A_client_whose_backup_and_its_file_index_are_done_gives_the_memory_back()
    {
        var (client, manager, _) = Start();
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), new byte[200_000]);
        var before = Volatile.Read(ref ClientActor.MemoryTrims);
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "11", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
        Assert.True(Finished(manager).Ok);
        // Once the backup's file index is built too and nothing of this client runs: a compacting collection (the
        // count is the process's: another test's client may add to it, never take from it).
        AwaitCondition(() => Volatile.Read(ref ClientActor.MemoryTrims) > before, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void A_refused_session_fails_the_job_with_the_media_agents_reason()
    {
        var (client, manager, _) = Start(refuse: "volume error: the disk is full");
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "9", Kind = JobKind.Backup, Library = "lib1", Paths = { _dir }, BackupSet = _dir } });
        var finished = Finished(manager);
        Assert.False(finished.Ok);
        Assert.Contains("the disk is full", finished.Reason);
    }

    [Theory]
    [InlineData(true)]  // its journal (a database restarted at night) failed the commit: tried again after a backoff
    [InlineData(false)] // the library itself refused it (broken): another library, or failed
    public void A_commit_the_media_agent_refuses_for_a_passing_trouble_is_tried_again_and_one_it_refuses_for_good_is_the_librarys_fault(bool transient)
    {
        var (client, manager, _) = Start(commitRefusal: new CommandRejected { Reason = "library lib1: the media agent's journal could not be written", Transient = transient });
        var src = Source("journal", 1000);
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "25", Kind = JobKind.Backup, Library = "lib1", Paths = { src }, BackupSet = src } });
        var finished = Finished(manager);
        Assert.False(finished.Ok);
        Assert.Contains("journal could not be written", finished.Reason);
        Assert.Equal(transient ? JobFault.FaultTransient : JobFault.FaultLibrary, finished.Fault);
    }

    [Fact]
    public void A_chunk_another_writer_holds_too_long_fails_the_backup_as_a_passing_trouble_tried_again_not_a_library_fault()
    {
        var keys = new KeyRing(MasterKey.Generate());
        var (client, manager, library) = Start(keyRing: keys);
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        var content = "a chunk another writer holds"u8.ToArray();
        File.WriteAllBytes(Path.Combine(src, "held.txt"), content);
        library.ReserveWaitLimit = TimeSpan.FromMilliseconds(200);
        Assert.True(library.TryReserve(keys.For("host-t").Hasher.Hash(content))); // a writer stuck on it, never appending
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "12", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
        var finished = Finished(manager);
        Assert.False(finished.Ok);
        Assert.Equal(JobFault.FaultTransient, finished.Fault); // the manager queues it again; a library fault would try another library
        Assert.Contains("being stored by another writer", finished.Reason);
    }

    [Fact]
    public void A_paced_listing_sends_no_more_pages_than_its_requester_let_wait_and_gives_up_on_one_that_takes_none()
    {
        var (client, manager, _) = Start();
        var src = Path.Combine(_dir, "many");
        Directory.CreateDirectory(src);
        for (var i = 0; i < 3500; i++) File.WriteAllText(Path.Combine(src, $"f{i:D4}"), "x");
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "13", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
        var finished = Finished(manager);
        Assert.True(finished.Ok, finished.Reason);

        var shell = CreateTestProbe();
        client.Tell(new ListTree { Manifest = finished.Manifest, Snapshot = "s", Listing = "l1", Window = 2 }, shell.Ref);
        var pages = new List<SnapshotTree> { shell.ExpectMsg<SnapshotTree>(TimeSpan.FromSeconds(30)), shell.ExpectMsg<SnapshotTree>(TimeSpan.FromSeconds(30)) };
        shell.ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // two wait to be taken: no third
        client.Tell(new TreePagesTaken { Listing = "l1", Pages = 1 }, CreateTestProbe().Ref); // not from its requester: nothing
        shell.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        while (pages[^1].More)
        {
            client.Tell(new TreePagesTaken { Listing = "l1", Pages = 1 }, shell.Ref);
            pages.Add(shell.ExpectMsg<SnapshotTree>(TimeSpan.FromSeconds(30)));
            if (pages[^1].More) shell.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // one taken, one more sent: never two
        }
        Assert.True(pages.Count >= 4);
        Assert.All(pages, p => Assert.True(p.Paced));
        Assert.Equal(3500, pages.SelectMany(p => p.Entries).Count(e => e.Path.StartsWith(src + "/f", StringComparison.Ordinal)));

        // A requester that takes no more (its shell went away, the ops node says so): the listing stops at once, and its
        // id is free again.
        client.Tell(new ListTree { Manifest = finished.Manifest, Snapshot = "s", Listing = "l3", Window = 1 }, shell.Ref);
        Assert.True(shell.ExpectMsg<SnapshotTree>(TimeSpan.FromSeconds(30)).More);
        client.Tell(new TreePagesTaken { Listing = "l3", Done = true }, shell.Ref);
        shell.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // nothing more, not even a refusal: nobody to tell
        AwaitAssert(() =>
        {
            client.Tell(new ListTree { Manifest = finished.Manifest, Snapshot = "s", Listing = "l3", Window = 1 }, shell.Ref);
            Assert.IsType<SnapshotTree>(shell.ExpectMsg<object>(TimeSpan.FromSeconds(30))); // not "listing l3 is running already"
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));
        client.Tell(new TreePagesTaken { Listing = "l3", Done = true }, shell.Ref);

        // Stopped right after it was asked for (the shell hung up while its node waited on the manager): it stops too, at
        // its first page at the latest, and its id is free again (a stop lost, it would hold it for 10 minutes).
        client.Tell(new ListTree { Manifest = finished.Manifest, Snapshot = "s", Listing = "l4", Window = 1 }, shell.Ref);
        client.Tell(new TreePagesTaken { Listing = "l4", Done = true }, shell.Ref);
        AwaitAssert(() =>
        {
            client.Tell(new ListTree { Manifest = finished.Manifest, Snapshot = "again", Listing = "l4", Window = 1 }, shell.Ref);
            var answer = shell.FishForMessage<object>(m => m is CommandRejected or SnapshotTree { Snapshot: "again" }, TimeSpan.FromSeconds(30)); // past the first's page, if it came
            Assert.IsType<SnapshotTree>(answer); // not "listing l4 is running already"
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));
        client.Tell(new TreePagesTaken { Listing = "l4", Done = true }, shell.Ref);

        // A requester that takes none and says nothing (its node gone): the listing ends after the wait.
        var wait = ClientActor.ListingPageWait;
        ClientActor.ListingPageWait = TimeSpan.FromMilliseconds(300);
        try
        {
            client.Tell(new ListTree { Manifest = finished.Manifest, Snapshot = "s", Listing = "l2", Window = 1 }, shell.Ref);
            Assert.True(shell.ExpectMsg<SnapshotTree>(TimeSpan.FromSeconds(30)).More);
            Assert.Contains("nobody took a page of the listing", shell.ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(30)).Reason);
        }
        finally
        {
            ClientActor.ListingPageWait = wait;
        }
    }

    /// <summary>
    /// A backup cancelled by an operator while it runs (and the node stopped at once after, if <paramref name="nodeStops"/>):
    /// its end. Held to 1 MiB a second, 32 MiB take half a minute: the backup is still running when the cancel arrives,
    /// however busy the machine (unlimited, 320 MiB were sometimes done first).
    /// </summary>
    private JobFinished CancelledBackup(bool nodeStops)
    {
        var (client, manager, _) = Start(rateLimit: 1 << 20);
        var src = BigSource();
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "10", Kind = JobKind.Backup, Library = "lib1", Paths = { src }, BackupSet = src } });
        manager.FishForMessage(m => m is JobProgress p && p.BytesDone > 0, TimeSpan.FromSeconds(30));
        client.Tell(new CancelAssignment { Job = "10" });
        if (nodeStops) client.Tell(new ClientActor.InterruptAll());
        return Finished(manager);
    }

    [Fact]
    public void A_cancelled_backup_ends_as_cancelled_and_records_nothing()
    {
        var finished = CancelledBackup(nodeStops: false);
        Assert.False(finished.Ok);
        Assert.StartsWith("cancelled", finished.Reason);
        Assert.True(finished.Manifest.IsEmpty);
    }

    [Fact]
    public void A_job_an_operator_cancelled_ends_cancelled_even_when_the_node_stops_as_it_ends()
    {
        // Not INTERRUPTED: a restore taken for interrupted is queued again and goes on over the target the operator stopped.
        var finished = CancelledBackup(nodeStops: true);
        Assert.Equal(JobState.Cancelled, finished.Outcome);
        Assert.StartsWith("cancelled", finished.Reason);
    }

    [Fact]
    public void A_manifest_whose_seal_does_not_check_is_refused_for_a_restore_and_as_a_parent()
    {
        var (client, manager, _) = Start();
        var (src, made) = BackUpOneFile(client, manager, "11", "a.txt", "mine");
        // What a manager (no key) or whoever forged a job's result could hand a client: the snapshot, claimed newer.
        var forged = SnapshotManifest.Parser.ParseFrom(made.Manifest);
        forged.FinishedUnixMs += 1000;
        var target = Path.Combine(_dir, "restore-forged");
        client.Tell(new RestoreAssignment { Job = new JobInfo { Id = "12", Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target }, Manifest = forged.ToByteString() });
        var restore = Finished(manager);
        Assert.False(restore.Ok);
        Assert.Contains("does not carry its client's seal", restore.Reason);
        Assert.False(Directory.Exists(target));
        client.Tell(new BackupAssignment
        {
            Job = new JobInfo { Id = "13", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelIncremental, BackupSet = src, Paths = { src } },
            ParentManifest = forged.ToByteString(),
        });
        var backup = Finished(manager);
        Assert.False(backup.Ok);
        Assert.Contains("seal", backup.Reason);
    }

    /// <summary>32 MiB of random data in 8 files: half a minute's read at the 1 MiB a second the slow tests allow.</summary>
    private string BigSource()
    {
        var src = Path.Combine(_dir, "big");
        Directory.CreateDirectory(src);
        var data = new byte[4 * 1024 * 1024];
        for (var i = 0; i < 8; i++)
        {
            new Random(i).NextBytes(data);
            File.WriteAllBytes(Path.Combine(src, $"f{i}"), data);
        }
        return src;
    }

    /// <summary>A small source folder of its own.</summary>
    private string Source(string name, int bytes)
    {
        var src = Path.Combine(_dir, name);
        Directory.CreateDirectory(src);
        var data = new byte[bytes];
        new Random(bytes).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        return src;
    }

    [Fact]
    public void A_jobs_end_that_the_manager_did_not_record_is_sent_again_and_the_job_counts_as_running_until_then()
    {
        var (client, manager, _) = Start();
        var src = Source("src", 100_000);
        var job = new JobInfo { Id = "20", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } };
        client.Tell(new BackupAssignment { Job = job });
        var first = Finished(manager);
        Assert.True(first.Ok, first.Reason);
        // The manager failed over before it recorded the end: the new one asks who runs what. The job is this client's
        // still, and its end goes to the manager again (the same snapshot, not a second backup).
        var asker = CreateTestProbe();
        client.Tell(new RegistrationRequest(), asker);
        Assert.Contains("20", asker.ExpectMsg<RegisterClient>().RunningJobs);
        Assert.Equal(first.Manifest, Finished(manager).Manifest);
        // The same attempt assigned again (a repeated message): its end again, not a second run.
        client.Tell(new BackupAssignment { Job = job });
        Assert.Equal(first.Manifest, Finished(manager).Manifest);
        // Recorded: no longer claimed, not sent again (the next thing the manager hears is the registration it asks for).
        client.Tell(new JobInfo { Id = "20", State = JobState.Succeeded });
        client.Tell(new RegistrationRequest(), asker);
        Assert.DoesNotContain("20", asker.ExpectMsg<RegisterClient>().RunningJobs);
        client.Tell(new RegistrationRequest(), manager.Ref);
        Assert.IsType<RegisterClient>(manager.FishForMessage(m => m is RegisterClient or JobFinished, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void A_jobs_end_is_not_let_go_for_time_alone_while_no_manager_heard_it()
    {
        // A manager down for a night (its database's disk full): the ends of the backups that finished meanwhile were
        // never sent to one that answers. Before, an hour from the end dropped them unsent once a manager was back.
        var kept = ClientActor.KeepUnacknowledged;
        ClientActor.KeepUnacknowledged = TimeSpan.Zero; // as if the night had passed
        try
        {
            var (client, manager, _) = Start();
            var src = Source("night", 10_000);
            client.Tell(new BackupAssignment { Job = new JobInfo { Id = "24", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
            var end = Finished(manager);
            var asker = CreateTestProbe();
            client.Tell(new RegistrationRequest(), asker); // the manager is back, and asks
            Assert.Contains("24", asker.ExpectMsg<RegisterClient>().RunningJobs);
            Assert.Equal(end.Manifest, Finished(manager).Manifest);
        }
        finally
        {
            ClientActor.KeepUnacknowledged = kept;
        }
    }

    [Fact]
    public void A_later_attempt_of_a_job_still_running_here_stops_the_earlier_one_whose_end_says_which_attempt_it_was()
    {
        // Held to 1 MiB a second: the first attempt is still running when the second comes, however busy the machine.
        var (client, manager, _) = Start(rateLimit: 1 << 20);
        var big = BigSource();
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "21", Attempt = 1, Kind = JobKind.Backup, Client = "host-t", Library = "lib1", BackupSet = big, Paths = { big } } });
        manager.FishForMessage(m => m is JobProgress p && p.BytesDone > 0, TimeSpan.FromSeconds(30));
        var small = Source("small", 1000);
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "21", Attempt = 2, Kind = JobKind.Backup, Client = "host-t", Library = "lib1", BackupSet = small, Paths = { small } } });
        // The later attempt starts only once the earlier has ended here (never both at once): their ends in that order.
        var ends = new[] { Finished(manager), Finished(manager) };
        Assert.Equal([1, 2], ends.Select(f => f.Attempt));
        Assert.False(ends[0].Ok); // stopped, and said to be the first attempt's end (the manager takes it as late)
        Assert.StartsWith("cancelled", ends[0].Reason);
        Assert.True(ends[1].Ok, ends[1].Reason);
        Assert.Equal(small, SnapshotManifest.Parser.ParseFrom(ends[1].Manifest).Paths.Single());
    }

    [Fact]
    public void A_job_end_sent_to_the_client_by_another_node_is_not_forwarded_in_its_name()
    {
        var (client, manager, _) = Start();
        client.Tell(new JobFinished { Job = "22", Ok = true, Outcome = JobState.Succeeded }, CreateTestProbe().Ref);
        var asker = CreateTestProbe();
        client.Tell(new RegistrationRequest(), asker); // twice: whatever the client told itself about it is handled by the second
        client.Tell(new RegistrationRequest(), asker);
        asker.ExpectMsg<RegisterClient>();
        Assert.DoesNotContain("22", asker.ExpectMsg<RegisterClient>().RunningJobs);
        client.Tell(new RegistrationRequest(), manager.Ref);
        Assert.IsType<RegisterClient>(manager.FishForMessage(m => m is RegisterClient or JobFinished, TimeSpan.FromSeconds(10))); // not a JobFinished before it
    }

    [Fact]
    public void A_jobs_end_is_let_go_only_on_a_record_the_manager_signed()
    {
        using var cell = new TestTrust();
        using var host = cell.Node(Protocol.Trust.CellIdentity.Of(Protocol.Trust.CellRole.Node, "host-t", "host-t", ["client"]));
        using var managerNode = cell.Node(Protocol.Trust.CellIdentity.Of(Protocol.Trust.CellRole.Node, "manager1", "", ["manager"]));
        using var otherNode = cell.Node(Protocol.Trust.CellIdentity.Of(Protocol.Trust.CellRole.Node, "host-x", "host-x", ["client", "media"], ["lib1"]));
        var (client, manager, _) = Start(trust: host);
        var missing = Path.Combine(_dir, "not-there");
        var job = new JobInfo { Id = "23", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = missing, Paths = { missing } };
        client.Tell(Trust.MessageSignature.Sign(new BackupAssignment { Job = job }, managerNode));
        Finished(manager); // its end, whatever it is, is kept until the manager records it
        var asker = CreateTestProbe();
        // Neither an unsigned record nor one another node signed (it may claim a manager's address) lets the end go.
        client.Tell(new JobInfo { Id = "23", State = JobState.Succeeded }, manager.Ref);
        client.Tell(Trust.MessageSignature.Sign(new JobInfo { Id = "23", State = JobState.Succeeded }, otherNode), manager.Ref);
        client.Tell(new RegistrationRequest(), asker);
        Assert.Contains("23", asker.ExpectMsg<RegisterClient>().RunningJobs);
        // The manager's own record does.
        client.Tell(Trust.MessageSignature.Sign(new JobInfo { Id = "23", State = JobState.Failed }, managerNode), manager.Ref);
        client.Tell(new RegistrationRequest(), asker);
        Assert.DoesNotContain("23", asker.ExpectMsg<RegisterClient>().RunningJobs);
    }
}
