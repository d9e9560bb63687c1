using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// One job that has not ended, a child of the manager (named job-ID): the job's watchers, and, while an
/// attempt runs, its client — the assignment sent, the client's node watched, the client asked now and then
/// whether it still runs the job, a cancel that the client does not confirm. What it learns goes to the
/// manager as <see cref="JobLost"/> or <see cref="CancelUnconfirmed"/>; the manager decides and persists, and
/// tells it <see cref="Closed"/> when the job ended. It keeps nothing that a new manager could not rebuild.
/// </summary>
public sealed class JobActor : ReceiveActor, IWithTimers
{
    /// <summary>An attempt of the job started on <paramref name="Client"/>; <paramref name="Assignment"/> is sent to it (null: the
    /// client already runs it, as it said when it registered with a manager that just took over). <paramref name="Probe"/>:
    /// what it is asked now and then — a client, RegistrationRequest (the default); a media agent running a prune,
    /// GetLibraryStatus.</summary>
    /// <summary>From the manager: <paramref name="Watcher"/> (who sent a WatchJob the manager took) hears the job's progress and its end. Local only: no peer can send one.</summary>
    public sealed record Watch(IActorRef Watcher);

    /// <param name="Before">messages sent to the same target just before the assignment (its KeepPages parts), in order</param>
    public sealed record Attempt(int Number, IActorRef Client, IMessage? Assignment, IMessage? Probe = null, IReadOnlyList<IMessage>? Before = null);

    /// <summary>The attempt ended without ending the job (queued again for another attempt).</summary>
    public sealed record Requeued(int Attempt);

    /// <summary>The job ended as recorded: the watchers hear it, the actor stops.</summary>
    public sealed record Closed(JobInfo Job);

    /// <summary>To the manager: the client of the attempt is gone or no longer runs the job.</summary>
    public sealed record JobLost(string Job, int Attempt, string Reason);

    /// <summary>From the manager: stop the running attempt for <paramref name="Reason"/> (its maximum run time passed); as a cancel, the
    /// client confirms it or <see cref="CancelUnconfirmed"/> follows.</summary>
    public sealed record Stop(string Reason);

    /// <summary>To the manager: a cancel that the client did not confirm in time.</summary>
    public sealed record CancelUnconfirmed(string Job, int Attempt);

    private sealed record Probe;
    private sealed record CancelTimeout(int Attempt);

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly string _job;
    private readonly string _clientId;
    private readonly TimeSpan _probeEvery;
    private readonly TimeSpan _stallAfter;
    /// <summary>The running attempt's figures as its reports gave them: whether they stopped moving.</summary>
    private StallWatch _stall;
    private readonly HashSet<IActorRef> _watchers = [];
    private JobProgress? _progress;
    private Attempt? _attempt;
    private int _misses;
    /// <summary>A probe was sent, and whether anything answered it since.</summary>
    private bool _probed, _answered;

    /// <summary>Probes missed in a row before the job counts as lost: the client may have just finished it.</summary>
    public const int MissesBeforeLost = 2;

    /// <summary>
    /// Probes of a media agent's job (a prune, a copy, a check) left without any answer in a row before it counts as
    /// lost: 10 minutes at the default 30 s. An agent journaling a large sweep or commit answers nothing meanwhile
    /// (its commands wait for the write), and a job taken for lost then ended FAILED while it ran on, its drive given to
    /// another job. An agent that answers without the job still loses it at <see cref="MissesBeforeLost"/>.
    /// </summary>
    public const int MediaSilencesBeforeLost = 20;

    public static string NameOf(string job) => "job-" + Uri.EscapeDataString(job);

    /// <param name="stallAfter">a running attempt whose reported figures stay as they are this long is taken for lost
    /// (<see cref="StallWatch"/>); zero: never</param>
    public static Props Props(string job, string clientId, TimeSpan probeEvery, TimeSpan stallAfter = default) =>
        Akka.Actor.Props.Create(() => new JobActor(job, clientId, probeEvery, stallAfter));

    public JobActor(string job, string clientId, TimeSpan probeEvery, TimeSpan stallAfter)
    {
        _job = job;
        _clientId = clientId;
        _probeEvery = probeEvery;
        _stallAfter = stallAfter;
        _stall = new StallWatch(stallAfter);

        Receive<Attempt>(a =>
        {
            Detach();
            _attempt = a;
            Context.Watch(a.Client);
            if (a.Assignment is not null)
            {
                foreach (var before in a.Before ?? []) a.Client.Tell(before, Context.Parent);
                a.Client.Tell(a.Assignment, Context.Parent);
            }
            // A single timer, armed again as each probe goes: a periodic one queues its ticks in the mailbox while the
            // actor waits for a thread (a busy machine, a GC pause), and the second of two back to back would count
            // the first probe as unanswered before its answer had any time to come.
            Timers.StartSingleTimer("probe", new Probe(), _probeEvery);
        });
        Receive<Requeued>(r =>
        {
            if (_attempt is not null && _attempt.Number <= r.Attempt) Detach();
            _progress = null;
        });
        Receive<Probe>(_ =>
        {
            if (_attempt is null) return;
            if (_stall.Stalled(Monotonic.Now, _clientId) is { } stalled)
            {
                // Its threads are told to stop (they may, unless a read hangs in the kernel); a next attempt starts on the
                // client only once this one has ended there, and is watched the same way.
                _attempt.Client.Tell(Trust.MessageSignature.Sign(new CancelAssignment { Job = _job, Reason = "stopped by the manager: " + stalled }, Trust.NodeTrust.Of(Context.System)));
                Lost(stalled);
                return;
            }
            // A probe that got no answer at all (a media node that is gone does not answer through its region)
            // counts as an answer without the job.
            if (_probed && !_answered && ++_misses >= (_attempt.Probe is GetLibraryStatus ? MediaSilencesBeforeLost : MissesBeforeLost))
            {
                Lost(_attempt.Probe is GetLibraryStatus s ? $"the media agent of library {s.Library} does not answer (its node is down?)" : $"client {_clientId} does not answer");
                return;
            }
            _probed = true;
            _answered = false;
            Timers.StartSingleTimer("probe", new Probe(), _probeEvery);
            _attempt.Client.Tell(_attempt.Probe ?? new RegistrationRequest());
        });
        Receive<IndexReport>(r => // a media agent's answer to a probe: does it still run this job (a prune, a copy)?
        {
            if (_attempt?.Probe is not GetLibraryStatus probed) return;
            // Only the probed library's, signed by a media node of it (as the manager takes reports): a node that learnt
            // this actor's address can neither lose a running job nor keep a lost one alive with reports of its own.
            var refused = r.Library != probed.Library ? $"a report of library {r.Library}, not {probed.Library}, ignored"
                : Trust.MessageSignature.Refusal(Trust.NodeTrust.Of(Context.System), r, id => Trust.MessageSignature.IsMediaNode(id, probed.Library), $"a media node of library {probed.Library}");
            if (refused is not null)
            {
                Context.GetLogger().Warning("job {0}: {1} (from {2})", _job, refused, Sender);
                return;
            }
            _answered = true;
            if (r.PruneJob == _job || r.Jobs.Contains(_job))
            {
                _misses = 0;
                return;
            }
            if (++_misses >= MissesBeforeLost) Lost($"the media agent of library {r.Library} no longer runs the job (its node restarted?)");
        });
        Receive<RegisterClient>(r => // the client's answer to a probe
        {
            if (_attempt is null || !Sender.Equals(_attempt.Client)) return;
            _answered = true;
            if (r.RunningJobs.Contains(_job))
            {
                _misses = 0;
                return;
            }
            if (++_misses < MissesBeforeLost) return;
            Lost($"client {_clientId} no longer runs the job (its node restarted, or the assignment was lost)");
        });
        Receive<Terminated>(t =>
        {
            if (_watchers.Remove(t.ActorRef)) return;
            if (_attempt is not null && t.ActorRef.Equals(_attempt.Client))
                Lost($"client {_clientId} vanished while the job ran (node down or stopped)");
        });
        // Both from the manager only: a node that learnt this actor's address (a watch's answers carry it) can neither
        // watch a job it was not allowed to (the manager took the WatchJob signed by its caller) nor fake progress.
        Receive<JobProgress>(p =>
        {
            if (!Sender.Equals(Context.Parent)) return;
            _progress = p;
            if (_attempt is not null) _stall = _stall.Heard(p, Monotonic.Now);
            foreach (var w in _watchers) w.Tell(p);
        });
        Receive<Watch>(w =>
        {
            if (!Sender.Equals(Context.Parent)) return;
            if (_watchers.Add(w.Watcher)) Context.Watch(w.Watcher);
            if (_progress is not null) w.Watcher.Tell(_progress);
        });
        // From the manager only (which took it signed by its caller): a node that learnt this actor's address from a
        // watch's answers gets nothing cancelled by sending it here.
        Receive<CancelJob>(_ =>
        {
            if (Sender.Equals(Context.Parent)) Cancel("");
        });
        Receive<Stop>(s =>
        {
            if (Sender.Equals(Context.Parent)) Cancel("stopped by the manager: " + s.Reason);
        });
        Receive<CancelTimeout>(c =>
        {
            if (_attempt?.Number == c.Attempt) Context.Parent.Tell(new CancelUnconfirmed(_job, c.Attempt));
        });
        Receive<Closed>(c =>
        {
            foreach (var w in _watchers) w.Tell(c.Job);
            Context.Stop(Self);
        });
    }

    /// <summary>The running attempt's client told to stop (a signed cancel), and the manager told if it does not confirm in time.</summary>
    private void Cancel(string reason)
    {
        if (_attempt is null) return;
        _attempt.Client.Tell(Trust.MessageSignature.Sign(new CancelAssignment { Job = _job, Reason = reason }, Trust.NodeTrust.Of(Context.System)));
        // Counted from the first cancel: one asked again (a shell run again, a script) does not put the end off.
        if (!Timers.IsTimerActive("cancel")) Timers.StartSingleTimer("cancel", new CancelTimeout(_attempt.Number), _probeEvery);
    }

    private void Lost(string reason)
    {
        var attempt = _attempt!.Number;
        Detach();
        Context.Parent.Tell(new JobLost(_job, attempt, reason));
    }

    /// <summary>No attempt runs any more: its client is no longer watched nor asked.</summary>
    private void Detach()
    {
        if (_attempt is not null && !_watchers.Contains(_attempt.Client)) Context.Unwatch(_attempt.Client);
        _attempt = null;
        _misses = 0;
        _probed = _answered = false;
        _stall = new StallWatch(_stallAfter);
        Timers.Cancel("probe");
        Timers.Cancel("cancel");
    }
}
