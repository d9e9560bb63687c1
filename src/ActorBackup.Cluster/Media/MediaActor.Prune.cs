using System.Diagnostics;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;
using Google.Protobuf;

namespace ActorBackup.Cluster.Media;

// A prune job on this library (DiskLibrary.Prune.cs says how the race with running backups is closed):
//   begin (chunks answered as present are kept from now on)
//   -> wait until every write session open at the beginning has closed
//   -> mark, off the actor's thread: the live set from the reference lists
//   -> sweep: dead chunks leave the index, journaled (IndexEntriesRemoved) before anything else
//   -> per volume at least the threshold dead: copy its live records (off the thread), commit and journal their
//      new places, mark it Recycle and journal that, then delete its file.
// Killed at any point, the journal holds a consistent index: at worst a volume is compacted again next time.
public sealed partial class MediaActor
{
    private sealed class PruneRun(PruneLibrary request, IActorRef replyTo, HashSet<string> waiting, bool cannotWrite)
    {
        /// <summary>The library cannot write (a full disk): the prune sweeps and deletes the volumes that are wholly dead, copying nothing.</summary>
        public bool CannotWrite { get; } = cannotWrite;
        /// <summary>What was asked: the attempt its end answers is the newest the manager asked (<see cref="PruneCommands"/>).</summary>
        public PruneLibrary Request { get; set; } = request;
        public IActorRef ReplyTo { get; set; } = replyTo;
        /// <summary>Write sessions open when the prune began: it sweeps once they have all closed.</summary>
        public HashSet<string> Waiting { get; } = waiting;
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public PruneReport Report { get; } = new() { DryRun = request.DryRun };
        public Queue<uint> Volumes { get; } = new();
        /// <summary>The lists the catalog does not know were too many to drop (<see cref="UnknownListsRefusal"/>): kept as live, said in the report.</summary>
        public bool KeepUnknown { get; set; }
        /// <summary>Deleted snapshots whose lists were written after the request was built (<see cref="Removable"/>): live, not said handled. Set on the actor's thread.</summary>
        public IReadOnlySet<string> Spared { get; set; } = new HashSet<string>();
    }

    /// <summary>
    /// The deleted snapshots of <paramref name="request"/> whose lists it may remove, and those it spares: one whose list
    /// was written after the manager built the request (a copy of it made here again since, whose record had not reached
    /// the manager then) is live for this prune (whatever the orphans' age) and not said handled: a later prune decides on
    /// it. A list written before is removed however recent (an operator's delete and prune of a backup just made). The
    /// guard compares the manager's clock with this file system's: one stamping behind narrows it by as much, one ahead
    /// spares a few more for a while (NTP keeps both to milliseconds).
    /// </summary>
    private static (List<string> Removable, HashSet<string> Spared) Removable(PruneLibrary request, DiskLibrary library)
    {
        var spared = new HashSet<string>(StringComparer.Ordinal);
        if (request.AskedUnixMs <= 0) return ([.. request.Deleted], spared);
        var asked = DateTimeOffset.FromUnixTimeMilliseconds(request.AskedUnixMs).UtcDateTime;
        var deleted = new List<string>();
        foreach (var id in request.Deleted)
            if (library.ReferencesWritten(id) is { } written && written >= asked) spared.Add(id);
            else deleted.Add(id);
        return (deleted, spared);
    }

    // Each step's result names its run: one that comes after its run ended (the library closed, say) and another began
    // is dropped, never taken for the new run's (a live set marked before the new run's candidates were taken).
    private sealed record PruneMarked(PruneRun Run, HashSet<ChunkId> Live, List<string> Missing, List<string> Damaged, List<string> DeadLists, HashSet<string> Spared);
    private sealed record PruneCopied(PruneRun Run, uint Volume, int Records, long Bytes, List<string> Problems);
    private sealed record PruneStepFailed(PruneRun Run, string Reason);

    private PruneRun? _prune;

    private JournalWatch? _journal;
    /// <summary>The manager's journal as this library saw it (kept in the library's folder).</summary>
    private JournalWatch ManagerJournal => _journal ??= new JournalWatch(_declaration.Path);

    /// <summary>The sequence number a ticket used here carries (0: a manager that sends none).</summary>
    private void SawJournal(long sequence)
    {
        if (sequence > 0) KeepingJournal(() => ManagerJournal.Used(sequence, DateTimeOffset.UtcNow));
    }

    /// <summary>The sequence number a prune request carries, stamped as the manager asked for it: said once it shows the manager's journal went back.</summary>
    private void PruneAskedAt(long sequence) => KeepingJournal(() =>
    {
        if (ManagerJournal.Asked(sequence, DateTimeOffset.UtcNow))
            _log.Error("library {0}: {1}; its prunes keep every reference list the catalog does not know until 'abk catalog rebuild {0}' is recorded", _declaration.Id, ManagerJournal.Behind);
    });

    /// <summary>A change of <see cref="ManagerJournal"/>; one its folder does not take is logged (the next number tries again).</summary>
    private void KeepingJournal(Action change)
    {
        try
        {
            change();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("library {0}: where the manager's journal stands could not be kept in its folder: {1}", _declaration.Id, e.Message);
        }
    }

    /// <summary>
    /// Fault injection for tests (actorbackup.testing.prune-stop-after): the prune stops going on after this
    /// step (begun, swept, copied, recycled) so that a test can kill the node there. Empty: never.
    /// </summary>
    private string PruneStopAfter => Context.System.Settings.Config.GetString("actorbackup.testing.prune-stop-after", "");

    /// <summary>False (and the prune halts, logged) when the test hook says to stop after <paramref name="step"/>.</summary>
    private bool GoOnAfter(string step)
    {
        if (PruneStopAfter != step) return true;
        _log.Warning("library {0}: prune (job {1}) stops after step '{2}' (actorbackup.testing.prune-stop-after)", _declaration.Id, _prune?.Request.Job, step);
        return false;
    }

    /// <summary>While the library is open: prunes start and go through their steps.</summary>
    /// <summary>Parts of the snapshot lists of prunes and checks to come (KeepPages), held until their requests come.</summary>
    private readonly KeepPages _keepPages = new();

    private void PruneCommands()
    {
        Command<CatalogCaughtUp>(m =>
        {
            if (!FromManager(m)) return;
            var was = ManagerJournal.Behind;
            KeepingJournal(() =>
            {
                ManagerJournal.CaughtUp(m.JournalSequence, DateTimeOffset.UtcNow);
                if (was is not null) _log.Info("library {0}: a catalog rebuild of it is recorded: its prunes let unknown reference lists go again", _declaration.Id);
            });
        });
        Command<KeepPage>(p =>
        {
            if (_keepPages.Add(p, Sender, Environment.TickCount64) is { } dropped) _log.Warning("library {0}: {1} (from {2})", _declaration.Id, dropped, Sender);
        });
        Command<PruneLibrary>(m =>
        {
            if (!FromManager(m)) return;
            PruneAskedAt(m.JournalSequence);
            if (_prune is { } runs && runs.Request.Job == m.Job)
            {
                if (m.KeepPages > 0) _keepPages.Take(m.Job, m.Attempt, m.KeepPages, m.KeepDigest, Sender, out _); // the running prune has its lists
                // The same job asked again (the manager thought this agent lost it: a long journal write held its probes
                // back): the prune that runs answers for the newest attempt, as it was asked (its lists as they were).
                if (m.Attempt > runs.Request.Attempt)
                {
                    var newest = runs.Request.Clone();
                    newest.Attempt = m.Attempt;
                    newest.Drive = m.Drive; // the drive the manager holds for it now (its copies are written there from here on)
                    runs.Request = newest;
                    runs.ReplyTo = Sender;
                    _log.Info("library {0}: prune (job {1}) asked again as attempt {2}: the one running answers for it", _declaration.Id, m.Job, m.Attempt);
                }
                return;
            }
            if (_keepPages.Whole(m, Sender, out var why) is not { } whole)
            {
                _log.Warning("library {0}: prune (job {1}): {2}", _declaration.Id, m.Job, why);
                Sender.Tell(Signed(PruneEnded(m, ok: false, why, JobFault.FaultTransient)));
                return;
            }
            m = whole;
            if (_prune is not null)
            {
                Sender.Tell(Signed(PruneEnded(m, ok: false, $"library {_declaration.Id} is being pruned by job {_prune.Request.Job}: wait for it", JobFault.FaultTransient)));
                return;
            }
            if (_library is null)
            {
                Sender.Tell(Signed(PruneEnded(m, ok: false, _unavailable ?? $"library {_declaration.Id} is not open", JobFault.FaultLibrary)));
                return;
            }
            // Volumes to retire that are not in service (a typo: 33 for 3) end the job before anything is swept.
            if (m.Retire.Where(v => !InService(v)).ToList() is { Count: > 0 } unknown)
            {
                Sender.Tell(Signed(PruneEnded(m, ok: false, $"library {_declaration.Id} has no volume {string.Join(", ", unknown)} in service: " +
                                                            $"nothing was done ('abk volume list {_declaration.Id}' shows them)", JobFault.FaultNone)));
                return;
            }
            try
            {
                _library!.BeginPrune();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                Sender.Tell(Signed(PruneEnded(m, ok: false, e.Message, JobFault.FaultTransient)));
                return;
            }
            // Writers that may have been told a chunk is here before the prune began: backups' write sessions and
            // copies into this library. The sweep waits for them.
            var waiting = _sessions.Where(s => _writeSessions.Contains(s.Key)).Select(s => s.Key).Concat(_copies.Keys.Select(CopyKey)).ToHashSet();
            // A library that cannot write, or is down to its reserve, only gives back its wholly dead volumes: compacting
            // would need room for the copies.
            _prune = new PruneRun(m, Sender, waiting, _unavailable is not null || _library.Full is not null);
            if (m.DropUnknown)
            {
                // The operator says the lists the catalog does not know may go: from here on, as before any journal went
                // back (a dry run shows what would go, and changes nothing).
                if (!m.DryRun) KeepingJournal(() => ManagerJournal.CaughtUp(m.JournalSequence, DateTimeOffset.UtcNow));
            }
            else if (ManagerJournal.Behind is { } behind)
            {
                // Every list the catalog does not know is live for this prune, whatever its age, and the report says why.
                _prune.KeepUnknown = true;
                _prune.Report.Problems.Add($"kept the reference lists of every snapshot the manager's catalog does not know, and their chunks: {behind}. " +
                                           $"Run 'abk catalog rebuild {m.Library}' to give it back what is stored here (then prunes let the rest go again); " +
                                           $"only if the catalog is right, run 'abk prune {m.Library} --drop-unknown'");
            }
            _log.Info("library {0}: prune (job {1}{2}) begins; {3} backups that were running first end", _declaration.Id, m.Job, m.DryRun ? ", dry run" : "", waiting.Count);
            if (!GoOnAfter("begun")) return;
            if (waiting.Count == 0) Mark();
        });
        Command<PruneMarked>(m =>
        {
            if (_prune is null || _library is null || m.Run != _prune) return;
            if (m.Missing.Count > 0 || m.Damaged.Count > 0)
            {
                FinishPrune(false, "nothing was removed: prune cannot tell which chunks are live: " + string.Join("; ",
                    m.Missing.Select(s => $"snapshot {s} has no reference list on this library (made before they were kept; or a catalog rebuild from a copy " +
                                          $"elsewhere named this library, which had let it go: 'abk snapshot show {s}' says which libraries hold it; delete it only if none holds it whole, or keep this library unpruned)")
                        .Concat(m.Damaged)), JobFault.FaultNone);
                return;
            }
            var run = _prune;
            run.Spared = m.Spared;
            if (!run.KeepUnknown && UnknownListsRefusal(run.Request, m.DeadLists) is { } unknown)
            {
                // Not dropped, and not a failed prune either (a scheduled one would fail at every slot): the unknown
                // lists count as live, the rest goes on, and the report says why they stay.
                run.KeepUnknown = true;
                run.Report.Problems.Add(unknown);
                _log.Warning("library {0}: {1}", _declaration.Id, unknown);
                Mark();
                return;
            }
            IReadOnlyList<KeyValuePair<ChunkId, Engine.Index.ChunkLocation>> dead;
            try
            {
                dead = _library.Sweep(m.Live, run.Request.DryRun);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                FinishPrune(false, $"the sweep could not run: {e.Message}", JobFault.FaultLibrary);
                return;
            }
            run.Report.ChunksDead = dead.Count;
            run.Report.BytesDead = dead.Sum(d => (long)Engine.Volumes.VolumeFormat.RecordOverhead + d.Value.Length);
            var threshold = run.Request.CompactThreshold > 0 ? run.Request.CompactThreshold : 0.2;
            if (run.Request.DryRun)
            {
                // As the run will: the same plan, then the room each copy needs as the volumes before it free theirs.
                var deadIds = dead.Select(d => d.Key).ToHashSet();
                var (queue, passed) = CompactionPlan(run, threshold, deadIds);
                var volumes = _library.ThatFit(_library.LiveBytesOf(queue, deadIds), passed);
                run.Report.Problems.AddRange(passed);
                run.Report.VolumesCompacted.AddRange(volumes.Select(v => v.Volume));
                run.Report.BytesMoved = volumes.Sum(v => v.LiveBytes);
                run.Report.BytesFreed = volumes.Sum(v => v.FileBytes - v.LiveBytes);
                FinishPrune(true, "", JobFault.FaultNone);
                return;
            }
            PersistRemoved(dead.Select(d => d.Key).ToList(), run.Request.Job, e =>
            {
                AfterPersist(e.Volumes);
                try
                {
                    _library?.RemoveReferences(m.DeadLists);
                    run.Report.ListsRemoved.AddRange(m.DeadLists.Take(Engine.Verify.SnapshotVerifier.MaxReported)); // a report fits one message
                    run.Report.ListsRemovedTotal = m.DeadLists.Count;
                    var (queue, problems) = CompactionPlan(run, threshold, null);
                    foreach (var v in queue) run.Volumes.Enqueue(v);
                    run.Report.Problems.AddRange(problems);
                    if (!run.CannotWrite) _library?.PrepareCompaction(run.Volumes);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // The sweep is journaled; compaction waits for the next prune.
                    FinishPrune(false, $"swept, but compaction could not begin: {ex.Message}", JobFault.FaultLibrary);
                    if (_library?.Broken is { } broken) Unavailable(broken);
                    return;
                }
                _log.Info("library {0}: prune swept {1} chunks ({2} bytes); {3} volumes to compact", _declaration.Id, dead.Count, run.Report.BytesDead, run.Volumes.Count);
                if (GoOnAfter("swept")) CompactNext();
            });
        });
        Command<PruneCopied>(c =>
        {
            if (_prune is null || _library is null || c.Run != _prune) return;
            var run = _prune;
            run.Report.ChunksMoved += c.Records;
            run.Report.BytesMoved += c.Bytes;
            run.Report.Problems.AddRange(c.Problems);
            if (!TryCommit(out var batch)) return;
            PersistBatch(batch, run.Request.Job, e =>
            {
                Committed(batch);
                AfterPersist(e.Volumes);
                if (c.Problems.Count > 0 || _library is null)
                {
                    CompactNext();
                    return;
                }
                if (!GoOnAfter("copied")) return;
                try
                {
                    _library.MarkRecycle(c.Volume, run.Request.Retire.Contains(c.Volume)); // journaled with the commit: a crash before the delete keeps it out of service
                }
                catch (InvalidOperationException ex)
                {
                    run.Report.Problems.Add(ex.Message);
                    CompactNext();
                    return;
                }
                catch (IOException ex)
                {
                    FinishPrune(false, ex.Message, JobFault.FaultLibrary);
                    if (_library?.Broken is { } broken) Unavailable(broken);
                    return;
                }
                if (!TryCommit(out var recycled)) return;
                PersistBatch(recycled, run.Request.Job, e2 =>
                {
                    Committed(recycled);
                    AfterPersist(e2.Volumes);
                    if (!GoOnAfter("recycled")) return;
                    try
                    {
                        var retire = run.Request.Retire.Contains(c.Volume);
                        var freed = _library?.DeleteVolume(c.Volume, retire) ?? 0;
                        run.Report.BytesFreed += freed;
                        run.Report.VolumesCompacted.Add(c.Volume);
                        if (retire)
                        {
                            run.Report.VolumesRetired.Add(c.Volume);
                            _log.Info("library {0}: volume {1} retired (its live chunks copied away)", _declaration.Id, c.Volume);
                        }
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        run.Report.Problems.Add($"volume {c.Volume} is empty but could not be deleted ({ex.Message}): it is deleted when the library is next opened");
                    }
                    CompactNext();
                });
            });
        });
        Command<PruneStepFailed>(f =>
        {
            if (_prune is not null && f.Run == _prune) FinishPrune(false, f.Reason, JobFault.FaultTransient);
        });
    }

    /// <summary>A write session closed: a prune waiting for the backups that ran when it began may go on.</summary>
    private void PruneSessionClosed(string ticket)
    {
        if (_prune is null || !_prune.Waiting.Remove(ticket) || _prune.Waiting.Count > 0) return;
        Mark();
    }

    private static string CopyKey(string job) => "copy:" + job;

    private void Mark()
    {
        var run = _prune!;
        run.Report.SecondsWaiting = run.Clock.Elapsed.TotalSeconds;
        var library = _library!;
        var orphanAfter = run.KeepUnknown ? TimeSpan.MaxValue : run.Request.OrphanAfterSeconds > 0 ? TimeSpan.FromSeconds(run.Request.OrphanAfterSeconds) : Manager.QueueLimits.DefaultOrphansAfter;
        LongRunning(() =>
        {
            var (removable, spared) = Removable(run.Request, library);
            var live = library.LiveReferences(run.Request.Keep.Concat(spared), removable, orphanAfter, out var missing, out var damaged, out var dead);
            return (object)new PruneMarked(run, live, missing, damaged, dead, spared);
        }).PipeTo(Self, failure: e => new PruneStepFailed(run, $"reading the reference lists failed: {Why(e)}"));
    }

    /// <summary>
    /// Why a prune keeps the reference lists of the snapshots the catalog does not know (and their chunks) instead of
    /// removing them, said in its report; null when they may go. Lists of snapshots neither kept nor deleted through the catalog are those of backups whose
    /// job failed after their commit: a few. When they outnumber the kept ones (at least 3 of them, or any when the
    /// catalog knows nothing of this library), the catalog is more likely the wrong one: a manager recovered from
    /// another or an empty journal (a manager node on a SQLite file of its own, a connection string gone wrong, a
    /// journal switched without moving the catalog) would have every snapshot here swept. The operator says which
    /// with <c>abk prune LIBRARY --drop-unknown</c>.
    /// </summary>
    public static string? UnknownListsRefusal(PruneLibrary request, IReadOnlyCollection<string> deadLists)
    {
        if (request.DropUnknown) return null;
        var deleted = request.Deleted.ToHashSet(StringComparer.Ordinal);
        var unknown = deadLists.Where(l => !deleted.Contains(l)).ToList();
        var catalogKnowsNothing = request.Keep.Count == 0 && request.Deleted.Count == 0;
        if (unknown.Count == 0 || (!catalogKnowsNothing && (unknown.Count < 3 || unknown.Count <= request.Keep.Count + request.DeletionsHeldBack))) return null;
        return $"kept the reference lists of {unknown.Count} snapshots the manager's catalog does not know " +
               $"({string.Join(", ", unknown.Order(StringComparer.Ordinal).Take(5))}{(unknown.Count > 5 ? ", ..." : "")}), and their chunks, against {request.Keep.Count} it keeps here: " +
               "a manager recovered from another or an empty journal would have swept every snapshot of this library. Check that the manager runs on the cell's journal " +
               $"('abk snapshot list' shows the snapshots you expect; 'abk catalog rebuild {request.Library}' gives back those stored here, whole copies among them); " +
               $"only if they are lists of failed backups or of copies you dropped, run 'abk prune {request.Library} --drop-unknown' to remove them";
    }

    /// <summary>Whether the library's table has volume <paramref name="v"/> holding data (not recycled or retired).</summary>
    /// <summary>
    /// The volumes a prune compacts, in order, and what it passes over, for the run and its dry run alike: those at least
    /// <paramref name="threshold"/> dead (wholly dead first, then the most dead: VolumesToCompact), then those an operator
    /// retires (emptied whatever their dead share). A library that cannot write only gives back the volumes nothing lives
    /// in any more (deleting needs no room); compacting the others waits until it can write again.
    /// </summary>
    private (List<uint> Queue, List<string> Problems) CompactionPlan(PruneRun run, double threshold, IReadOnlySet<Engine.Hashing.ChunkId>? alsoDead)
    {
        var queue = new List<uint>();
        var problems = new List<string>();
        foreach (var v in _library?.VolumesToCompact(threshold, alsoDead) ?? [])
            if (!run.CannotWrite || v.LiveBytes == 0) queue.Add(v.Volume);
        foreach (var v in run.Request.Retire)
            if (!InService(v)) problems.Add($"library {_declaration.Id} has no volume {v} in service: abk volume list {_declaration.Id} shows them");
            else if (queue.Contains(v)) { }
            else if (run.CannotWrite) problems.Add($"volume {v} is not retired: the library cannot write, so its live chunks cannot be copied away");
            else queue.Add(v);
        return (queue, problems);
    }

    private bool InService(uint v) => _library?.Volumes.Any(x => x.Number == v && x.State is not VolumeState.Recycle) ?? false;

    private void CompactNext()
    {
        var run = _prune!;
        if (_library is null)
        {
            FinishPrune(false, $"library {_declaration.Id} closed during the prune", JobFault.FaultTransient);
            return;
        }
        if (run.Volumes.Count == 0)
        {
            // A volume the operator asked to retire and that is still in service fails the job, with why.
            var kept = run.Request.Retire.Where(v => !run.Report.VolumesRetired.Contains(v)).ToList();
            if (kept.Count > 0 && !run.Request.DryRun)
                FinishPrune(false, $"volume {string.Join(", ", kept)} not retired: {string.Join("; ", run.Report.Problems.DefaultIfEmpty("see the library's log"))}" +
                                   (run.Report.Problems.Any(p => p.Contains("cannot be read", StringComparison.Ordinal))
                                       ? " (a chunk that cannot be read heals from a copy: abk verify SNAPSHOT; then retire it again)"
                                       : " (retire it again once the library has room for its live chunks: abk prune frees some)"), JobFault.FaultNone);
            else FinishPrune(true, "", JobFault.FaultNone);
            if (run.CannotWrite) // the room freed may be what it needed
            {
                _library?.CheckRoom();
                _manager?.Tell(Report());
                Self.Tell(new Reopen());
            }
            return;
        }
        var volume = run.Volumes.Dequeue();
        if (run.CannotWrite)
        {
            RetireWithoutCommit(run, volume);
            return;
        }
        var library = _library;
        LongRunning(() =>
        {
            using var served = Engine.Tape.TapeMedium.WorkingFor(run.Request.Job, run.Request.Drive, writes: true); // on tape, the live chunks are written in the job's drive
            var (records, bytes, problems) = library.CopyLive(volume);
            return (object)new PruneCopied(run, volume, records, bytes, problems);
        }).PipeTo(Self, failure: e => new PruneStepFailed(run, $"compacting volume {volume} failed: {Why(e)}"));
    }

    /// <summary>
    /// A wholly dead volume of a library that cannot write: marked Recycle in the journal (the table as last
    /// journaled, that volume changed), then its file deleted. No library commit: there may be no room for one.
    /// </summary>
    private void RetireWithoutCommit(PruneRun run, uint volume)
    {
        var retire = run.Request.Retire.Contains(volume);
        try
        {
            _library!.MarkRecycle(volume, retire);
        }
        catch (InvalidOperationException e)
        {
            run.Report.Problems.Add(e.Message);
            CompactNext();
            return;
        }
        var table = new IndexBatchCommitted { Job = run.Request.Job };
        table.Volumes.AddRange(_volumes.Select(v => v.Number == volume ? ToRecord(new VolumeEntry { Number = v.Number, Label = v.Label, State = VolumeState.Recycle, Retire = retire }) : ToRecord(v)));
        Persist(table, e =>
        {
            AfterPersist(e.Volumes);
            try
            {
                run.Report.BytesFreed += _library?.DeleteVolume(volume, retire) ?? 0;
                run.Report.VolumesCompacted.Add(volume);
                if (retire) run.Report.VolumesRetired.Add(volume);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                run.Report.Problems.Add($"volume {volume} is empty but could not be deleted ({ex.Message}): it is deleted when the library is next opened");
            }
            CompactNext();
        });
    }

    private bool TryCommit(out CommitBatch batch)
    {
        try
        {
            batch = _library!.Commit();
            return true;
        }
        catch (IOException e)
        {
            batch = null!;
            FinishPrune(false, e.Message, JobFault.FaultLibrary);
            if (_library?.Broken is { } broken) Unavailable(broken);
            return false;
        }
    }

    private void FinishPrune(bool ok, string reason, JobFault fault)
    {
        var run = _prune;
        if (run is null) return;
        _prune = null;
        _library?.EndPrune();
        run.Report.Seconds = run.Clock.Elapsed.TotalSeconds;
        var r = run.Report;
        if (ok) _log.Info("library {0}: prune (job {1}) done: {2} chunks dead, {3} volumes compacted, {4} bytes freed in {5:F1} s",
            _declaration.Id, run.Request.Job, r.ChunksDead, r.VolumesCompacted.Count, r.BytesFreed, r.Seconds);
        else _log.Warning("library {0}: prune (job {1}) failed: {2}", _declaration.Id, run.Request.Job, reason);
        // Through the manager's proxy when there is one: a manager that took over meanwhile still hears it.
        if (ok && !run.Request.DryRun && run.Spared.Count > 0)
            _log.Info("library {0}: prune (job {1}) kept the lists of deleted snapshots {2}: written after the prune was asked for (copied here again since?); a later prune decides on them",
                _declaration.Id, run.Request.Job, string.Join(", ", run.Spared));
        (_manager ?? run.ReplyTo).Tell(Signed(PruneEnded(run.Request, ok, reason, fault, r, run.Spared)));
        _manager?.Tell(Report());
    }

    private static JobFinished PruneEnded(PruneLibrary request, bool ok, string reason, JobFault fault, PruneReport? report = null, IReadOnlySet<string>? spared = null)
    {
        var r = report ?? new PruneReport { DryRun = request.DryRun };
        if (ok) r.DeletedHandled.AddRange(request.Deleted.Where(id => spared is null || !spared.Contains(id)));
        return new JobFinished
        {
            Job = request.Job, Attempt = request.Attempt, Ok = ok, Outcome = ok ? JobState.Succeeded : JobState.Failed, Reason = reason,
            Fault = ok ? JobFault.FaultNone : fault, Prune = r,
        };
    }

    /// <summary>
    /// A sweep's removals, journaled as events of at most <see cref="_entriesPerEvent"/> ids each (as a commit's
    /// entries are: one event of every id of a large sweep would pass what a journal row holds, and the prune would
    /// fail at the same point each time); each carries the volume table as last journaled (other sessions' appends
    /// since are not durable yet). <paramref name="persisted"/> runs once, after the last.
    /// </summary>
    private void PersistRemoved(List<ChunkId> ids, string job, Action<IndexEntriesRemoved> persisted)
    {
        var events = new List<IndexEntriesRemoved>();
        for (var at = 0; at == 0 || at < ids.Count; at += _entriesPerEvent)
        {
            var count = Math.Min(_entriesPerEvent, ids.Count - at);
            var bytes = new byte[(long)count * ChunkId.Size];
            for (var i = 0; i < count; i++) ids[at + i].WriteTo(bytes.AsSpan(i * ChunkId.Size));
            var e = new IndexEntriesRemoved { Ids = UnsafeByteOperations.UnsafeWrap(bytes), Job = job };
            e.Volumes.AddRange(_volumes.Select(ToRecord));
            events.Add(e);
        }
        var left = events.Count;
        PersistAll(events, e =>
        {
            if (--left == 0) persisted(e);
        });
    }

    private static IEnumerable<ChunkId> Unpack(ByteString packed)
    {
        for (var o = 0; o + ChunkId.Size <= packed.Length; o += ChunkId.Size) yield return new ChunkId(packed.Span.Slice(o, ChunkId.Size));
    }
}
