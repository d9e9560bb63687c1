using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace ActorBackup.Cluster.Hosting;

/// <summary>
/// Whether this node is left in a split cell: a cell whose only manager node left (a reboot) and which that node, its
/// lone first seed, formed anew without the others. The nodes left in the old cell reach no manager and no library,
/// and would wait for good. Such a node leaves (and exits 75, to join again through its seeds) once its cell has had no
/// member with the manager role for the timeout and, on <see cref="Rounds"/> rounds of asking one after another, a seed
/// that is not a member of its cell answered from a cell of its own. A manager node that is merely down (a long
/// reboot, a cell whose other seeds let it come back into this cell) answers nothing, or comes back as a member: the
/// node stays, and its running jobs go on. Plain state: <see cref="ManagerAbsenceActor"/> feeds it.
/// "From a cell of its own": the seed runs the manager (its singleton, /user/manager/manager, is there: only the
/// manager's node of a formed cell has it) and is not a member of this node's cell; a seed merely running (joining, or
/// a node without the manager) does not count.
/// </summary>
public sealed class ManagerAbsence(TimeSpan timeout)
{
    /// <summary>How many rounds in a row a seed outside this cell must answer before the node leaves.</summary>
    public const int Rounds = 3;

    private readonly HashSet<UniqueAddress> _managers = [];
    private bool _member;
    private DateTimeOffset? _since;
    private int _rounds;

    /// <summary>This node is a member (Up): the absence counts from now if no manager is in the cell.</summary>
    public void SelfUp(DateTimeOffset now)
    {
        _member = true;
        if (_managers.Count == 0) _since ??= now;
    }

    /// <summary>A member with the manager role is in the cell (up, or leaving: it is still there).</summary>
    public void ManagerSeen(UniqueAddress member)
    {
        _managers.Add(member);
        _since = null;
        _rounds = 0;
    }

    /// <summary>A member with the manager role left the cell (removed).</summary>
    public void ManagerRemoved(UniqueAddress member, DateTimeOffset now)
    {
        if (_managers.Remove(member) && _managers.Count == 0 && _member) _since = now;
    }

    /// <summary>Whether the cell has had no manager for the whole timeout, this node a member (never when the timeout is zero).</summary>
    public bool Absent(DateTimeOffset now) => timeout > TimeSpan.Zero && _member && _managers.Count == 0 && _since is { } since && now - since >= timeout;

    /// <summary>A round of asking the seeds that are not members of this cell ended: whether any answered.</summary>
    public void RoundEnded(bool answeredFromOutside) => _rounds = answeredFromOutside ? _rounds + 1 : 0;

    /// <summary>Whether the node should leave: no manager for the timeout, and a seed outside the cell answering round after round.</summary>
    public bool ShouldLeave(DateTimeOffset now) => Absent(now) && _rounds >= Rounds;
}

/// <summary>
/// On a node without the manager role: watches the cell's members for one with the manager role; while the cell has
/// had none for the timeout, asks each seed that is not a member of the cell whether the manager runs there (Akka's
/// Identify of its singleton's path), and when one says so round after round (<see cref="ManagerAbsence"/>) runs
/// coordinated shutdown with <see cref="ManagerAbsentReason"/>: the node exits 75 and is started again by its service
/// manager.
/// </summary>
public sealed class ManagerAbsenceActor : ReceiveActor, IWithTimers
{
    private readonly ManagerAbsence _absence;
    private readonly TimeSpan _timeout;
    private readonly IReadOnlyList<Address> _seeds;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _asking;
    private Address? _answered;
    public ITimerScheduler Timers { get; set; } = null!;

    public const string Name = "manager-absence";

    /// <summary>Where the manager runs on its node: the singleton's instance (the backoff supervisor of ManagerActor).</summary>
    private static readonly string[] ManagerPath = ["user", "manager", "manager"];

    /// <param name="timeout">how long the cell may have no manager</param>
    public static Props Props(TimeSpan timeout, IReadOnlyList<Address> seeds) => Akka.Actor.Props.Create(() => new ManagerAbsenceActor(timeout, seeds));

    private sealed class Check
    {
        public static readonly Check Instance = new();
    }

    public ManagerAbsenceActor(TimeSpan timeout, IReadOnlyList<Address> seeds)
    {
        _timeout = timeout;
        _seeds = seeds;
        _absence = new ManagerAbsence(timeout);
        Receive<ClusterEvent.MemberUp>(m => Seen(m.Member));
        Receive<ClusterEvent.MemberLeft>(m => Seen(m.Member));
        Receive<ClusterEvent.MemberExited>(m => Seen(m.Member));
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            if (m.Member.HasRole("manager")) _absence.ManagerRemoved(m.Member.UniqueAddress, DateTimeOffset.UtcNow);
        });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<ActorIdentity>(a =>
        {
            // The manager runs at a seed outside this cell: the split this watch is for.
            if (a is { MessageId: string said, Subject: not null } && Address.TryParse(said, out var seed) && !IsMember(seed)) _answered = seed;
        });
        Receive<Check>(_ => Tick());
    }

    private bool IsMember(Address address) => _cluster.State.Members.Any(m => m.Address == address);

    private void Tick()
    {
        var now = DateTimeOffset.UtcNow;
        if (!_absence.Absent(now))
        {
            _asking = false;
            return;
        }
        if (_asking) _absence.RoundEnded(_answered is not null);
        if (_absence.ShouldLeave(now))
        {
            _log.Error("no member of this node's cell has had the manager role for {0}, and the manager runs at seed {1}, outside it: the manager's node left and " +
                       "formed a cell anew without this one (a lone first seed started again). This node leaves and exits 75 to join again through its seeds " +
                       "(list several long-lived nodes in akka.cluster.seed-nodes; actorbackup.manager-absent-timeout)", _timeout, _answered!);
            Timers.CancelAll();
            CoordinatedShutdown.Get(Context.System).Run(ManagerAbsentReason.Instance);
            return;
        }
        _asking = true;
        _answered = null;
        foreach (var seed in _seeds.Where(s => s != _cluster.SelfAddress && !IsMember(s)))
            Context.ActorSelection(ManagerPath.Aggregate((ActorPath)new RootActorPath(seed), (p, n) => p / n)).Tell(new Identify(seed.ToString()), Self); // a string: an Address has no serializer
    }

    private void Seen(Member member)
    {
        if (member.Address == _cluster.SelfAddress && member.Status == MemberStatus.Up) _absence.SelfUp(DateTimeOffset.UtcNow);
        if (member.HasRole("manager")) _absence.ManagerSeen(member.UniqueAddress);
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer("check", Check.Instance, TimeSpan.FromSeconds(Math.Clamp(_timeout.TotalSeconds / 10, 0.2, 10)));
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);
}

/// <summary>The node left its cell because the cell had no manager and a seed ran in another (<see cref="ManagerAbsenceActor"/>).</summary>
public sealed class ManagerAbsentReason : CoordinatedShutdown.Reason
{
    public static readonly ManagerAbsentReason Instance = new();
    private ManagerAbsentReason() { }
    /// <summary>EX_TEMPFAIL, as a downed node's: started again by its service manager, it joins through its seeds.</summary>
    public override int ExitCode => 75;
}
