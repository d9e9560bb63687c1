using System.Net;
using Akka.Actor;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// The operator endpoint's actor on every node (/user/ops). It owns the endpoint's listener (opened when it
/// starts, closed when it stops) and hands each command to a child of its own (<see cref="OpsCommand"/>), so
/// that a slow or stuck command (a media node that does not answer) never delays another operator's.
/// </summary>
public sealed class OpsActor : ReceiveActor
{
    /// <summary>Asks for the endpoint's address; the answer is an IPEndPoint.</summary>
    public sealed record GetEndpoint
    {
        public static readonly GetEndpoint Instance = new();
    }

    private readonly OpsEndpoint? _endpoint;

    /// <param name="client">This node's ClientActor when it has the client role, else null.</param>
    /// <param name="localClient">This node's client id when it has the client role: a backup without --client backs up this host.</param>
    /// <param name="endpoint">The bound listener, which this actor serves and closes when it stops; null: none (tests hand it OpsCalls).</param>
    /// <param name="localReadsEveryClient">this node's client holds the cell key, not only its own client's keyring</param>
    public static Props Props(IActorRef manager, IActorRef media, IActorRef? client, string localClient = "", OpsEndpoint? endpoint = null, TimeSpan askTimeout = default,
        bool localReadsEveryClient = true, TimeSpan watchEvery = default) =>
        Akka.Actor.Props.Create(() => new OpsActor(new OpsCommand.Cell(manager, media, client, localClient, askTimeout)
        {
            LocalReadsEveryClient = localReadsEveryClient, WatchEvery = watchEvery == default ? OpsCommand.DefaultWatchEvery : watchEvery,
        }, endpoint));

    public OpsActor(OpsCommand.Cell cell, OpsEndpoint? endpoint)
    {
        _endpoint = endpoint;
        Receive<OpsCall>(call => Context.ActorOf(OpsCommand.Props(cell, call)));
        Receive<GetEndpoint>(_ => Sender.Tell(_endpoint?.Endpoint ?? new IPEndPoint(IPAddress.None, 0)));
    }

    protected override void PreStart() => _endpoint?.Start(Self);

    protected override void PostStop() => _endpoint?.Dispose();

    protected override SupervisorStrategy SupervisorStrategy() => Akka.Actor.SupervisorStrategy.StoppingStrategy;
}
