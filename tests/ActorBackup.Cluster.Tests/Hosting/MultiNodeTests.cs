using ActorBackup.Cluster.Hosting;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;

namespace ActorBackup.Cluster.Tests;

/// <summary>Three ActorSystems joined on 127.0.0.1 in one process: a manager with a library, a second library, a client alone.</summary>
public sealed class MultiNodeTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-multi-").FullName;
    private readonly List<CellNode> _nodes = [];


    private async Task<CellNode> Start(string name, int port, int seed, string settings)
    {
        // The first node (its own seed) makes the cell's CA; the others get theirs from it, as an operator adds a host.
        if (port != seed && !File.Exists(Path.Combine(_dir, name, "certs", "node.crt")))
            ActorBackup.Protocol.Trust.CellCertificates.Issue(Path.Combine(_dir, "n1", "certs"),
                ActorBackup.Protocol.Trust.CellIdentity.Of(ActorBackup.Protocol.Trust.CellRole.Node, name, name, ["manager", "media", "client"], ["lib1", "lib2"]),
                Path.Combine(_dir, name, "certs")).Dispose();
        var config = ConfigurationFactory.ParseString($"""
            actorbackup.data-dir = "{Path.Combine(_dir, name)}"
            actorbackup.key-dir = "{Path.Combine(_dir, "keys")}"
            actorbackup.client-id = "{name}"
            {settings}
            actorbackup.ops.port = 0
            akka.remote.dot-netty.tcp.port = {port}
            akka.cluster.seed-nodes = ["akka.tcp://actorbackup@127.0.0.1:{seed}"]
            akka.loglevel = WARNING
            """).WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon")));
        var node = await CellNode.StartAsync(config);
        _nodes.Add(node);
        return node;
    }


    [Fact]
    public async Task Three_nodes_form_a_cell_and_a_client_without_a_library_backs_up_and_restores()
    {
        var p1 = Ports.Free();
        var n1 = await Start("n1", p1, p1, "actorbackup.roles = [manager, media]\nactorbackup.libraries = [{id = lib1}]");
        await Start("n2", Ports.Free(), p1, "actorbackup.roles = [media]\nactorbackup.libraries = [{id = lib2}]");
        var n3 = await Start("n3", Ports.Free(), p1, "actorbackup.roles = [client]");

        var libraries = await Eventually.Until(() => n3.Manager.Ask<LibraryList>(new ListLibraries(), TimeSpan.FromSeconds(5)),
            l => l.Libraries.Count == 2 && l.Libraries.All(x => x.Reachable), "two reachable libraries");
        Assert.Equal(["lib1", "lib2"], libraries.Libraries.Select(l => l.Id).Order());
        await Eventually.Until(() => n1.Manager.Ask<ClientList>(new ListClients(), TimeSpan.FromSeconds(5)), c => c.Clients.Any(x => x.Id == "n3" && x.Reachable), "client n3");
        Assert.Equal(3, Akka.Cluster.Cluster.Get(n1.System).State.Members.Count);

        // A subscriber on the client's node hears of every job's end, published by the manager on another node.
        var notices = new System.Collections.Concurrent.ConcurrentQueue<JobEndedNotice>();
        var subscriber = n3.System.ActorOf(Props.Create(() => new Collector(notices)));
        // Senders given explicitly: a Tell from test code may otherwise carry another test's TestActor as its sender
        // (TestKit keeps it in a thread-static), which would then receive the SubscribeAck.
        DistributedPubSub.Get(n3.System).Mediator.Tell(new Subscribe(Manager.ManagerActor.JobEndedTopic, subscriber), subscriber);
        await Eventually.Until(() => // the subscription has reached the manager's node
        {
            DistributedPubSub.Get(n1.System).Mediator.Tell(new Publish(Manager.ManagerActor.JobEndedTopic, new JobEndedNotice { Job = new JobInfo { Id = "probe" } }), ActorRefs.NoSender);
            return Task.FromResult(notices.Any(n => n.Job.Id == "probe"));
        }, seen => seen, "the subscription on the manager's node");

        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "hello.txt"), "three nodes");
        // Job commands go signed by their caller (here the operator certificate the first node made), as abk signs them.
        var certs = Path.Combine(_dir, "n1", "certs");
        using var operatorCert = ActorBackup.Protocol.Trust.CellCertificates.LoadPair(certs, "operator", ActorBackup.Protocol.Trust.CellCertificates.LoadCa(certs)).Certificate;
        Google.Protobuf.IMessage Signed(Google.Protobuf.IMessage m) => ActorBackup.Protocol.Trust.OperatorCommands.Sign(m, operatorCert, DateTimeOffset.UtcNow);
        var accepted = await n3.Manager.Ask<object>(Signed(new StartBackup { Paths = { src } }), TimeSpan.FromSeconds(10));
        var job = Assert.IsType<JobAccepted>(accepted).Job;
        var info = await Eventually.Until(() => n1.Manager.Ask<JobInfo>(Signed(new GetJob { Job = job }), TimeSpan.FromSeconds(5)), j => Manager.ManagerState.IsFinal(j.State), "backup end");
        Assert.True(info.State == JobState.Succeeded, info.Reason);
        Assert.Equal("n3", info.Client);
        Assert.Equal("operator operator", info.RequestedBy); // who asked, kept with the job
        var notice = await Eventually.Until(() => Task.FromResult(notices.FirstOrDefault(n => n.Job.Id == job)), n => n is not null, "the job-ended notice");
        Assert.Equal(info.Snapshot, notice!.Job.Snapshot);

        var target = Path.Combine(_dir, "restore");
        var restore = Assert.IsType<JobAccepted>(await n1.Manager.Ask<object>(Signed(new StartRestore { Snapshot = info.Snapshot, Target = target }), TimeSpan.FromSeconds(10)));
        var restored = await Eventually.Until(() => n1.Manager.Ask<JobInfo>(Signed(new GetJob { Job = restore.Job }), TimeSpan.FromSeconds(5)), j => Manager.ManagerState.IsFinal(j.State), "restore end");
        Assert.True(restored.State == JobState.Succeeded, restored.Reason);
        Assert.Equal("three nodes", File.ReadAllText(target + src + "/hello.txt"));

        // The audit trail holds each command the manager took, who signed it and what became of it; the looks (GetJob) are not in it.
        var refused = await n1.Manager.Ask<object>(Signed(new DeleteSnapshots { Snapshots = { "nosuch" } }), TimeSpan.FromSeconds(10));
        Assert.Contains("no snapshot 'nosuch'", Assert.IsType<CommandRejected>(refused).Reason);
        var trail = await n3.Manager.Ask<AuditList>(Signed(new ListAudit()), TimeSpan.FromSeconds(30));
        Assert.Equal("", trail.Broken);
        Assert.Equal(["StartBackup", "StartRestore", "DeleteSnapshots"], trail.Records.Select(r => r.Command));
        Assert.Equal([1L, 2L, 3L], trail.Records.Select(r => r.Seq));
        Assert.All(trail.Records, r => Assert.Equal("operator operator", r.Caller));
        Assert.Equal(["taken", "taken"], trail.Records.Take(2).Select(r => r.Outcome));
        Assert.StartsWith("refused: no snapshot 'nosuch'", trail.Records[2].Outcome);
        Assert.Contains(info.Snapshot, trail.Records[1].What); // what was restored, and where to
        Assert.Contains(target, trail.Records[1].What);
        Assert.Equal(Akka.Cluster.Cluster.Get(n3.System).SelfAddress.ToString(), trail.Records[0].Node); // relayed by the node the command came through
        Assert.All(trail.Records, r => Assert.True(r.Signed.IsEmpty)); // the proof stays in the trail, out of list answers
        var ofDeletes = await n1.Manager.Ask<AuditList>(Signed(new ListAudit { Command = "deletesnapshots" }), TimeSpan.FromSeconds(30));
        Assert.Equal((4L, 1L), (ofDeletes.Total, ofDeletes.Matched)); // the first ListAudit is in the trail too
    }

    private sealed class Collector : ReceiveActor
    {
        public Collector(System.Collections.Concurrent.ConcurrentQueue<JobEndedNotice> into)
        {
            Receive<JobEndedNotice>(into.Enqueue);
            Receive<SubscribeAck>(_ => { });
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in Enumerable.Reverse(_nodes)) await n.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
