using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// On every node: keeps the node's refusals of revoked certificates up to date with the manager's list (abk cert
/// revoke). The list comes when the manager adds to it (topic <see cref="Manager.ManagerActor.RevocationsTopic"/>) and
/// is asked for soon after the node starts and every 30 minutes after (a node that was away, a manager that moved);
/// it is taken only as a manager node signed it and from the node the manager runs on (the oldest member with the
/// manager role: another node with a manager certificate cannot push one), and only ever adds refusals
/// (<see cref="NodeTrust.Learn"/>).
/// </summary>
public sealed class RevocationsActor : ReceiveActor, IWithTimers
{
    private readonly NodeTrust _trust;
    private readonly IActorRef _manager;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>How often the node asks the manager for the list (changes come at once on the topic; this covers a node that was away).</summary>
    public static readonly TimeSpan AskEvery = TimeSpan.FromMinutes(30);

    private sealed class Ask
    {
        public static readonly Ask Instance = new();
    }

    public static Props Props(NodeTrust trust, IActorRef manager, IActorRef mediator, TimeSpan? firstAsk = null) =>
        Akka.Actor.Props.Create(() => new RevocationsActor(trust, manager, mediator, firstAsk ?? TimeSpan.FromSeconds(10)));

    public RevocationsActor(NodeTrust trust, IActorRef manager, IActorRef mediator, TimeSpan firstAsk)
    {
        _trust = trust;
        _manager = manager;
        mediator.Tell(new Subscribe(Manager.ManagerActor.RevocationsTopic, Self));
        Timers.StartSingleTimer("first", Ask.Instance, firstAsk);
        Timers.StartPeriodicTimer("ask", Ask.Instance, AskEvery);
        Receive<Ask>(_ => _manager.Tell(new ListRevocations()));
        Receive<SubscribeAck>(_ => { });
        Receive<Revocations>(Take);
    }

    private void Take(Revocations list)
    {
        if (MessageSignature.NotFromManager(_trust, list) is { } refused)
        {
            _log.Warning("{0} (from {1})", refused, Sender);
            return;
        }
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var from = Sender.Path.Address.HasLocalScope ? cluster.SelfAddress : Sender.Path.Address;
        var manager = Hosting.ManagerNode.Of(cluster.State);
        if (manager is null || manager.Address != from)
        {
            _log.Warning("a list of revoked certificates from {0} refused: the manager runs on {1}", from, manager?.Address.ToString() ?? "no member now");
            // This node may not know the members yet (it was joining): asked again soon, not in half an hour.
            if (!Timers.IsTimerActive("again")) Timers.StartSingleTimer("again", Ask.Instance, TimeSpan.FromSeconds(30));
            return;
        }
        try
        {
            if (_trust.Learn(list.Revoked.Select(r => r.Serial).Take(Manager.ManagerState.MaxRevoked)))
                _log.Info("the cell's revoked certificates: {0} (refused by this node from now on)", list.Revoked.Count);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Error("the revoked certificates could not be written to this node's certs folder (they are refused until it stops): {0}", e.Message);
        }
    }
}
