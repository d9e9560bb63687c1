using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// The operator endpoint's actor on every node (/user/ops). It only hands each command to a child of its own
/// (<see cref="OpsCommand"/>), so that a slow or stuck command (a media node that does not answer) never
/// delays another operator's.
/// </summary>
public sealed class OpsActor : ReceiveActor
{
    /// <param name="client">This node's ClientActor when it has the client role, else null.</param>
    /// <param name="localClient">This node's client id when it has the client role: a backup without --client backs up this host.</param>
    public static Props Props(IActorRef manager, IActorRef media, IActorRef? client, string localClient = "", TimeSpan askTimeout = default) =>
        Akka.Actor.Props.Create(() => new OpsActor(new OpsCommand.Cell(manager, media, client, localClient, askTimeout)));

    public OpsActor(OpsCommand.Cell cell)
    {
        Receive<OpsCall>(call => Context.ActorOf(OpsCommand.Props(cell, call)));
    }

    protected override SupervisorStrategy SupervisorStrategy() => Akka.Actor.SupervisorStrategy.StoppingStrategy;
}
