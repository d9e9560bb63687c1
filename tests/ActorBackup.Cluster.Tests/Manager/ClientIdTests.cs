using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>Two nodes of a cell that claim one client id (a cloned VM, a host reinstalled while the old one runs).</summary>
public sealed class ClientIdTests() : TestKit(Config, "abk")
{
    internal const string Config = OneNodeCell.Config + """

        akka.actor.serializers.actorbackup-proto = "ActorBackup.Protocol.ProtoSerializer, ActorBackup.Protocol"
        akka.actor.serialization-bindings { "Google.Protobuf.IMessage, Google.Protobuf" = actorbackup-proto }
        """ + "\n" + SlowMachine.Expect;

    [Fact]
    public async Task A_second_node_claiming_a_client_id_that_an_up_node_holds_is_refused_and_takes_it_once_that_one_is_gone()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Status == MemberStatus.Up), TimeSpan.FromSeconds(60));
        var manager = Sys.ActorOf(ManagerActor.Props(CreateTestProbe().Ref), "manager");
        var first = CreateTestProbe();
        manager.Tell(new RegisterClient { Id = "web1", Address = first.Ref.Path.ToStringWithAddress(cluster.SelfAddress) }, first.Ref);
        first.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));

        // Another node of the cell, whose client says it is web1 too.
        var other = ActorSystem.Create("abk", ConfigurationFactory.ParseString(Config));
        try
        {
            var otherCluster = Akka.Cluster.Cluster.Get(other);
            otherCluster.Join(cluster.SelfAddress);
            AwaitCondition(() => cluster.State.Members.Count(m => m.Status == MemberStatus.Up) == 2, TimeSpan.FromSeconds(60));
            var second = new Akka.TestKit.TestProbe(other, new Akka.TestKit.Xunit2.XunitAssertions());
            // As the manager meets it: over the wire, from the other node's address.
            var remoteManager = other.ActorSelection(manager.Path.ToStringWithAddress(cluster.SelfAddress));
            void Register() => remoteManager.Tell(new RegisterClient { Id = "web1", Address = second.Ref.Path.ToStringWithAddress(otherCluster.SelfAddress) }, second.Ref);
            Register();
            var refused = second.FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(30));
            Assert.Contains($"client id web1 is held by the node at {cluster.SelfAddress}, which is up in the cell", refused.Reason);
            Assert.Contains("give the node at", refused.Reason);
            var me = CreateTestProbe();
            manager.Tell(new ListClients(), me.Ref);
            Assert.Equal(first.Ref.Path.ToStringWithAddress(cluster.SelfAddress), me.ExpectMsg<ClientList>().Clients.Single(c => c.Id == "web1").Address);

            // The same node registering again (its client restarted, same address) is taken as before.
            var again = CreateTestProbe();
            manager.Tell(new RegisterClient { Id = "web1", Address = again.Ref.Path.ToStringWithAddress(cluster.SelfAddress) }, again.Ref);
            again.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));

            // Once the holder is gone (its actor stopped: Terminated), the second node takes the id.
            Sys.Stop(again.Ref);
            AwaitAssert(() =>
            {
                Register();
                second.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(3));
            }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
        }
        finally
        {
            await other.Terminate();
        }
    }
}

/// <summary>A cell upgraded manager first (README, "Upgrading a cell"): a client node of an older build meets a newer manager.</summary>
public sealed class OlderClientTests() : TestKit(ClientIdConfig + "\nakka.cluster.app-version = \"1.20261207.1600-0123456789ab\"", "abk")
{
    private const string ClientIdConfig = ClientIdTests.Config;

    [Fact]
    public async Task A_restore_with_choices_an_older_client_would_ignore_is_refused_and_a_plain_one_is_not()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Status == MemberStatus.Up), TimeSpan.FromSeconds(60));
        var manager = Sys.ActorOf(ManagerActor.Props(CreateTestProbe().Ref), "manager");
        var old = ActorSystem.Create("abk", ConfigurationFactory.ParseString(ClientIdConfig + "\nakka.cluster.app-version = \"1.20261201.0900-aaaaaaaaaaaa\""));
        try
        {
            var oldCluster = Akka.Cluster.Cluster.Get(old);
            oldCluster.Join(cluster.SelfAddress);
            AwaitCondition(() => cluster.State.Members.Count(m => m.Status == MemberStatus.Up) == 2, TimeSpan.FromSeconds(60));
            var client = new Akka.TestKit.TestProbe(old, new XunitAssertions());
            var remoteManager = old.ActorSelection(manager.Path.ToStringWithAddress(cluster.SelfAddress));
            remoteManager.Tell(new RegisterClient { Id = "web-old", Address = client.Ref.Path.ToStringWithAddress(oldCluster.SelfAddress) }, client.Ref);
            client.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));

            // An older client would ignore --dry-run and run a real forced restore: refused, saying why.
            var me = CreateTestProbe();
            manager.Tell(new StartRestore { Client = "web-old", Snapshot = "latest", Target = "/", Force = true, DryRun = true }, me.Ref);
            Assert.Contains("older than the first that knows a restore's --exclude, --overwrite and --dry-run", me.FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(30)).Reason);
            // A plain restore goes on to be judged as ever (here: that client has no snapshot).
            manager.Tell(new StartRestore { Client = "web-old", Snapshot = "latest", Target = "/r" }, me.Ref);
            Assert.Contains("has no snapshot yet", me.FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(30)).Reason);
        }
        finally
        {
            await old.Terminate();
        }
    }
}
