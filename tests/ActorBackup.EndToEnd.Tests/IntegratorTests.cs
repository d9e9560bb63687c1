using System.Collections.Immutable;
using Google.Protobuf;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster.Tools.Client;
using Akka.Configuration;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>An integrator's program: its own ActorSystem, never a cluster member, sending the public messages through ClusterClient.</summary>
public class IntegratorTests
{
    [Fact]
    public async Task A_separate_actor_system_starts_a_backup_through_ClusterClient_and_receives_its_outcome()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "file.txt"), "integrated");
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.client-id=integrated").Start();

        // An integrator's certificate from the cell's CA (docs/integrators.md): the cell admits nothing else.
        var certs = Path.Combine(dir.Path, "integrator-certs");
        var issued = Processes.Run(Processes.Actorbackup, ["ca", "issue", "--ca", cell.CertsDir, "--role", "integrator", "--name", "ci", "--out", certs]);
        Assert.True(issued.ExitCode == 0, issued.Stderr);
        var ca = CellCertificates.LoadCa(certs);
        var (certificate, _) = CellCertificates.LoadPair(certs, "integrator", ca);
        var tls = new Akka.Remote.Transport.DotNetty.DotNettySslSetup(certificate, suppressValidation: false, requireMutualAuthentication: true,
            validateCertificateHostname: false, (peer, _, _, _, _) => CellCertificates.Check(peer, ca) is null && CellIdentity.From(peer!)?.Role == CellRole.Node);

        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0, enable-ssl = true, maximum-frame-size = 4 MiB }
            akka.actor.serializers.actorbackup-proto = "ActorBackup.Protocol.ProtoSerializer, ActorBackup.Protocol"
            akka.actor.serialization-bindings { "Google.Protobuf.IMessage, Google.Protobuf" = actorbackup-proto }
            akka.loglevel = ERROR
            """).WithFallback(ClusterClientReceptionist.DefaultConfig())
            .WithFallback(Akka.Cluster.Tools.PublishSubscribe.DistributedPubSub.DefaultConfig());
        using var system = ActorSystem.Create("integrator", BootstrapSetup.Create().WithConfig(config).And(tls));
        var client = system.ActorOf(ClusterClient.Props(ClusterClientSettings.Create(system).WithInitialContacts(
            ImmutableHashSet.Create(ActorPath.Parse($"akka.ssl.tcp://actorbackup@{cell.ClusterNode}/system/receptionist")))));

        async Task<object> Send(object m) => await client.Ask<object>(new ClusterClient.Send("/user/manager-proxy", m), TimeSpan.FromSeconds(30));
        IMessage Signed(IMessage command) => OperatorCommands.Sign(command, certificate, DateTimeOffset.UtcNow);
        // A job command goes signed by the integrator's own certificate: over Akka.Remote the manager cannot tell who
        // sent a bare one (any node of the cell could), so it takes none.
        Assert.Contains("taken only as its caller signed it", Assert.IsType<CommandRejected>(await Send(new StartBackup { Paths = { src } })).Reason);
        var accepted = await Send(Signed(new StartBackup { Paths = { src } }));
        var job = Assert.IsType<JobAccepted>(accepted).Job;

        var outcome = new TaskCompletionSource<JobInfo>();
        var watcher = system.ActorOf(Props.Create(() => new Watcher(outcome)));
        client.Tell(new ClusterClient.Send("/user/manager-proxy", Signed(new WatchJob { Job = job })), watcher);
        var info = await outcome.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(JobState.Succeeded, info.State);
        Assert.Equal("integrated", info.Client);
        Assert.NotEqual("", info.Snapshot);

        // A PoisonPill or a Kill through the receptionist reaches nothing: the door passes protocol messages only.
        client.Tell(new ClusterClient.Send("/user/manager-proxy", PoisonPill.Instance));
        client.Tell(new ClusterClient.Send("/user/manager-proxy", Kill.Instance));
        var rejected = await Send(Signed(new StartBackup()));
        Assert.Contains("at least one path", Assert.IsType<CommandRejected>(rejected).Reason);
        // Its restores go onto the host that made the snapshot only; an unsigned cancel is nobody's.
        Assert.Contains("takes an operator certificate",
            Assert.IsType<CommandRejected>(await Send(Signed(new StartRestore { Snapshot = info.Snapshot, Client = "elsewhere", Target = "/tmp/x" }))).Reason);
        Assert.Contains("taken only as its caller signed it", Assert.IsType<CommandRejected>(await Send(new CancelJob { Job = job })).Reason);
        // What only a node's operator endpoint answers is said so at once (it was dropped: the ask timed out).
        Assert.Contains("ListSnapshotTree is not a manager request",
            Assert.IsType<CommandRejected>(await Send(new ListSnapshotTree { Snapshot = info.Snapshot })).Reason);

        // On this door an integrator certificate (or any node's) cannot give an operator-only command: a backup set
        // whose pre-command would run as root on a client, a delete, a prune, a restore onto another host.
        var set = new DefineBackupSet { Set = new BackupSetDefinition { Name = "evil", Client = "integrated", Paths = { src }, PreCommand = "touch /tmp/owned" } };
        Assert.Contains("only an operator may change backup sets", Assert.IsType<CommandRejected>(await Send(set)).Reason);
        Assert.Contains("only an operator may delete", Assert.IsType<CommandRejected>(await Send(new DeleteSnapshots { Snapshots = { info.Snapshot } })).Reason);
        Assert.Contains("only an operator may prune", Assert.IsType<CommandRejected>(await Send(new StartPrune())).Reason);
        // Signed with its own (integrator) key: still no operator.
        Assert.Contains("only an operator certificate may give it", Assert.IsType<CommandRejected>(await Send(OperatorCommands.Sign(set, certificate, DateTimeOffset.UtcNow))).Reason);
        Assert.IsType<CommandRejected>(await Send(Signed(new GetBackupSet { Name = "evil" }))); // nothing was defined
        Assert.Single(Assert.IsType<SnapshotList>(await Send(Signed(new ListSnapshots()))).Snapshots); // nothing was deleted

        // The catalog is shown only to a caller who signed the look (an integrator sees it all): not to a bare look,
        // which any node of the cell could send, nor to a node's look for a "caller" that is a node itself.
        Assert.Contains("taken only as its caller signed it", Assert.IsType<CommandRejected>(await Send(new ListSnapshots())).Reason);
        Assert.Contains("taken only as its caller signed it", Assert.IsType<CommandRejected>(await Send(new GetJob { Job = job })).Reason);
        var (nodeCertificate, _) = CellCertificates.LoadPair(cell.CertsDir, "node", ca);
        var asNode = OperatorCommands.For(OperatorCommands.Sign(new ListJobs(), nodeCertificate, DateTimeOffset.UtcNow), new ListSnapshots());
        Assert.Contains("no shell's certificate", Assert.IsType<CommandRejected>(await Send(asNode)).Reason);
        Assert.Contains("without its caller's signed command", Assert.IsType<CommandRejected>(await Send(new CatalogLook { Type = "ListSnapshots" })).Reason);
        var forIntegrator = OperatorCommands.For(OperatorCommands.Sign(new ListJobs(), certificate, DateTimeOffset.UtcNow), new GetSnapshot { Snapshot = info.Snapshot });
        Assert.Equal(info.Snapshot, Assert.IsType<SnapshotDetail>(await Send(forIntegrator)).Info.Id);

        // A program holding an operator's certificate signs the command itself: taken, once.
        var (operatorCertificate, _) = CellCertificates.LoadPair(cell.CertsDir, "operator", ca);
        var signed = OperatorCommands.Sign(new DefineBackupSet { Set = new BackupSetDefinition { Name = "nightly", Client = "integrated", Paths = { src } } }, operatorCertificate, DateTimeOffset.UtcNow);
        Assert.IsNotType<CommandRejected>(await Send(signed));
        Assert.Equal("nightly", Assert.IsType<BackupSetInfo>(await Send(Signed(new GetBackupSet { Name = "nightly" }))).Set.Name);
        Assert.Contains("given before", Assert.IsType<CommandRejected>(await Send(signed)).Reason);
        // The node's own proxy is alive: its shell still reaches the manager.
        var jobs = cell.Abk("--json", "job", "list");
        Assert.True(jobs.ExitCode == 0, jobs.Stderr);
        await system.Terminate();
    }

    private sealed class Watcher : ReceiveActor
    {
        public Watcher(TaskCompletionSource<JobInfo> outcome)
        {
            Receive<JobProgress>(_ => { });
            Receive<JobInfo>(j =>
            {
                if (j.State is JobState.Succeeded or JobState.Failed or JobState.Cancelled or JobState.Interrupted or JobState.Missed) outcome.TrySetResult(j);
            });
        }
    }
}
