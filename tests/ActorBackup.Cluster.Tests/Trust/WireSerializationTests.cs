using System.Collections.Concurrent;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Akka.Actor;
using Akka.Configuration;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// Nothing polymorphic is deserialized from the wire: a peer that even holds a valid node certificate of the cell
/// sends a node Hyperion- and JSON-serialized objects of arbitrary types; they are dropped, the protobuf message
/// sent after them arrives alone, and no setter of the crafted type ever ran. Untrusted mode (base.conf) drops its
/// actor selection to a path the cell does not list and its PoisonPill.
/// </summary>
public sealed class WireSerializationTests
{
    /// <summary>A type a node never expects; its setter counts the times a deserializer ran it.</summary>
    public sealed class Crafted
    {
        public static int SetterRuns;
        private string _command = "";
        public string Command
        {
            get => _command;
            set
            {
                _command = value;
                Interlocked.Increment(ref SetterRuns);
            }
        }
    }

    /// <summary>An exception type whose deserializing constructor counts the times a node's deserializer ran it.</summary>
    [Serializable]
    public sealed class CraftedException : Exception
    {
        public static int ConstructorRuns;
        public CraftedException() : base("crafted") { }
#pragma warning disable SYSLIB0051 // the legacy constructor Akka's ExceptionSupport looks for: what this test shows is never called
        private CraftedException(System.Runtime.Serialization.SerializationInfo info, System.Runtime.Serialization.StreamingContext context) : base(info, context) =>
            Interlocked.Increment(ref ConstructorRuns);
#pragma warning restore SYSLIB0051
    }

    private sealed class Keeper : UntypedActor
    {
        private readonly ConcurrentQueue<object> _received;
        public Keeper(ConcurrentQueue<object> received) => _received = received;
        protected override void OnReceive(object message) => _received.Enqueue(message);
    }

    private static ActorSystem Node(string name, NodeTrust trust, Config config) =>
        ActorSystem.Create(name, BootstrapSetup.Create().WithConfig(config.WithFallback(ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0, enable-ssl = true }
            akka.loglevel = ERROR
            """))).And(trust.RemoteSetup()));

    /// <summary>
    /// Two nodes of one cell: a victim with its serialization settings as base.conf gives them and an actor "probe"
    /// keeping what it gets, and an attacker's, made with the settings a test gives it.
    /// </summary>
    private sealed class Wire : IDisposable
    {
        private readonly TestTrust _cell = new();
        private readonly NodeTrust _victimTrust, _attackerTrust;
        public ConcurrentQueue<object> Received { get; } = new();
        public ActorSystem Victim { get; }

        public Wire()
        {
            _victimTrust = _cell.Node("victim");
            _attackerTrust = _cell.Node("attacker");
            Victim = Node("actorbackup", _victimTrust, ConfigurationFactory.ParseString("""
                akka.actor.provider = remote
                akka.extensions = []
                akka.remote.dot-netty.tcp.port = 0
                """).WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon"))));
            var received = Received;
            Victim.ActorOf(Props.Create(() => new Keeper(received)), "probe");
        }

        public string ProbePath => $"akka.ssl.tcp://actorbackup@127.0.0.1:{((ExtendedActorSystem)Victim).Provider.DefaultAddress.Port}/user/probe";

        public ActorSystem Attacker(Config config) => Node("actorbackup", _attackerTrust, config);

        public void Dispose()
        {
            Victim.Dispose();
            _attackerTrust.Dispose();
            _victimTrust.Dispose();
            _cell.Dispose();
        }
    }

    [Fact]
    public async Task Hyperion_and_JSON_payloads_of_any_type_are_dropped_and_protobuf_still_arrives()
    {
        using var wire = new Wire();
        var (victim, received) = (wire.Victim, wire.Received);
        // The attacker: Akka's defaults (JSON for any object) and Hyperion for the crafted type.
        using var attacker = wire.Attacker(ConfigurationFactory.ParseString($$"""
            akka.actor.serializers.hyperion = "Akka.Serialization.HyperionSerializer, Akka.Serialization.Hyperion"
            akka.actor.serializers.actorbackup-proto = "ActorBackup.Protocol.ProtoSerializer, ActorBackup.Protocol"
            akka.actor.serialization-bindings {
              "{{typeof(Crafted).AssemblyQualifiedName}}" = hyperion
              "Google.Protobuf.IMessage, Google.Protobuf" = actorbackup-proto
            }
            """));
        var path = wire.ProbePath;
        // Untrusted mode: an actor selection along a path the cell does not list is dropped, and so is a PoisonPill.
        attacker.ActorSelection(path).Tell(new ListJobs { Limit = 1 }, ActorRefs.NoSender);
        var target = ((ExtendedActorSystem)attacker).Provider.ResolveActorRef(path);
        Crafted.SetterRuns = 0;
        target.Tell(new Crafted { Command = "rm -rf /" }, ActorRefs.NoSender);                   // Hyperion (id -5)
        target.Tell(new Dictionary<string, object> { ["type"] = new Crafted() }, ActorRefs.NoSender); // JSON with type names (id 1)
        target.Tell(PoisonPill.Instance, ActorRefs.NoSender);
        var setterRunsBeforeTheWire = Crafted.SetterRuns;
        target.Tell(new ListJobs { Limit = 7 }, ActorRefs.NoSender);                               // protobuf, to the live probe: the only one that may arrive

        await Eventually.Until(() => Task.FromResult(received.Count), n => n > 0, "the protobuf message on the victim", TimeSpan.FromSeconds(30));
        // In order on one association: what was sent before the protobuf message would be there by now.
        var only = Assert.Single(received);
        Assert.Equal(7, Assert.IsType<ListJobs>(only).Limit);
        Assert.Equal(setterRunsBeforeTheWire, Crafted.SetterRuns);
        await attacker.Terminate();
        await victim.Terminate();
    }

    [Fact]
    public async Task A_failure_from_another_node_names_no_type_the_node_would_instantiate()
    {
        using var wire = new Wire();
        var (victim, received) = (wire.Victim, wire.Received);
        // The attacker: Akka's own serializers, which write a failure's exception by its type name.
        using var attacker = wire.Attacker(ConfigurationFactory.ParseString("""
            akka.actor.serializers.actorbackup-proto = "ActorBackup.Protocol.ProtoSerializer, ActorBackup.Protocol"
            akka.actor.serialization-bindings { "Google.Protobuf.IMessage, Google.Protobuf" = actorbackup-proto }
            """));
        var target = ((ExtendedActorSystem)attacker).Provider.ResolveActorRef(wire.ProbePath);
        CraftedException.ConstructorRuns = 0;
        target.Tell(new Status.Failure(new CraftedException()), ActorRefs.NoSender);
        target.Tell(new ListJobs { Limit = 7 }, ActorRefs.NoSender);

        await Eventually.Until(() => Task.FromResult(received.Count), n => n >= 2, "the failure and the protobuf message on the victim", TimeSpan.FromSeconds(30));
        // The failure arrives as a failure, but its exception is the node's own: the crafted type was never made.
        Assert.IsType<RemoteFailureException>(Assert.IsType<Status.Failure>(received.First()).Cause);
        Assert.Equal(7, Assert.IsType<ListJobs>(received.Last()).Limit);
        Assert.Equal(0, CraftedException.ConstructorRuns);
        // Nor a system message that carries one (a child's failure, from an actor deployed across nodes: none is).
        var failed = new Akka.Dispatch.SysMsg.Failed((IInternalActorRef)ActorRefs.Nobody, new CraftedException(), 1);
        var bytes = new Akka.Remote.Serialization.SystemMessageSerializer((ExtendedActorSystem)attacker).ToBinary(failed);
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() =>
            ((ExtendedActorSystem)victim).Serialization.Deserialize(bytes, GuardedSystemMessageSerializer.SerializerId, typeof(Akka.Dispatch.SysMsg.Failed)));
        Assert.Equal(0, CraftedException.ConstructorRuns);
        await attacker.Terminate();
        await victim.Terminate();
    }
}
