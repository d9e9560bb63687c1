using ActorBackup.Protocol;
using Akka.Actor;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// The manager's door for integrators: what the ClusterClient receptionist knows as <c>/user/manager-proxy</c>. The
/// receptionist hands a <c>ClusterClient.Send</c> to whatever is registered under that path as it came, a PoisonPill
/// or a Kill included (untrusted mode looks only at the envelope); registered in the proxy's place, this reference
/// passes on protocol messages only, to the manager proxy, and drops everything else. It is no actor: nothing can
/// stop it.
/// </summary>
/// A request only a node's operator endpoint answers (a listing of a snapshot's files, find, the cell's members), or one
/// sent while no node of the cell runs the manager, is answered at once with why (it was dropped, and the integrator's
/// ask timed out with nothing to go on).
public sealed class ManagerDoor : MinimalActorRef
{
    private readonly IActorRef _manager;
    private readonly Akka.Cluster.Cluster _cluster;

    public ManagerDoor(ExtendedActorSystem system, IActorRef manager)
    {
        _manager = manager;
        _cluster = Akka.Cluster.Cluster.Get(system);
        Provider = system.Provider;
        Path = manager.Path; // the proxy's own path (/user/manager-proxy): what integrators send to
    }

    public override ActorPath Path { get; }
    public override IActorRefProvider Provider { get; }

    /// <summary>Requests the manager does not answer: a node's operator endpoint (OpsCommand) does, from its own node's view.</summary>
    private static readonly HashSet<Type> EndpointOnly =
    [
        typeof(GetClusterState), typeof(ChangeMember), typeof(GetShardStats), typeof(ListVolumes), typeof(GetInventory), typeof(RebuildCatalog),
        typeof(ListSnapshotTree), typeof(FindFiles),
    ];

    protected override void TellInternal(object message, IActorRef sender)
    {
        if (message is not IMessage request || ProtocolTypes.NameOf(message.GetType()) is not { } name) return;
        sender ??= ActorRefs.Nobody; // told with no sender: an answer goes nowhere
        if (EndpointOnly.Contains(message.GetType()))
            sender.Tell(new CommandRejected
            {
                Reason = $"{name} is not a manager request: a node's operator endpoint answers it (abk --json, docs/integrators.md \"What only abk reaches\")",
            });
        else if (Hosting.ManagerNode.Of(_cluster.State) is null)
            sender.Tell(new CommandRejected { Reason = "no node of the cell runs the manager now (it is starting, or moving to another node): ask again in a few seconds", Transient = true });
        else _manager.Tell(request, sender);
    }
}
