using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The manager actor with a client whose clock is off: the backup's end is refused and its data let go.</summary>
public sealed class ManagerClockTests() : TestKit("""
    akka.actor.provider = cluster
    akka.remote.dot-netty.tcp.hostname = 127.0.0.1
    akka.remote.dot-netty.tcp.port = 0
    akka.loglevel = WARNING
    akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
    """)
{
    [Fact]
    public void A_backup_whose_client_clock_is_days_behind_fails_saying_so_and_its_data_goes_at_the_next_prune()
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

        var me = CreateTestProbe();
        manager.Tell(new StartBackup { Client = "web1", Paths = { "/www" } }, me.Ref);
        var job = me.FishForMessage<JobAccepted>(_ => true, TimeSpan.FromSeconds(30)).Job;
        var assignment = (BackupAssignment)client.FishForMessage(m => m is BackupAssignment, TimeSpan.FromSeconds(30));
        Assert.Equal(job, assignment.Job.Id);

        // The client's clock is 3 days behind: its snapshot says it began and ended then.
        var then = DateTimeOffset.UtcNow.AddDays(-3).ToUnixTimeMilliseconds();
        var manifest = new SnapshotManifest
        {
            Id = "0123456789abcdef", Client = "web1", BackupSet = assignment.Job.BackupSet, Job = job, Library = "lib1", Level = Level.Full,
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
