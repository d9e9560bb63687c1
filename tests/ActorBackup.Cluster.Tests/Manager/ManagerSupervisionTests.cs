using System.Collections.Immutable;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using Google.Protobuf;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>An in-memory journal whose writes fail while <see cref="Down"/> is set, as a PostgreSQL server that restarts.</summary>
public sealed class FailingJournal : MemoryJournal
{
    public static volatile bool Down;
    /// <summary>Writes holding an event this says yes to fail too (a disk full at that moment).</summary>
    public static volatile Func<object, bool>? FailOn;

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var writes = messages.ToList();
        return Down || (FailOn is { } fail && writes.Any(w => ((IEnumerable<IPersistentRepresentation>)w.Payload).Any(p => fail(p.Payload))))
            ? Task.FromException<IImmutableList<Exception>>(new IOException("the journal's database is not reachable"))
            : base.WriteMessagesAsync(writes, cancellationToken);
    }

    /// <summary>Recovery fails too while it is down (a database restarting as an actor starts).</summary>
    public override Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken) =>
        Down ? Task.FromException<long>(new IOException("the journal's database is not reachable")) : base.ReadHighestSequenceNrAsync(persistenceId, fromSequenceNr, cancellationToken);
}

/// <summary>The manager singleton outlives a failed journal write: started again, it recovers what was written.</summary>
[Collection(nameof(FailingJournal))] // its switch is static: one test of it at a time
public sealed class ManagerSupervisionTests() : TestKit(ConfigurationFactory.ParseString($$"""
    akka.persistence.journal.plugin = "akka.persistence.journal.failing"
    akka.persistence.journal.failing.class = "{{typeof(FailingJournal).AssemblyQualifiedName}}"
    akka.persistence.journal.failing.plugin-dispatcher = "akka.actor.default-dispatcher"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
    """))
{
    /// <summary>The switch is static: a failed assertion before it is turned back leaves the next test of the collection a dead journal.</summary>
    protected override void Dispose(bool disposing)
    {
        FailingJournal.Down = false;
        base.Dispose(disposing);
    }

    [Fact]
    public void A_manager_stopped_by_a_failed_journal_write_starts_again_and_recovers_its_catalog()
    {
        var manager = Sys.ActorOf(ManagerActor.Supervised(ManagerActor.Props(CreateTestProbe().Ref)), "manager");
        var me = CreateTestProbe();
        manager.Tell(new RegisterClient { Id = "web1", Address = "akka.tcp://actorbackup@web1/user/client" }, me.Ref);
        me.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(60));
        // Registered is said at once, before its event is written: a command after it is taken once it is (Persist
        // stashes what comes meanwhile), so this list holding web1 means web1 is in the journal.
        manager.Tell(new ListClients(), me.Ref);
        Assert.Contains(me.FishForMessage<ClientList>(_ => true, TimeSpan.FromSeconds(60)).Clients, c => c.Id == "web1");

        FailingJournal.Down = true;
        Sys.ActorSelection("/user/manager/manager").Tell(new Identify(1), me.Ref);
        var first = me.ExpectMsg<ActorIdentity>(TimeSpan.FromSeconds(30)).Subject!;
        me.Watch(first);
        manager.Tell(new RegisterClient { Id = "web2", Address = "akka.tcp://actorbackup@web2/user/client" }, me.Ref);
        me.FishForMessage(m => m is Terminated t && t.ActorRef.Equals(first), TimeSpan.FromSeconds(60)); // Akka stops it
        // Asked while it is stopped: said at once, as a passing trouble (it was dropped: abk and integrators waited out
        // their timeouts). Up again meanwhile, it is stopped again by a write that fails.
        var said = false;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!said && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            manager.Tell(new ListClients(), me.Ref);
            switch (me.ReceiveOne(TimeSpan.FromMilliseconds(300)))
            {
                case CommandRejected { Transient: true } r:
                    Assert.Contains("starting again after its journal", r.Reason);
                    said = true;
                    break;
                case ClientList:
                    manager.Tell(new RegisterClient { Id = "web3", Address = "akka.tcp://actorbackup@web3/user/client" }, me.Ref);
                    break;
            }
        }
        Assert.True(said, "nothing said while the manager was stopped");
        FailingJournal.Down = false;

        // Started again by its supervisor, recovered from the journal: what was written before the failure is there.
        AwaitAssert(() =>
        {
            manager.Tell(new ListClients(), me.Ref);
            var clients = me.FishForMessage<ClientList>(_ => true, TimeSpan.FromSeconds(2)).Clients;
            Assert.Contains(clients, c => c.Id == "web1");
        }, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(500));
        manager.Tell(new RegisterClient { Id = "web2", Address = "akka.tcp://actorbackup@web2/user/client" }, me.Ref);
        me.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(60)); // and writes again
    }

    [Fact]
    public void The_hand_over_message_stops_the_supervised_manager_and_its_supervisor()
    {
        var manager = Sys.ActorOf(ManagerActor.Supervised(ManagerActor.Props(CreateTestProbe().Ref)), "manager");
        var me = CreateTestProbe();
        manager.Tell(new ListClients(), me.Ref);
        me.FishForMessage<ClientList>(_ => true, TimeSpan.FromSeconds(30));
        me.Watch(manager);
        manager.Tell(HandOffStop.Instance);
        me.ExpectTerminated(manager, TimeSpan.FromSeconds(30));
    }
}

/// <summary>
/// A backup's end cut short by a failed journal write after its snapshot was recorded (the manager stops, its
/// supervisor starts it again): taken up again, the job succeeds once, with the copies its policy asks for, once.
/// </summary>
[Collection(nameof(FailingJournal))]
public sealed class ManagerBackupEndTests() : TestKit(ConfigurationFactory.ParseString($$"""
    akka.actor.provider = cluster
    akka.remote.dot-netty.tcp.hostname = 127.0.0.1
    akka.remote.dot-netty.tcp.port = 0
    akka.loglevel = WARNING
    akka.persistence.journal.plugin = "akka.persistence.journal.failing"
    akka.persistence.journal.failing.class = "{{typeof(FailingJournal).AssemblyQualifiedName}}"
    akka.persistence.journal.failing.plugin-dispatcher = "akka.actor.default-dispatcher"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
    """)), IDisposable
{
    void IDisposable.Dispose()
    {
        FailingJournal.FailOn = null;
        Shutdown();
    }

    [Fact]
    public void A_backup_whose_end_was_cut_short_after_its_snapshot_was_recorded_succeeds_once_with_its_policys_copy()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Address == cluster.SelfAddress && m.Status == Akka.Cluster.MemberStatus.Up), TimeSpan.FromSeconds(60));
        var manager = Sys.ActorOf(ManagerActor.Supervised(ManagerActor.Props(CreateTestProbe().Ref)), "manager");
        var me = CreateTestProbe();
        foreach (var id in new[] { "lib1", "lib2" })
        {
            manager.Tell(new RegisterLibrary { Id = id, Node = cluster.SelfAddress.ToString(), Kind = "disk", Drives = 2 }, me.Ref);
            me.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));
        }
        var client = CreateTestProbe();
        manager.Tell(new DefinePolicy { Policy = new StoragePolicy { Name = "twice", Libraries = { "lib1" }, Copies = { new CopyRule { Libraries = { "lib2" } } } } }, me.Ref);
        me.FishForMessage(m => m is PolicyInfo, TimeSpan.FromSeconds(30));

        // The journal fails at the policy's copy job (nothing after the snapshot written), then at the job's end (the copy
        // job written): each time the manager stops and starts again, and the client sends its end again; the third time
        // the client says nothing more (its node went too): the manager, settling the jobs no client claims, finds the
        // snapshot (it ended them interrupted, "nothing of it was recorded", and a scheduled one ran again).
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var n = 0;
        foreach (var (failing, resend) in new (Func<JobInfo, Func<object, bool>>, bool)[]
                 {
                     (_ => e => e is JobQueued { Job.Kind: JobKind.Copy }, true),
                     (job => e => e is JobEnded ended && ended.Job == job.Id, true),
                     (job => e => e is JobEnded ended && ended.Job == job.Id, false),
                 })
        {
            // The client registers (again, with the manager started again: as a client node does when its manager changes).
            manager.Tell(new RegisterClient { Id = "web1", Address = client.Ref.Path.ToStringWithAddress(cluster.SelfAddress) }, client.Ref);
            client.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));
            manager.Tell(new StartBackup { Client = "web1", Paths = { "/www" }, Policy = "twice" }, me.Ref);
            var job = me.FishForMessage<JobAccepted>(_ => true, TimeSpan.FromSeconds(30)).Job;
            var assigned = ((BackupAssignment)client.FishForMessage(m => m is BackupAssignment b && b.Job.Id == job, TimeSpan.FromSeconds(30))).Job;
            var manifest = new SnapshotManifest
            {
                Id = $"aaaa00000000000{++n}", Client = "web1", BackupSet = assigned.BackupSet, Job = job, Library = "lib1", Policy = assigned.Policy,
                Level = Level.Full, RootTree = ByteString.CopyFrom(new byte[32]), StartedUnixMs = now, FinishedUnixMs = now + 1_000,
                Stats = new SnapshotStats(),
            };
            var end = new JobFinished { Job = job, Attempt = assigned.Attempt, Ok = true, Outcome = JobState.Succeeded, Manifest = manifest.ToByteString() };
            Sys.ActorSelection("/user/manager/manager").Tell(new Identify(n), me.Ref);
            var running = me.FishForMessage<ActorIdentity>(i => i.MessageId.Equals(n), TimeSpan.FromSeconds(30)).Subject!;
            me.Watch(running);
            FailingJournal.FailOn = failing(assigned);
            manager.Tell(end, client.Ref);
            me.FishForMessage(m => m is Terminated t && t.ActorRef.Equals(running), TimeSpan.FromSeconds(60));
            FailingJournal.FailOn = null;

            JobInfo? info = null;
            AwaitAssert(() =>
            {
                if (resend) manager.Tell(end, client.Ref);
                manager.Tell(new GetJob { Job = job }, me.Ref);
                info = me.FishForMessage<JobInfo>(_ => true, TimeSpan.FromSeconds(2));
                Assert.True(ManagerState.IsFinal(info.State), $"job {job} is {info.State}");
            }, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(500));
            Assert.Equal(JobState.Succeeded, info!.State);
            Assert.Equal(manifest.Id, info.Snapshot);
            manager.Tell(new ListJobs { Limit = 1000 }, me.Ref);
            var jobs = me.FishForMessage<JobList>(_ => true, TimeSpan.FromSeconds(30)).Jobs;
            var copy = Assert.Single(jobs, j => j.Kind == JobKind.Copy && j.Snapshot == manifest.Id);
            Assert.Equal("lib2", copy.Library);
            Assert.Single(jobs, j => j.Kind == JobKind.Backup && j.Id == job);
        }
        manager.Tell(new ListSnapshots(), me.Ref);
        Assert.Equal(3, me.FishForMessage<SnapshotList>(_ => true, TimeSpan.FromSeconds(30)).Snapshots.Count);
    }
}
