using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The manager actor against probes: a client whose clock is off (the backup's end is refused and its data let go), a manager started again.</summary>
public sealed class ManagerClockTests() : TestKit(OneNodeCell.Config)
{
    /// <summary>A one-node cluster with the manager, library lib1 (its media agent a probe) and client web1 (a probe).</summary>
    private (IActorRef Manager, Akka.TestKit.TestProbe Media, Akka.TestKit.TestProbe Client) Cell()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Address == cluster.SelfAddress && m.Status == MemberStatus.Up), TimeSpan.FromSeconds(60));

        var media = CreateTestProbe();
        var manager = Sys.ActorOf(ManagerActor.Props(media.Ref), "manager");
        var library = CreateTestProbe();
        manager.Tell(new RegisterLibrary { Id = "lib1", Node = cluster.SelfAddress.ToString(), Kind = "disk", Drives = 2 }, library.Ref);
        library.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));
        var client = CreateTestProbe();
        manager.Tell(new RegisterClient { Id = "web1", Address = client.Ref.Path.ToStringWithAddress(cluster.SelfAddress) }, client.Ref);
        client.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));
        return (manager, media, client);
    }

    private JobInfo Ended(IActorRef manager, string job)
    {
        var me = CreateTestProbe();
        JobInfo? info = null;
        AwaitAssert(() =>
        {
            manager.Tell(new GetJob { Job = job }, me.Ref);
            info = me.FishForMessage<JobInfo>(_ => true, TimeSpan.FromSeconds(5));
            Assert.True(info.State is JobState.Failed or JobState.Succeeded, $"job {job} is {info.State}");
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));
        return info!;
    }

    [Fact]
    public async Task A_catalog_rebuild_whose_manifests_came_in_parts_records_them_all()
    {
        var (manager, _, _) = Cell();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var found = new RecordSnapshots
        {
            Library = "lib1", Complete = true,
            Manifests = { Enumerable.Range(0, 5).Select(i => new SnapshotManifest { Id = $"r{i}", Client = "web1", BackupSet = "www", Library = "lib1", Level = Level.Full,
                RootTree = ByteString.CopyFrom(new byte[32]), StartedUnixMs = now - 10_000 + i, FinishedUnixMs = now - 5_000 + i, Stats = new SnapshotStats() }.ToByteString()) },
        };
        foreach (var part in RebuildParts.Split(found, partBytes: 200)) manager.Tell(part);
        Assert.True(found.Parts > 1);
        var rebuilt = await manager.Ask<CatalogRebuilt>(found, TimeSpan.FromSeconds(30));
        Assert.Equal(5, rebuilt.Added);
        Assert.Equal(["r0", "r1", "r2", "r3", "r4"], rebuilt.AddedIds);
    }

    [Fact]
    public void A_hand_over_waits_for_the_audit_records_not_yet_written()
    {
        // A command taken right before the singleton hands over (a rolling upgrade): its record is on its way to the
        // trail's writer, a child that stops with the manager. The manager stops once it is written.
        var (manager, _, _) = Cell();
        var me = CreateTestProbe();
        manager.Tell(new CallerSigned { Type = DefinePolicy.Descriptor.Name, Body = new DefinePolicy { Policy = new StoragePolicy { Name = "p1" } }.ToByteString() }, me.Ref);
        manager.Tell(ActorBackup.Cluster.Hosting.HandOffStop.Instance);
        Watch(manager);
        ExpectTerminated(manager, TimeSpan.FromSeconds(30));
        var trail = Sys.ActorOf(Audit.AuditActor.Props());
        trail.Tell(new Audit.AuditActor.Read(new ListAudit { Whole = true }, TestActor), TestActor);
        var list = FishForMessage<AuditList>(_ => true, TimeSpan.FromSeconds(20));
        Assert.Contains(list.Records, r => r.Command == DefinePolicy.Descriptor.Name);
    }

    [Fact]
    public void A_backups_end_whose_manifest_is_not_that_jobs_snapshot_fails_the_job_and_leaves_the_manager_running()
    {
        // A client host (compromised, or a bug) signs its own job's end, but what it sends is no snapshot of that job:
        // bytes that do not parse, a snapshot in another client's name or under an id the catalog has, times at the
        // ends of a long. Each fails its job, records nothing, and the manager goes on (it stopped at the first before,
        // and the client sent the same end again as it registered anew).
        var (manager, _, client) = Cell();
        var me = CreateTestProbe();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        (string Job, BackupAssignment Assignment) Started()
        {
            manager.Tell(new StartBackup { Client = "web1", Paths = { "/www" } }, me.Ref);
            var job = me.FishForMessage<JobAccepted>(_ => true, TimeSpan.FromSeconds(30)).Job;
            return (job, (BackupAssignment)client.FishForMessage(m => m is BackupAssignment b && b.Job.Id == job, TimeSpan.FromSeconds(30)));
        }
        SnapshotManifest Good(BackupAssignment a, string id) => new()
        {
            Id = id, Client = "web1", BackupSet = a.Job.BackupSet, Job = a.Job.Id, Library = "lib1", Policy = a.Job.Policy, Level = Level.Full,
            RootTree = ByteString.CopyFrom(new byte[32]), StartedUnixMs = now, FinishedUnixMs = now + 1_000, Stats = new SnapshotStats(),
        };
        JobInfo Finish(BackupAssignment a, ByteString manifest)
        {
            manager.Tell(new JobFinished { Job = a.Job.Id, Attempt = a.Job.Attempt, Ok = true, Outcome = JobState.Succeeded, Manifest = manifest }, client.Ref);
            return Ended(manager, a.Job.Id);
        }

        var (_, first) = Started();
        manager.Tell(new JobFinished { Job = first.Job.Id, Attempt = first.Job.Attempt, Ok = true, Outcome = JobState.Succeeded, Manifest = Good(first, "aaaa000000000001").ToByteString(),
            Files = 3, Bytes = 4096 }, client.Ref);
        var recorded = Ended(manager, first.Job.Id);
        Assert.Equal(JobState.Succeeded, recorded.State); // a true one is recorded
        Assert.Equal((3L, 4096L), (recorded.Progress.FilesDone, recorded.Progress.BytesDone)); // with what it did, once it ended

        var (_, garbled) = Started();
        var failed = Finish(garbled, ByteString.CopyFrom(0xff, 0xff, 0xff, 0xff));
        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains("is not recorded", failed.Reason);

        var (_, other) = Started();
        var stranger = Good(other, "aaaa000000000002");
        stranger.Client = "db1";
        failed = Finish(other, stranger.ToByteString());
        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains("it is of client 'db1', not of the job's client web1", failed.Reason);

        var (_, again) = Started();
        failed = Finish(again, Good(again, "aaaa000000000001").ToByteString());
        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains("its snapshot id aaaa000000000001 is one the catalog has already", failed.Reason);

        var (_, endless) = Started();
        var far = Good(endless, "aaaa000000000003");
        far.StartedUnixMs = long.MinValue;
        far.FinishedUnixMs = long.MaxValue;
        failed = Finish(endless, far.ToByteString());
        Assert.Equal(JobState.Failed, failed.State);
        Assert.Contains("the clock of client web1 is", failed.Reason);

        // The manager kept running through all of it, and its catalog holds the one true snapshot, unharmed.
        manager.Tell(new ListSnapshots(), me.Ref);
        var listed = me.FishForMessage<SnapshotList>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal("aaaa000000000001", Assert.Single(listed.Snapshots).Id);
        manager.Tell(new StartPrune { Library = "lib1" }, me.Ref);
        me.FishForMessage(m => m is JobAccepted, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void A_backup_running_past_its_maximum_run_time_is_stopped_and_fails_without_a_retry()
    {
        var (manager, _, client) = Cell();
        var me = CreateTestProbe();
        manager.Tell(new StartBackup { Client = "web1", Paths = { "/www" }, MaxRunSeconds = 2 }, me.Ref);
        var job = me.FishForMessage<JobAccepted>(_ => true, TimeSpan.FromSeconds(30)).Job;
        var assignment = (BackupAssignment)client.FishForMessage(m => m is BackupAssignment b && b.Job.Id == job, TimeSpan.FromSeconds(30));
        Assert.Equal(2, assignment.Job.MaxRunSeconds);
        // The client keeps running (it answers the probes); the manager tells it to stop once its 2 s passed.
        var stop = (CancelAssignment)client.FishForMessage(m =>
        {
            if (m is RegistrationRequest) manager.Tell(new RegisterClient { Id = "web1", Address = client.Ref.Path.ToStringWithAddress(Akka.Cluster.Cluster.Get(Sys).SelfAddress), RunningJobs = { job } }, client.Ref);
            return m is CancelAssignment c && c.Job == job;
        }, TimeSpan.FromSeconds(60));
        Assert.Contains("maximum run time of 2 s", stop.Reason);
        manager.Tell(new JobFinished { Job = job, Attempt = assignment.Job.Attempt, Ok = false, Outcome = JobState.Cancelled, Reason = stop.Reason + "; nothing was recorded" }, client.Ref);
        var ended = Ended(manager, job);
        Assert.Equal(JobState.Failed, ended.State); // not an operator's cancel: an alert on failures sees it
        Assert.Contains("past its maximum run time of 2 s", ended.Reason);
        Assert.Equal(0, ended.Attempt); // and not retried
        // An operator's cancel of a backup within its time stays a cancel.
        manager.Tell(new StartBackup { Client = "web1", Paths = { "/www" }, MaxRunSeconds = 3600 }, me.Ref);
        var second = me.FishForMessage<JobAccepted>(_ => true, TimeSpan.FromSeconds(30)).Job;
        var running = (BackupAssignment)client.FishForMessage(m => m is BackupAssignment b && b.Job.Id == second, TimeSpan.FromSeconds(30));
        manager.Tell(new JobFinished { Job = second, Attempt = running.Job.Attempt, Ok = false, Outcome = JobState.Cancelled, Reason = "cancelled by an operator" }, client.Ref);
        AwaitAssert(() =>
        {
            manager.Tell(new GetJob { Job = second }, me.Ref);
            Assert.Equal(JobState.Cancelled, me.FishForMessage<JobInfo>(_ => true, TimeSpan.FromSeconds(5)).State);
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void A_manager_started_again_asks_every_library_it_knows_for_its_state()
    {
        // A manager started on another node (or again) knows nothing of what the libraries last reported (full, volumes in
        // error, drives due cleaning), and an agent reports again only when that changes: it asks each.
        var (manager, media, _) = Cell();
        var me = CreateTestProbe();
        me.Watch(manager);
        manager.Tell(PoisonPill.Instance);
        me.ExpectTerminated(manager, TimeSpan.FromSeconds(30));
        Sys.ActorOf(ManagerActor.Props(media.Ref), "manager-again");
        Assert.Equal("lib1", ((GetLibraryStatus)media.FishForMessage(m => m is GetLibraryStatus, TimeSpan.FromSeconds(30))).Library);
    }

    [Fact]
    public void A_backup_whose_client_clock_is_days_behind_fails_saying_so_and_its_data_goes_at_the_next_prune()
    {
        var (manager, media, client) = Cell();
        var me = CreateTestProbe();
        manager.Tell(new StartBackup { Client = "web1", Paths = { "/www" } }, me.Ref);
        var job = me.FishForMessage<JobAccepted>(_ => true, TimeSpan.FromSeconds(30)).Job;
        var assignment = (BackupAssignment)client.FishForMessage(m => m is BackupAssignment, TimeSpan.FromSeconds(30));
        Assert.Equal(job, assignment.Job.Id);

        // The client's clock is 3 days behind: its snapshot says it began and ended then.
        var then = DateTimeOffset.UtcNow.AddDays(-3).ToUnixTimeMilliseconds();
        var manifest = new SnapshotManifest
        {
            Id = "0123456789abcdef", Client = "web1", BackupSet = assignment.Job.BackupSet, Job = job, Library = "lib1", Policy = assignment.Job.Policy, Level = Level.Full,
            RootTree = ByteString.CopyFrom(new byte[32]), StartedUnixMs = then, FinishedUnixMs = then + 60_000,
        };
        manager.Tell(new JobFinished { Job = job, Attempt = assignment.Job.Attempt, Ok = true, Outcome = JobState.Succeeded, Manifest = manifest.ToByteString() }, client.Ref);

        AwaitAssert(() =>
        {
            manager.Tell(new GetJob { Job = job }, me.Ref);
            var info = me.FishForMessage<JobInfo>(_ => true, TimeSpan.FromSeconds(5));
            Assert.Equal(JobState.Failed, info.State);
            Assert.Contains("the clock of client web1 is 3 days behind the manager's", info.Reason);
            Assert.Contains("set that host's clock right", info.Reason);
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));
        manager.Tell(new ListSnapshots(), me.Ref);
        Assert.Empty(me.FishForMessage<SnapshotList>(_ => true, TimeSpan.FromSeconds(10)).Snapshots);

        // What the client wrote is in lib1 already: the next prune there is told it was let go.
        manager.Tell(new StartPrune { Library = "lib1" }, me.Ref);
        me.FishForMessage(m => m is JobAccepted, TimeSpan.FromSeconds(30));
        var prune = (PruneLibrary)media.FishForMessage(m => m is PruneLibrary, TimeSpan.FromSeconds(30));
        Assert.Contains("0123456789abcdef", prune.Deleted);
        Assert.DoesNotContain("0123456789abcdef", prune.Keep);
    }
}
