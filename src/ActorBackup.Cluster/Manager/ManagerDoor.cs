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
public sealed class ManagerDoor : MinimalActorRef
{
    private readonly IActorRef _manager;

    public ManagerDoor(ExtendedActorSystem system, IActorRef manager)
    {
        _manager = manager;
        Provider = system.Provider;
        Path = manager.Path; // the proxy's own path (/user/manager-proxy): what integrators send to
    }

    public override ActorPath Path { get; }
    public override IActorRefProvider Provider { get; }

    protected override void TellInternal(object message, IActorRef sender)
    {
        if (message is IMessage && ProtocolTypes.NameOf(message.GetType()) is not null) _manager.Tell(message, sender);
    }
}
