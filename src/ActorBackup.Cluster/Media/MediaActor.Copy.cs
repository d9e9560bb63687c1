using System.Diagnostics;
using ActorBackup.Cluster.DataPlane;
using ActorBackup.Engine.Hashing;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorBackup.Cluster.Media;

// A copy job on this (the target) library: a read session on the source library, its reference list of the
// snapshot, then every chunk this library lacks read from the source and appended here as stored (encrypted
// records need no key), the reference list written beside these volumes, one commit. Chunks another backup is
// storing meanwhile are not stored twice (TryReserve).
public sealed partial class MediaActor
{
    private sealed record CopySourceOpened(CopySnapshot Request, IActorRef ReplyTo, SessionOpened Session);
    /// <param name="Into">the library object the copy wrote into: its writes are committed only if it is still the open one</param>
    /// <param name="Unhealed">a heal that could not read some chunks from its source either: what the job's failure says (the others are committed)</param>
    private sealed record CopyRead(CopySnapshot Request, IActorRef ReplyTo, string Ticket, CopyReport Report, string? Error, Engine.Library.DiskLibrary? Into = null,
                                   string? Unhealed = null);

    /// <summary>Copy jobs running here (they hold no state besides: the data plane does the work).</summary>
    private readonly Dictionary<string, CopySnapshot> _copies = [];

    private static readonly TimeSpan CopySessionTimeout = TimeSpan.FromSeconds(30);

    private void CopyCommands()
    {
        Command<CopySnapshot>(m =>
        {
            if (!FromManager(m)) return;
            if (_copies.TryGetValue(m.Job, out var running))
            {
                // The same job asked again (the manager thought this agent lost it): the copy that runs answers for the
                // newest attempt, whose end the manager takes.
                if (m.Attempt > running.Attempt) _copies[m.Job] = m;
                return;
            }
            _copies[m.Job] = m;
            StartCopy(m, Sender);
        });
        CopyResults();
    }

    /// <summary>A copy's first step: a read session on its source library, under the request's ticket.</summary>
    private void StartCopy(CopySnapshot m, IActorRef replyTo) =>
        MediaRegion
            .Ask<object>(new OpenSession { Library = m.SourceLibrary, Job = m.Job, Write = false, Ticket = m.Ticket }, CopySessionTimeout)
            .PipeTo(Self,
                success: r => r is SessionOpened s ? new CopySourceOpened(m, replyTo, s)
                    : new CopyRead(m, replyTo, "", new CopyReport(), $"the source library {m.SourceLibrary} refused a read session: {(r as CommandRejected)?.Reason ?? r.GetType().Name}"),
                failure: e => new CopyRead(m, replyTo, "", new CopyReport(), $"the source library {m.SourceLibrary} did not answer: {Why(e)}"));

    /// <summary>
    /// A copy's steps as they come back, whatever the library's state by then (a copy whose library became unavailable
    /// or was opened again meanwhile ends failed, to be run again: it must not stay running here for ever, holding
    /// every later prune, nor commit another library object than the one it wrote into).
    /// </summary>
    private void CopyResults()
    {
        Command<CopySourceOpened>(o =>
        {
            var library = _library;
            if (library is null)
            {
                Self.Tell(new CopyRead(o.Request, o.ReplyTo, o.Session.Ticket, new CopyReport(), $"library {_declaration.Id} is not open"));
                return;
            }
            var sessions = DataPlaneSessions.Get(Context.System);
            var media = MediaRegion;
            // A thread of its own: a copy reads and writes for minutes and waits on other media agents' answers.
            LongRunning(() => Copy(o, library, sessions, media)).PipeTo(Self,
                failure: e => new CopyRead(o.Request, o.ReplyTo, o.Session.Ticket, new CopyReport(), Why(e)));
        });
        Command<CopyRead>(r =>
        {
            if (r.Ticket != "")
                MediaRegion.Tell(new CloseSession { Library = r.Request.SourceLibrary, Ticket = r.Ticket });
            if (r.Error is not null)
            {
                if (_copies.TryGetValue(r.Request.Job, out var newest) && newest.Attempt > r.Request.Attempt && _library is not null)
                {
                    // The manager asked again while this ran (it took this agent for lost) and ended the earlier
                    // attempt's sessions on the source, which is likely what failed it: the copy starts again under the
                    // newest attempt's ticket, once for each newer attempt (what it appended already is not sent again:
                    // Missing counts it); failing under the newest, it ends failed.
                    _log.Info("library {0}: copy of snapshot {1} (job {2}) starts again under attempt {3}: {4}", _declaration.Id, r.Request.Snapshot, r.Request.Job, newest.Attempt, r.Error);
                    StartCopy(newest, r.ReplyTo);
                    return;
                }
                CopyEnded(r, false, $"copy of snapshot {r.Request.Snapshot} from {r.Request.SourceLibrary} to {_declaration.Id}: {r.Error}");
                return;
            }
            if (_library is null || (r.Into is not null && !ReferenceEquals(r.Into, _library)))
            {
                CopyEnded(r, false, $"library {_declaration.Id} was closed during the copy (nothing of it committed): it runs again", JobFault.FaultLibrary);
                return;
            }
            Engine.Library.CommitBatch batch;
            try
            {
                batch = _library.Commit();
            }
            catch (IOException e)
            {
                CopyEnded(r, false, $"library {_declaration.Id} could not commit the copy: {e.Message}", JobFault.FaultLibrary);
                if (_library?.Broken is { } broken) Unavailable(broken);
                return;
            }
            PersistBatch(batch, r.Request.Job, e =>
            {
                Committed(batch);
                AfterPersist(e.Volumes);
                if (r.Unhealed is { } unhealed) CopyEnded(r, false, $"heal of snapshot {r.Request.Snapshot} on {_declaration.Id}: {unhealed}", JobFault.FaultNone);
                else CopyEnded(r, true, "");
            });
        });
    }

    /// <summary>
    /// Off the actor's thread: the chunks this library lacks, read from the source (and the libraries a spanning
    /// snapshot spans, each through a read session of its own) and appended as stored.
    /// </summary>
    private static CopyRead Copy(CopySourceOpened o, Engine.Library.DiskLibrary library, DataPlaneSessions sessions, IActorRef media)
    {
        // This thread writes the copy: on tape, in the drive of this library the job holds (its ticket names it).
        using var served = Engine.Tape.TapeMedium.WorkingFor(o.Request.Job, Trust.JobTickets.DriveIn(o.Request.Ticket, library.Id), writes: true);
        return CopyAll(o, library, sessions, media);
    }

    private static CopyRead CopyAll(CopySourceOpened o, Engine.Library.DiskLibrary library, DataPlaneSessions sessions, IActorRef media)
    {
        using var first = sessions.Connect(o.Session, TimeSpan.FromMinutes(5));
        var spans = new List<(string Library, IDataPlaneChannel Channel)>();
        try
        {
            foreach (var span in o.Request.SourceSpans)
            {
                var reply = media.Ask<object>(new OpenSession { Library = span, Job = o.Request.Job, Write = false, Ticket = o.Request.Ticket }, CopySessionTimeout).GetAwaiter().GetResult();
                if (reply is not SessionOpened opened)
                    throw new IOException($"library {span}, which snapshot {o.Request.Snapshot} spans, refused a read session: {(reply as CommandRejected)?.Reason ?? reply.GetType().Name}");
                try
                {
                    spans.Add((span, sessions.Connect(opened, TimeSpan.FromMinutes(5))));
                }
                catch
                {
                    media.Tell(new CloseSession { Library = span, Ticket = opened.Ticket });
                    throw;
                }
            }
            return Copy(o, library, first, spans.Select(s => s.Channel).ToList());
        }
        finally
        {
            foreach (var (span, channel) in spans)
            {
                media.Tell(new CloseSession { Library = span, Ticket = channel.Ticket });
                channel.Dispose();
            }
        }
    }

    private static CopyRead Copy(CopySourceOpened o, Engine.Library.DiskLibrary library, IDataPlaneChannel first, IReadOnlyList<IDataPlaneChannel> spans)
    {
        var clock = Stopwatch.StartNew();
        var report = new CopyReport();
        var source = spans.Count == 0 ? (Engine.Codec.IChunkSource)first : new Engine.Spanning.SpanningSource([first, .. spans]);
        var buffer = new byte[64 * 1024];
        if (o.Request.Heal.Count > 0)
        {
            // A heal: these chunks are damaged here; good copies from the source go over them (the index then
            // points to the new records; the damaged ones are dead bytes that a prune compacts away).
            // One damaged at the source too does not stop the others (a lost connection does: the heal runs again).
            var unread = new List<string>();
            foreach (var raw in o.Request.Heal)
            {
                if (raw.Length != ChunkId.Size) continue;
                var id = new ChunkId(raw.Span);
                var read = false;
                try
                {
                    var payload = source.ReadPayload(id, ref buffer, out var flags);
                    read = true;
                    library.Append(id, flags, payload); // a failure here is the library's: the heal fails, as before
                    report.BytesSent += payload.Length;
                }
                catch (Exception e) when (!read && Engine.Codec.SourceFault.IsDamage(e))
                {
                    unread.Add($"{id.Short}: {e.Message}");
                    continue;
                }
                report.Chunks++;
                report.ChunksSent++;
            }
            report.Seconds = clock.Elapsed.TotalSeconds;
            var unhealed = unread.Count == 0 ? null
                : $"{unread.Count} of the {o.Request.Heal.Count} damaged chunks could not be read from library {o.Request.SourceLibrary} either " +
                  $"({string.Join("; ", unread.Take(3))}{(unread.Count > 3 ? "; ..." : "")}); the other {report.ChunksSent} are healed. A backup of a host that " +
                  "still has their data stores them again; 'abk verify' of the snapshot on another library that holds it says whether one still can";
            return new CopyRead(o.Request, o.ReplyTo, o.Session.Ticket, report, null, library, unhealed);
        }
        // Each library a snapshot spans keeps the ids it holds: the snapshot's are their union.
        var ids = spans.Count == 0 ? first.ReadReferences(o.Request.Snapshot)
            : spans.Prepend(first).SelectMany(c => c.ReadReferences(o.Request.Snapshot)).Distinct().ToArray();
        report.Chunks = ids.Length;
        const int batch = 4096;
        for (var start = 0; start < ids.Length; start += batch)
        {
            var part = new ArraySegment<ChunkId>(ids, start, Math.Min(batch, ids.Length - start));
            foreach (var id in library.Missing(part))
            {
                if (!library.TryReserve(id)) continue; // another writer stored it meanwhile
                try
                {
                    var payload = source.ReadPayload(id, ref buffer, out var flags);
                    library.Append(id, flags, payload);
                    report.ChunksSent++;
                    report.BytesSent += payload.Length;
                }
                catch
                {
                    library.Release(id);
                    throw;
                }
            }
        }
        if (o.Request.ReadBack)
            // A tier move drops the fast copy afterwards, and a copy kept by its own retention may outlive the primary:
            // every record of the snapshot here is read back and its checksum and id checked first.
            foreach (var id in ids)
            {
                library.ReadPayload(id, ref buffer, out _);
                report.ChunksReadBack++;
            }
        library.AddReferences(o.Request.Snapshot, ids);
        report.Seconds = clock.Elapsed.TotalSeconds;
        return new CopyRead(o.Request, o.ReplyTo, o.Session.Ticket, report, null, library);
    }

    private void CopyEnded(CopyRead r, bool ok, string reason, JobFault fault = JobFault.FaultTransient)
    {
        var attempt = _copies.Remove(r.Request.Job, out var newest) ? Math.Max(newest.Attempt, r.Request.Attempt) : r.Request.Attempt;
        PruneSessionClosed(CopyKey(r.Request.Job)); // a prune that began while it ran may go on
        if (ok) _log.Info($"library {_declaration.Id}: copy of snapshot {r.Request.Snapshot} from {r.Request.SourceLibrary} (job {r.Request.Job}): " +
                          $"{r.Report.ChunksSent} of {r.Report.Chunks} chunks sent, {r.Report.BytesSent} bytes, {r.Report.Seconds:F1} s");
        else _log.Warning("library {0}: {1}", _declaration.Id, reason);
        (_manager ?? r.ReplyTo).Tell(Signed(new JobFinished
        {
            Job = r.Request.Job, Attempt = attempt, Ok = ok, Outcome = ok ? JobState.Succeeded : JobState.Failed, Reason = reason,
            Fault = ok ? JobFault.FaultNone : fault, Copy = r.Report,
        }));
    }
}
