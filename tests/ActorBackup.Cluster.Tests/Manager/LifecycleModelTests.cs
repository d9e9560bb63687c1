using System.Text;
using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using CsCheck;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// The data lifecycle's decisions (retention, copies with and without a retention of their own, tiering, deletes,
/// prunes) run in random orders against a model of the libraries' reference lists, with a copy's end reaching the
/// manager late and a prune's request built before what the media agent then finds: whatever happens, the catalog
/// never names a library for a snapshot whose list a prune removed there (a snapshot it says it holds that is gone).
/// </summary>
public class LifecycleModelTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 3, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan OrphansAfter = QueueLimits.DefaultOrphansAfter;

    public enum Step { Backup, VerifyNewestFull, Retention, Tiering, StartCopy, CopyRuns, CopyEnds, PruneAsked, PruneRuns, Delete, Wait, CatalogRebuild, RefusedBackup }

    /// <summary>Policies of every shape the lifecycle knows: primary retention, a copy (fulls only or not, with a retention of its own or not), a tier.</summary>
    private static readonly Gen<StoragePolicy> Policies =
        Gen.Select(Gen.Int[0, 3], Gen.Int[0, 2], Gen.Int[0, 4], Gen.Bool, Gen.Int[0, 3], Gen.Int[0, 2]).Select((last, daily, copy, fullsOnly, copyLast, tier) =>
        {
            var p = new StoragePolicy { Name = "disk", Libraries = { "lib1" } };
            if (last > 0 || daily > 0) p.Retention = new RetentionRule { Last = last, Daily = daily * 2 };
            if (copy > 0)
            {
                var rule = new CopyRule { Libraries = { copy % 2 == 0 ? "lib2" : "lib3" }, FullsOnly = fullsOnly };
                if (copyLast > 0) rule.Retention = new RetentionRule { Last = copyLast };
                p.Copies.Add(rule);
            }
            if (tier > 0) p.Tier = new TierRule { Libraries = { tier == 1 ? "lib3" : "lib2" }, AfterSeconds = (long)TimeSpan.FromDays(3 * tier).TotalSeconds };
            return p;
        });

    [Fact]
    public void Whatever_the_order_the_catalog_never_names_a_library_for_a_snapshot_whose_list_a_prune_removed_there()
    {
        var steps = Gen.Select(Gen.Enum<Step>(), Gen.Int[0, 999]).Array[10, 80];
        Gen.Select(Policies, steps).Sample((policy, run) => Run(policy, run), iter: 20000, threads: 1);
    }

    private sealed class Model(ManagerState state)
    {
        public ManagerState State = state;
        public DateTimeOffset Now = Start;
        /// <summary>Each library's reference lists: snapshot id -> when it was written.</summary>
        public readonly Dictionary<string, Dictionary<string, DateTimeOffset>> Lists = new() { ["lib1"] = [], ["lib2"] = [], ["lib3"] = [] };
        /// <summary>Copies the media agent finished whose end has not reached the manager yet.</summary>
        public readonly List<JobInfo> Copied = [];
        /// <summary>A prune whose request the manager built and sent, not yet run by the media agent.</summary>
        public (JobInfo Job, PruneLibrary Request)? Pruning;
        public int Snapshots;
        /// <summary>Every manifest made, as its library stores it beside its list.</summary>
        public readonly Dictionary<string, ByteString> Manifests = [];
        public readonly StringBuilder Log = new();

        public void Apply(IEnumerable<IMessage> events)
        {
            foreach (var e in events) State = State.Apply(e);
        }
    }

    private static void Run(StoragePolicy policy, (Step Step, int Pick)[] run)
    {
        var initial = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 2 })
            .Apply(new LibraryRegistered { Id = "lib2", Node = "n2", Drives = 2 })
            .Apply(new LibraryRegistered { Id = "lib3", Node = "n3", Drives = 2 });
        if (initial.InvalidPolicy(policy) is not null) return; // a shape the cell refuses
        var m = new Model(initial
            .Apply(new PolicyDefined { Policy = policy })
            .Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "disk" } }));
        m.Log.AppendLine($"policy {policy}");
        foreach (var (step, pick) in run)
        {
            var said = Do(m, step, pick);
            if (said is not null) m.Log.AppendLine($"{m.Now:yyyy-MM-dd HH:mm} {said}");
            foreach (var s in m.State.Snapshots)
                foreach (var library in m.State.LibrariesOf(s).Concat(s.Spans))
                {
                    Assert.True(m.Lists[library].ContainsKey(s.Id),
                        $"the catalog says snapshot {s.Id} is on {library}, whose list of it is gone, after:\n{m.Log}");
                    Assert.False(m.State.PendingDeletions.GetValueOrDefault(library)?.Contains(s.Id) == true && !m.State.Jobs.Values.Any(j => j.Kind == JobKind.Copy && !ManagerState.IsFinal(j.State) && j.Snapshot == s.Id && j.Library == library),
                        $"snapshot {s.Id} is both kept on {library} and waiting there to be let go, after:\n{m.Log}");
                }
            // Nothing of a snapshot no longer in the catalog is kept as a copy.
            Assert.True(m.State.Copies.Keys.All(id => m.State.Snapshots.Exists(s => s.Id == id)), $"copies recorded of a snapshot not in the catalog, after:\n{m.Log}");
        }
        Settle(m);
    }

    /// <summary>
    /// In the end, what was let go is freed: once the copies asked for have run and ended, a prune of each library
    /// leaves nothing waiting there to be let go and no list the catalog neither keeps nor lets go (no data kept for
    /// ever by a list nobody will let go), and one after the orphans' age leaves exactly the lists of the snapshots the
    /// catalog names on that library.
    /// </summary>
    private static void Settle(Model m)
    {
        void Say(string? said)
        {
            if (said is not null) m.Log.AppendLine($"{m.Now:yyyy-MM-dd HH:mm} settle: {said}");
        }
        foreach (var job in m.Copied) EndCopy(m, job);
        m.Copied.Clear();
        if (m.Pruning is not null) Say(Do(m, Step.PruneRuns, 0));
        while (m.State.Jobs.Values.Any(j => j.Kind == JobKind.Copy && j.State == JobState.Queued))
        {
            Say(Do(m, Step.CopyRuns, 0));
            Say(Do(m, Step.CopyEnds, 0));
        }
        // Each library pruned in turn, then checked.
        void PruneEach(Action<string> check)
        {
            foreach (var (library, pick) in new[] { "lib1", "lib2", "lib3" }.Select((l, i) => (l, i)))
            {
                Say(Do(m, Step.PruneAsked, pick));
                Say(Do(m, Step.PruneRuns, 0));
                check(library);
            }
        }
        m.Now += TimeSpan.FromMinutes(1); // the prunes are asked after the lists were written (the model's steps share a clock tick)
        PruneEach(library =>
        {
            Assert.True(m.State.PendingDeletions.GetValueOrDefault(library) is not { Count: > 0 },
                $"snapshots [{string.Join(" ", m.State.PendingDeletions.GetValueOrDefault(library) ?? [])}] still wait to be let go on {library} after its prune, after:\n{m.Log}");
            // Nor is anything left there that the catalog forgot without letting it go: such lists would wait for the
            // orphans' age, and a library with more of them than it keeps refuses to drop them (UnknownListsRefusal).
            var forgotten = m.Lists[library].Keys.Except(Named(m, library)).Order(StringComparer.Ordinal).ToList();
            Assert.True(forgotten.Count == 0, $"lists [{string.Join(" ", forgotten)}] stay on {library}, neither kept nor let go, after:\n{m.Log}");
        });
        m.Now += OrphansAfter + TimeSpan.FromHours(1);
        PruneEach(library =>
            Assert.Equal(string.Join(" ", Named(m, library).Order(StringComparer.Ordinal)), string.Join(" ", m.Lists[library].Keys.Order(StringComparer.Ordinal))));
    }

    /// <summary>The snapshots the catalog names on <paramref name="library"/> (held there, or spanning it).</summary>
    private static IEnumerable<string> Named(Model m, string library) =>
        m.State.Snapshots.Where(s => m.State.LibrariesOf(s).Concat(s.Spans).Contains(library)).Select(s => s.Id);

    private static string? Do(Model m, Step step, int pick)
    {
        var s = m.State;
        switch (step)
        {
            case Step.Backup:
            {
                var id = $"{++m.Snapshots:D4}aaaaaaaaaaaa";
                var full = pick % 3 == 0 || !s.Snapshots.Any(x => x.Level == Level.Full);
                m.Lists["lib1"][id] = m.Now; // the client wrote it, then the manager records it
                var manifest = new SnapshotManifest
                {
                    Id = id, Client = "host-a", BackupSet = "web", Level = full ? Level.Full : Level.Incremental, Library = "lib1", Policy = "disk",
                    StartedUnixMs = m.Now.AddMinutes(-1).ToUnixTimeMilliseconds(), FinishedUnixMs = m.Now.ToUnixTimeMilliseconds(),
                };
                m.Manifests[id] = manifest.ToByteString();
                m.Apply([new SnapshotRecorded { Manifest = manifest.ToByteString() }]);
                m.Apply(m.State.DecideCopiesAfter(manifest, m.Now));
                return $"backup {id} ({manifest.Level})";
            }
            case Step.VerifyNewestFull when s.Snapshots.LastOrDefault(x => x.Level == Level.Full) is { } newest:
                m.Apply([new SnapshotVerified { Snapshot = newest.Id, Ok = true }]);
                return $"verified {newest.Id}";
            case Step.Retention:
            {
                var changes = s.DecideCopyRetention(m.Now).ToList();
                if (s.DecideRetention(m.Now) is { } deleted) changes.Add(deleted);
                m.Apply(changes);
                return changes.Count == 0 ? null : "retention: " + string.Join("; ", changes.Select(c => c.ToString()));
            }
            case Step.Tiering:
            {
                var (jobs, moves) = s.DecideTiering(m.Now);
                m.Apply(moves.Cast<IMessage>().Concat(jobs));
                return jobs.Count + moves.Count == 0 ? null : "tiering: " + string.Join("; ", moves.Select(x => x.ToString()).Concat(jobs.Select(j => $"copy job {j.Job.Id} of {j.Job.Snapshot} to {j.Job.Library}")));
            }
            case Step.StartCopy when s.Snapshots.Count > 0:
            {
                var snapshot = s.Snapshots[pick % s.Snapshots.Count];
                var to = new[] { "lib1", "lib2", "lib3" }[pick / 100 % 3];
                var copy = s.DecideStartCopy(new StartCopy { Snapshot = snapshot.Id, Library = to }, m.Now);
                if (copy.Rejection is not null) return null;
                m.Apply(copy.Events);
                return $"operator: copy job {copy.Job!.Id} of {snapshot.Id} to {to}";
            }
            // Any order, a copy into the library of a prune asked for and not begun yet too (the media agent takes the
            // prune first, as it was sent first; and a deleted snapshot's list written after the request is not its).
            case Step.CopyRuns when s.Jobs.Values.Where(j => j.Kind == JobKind.Copy && j.State == JobState.Queued).ToList() is { Count: > 0 } queued:
            {
                // The media agent copies from the snapshot's library (or a copy) and writes the list last; its end goes to the manager later.
                var job = queued[pick % queued.Count];
                m.Apply([new JobStarted { Job = job.Id, Library = job.Library, UnixMs = m.Now.ToUnixTimeMilliseconds() }]);
                var snapshot = m.State.Snapshots.FirstOrDefault(x => x.Id == job.Snapshot);
                var from = snapshot is null ? [] : m.State.LibrariesOf(snapshot).Where(l => m.Lists[l].ContainsKey(job.Snapshot)).ToList();
                if (from.Count == 0)
                {
                    m.Apply([new JobEnded { Job = job.Id, State = JobState.Failed, UnixMs = m.Now.ToUnixTimeMilliseconds() }]);
                    return $"copy job {job.Id} fails: {job.Snapshot} is nowhere to read";
                }
                m.Lists[job.Library][job.Snapshot] = m.Now;
                m.Copied.Add(m.State.Job(job.Id)!);
                return $"copy job {job.Id} writes {job.Snapshot} to {job.Library}";
            }
            case Step.CopyEnds when m.Copied.Count > 0:
            {
                var job = m.Copied[pick % m.Copied.Count];
                m.Copied.Remove(job);
                EndCopy(m, job);
                return $"copy job {job.Id} ends";
            }
            case Step.PruneAsked when m.Pruning is null:
            {
                var library = new[] { "lib1", "lib2", "lib3" }[pick % 3];
                var prune = s.DecidePrune(new StartPrune { Library = library }, m.Now);
                m.Apply(prune.Events);
                m.Apply([new JobStarted { Job = prune.Job!.Id, Library = library, UnixMs = m.Now.ToUnixTimeMilliseconds() }]);
                var job = m.State.Job(prune.Job.Id)!;
                m.Pruning = (job, m.State.PruneRequest(job, 0.2, OrphansAfter, m.Now));
                return $"prune job {job.Id} of {library} asked: keep [{string.Join(" ", m.Pruning.Value.Request.Keep)}], deleted [{string.Join(" ", m.Pruning.Value.Request.Deleted)}]";
            }
            case Step.PruneRuns when m.Pruning is { } pruning:
            {
                // The media agent: every list neither kept nor written since the prune began goes when it was deleted or is
                // older than the orphans' age (MediaActor.Prune, DiskLibrary.LiveReferences).
                m.Pruning = null;
                var (job, request) = pruning;
                var lists = m.Lists[request.Library];
                Assert.True(request.Keep.All(lists.ContainsKey), $"prune job {job.Id} is told to keep a list {request.Library} lacks, after:\n{m.Log}");
                var asked = DateTimeOffset.FromUnixTimeMilliseconds(request.AskedUnixMs);
                var spared = request.Deleted.Where(id => lists.TryGetValue(id, out var written) && written >= asked).ToHashSet();
                var gone = lists.Where(l => !request.Keep.Contains(l.Key) && ((request.Deleted.Contains(l.Key) && !spared.Contains(l.Key)) || m.Now - l.Value >= OrphansAfter)).Select(l => l.Key).ToList();
                foreach (var id in gone) lists.Remove(id);
                m.Apply([new LibraryPruned { Library = request.Library, Job = job.Id, Snapshots = { request.Deleted.Where(id => !spared.Contains(id)) } },
                         new JobEnded { Job = job.Id, State = JobState.Succeeded, UnixMs = m.Now.ToUnixTimeMilliseconds() }]);
                return $"prune job {job.Id} of {request.Library} removes [{string.Join(" ", gone)}]";
            }
            case Step.Delete when s.Snapshots.Count > 0:
            {
                var id = s.Snapshots[pick % s.Snapshots.Count].Id;
                var (_, decision) = s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { id } }, m.Now);
                if (decision.Rejection is not null) return null;
                m.Apply(decision.Events);
                return $"operator: delete {id}";
            }
            case Step.RefusedBackup:
            {
                // A backup whose client clock was off: its data is in lib1, the manager does not record it and lets it go there.
                var id = $"{++m.Snapshots:D4}bbbbbbbbbbbb";
                m.Lists["lib1"][id] = m.Now;
                var manifest = new SnapshotManifest
                {
                    Id = id, Client = "host-a", BackupSet = "web", Level = Level.Full, Library = "lib1", Policy = "disk",
                    StartedUnixMs = m.Now.AddDays(-3).ToUnixTimeMilliseconds(), FinishedUnixMs = m.Now.AddDays(-3).ToUnixTimeMilliseconds(),
                };
                m.Manifests[id] = manifest.ToByteString();
                m.Apply(s.DecideRefusedSnapshot(new JobInfo { Id = "refused", Library = "lib1", Client = "host-a" }, manifest, "the client's clock", m.Now));
                return $"backup {id} refused (the client's clock)";
            }
            case Step.CatalogRebuild:
            {
                // What `abk catalog rebuild LIBRARY` finds there: the manifests of the snapshots whose lists it holds.
                var library = new[] { "lib1", "lib2", "lib3" }[pick % 3];
                var here = m.Lists[library].Keys.Order(StringComparer.Ordinal).ToList();
                var (answer, events) = s.DecideRecordSnapshots(new RecordSnapshots { Library = library, Manifests = { here.Select(id => m.Manifests[id]) }, Referenced = { here } });
                m.Apply(events);
                return events.Count == 0 ? null : $"catalog rebuild of {library}: added [{string.Join(" ", answer.AddedIds)}], {answer.CopiesRecorded} copies recorded";
            }
            case Step.Wait:
            {
                // Copies end, and a prune asked for runs, before much time passes (neither takes days to reach its node).
                foreach (var job in m.Copied) EndCopy(m, job);
                m.Copied.Clear();
                if (m.Pruning is not null) m.Log.AppendLine($"{m.Now:yyyy-MM-dd HH:mm} {Do(m, Step.PruneRuns, 0)}");
                var wait = TimeSpan.FromHours(1 + pick % 24 * (pick % 5 == 0 ? 10 : 1));
                m.Now += wait;
                return $"wait {wait.TotalHours:F0} h";
            }
        }
        return null;
    }

    /// <summary>A copy's end as the manager records it (ManagerActor, JobFinished of a copy).</summary>
    private static void EndCopy(Model m, JobInfo job)
    {
        var source = m.State.Snapshots.FirstOrDefault(s => s.Id == job.Snapshot)?.Library ?? job.SourceLibrary;
        IMessage[] events = job.TierMove && !m.State.ReadByAnother(job.Snapshot, job.Id)
            ? [new SnapshotCopied { Snapshot = job.Snapshot, Library = job.Library, Job = job.Id }, new SnapshotMoved { Snapshot = job.Snapshot, From = source, To = job.Library, Job = job.Id }]
            : [new SnapshotCopied { Snapshot = job.Snapshot, Library = job.Library, Job = job.Id }];
        m.Apply(events);
        m.Apply([new JobEnded { Job = job.Id, State = JobState.Succeeded, UnixMs = m.Now.ToUnixTimeMilliseconds() }]);
    }
}
