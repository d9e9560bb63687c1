using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Persistence;

namespace ActorBackup.Cluster.Tests;

/// <summary>SQLite, the embedded default.</summary>
public sealed class ManagerJournalTests() : ManagerJournalJourneys(null)
{
    [Fact]
    public void Events_before_the_previous_snapshot_are_deleted_and_the_manager_recovers_every_client() => TrimmedAndRecovered();
}

/// <summary>The same on PostgreSQL.</summary>
public sealed class ManagerJournalPostgresTests() : ManagerJournalJourneys(new TestPostgres())
{
    [PostgresFact]
    public void Events_before_the_previous_snapshot_are_deleted_and_the_manager_recovers_every_client() => TrimmedAndRecovered();
}

/// <summary>The manager's journal does not grow for ever: what its snapshots hold is deleted behind them, and it recovers the same.</summary>
public abstract class ManagerJournalJourneys(TestPostgres? postgres) : JournalTestKit(postgres, "abk-manager-")
{
    protected void TrimmedAndRecovered()
    {
        var manager = Sys.ActorOf(ManagerActor.Props(CreateTestProbe().Ref));
        var me = CreateTestProbe();
        var clients = 2 * ManagerActor.SnapshotEvery + 50; // one event each: two snapshots and some
        for (var i = 0; i < clients; i++) manager.Tell(new RegisterClient { Id = $"host-{i}", Address = $"akka.tcp://actorbackup@h{i}/user/client" }, me.Ref);
        // Each Registered: 450 writes one after the other take 20 s alone on PostgreSQL here, and three times that beside
        // the rest of the suite on two cores (a CI run got 201 in 60 s).
        me.ReceiveN(clients, TimeSpan.FromMinutes(4));
        // After the second snapshot, the events up to the first go; those after it stay.
        AwaitAssert(() => Assert.Equal(ManagerActor.SnapshotEvery + 1, Journaled("manager").Min()), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(300));
        Assert.Equal(clients, Journaled("manager").Max());

        me.Watch(manager);
        Sys.Stop(manager);
        me.ExpectTerminated(manager);
        var again = Sys.ActorOf(ManagerActor.Props(CreateTestProbe().Ref));
        again.Tell(new ListClients(), me.Ref);
        Assert.Equal(clients, me.FishForMessage<ClientList>(_ => true, TimeSpan.FromSeconds(30)).Clients.Count);
    }
}
