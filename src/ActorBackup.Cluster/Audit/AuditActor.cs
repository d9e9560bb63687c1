using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Audit;

/// <summary>
/// The audit trail's writer (PersistenceId "audit", a child of the manager, started again by a backoff supervisor when
/// its journal fails): takes each record the manager sends, numbers it, chains it to the last (AuditTrail.Hash),
/// journals it and answers <see cref="Written"/>; never deletes one. It takes only <see cref="Write"/> and
/// <see cref="Read"/>, plain records that no node can send over the wire (only protobuf messages cross it): a node of the
/// cell cannot write into the trail nor read it but through the manager, which takes a read from an operator only. A
/// snapshot of how far it got every 1,000 records (its recovery does not read the whole trail, and a read starts there).
/// </summary>
public sealed class AuditActor : ReceivePersistentActor
{
    public const int SnapshotEvery = 1000;
    public const int MaxReaders = 2;

    /// <summary>A record to journal, number <paramref name="Ref"/> of the manager run <paramref name="Origin"/>.</summary>
    /// <param name="Floor">the oldest record of the run the manager still holds: those below it it let go (more than it
    /// keeps went unwritten), and the writer no longer waits for them</param>
    public sealed record Write(AuditRecord Record, string Origin, long Ref, long Floor = 0);

    /// <summary>Journaled (or journaled before), or refused by the journal (<paramref name="Refused"/>: why): the manager forgets it and those before it.</summary>
    public sealed record Written(string Origin, long Ref, string? Refused = null);

    /// <summary>A ListAudit, for <paramref name="ReplyTo"/>.</summary>
    public sealed record Read(ListAudit Query, IActorRef ReplyTo);

    public override string PersistenceId => "audit";

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _seq;
    private Google.Protobuf.ByteString _head = AuditTrail.Genesis;
    private (string Origin, long Ref) _last = ("", 0);
    /// <summary>Who sent the record being journaled (told if the journal refuses it).</summary>
    private IActorRef? _writing;
    private int _sinceSnapshot;
    private int _readers;
    private readonly int _snapshotEvery;
    private readonly long _window;

    /// <param name="snapshotEvery">records between the writer's snapshots (default <see cref="SnapshotEvery"/>)</param>
    /// <param name="window">how far back a read that is not whole starts (default <see cref="AuditReader.Window"/>)</param>
    public static Props Props(int snapshotEvery = SnapshotEvery, long window = AuditReader.Window) =>
        Akka.Actor.Props.Create(() => new AuditActor(snapshotEvery, window));

    /// <summary>The writer behind a supervisor that starts it again (1 s, doubling to 30 s) when its journal failed it.</summary>
    public static Props Supervised() => Akka.Pattern.BackoffSupervisor.Props(
        Akka.Pattern.Backoff.OnStop(Props(), "trail", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, maxNrOfRetries: -1));

    public AuditActor(int snapshotEvery, long window)
    {
        (_snapshotEvery, _window) = (snapshotEvery, window);
        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is not AuditHead h) return;
            (_seq, _head, _last) = (h.Seq, h.Hash, (h.Origin, h.Ref));
        });
        Recover<AuditRecord>(r => (_seq, _head, _last) = (r.Seq, r.Hash, (r.Origin, r.Ref)));
        Command<Write>(w =>
        {
            var sender = Sender;
            // A manager run's records are journaled in the order of their numbers, none left out: one sent while this
            // writer restarted went nowhere, and those after it wait until the manager sends them all again (in order,
            // 10 s on). So "written" answers for every record up to it, and one sent again is never taken for written.
            var next = Math.Max(w.Origin == _last.Origin ? _last.Ref + 1 : 1, w.Floor);
            if (w.Ref < next)
            {
                sender.Tell(new Written(w.Origin, w.Ref), ActorRefs.NoSender); // sent again after its answer was lost
                return;
            }
            if (w.Ref > next) return;
            var r = w.Record.Clone();
            (r.Seq, r.Origin, r.Ref) = (_seq + 1, w.Origin, w.Ref);
            r.Hash = AuditTrail.Hash(_head, r);
            // The head moves once journaled (Persist holds the next commands until then): a write the journal rejects
            // leaves the chain where it was, not pointing at a record that is not there.
            _writing = sender;
            Persist(r, e =>
            {
                (_seq, _head, _last) = (e.Seq, e.Hash, (e.Origin, e.Ref));
                sender.Tell(new Written(e.Origin, e.Ref), ActorRefs.NoSender);
                if (++_sinceSnapshot < _snapshotEvery) return;
                _sinceSnapshot = 0;
                SaveSnapshot(new AuditHead { Seq = _seq, Hash = _head, Origin = _last.Origin, Ref = _last.Ref });
            });
        });
        Command<Read>(q =>
        {
            if (_readers >= MaxReaders)
            {
                q.ReplyTo.Tell(new CommandRejected { Reason = $"{MaxReaders} reads of the audit trail run now: try again when they end" }, ActorRefs.NoSender);
                return;
            }
            _readers++;
            // Up to the journal's last number (a write it rejected took one too, and the records after it are read).
            Context.Watch(Context.ActorOf(AuditReader.Props(q.Query, q.ReplyTo, LastSequenceNr, _window)));
        });
        Command<Terminated>(_ => _readers--);
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(f => _log.Warning("audit trail snapshot failed: {0}", f.Cause.Message));
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "the audit trail could not journal record {0} ({1}): its journal failed; the manager sends it again", sequenceNr,
            (@event as AuditRecord)?.Command ?? "?");
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        // Refused for its content (not a journal down: that stops the writer): sent again it would be refused again, and
        // the records after it would wait for good. It is left out, said to the manager, and the next one goes on.
        _log.Error(cause, "the audit trail's journal refused record {0} ({1}): it is left out of the trail", sequenceNr, (@event as AuditRecord)?.Command ?? "?");
        if (@event is AuditRecord r)
        {
            _last = (r.Origin, r.Ref);
            _writing?.Tell(new Written(r.Origin, r.Ref, cause.Message), ActorRefs.NoSender);
        }
        base.OnPersistRejected(cause, @event, sequenceNr);
    }
}

/// <summary>
/// One read of the audit trail for a ListAudit: recovers PersistenceId "audit" up to the writer's last record, from the
/// writer's snapshot about <see cref="Window"/> records back (or, whole, from the first record), checks the chain as it
/// goes, keeps the newest records the query takes, answers and stops. It never journals.
/// </summary>
public sealed class AuditReader : ReceivePersistentActor
{
    /// <summary>How far back a read that is not whole starts: about this many records before the last.</summary>
    public const long Window = 100_000;

    public override string PersistenceId => "audit";
    public override Recovery Recovery { get; }

    private AuditTrail.Check _check = new();
    private readonly Queue<AuditRecord> _newest = new();
    private long _matched;
    private readonly IActorRef _replyTo;

    public static Props Props(ListAudit query, IActorRef replyTo, long upTo, long window = Window) =>
        Akka.Actor.Props.Create(() => new AuditReader(query, replyTo, upTo, window));

    public AuditReader(ListAudit query, IActorRef replyTo, long upTo, long window)
    {
        _replyTo = replyTo;
        Recovery = new Recovery(query.Whole || upTo <= window ? SnapshotSelectionCriteria.None : new SnapshotSelectionCriteria(upTo - window), upTo);
        var limit = AuditTrail.Limit(query);
        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is AuditHead h) _check = new AuditTrail.Check(h.Seq, h.Hash);
        });
        Recover<AuditRecord>(r =>
        {
            _check.Add(r);
            if (!AuditTrail.Matches(r, query)) return;
            _matched++;
            var shown = r.Clone();
            shown.Signed = Google.Protobuf.ByteString.Empty; // the answer stays small: the signed bytes are the trail's own proof
            _newest.Enqueue(shown);
            if (_newest.Count > limit) _newest.Dequeue();
        });
        Recover<RecoveryCompleted>(_ =>
        {
            _replyTo.Tell(new AuditList { Records = { _newest }, Total = _check.Seq, Matched = _matched, Head = _check.Head, Broken = _check.Broken, From = _check.From },
                ActorRefs.NoSender);
            Context.Stop(Self);
        });
        CommandAny(_ => { });
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _replyTo.Tell(new CommandRejected { Reason = $"the audit trail could not be read: {reason.Message}" }, ActorRefs.NoSender);
        base.OnRecoveryFailure(reason, message);
    }
}
