using System.Collections.Immutable;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Manager;
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

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken) =>
        Down ? Task.FromException<IImmutableList<Exception>>(new IOException("the journal's database is not reachable")) : base.WriteMessagesAsync(messages, cancellationToken);
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
