using System.Collections.Immutable;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster.Tools.Client;
using Akka.Configuration;

namespace ActorBackup.Shell;

/// <summary>
/// The shell's way into a cell: a remote-only ActorSystem (never a cluster member) and a ClusterClient to
/// the receptionist of the node given with --node. Commands go to /user/ops on that node.
/// </summary>
public sealed class CellConnection : IAsyncDisposable
{
    private const string Hocon = """
        akka {
          loglevel = ERROR
          stdout-loglevel = ERROR
          actor {
            provider = remote
            serializers.actorbackup-proto = "ActorBackup.Protocol.ProtoSerializer, ActorBackup.Protocol"
            serialization-bindings { "Google.Protobuf.IMessage, Google.Protobuf" = actorbackup-proto }
          }
          remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
          cluster.client {
            establishing-get-contacts-interval = 1s
            reconnect-timeout = off
          }
        }
        """;

    private readonly ActorSystem _system;
    private readonly IActorRef _client;
    public string Node { get; }

    public CellConnection(string node)
    {
        Node = node;
        // The cluster-tools defaults carry the serializers of ClusterClient's own messages (Send and the
        // contact protocol); without them those would go as JSON and lose their payload.
        _system = ActorSystem.Create("abk", ConfigurationFactory.ParseString(Hocon)
            .WithFallback(ClusterClientReceptionist.DefaultConfig())
            .WithFallback(Akka.Cluster.Tools.PublishSubscribe.DistributedPubSub.DefaultConfig()));
        var contact = ActorPath.Parse($"akka.tcp://actorbackup@{node}/system/receptionist");
        _client = _system.ActorOf(ClusterClient.Props(ClusterClientSettings.Create(_system).WithInitialContacts(ImmutableHashSet.Create(contact))), "cell");
    }

    /// <summary>
    /// Sends one command line; <paramref name="onOutput"/> sees live lines; returns the final reply. Waits
    /// <paramref name="connectTimeout"/> for the first answer (the node may be down), then as long as it takes.
    /// </summary>
    public async Task<OpsReply> Run(IEnumerable<string> args, bool json, Action<OpsOutput> onOutput, TimeSpan connectTimeout)
    {
        var done = new TaskCompletionSource<OpsReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstAnswer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var receiver = _system.ActorOf(Props.Create(() => new Receiver(onOutput, done, firstAnswer)));
        var request = new OpsRequest { Json = json };
        request.Args.AddRange(args);
        _client.Tell(new ClusterClient.Send("/user/ops", request, localAffinity: true), receiver);
        if (await Task.WhenAny(firstAnswer.Task, Task.Delay(connectTimeout)) != firstAnswer.Task)
        {
            _system.Stop(receiver);
            return new OpsReply { ExitCode = 1, Error = $"no ActorBackup node answers at {Node}: start one with 'actorbackup', or give --node HOST:PORT" };
        }
        var reply = await done.Task;
        _system.Stop(receiver);
        return reply;
    }

    private sealed class Receiver : ReceiveActor
    {
        public Receiver(Action<OpsOutput> onOutput, TaskCompletionSource<OpsReply> done, TaskCompletionSource first)
        {
            Receive<OpsOutput>(o =>
            {
                first.TrySetResult();
                onOutput(o);
            });
            Receive<OpsReply>(r =>
            {
                first.TrySetResult();
                done.TrySetResult(r);
            });
        }
    }

    public async ValueTask DisposeAsync() => await _system.Terminate();
}
