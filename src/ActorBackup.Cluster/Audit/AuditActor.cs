using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Audit;

/// <summary>
/// The audit trail's writer (PersistenceId "audit", a child of the manager, restarted by a backoff supervisor when its
/// journal fails): takes each record the manager sends, numbers it, chains it to the last (AuditTrail.Hash), and
/// journals it; never deletes one. A snapshot of how far it got every 1,000 records (its recovery does not read the
/// whole trail). A ListAudit is answered by an <see cref="AuditReader"/> that reads the trail from its first record,
/// two at a time at most.
/// </summary>
public sealed class AuditActor : ReceivePersistentActor
{
    public const int SnapshotEvery = 1000;
    public const int MaxReaders = 2;

    public override string PersistenceId => "audit";

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _seq;
    private Google.Protobuf.ByteString _head = AuditTrail.Genesis;
    private int _sinceSnapshot;
    private int _readers;

    public static Props Props() => Akka.Actor.Props.Create(() => new AuditActor());

    /// <summary>The writer behind a supervisor that starts it again (1 s, doubling to 30 s) when its journal failed it.</summary>
    public static Props Supervised() => Akka.Pattern.BackoffSupervisor.Props(
        Akka.Pattern.Backoff.OnStop(Props(), "trail", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, maxNrOfRetries: -1));

    public AuditActor()
    {
        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is not AuditHead h) return;
            (_seq, _head) = (h.Seq, h.Hash);
        });
        Recover<AuditRecord>(r => (_seq, _head) = (r.Seq, r.Hash));
        Command<AuditRecord>(r =>
        {
            r.Seq = _seq + 1;
            r.Hash = AuditTrail.Hash(_head, r);
            (_seq, _head) = (r.Seq, r.Hash);
            Persist(r, _ =>
            {
                if (++_sinceSnapshot < SnapshotEvery) return;
                _sinceSnapshot = 0;
                SaveSnapshot(new AuditHead { Seq = _seq, Hash = _head });
            });
        });
        Command<ListAudit>(q =>
        {
            if (_readers >= MaxReaders)
            {
                Sender.Tell(new CommandRejected { Reason = $"{MaxReaders} reads of the audit trail run now: try again when they end" });
                return;
            }
            _readers++;
            Context.Watch(Context.ActorOf(AuditReader.Props(q, Sender, _seq)));
        });
        Command<Terminated>(_ => _readers--);
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(f => _log.Warning("audit trail snapshot failed: {0}", f.Cause.Message));
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "the audit trail could not journal record {0} ({1}): its journal failed; the trail starts again after it", sequenceNr,
            (@event as AuditRecord)?.Command ?? "?");
        base.OnPersistFailure(cause, @event, sequenceNr);
    }
}

/// <summary>
/// One read of the audit trail for a ListAudit: recovers PersistenceId "audit" from its first record (no snapshot) up
/// to the writer's last, checks the chain as it goes, keeps the newest records the query takes, answers and stops. It
/// never journals.
/// </summary>
public sealed class AuditReader : ReceivePersistentActor
{
    public override string PersistenceId => "audit";
    public override Recovery Recovery { get; }

    private readonly AuditTrail.Check _check = new();
    private readonly Queue<AuditRecord> _newest = new();
    private long _matched;

    public static Props Props(ListAudit query, IActorRef replyTo, long upTo) => Akka.Actor.Props.Create(() => new AuditReader(query, replyTo, upTo));

    private readonly IActorRef _replyTo;

    public AuditReader(ListAudit query, IActorRef replyTo, long upTo)
    {
        _replyTo = replyTo;
        Recovery = new Recovery(SnapshotSelectionCriteria.None, upTo);
        var limit = AuditTrail.Limit(query);
        Recover<AuditRecord>(r =>
        {
            _check.Add(r);
            if (!AuditTrail.Matches(r, query)) return;
            _matched++;
            var shown = r.Clone();
            shown.Signed = Google.Protobuf.ByteString.Empty; // the answer stays small: the signed bytes are for the trail's own proof
            _newest.Enqueue(shown);
            if (_newest.Count > limit) _newest.Dequeue();
        });
        Recover<RecoveryCompleted>(_ =>
        {
            _replyTo.Tell(new AuditList { Records = { _newest }, Total = _check.Seq, Matched = _matched, Head = _check.Head, Broken = _check.Broken });
            Context.Stop(Self);
        });
        CommandAny(_ => { });
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _replyTo.Tell(new CommandRejected { Reason = $"the audit trail could not be read: {reason.Message}" });
        base.OnRecoveryFailure(reason, message);
    }
}
