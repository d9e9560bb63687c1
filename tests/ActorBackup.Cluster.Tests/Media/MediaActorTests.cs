using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Media;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>SQLite, the embedded default.</summary>
[Collection(nameof(MediaActorJourneys))] // one journey class at a time: both name their libraries alike (OnlyOwnLibraries tells no test from another)
public sealed class MediaActorTests() : MediaActorJourneys(null)
{
    [Fact]
    public Task The_index_survives_a_restart_through_journal_and_snapshot_and_every_chunk_reads_back() =>
        IndexSurvivesRestart(commits: 2 * MediaActor.SnapshotEvery + 7, trimmed: true);

    [Fact]
    public void Records_written_after_the_last_commit_are_found_again_on_restart() => RecordsAfterLastCommitFoundAgain();

    [Fact]
    public async Task An_index_too_large_to_snapshot_is_not_snapshotted_says_so_once_and_survives_a_restart_through_the_journal()
    {
        // Two snapshot points (2 x SnapshotEvery commits and more): one warning for the run, no snapshot in the store.
        await EventFilter.Warning(contains: "is not snapshotted").ExpectOneAsync(() => IndexSurvivesRestart(snapshotMaxChunks: 20, commits: 2 * MediaActor.SnapshotEvery + 3));
        var store = Akka.Persistence.Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);
        var loaded = await store.Ask<Akka.Persistence.LoadSnapshotResult>(
            new Akka.Persistence.LoadSnapshot("media-libt", Akka.Persistence.SnapshotSelectionCriteria.Latest, long.MaxValue), TimeSpan.FromSeconds(20));
        Assert.Null(loaded.Snapshot);
    }

    [Fact]
    public void A_backups_background_file_index_gives_way_to_an_operators_export_and_a_find_does_not() => BackgroundIndexGivesWay();

    [Fact]
    public Task A_commit_journaled_in_several_events_recovers_whole() => IndexSurvivesRestart(snapshotMaxChunks: 0, commits: 60, entriesPerEvent: 2);

    [Fact]
    public async Task A_sweep_is_journaled_in_events_of_the_bounded_size_and_recovers_whole()
    {
        var decl = new LibraryDeclaration("libs", Path.Combine(Dir, "libs"), 1024 * 1024);
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var media = StartMedia(decl, entriesPerEvent: 2);
        media.Tell(new OpenSession { Library = "libs", Job = "1", Write = true });
        var granted = ExpectMsg<SessionOpened>();
        var ids = new List<ChunkId>();
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20)))
        {
            for (var i = 0; i < 5; i++) ids.Add(encoder.Store(new byte[1000 + i], RecordFlags.None, channel).Id);
            channel.AddReferences("s1", ids);
            await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20));
        }
        ExpectMsg<IndexReport>(r => r.Chunks == 5, TimeSpan.FromSeconds(20));
        media.Tell(new CloseSession { Library = "libs", Ticket = granted.Ticket });
        // A volume to retire that is not in service (a typo): the job ends before anything is swept.
        media.Tell(new PruneLibrary { Library = "libs", Job = "p0", Deleted = { "s1" }, Retire = { 33 } });
        var typo = FishForMessage<JobFinished>(f => f.Job == "p0", TimeSpan.FromSeconds(30));
        Assert.False(typo.Ok);
        Assert.Contains("has no volume 33 in service: nothing was done", typo.Reason);
        media.Tell(new GetLibraryStatus { Library = "libs" });
        FishForMessage<IndexReport>(r => r.Chunks == 5, TimeSpan.FromSeconds(10)); // nothing swept
        // A dry run of a retire says what the run would do (the same plan): volume 1 emptied and retired, nothing changed.
        media.Tell(new PruneLibrary { Library = "libs", Job = "pd", Deleted = { "s1" }, Retire = { 1 }, DryRun = true });
        var dry = FishForMessage<JobFinished>(f => f.Job == "pd", TimeSpan.FromSeconds(30));
        Assert.True(dry.Ok, dry.Reason);
        Assert.Contains(1u, dry.Prune.VolumesCompacted);
        Assert.Empty(dry.Prune.Problems);
        media.Tell(new PruneLibrary { Library = "libs", Job = "p1", Deleted = { "s1" } });
        var ended = FishForMessage<JobFinished>(_ => true, TimeSpan.FromSeconds(30));
        Assert.True(ended.Ok, ended.Reason);
        Assert.Equal(5, ended.Prune.ChunksDead);
        var removals = JournaledEvents("media-libs").Select(e => e.Payload).OfType<IndexEntriesRemoved>().ToList();
        Assert.Equal([2, 2, 1], removals.Select(r => r.Ids.Length / ChunkId.Size)); // 5 removals in events of at most 2
        Watch(media);
        media.Tell(PoisonPill.Instance);
        FishForMessage(m => m is Terminated t && t.ActorRef.Equals(media), TimeSpan.FromSeconds(20)); // after the prune's reports
        var again = StartMedia(decl, entriesPerEvent: 2);
        again.Tell(new GetLibraryStatus { Library = "libs" });
        Assert.Equal(0ul, ExpectMsg<IndexReport>().Chunks);
    }
}

/// <summary>Prunes asked by a catalog that does not know what the library holds (a manager on the wrong journal), or built before a deleted snapshot was copied there again; jobs the manager asks again.</summary>
public sealed class MediaActorUnknownListsTests() : JournalTestKit(null, "abk-media-unknown-")
{
    [Fact]
    public async Task A_prune_keeps_the_lists_of_snapshots_the_catalog_does_not_know_when_they_outnumber_the_kept_ones_unless_the_operator_says_so()
    {
        var (decl, media) = await LibraryWithLists("libu", "s1", "s2", "s3", "s4");
        foreach (var list in Directory.GetFiles(Path.Combine(decl.Path, "refs"), "*.ref")) File.SetLastWriteTimeUtc(list, DateTime.UtcNow.AddDays(-2));

        // An empty catalog (kept: none, deleted: none) would sweep all four: they stay, chunks and all, and the report says why.
        media.Tell(new PruneLibrary { Library = "libu", Job = "p1", OrphanAfterSeconds = 86400 });
        var kept = FishForMessage<JobFinished>(_ => true, TimeSpan.FromSeconds(30));
        Assert.True(kept.Ok, kept.Reason);
        var problem = Assert.Single(kept.Prune.Problems);
        Assert.Contains("4 snapshots the manager's catalog does not know", problem);
        Assert.Contains("--drop-unknown", problem);
        Assert.Equal(0, kept.Prune.ChunksDead);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(decl.Path, "refs"), "*.ref").Length);
        // A catalog that keeps one and knows nothing of three: kept too. One that deleted two of them: goes on.
        media.Tell(new PruneLibrary { Library = "libu", Job = "p2", Attempt = 0, Keep = { "s1" }, OrphanAfterSeconds = 86400 });
        var again = FishForMessage<JobFinished>(m => m.Job == "p2", TimeSpan.FromSeconds(30));
        Assert.True(again.Ok && again.Prune.ChunksDead == 0 && again.Prune.Problems.Count == 1, again.ToString());
        Assert.Equal(4, Directory.GetFiles(Path.Combine(decl.Path, "refs"), "*.ref").Length);
        media.Tell(new PruneLibrary { Library = "libu", Job = "p3", Keep = { "s1", "s2" }, Deleted = { "s3" }, OrphanAfterSeconds = 86400 });
        var known = FishForMessage<JobFinished>(m => m.Job == "p3", TimeSpan.FromSeconds(30));
        Assert.True(known.Ok, known.Reason); // s4 alone unknown: a failed backup's list, removed
        Assert.Equal(["s1.ref", "s2.ref"], Directory.GetFiles(Path.Combine(decl.Path, "refs"), "*.ref").Select(Path.GetFileName).Order());
        // The operator says the unknown ones go.
        media.Tell(new PruneLibrary { Library = "libu", Job = "p4", OrphanAfterSeconds = 86400, DropUnknown = true });
        var dropped = FishForMessage<JobFinished>(m => m.Job == "p4", TimeSpan.FromSeconds(30));
        Assert.True(dropped.Ok, dropped.Reason);
        Assert.Empty(Directory.GetFiles(Path.Combine(decl.Path, "refs"), "*.ref"));
    }

    [Fact]
    public void Deletions_the_manager_held_back_for_the_next_prune_do_not_read_as_a_catalog_that_lost_its_journal()
    {
        // Three lists this prune was not told of: more than it keeps (one), so a catalog that lost its journal, unless the
        // manager said it held back as many deletions (past the 100,000 a prune takes).
        var request = new PruneLibrary { Library = "libu", Keep = { "s1" }, Deleted = { "s2" } };
        Assert.NotNull(MediaActor.UnknownListsRefusal(request, ["x", "y", "z"]));
        request.DeletionsHeldBack = 3;
        Assert.Null(MediaActor.UnknownListsRefusal(request, ["x", "y", "z"]));
    }

    [Fact]
    public async Task After_the_managers_journal_went_back_a_prune_keeps_what_the_catalog_does_not_know_until_a_rebuild_is_recorded()
    {
        var (decl, media) = await LibraryWithLists("libj", "s1", "s2", "s3", "s4", "s5");
        var refs = Path.Combine(decl.Path, "refs");
        foreach (var list in Directory.GetFiles(refs, "*.ref")) File.SetLastWriteTimeUtc(list, DateTime.UtcNow.AddDays(-2));
        // This library saw the manager's journal at 9000, long enough ago to count (JournalWatch.Settle).
        File.WriteAllText(Path.Combine(decl.Path, "manager-journal"), "highest 9000\n");
        JobFinished Prune(string job, long sequence, params string[] keep)
        {
            media.Tell(new PruneLibrary { Library = "libj", Job = job, Keep = { keep }, OrphanAfterSeconds = 86400, JournalSequence = sequence });
            var ended = FishForMessage<JobFinished>(m => m.Job == job, TimeSpan.FromSeconds(30));
            Assert.True(ended.Ok, ended.Reason);
            return ended;
        }
        // The manager's database restored from a backup taken before s4 and s5 were made: its numbers are lower, and its
        // catalog lacks them. Two unknown lists of five, two days old: a failed backup's would go; these stay.
        var kept = Prune("p1", 1000, "s1", "s2", "s3");
        Assert.Contains("the manager's journal went back in time (this library saw its sequence number 9000, now 1000", Assert.Single(kept.Prune.Problems));
        Assert.Contains("abk catalog rebuild libj", kept.Prune.Problems[0]);
        Assert.Equal(0, kept.Prune.ChunksDead);
        Assert.Equal(5, Directory.GetFiles(refs, "*.ref").Length);
        Assert.NotNull(new JournalWatch(decl.Path).Behind); // kept in the library's folder: a node restart does not forget it
        // A dry run of --drop-unknown changes nothing of that.
        media.Tell(new PruneLibrary { Library = "libj", Job = "p2", Keep = { "s1", "s2", "s3" }, OrphanAfterSeconds = 86400, JournalSequence = 1050, DropUnknown = true, DryRun = true });
        Assert.True(FishForMessage<JobFinished>(m => m.Job == "p2", TimeSpan.FromSeconds(30)).Ok);
        Assert.Single(Prune("p3", 1100, "s1", "s2", "s3").Prune.Problems); // still behind, higher numbers or not
        // A rebuild of the library is recorded (the operator found s4 and s5 were failed backups after all): prunes go on as before.
        media.Tell(new CatalogCaughtUp { Library = "libj", JournalSequence = 1200 });
        var after = Prune("p4", 1201, "s1", "s2", "s3");
        Assert.Empty(after.Prune.Problems);
        Assert.Equal(["s1.ref", "s2.ref", "s3.ref"], Directory.GetFiles(refs, "*.ref").Select(Path.GetFileName).Order());
        Assert.Null(new JournalWatch(decl.Path).Behind);
    }

    [Fact]
    public async Task A_prune_asked_again_while_it_runs_answers_once_for_the_newest_attempt()
    {
        // The manager took the agent for lost (its probes held back by a long journal write) and asked again: the prune
        // that runs answers for attempt 1, whose end the manager takes (it was refused as "being pruned by job p1").
        var (_, media) = await LibraryWithLists("liba", "s1", "s2");
        media.Tell(new PruneLibrary { Library = "liba", Job = "p1", Attempt = 0, Keep = { "s1" }, Deleted = { "s2" }, OrphanAfterSeconds = 86400 });
        media.Tell(new PruneLibrary { Library = "liba", Job = "p1", Attempt = 1, Keep = { "s1" }, Deleted = { "s2" }, OrphanAfterSeconds = 86400 });
        var ended = FishForMessage<JobFinished>(m => m.Job == "p1", TimeSpan.FromSeconds(30));
        Assert.True(ended.Ok, ended.Reason);
        Assert.Equal(1, ended.Attempt);
        Assert.Equal(["s2"], ended.Prune.DeletedHandled);
        // One end only: the next job's end comes with nothing of p1's before it.
        media.Tell(new PruneLibrary { Library = "liba", Job = "p2", Keep = { "s1" }, OrphanAfterSeconds = 86400 });
        var seen = new List<JobFinished>();
        FishForMessage(m =>
        {
            if (m is JobFinished f) seen.Add(f);
            return m is JobFinished { Job: "p2" };
        }, TimeSpan.FromSeconds(30));
        Assert.DoesNotContain(seen, f => f.Job == "p1");
    }

    [Fact]
    public async Task A_deleted_snapshots_list_written_after_the_prune_was_asked_for_stays_and_is_not_said_handled()
    {
        var (decl, media) = await LibraryWithLists("libg", "s1", "s2", "s3");
        var refs = Path.Combine(decl.Path, "refs");
        File.SetLastWriteTimeUtc(Path.Combine(refs, "s2.ref"), DateTime.UtcNow.AddDays(-2)); // written long before the prune was asked for
        // s3's list was written an hour ago: after the manager built this request (two hours ago, the request delayed), so a
        // copy of s3 made here again since; s2's list is the deleted one's. Live for this prune, older than the orphans' age too.
        File.SetLastWriteTimeUtc(Path.Combine(refs, "s3.ref"), DateTime.UtcNow.AddHours(-1));
        media.Tell(new PruneLibrary { Library = "libg", Job = "p1", Keep = { "s1" }, Deleted = { "s2", "s3" }, OrphanAfterSeconds = 60,
            AskedUnixMs = DateTimeOffset.UtcNow.AddHours(-2).ToUnixTimeMilliseconds() });
        var ended = FishForMessage<JobFinished>(m => m.Job == "p1", TimeSpan.FromSeconds(30));
        Assert.True(ended.Ok, ended.Reason);
        Assert.Equal(["s2"], ended.Prune.DeletedHandled); // s3 stays waiting in the catalog for a later prune
        Assert.Equal(1, ended.Prune.ChunksDead);
        Assert.Equal(["s1.ref", "s3.ref"], Directory.GetFiles(refs, "*.ref").Select(Path.GetFileName).Order());

        // A request built after it was written: it goes.
        media.Tell(new PruneLibrary { Library = "libg", Job = "p2", Keep = { "s1" }, Deleted = { "s3" }, OrphanAfterSeconds = 86400,
            AskedUnixMs = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeMilliseconds() });
        var later = FishForMessage<JobFinished>(m => m.Job == "p2", TimeSpan.FromSeconds(30));
        Assert.True(later.Ok, later.Reason);
        Assert.Equal(["s3"], later.Prune.DeletedHandled);
        Assert.Equal(["s1.ref"], Directory.GetFiles(refs, "*.ref").Select(Path.GetFileName));
    }

    [Fact]
    public async Task A_prune_whose_lists_came_in_parts_does_what_the_whole_request_says_and_a_forged_or_lost_part_sweeps_nothing()
    {
        var (decl, media) = await LibraryWithLists("libk", "s1", "s2", "s3", "s4");
        var refs = Path.Combine(decl.Path, "refs");
        foreach (var list in Directory.GetFiles(refs, "*.ref")) File.SetLastWriteTimeUtc(list, DateTime.UtcNow.AddDays(-2));
        PruneLibrary Request(string job) => new() { Library = "libk", Job = job, Keep = { "s1", "s2" }, Deleted = { "s3" }, OrphanAfterSeconds = 86400 };
        string[] Lists() => [.. Directory.GetFiles(refs, "*.ref").Select(Path.GetFileName).Order()!];

        // A part from elsewhere (s2 said deleted instead of kept): not the lists the request's digest names.
        var forged = Request("p1");
        var parts = KeepPages.Split(forged, pageSize: 1);
        Assert.Equal((3, 0, 0), (forged.KeepPages, forged.Keep.Count, forged.Deleted.Count));
        parts[1].Keep.Clear();
        parts[1].Deleted.Add("s2");
        foreach (var p in parts) media.Tell(p);
        media.Tell(forged);
        var refused = FishForMessage<JobFinished>(m => m.Job == "p1", TimeSpan.FromSeconds(30));
        Assert.False(refused.Ok);
        Assert.Equal(JobFault.FaultTransient, refused.Fault);
        Assert.Contains("not those the manager signed", refused.Reason);
        Assert.Equal(["s1.ref", "s2.ref", "s3.ref", "s4.ref"], Lists());

        // A part lost on the way.
        var lost = Request("p2");
        parts = KeepPages.Split(lost, pageSize: 1);
        media.Tell(parts[0]);
        media.Tell(parts[2]);
        media.Tell(lost);
        var missing = FishForMessage<JobFinished>(m => m.Job == "p2", TimeSpan.FromSeconds(30));
        Assert.False(missing.Ok);
        Assert.Contains("1 of the 3 parts", missing.Reason);
        Assert.Equal(["s1.ref", "s2.ref", "s3.ref", "s4.ref"], Lists());

        // Whole: s1 and s2 kept, s3 deleted and said handled, s4 (a failed backup's list, unknown to the catalog) removed.
        var whole = Request("p3");
        foreach (var p in KeepPages.Split(whole, pageSize: 1)) media.Tell(p);
        media.Tell(whole);
        var ended = FishForMessage<JobFinished>(m => m.Job == "p3", TimeSpan.FromSeconds(30));
        Assert.True(ended.Ok, ended.Reason);
        Assert.Equal(["s3"], ended.Prune.DeletedHandled);
        Assert.Equal(2, ended.Prune.ChunksDead);
        Assert.Equal(["s1.ref", "s2.ref"], Lists());
    }

    [Fact]
    public async Task A_copy_whose_source_session_the_managers_retry_closed_starts_again_under_the_newest_attempt()
    {
        // The manager took the target's agent for lost while the copy ran: it ended attempt 0's sessions on the source and
        // asked the target again. The copy, whose source session is gone, starts again under attempt 1 and answers for it
        // (it ended failed, to be run once more from the start).
        var (_, source) = await LibraryWithLists("srcc", "s1");
        var region = CreateTestProbe();
        var decl = new LibraryDeclaration("dstc", Path.Combine(Dir, "dstc"), 1024 * 1024);
        var target = Sys.ActorOf(MediaActor.Props(decl, TestActor, mediaRegion: region.Ref), "media-dstc");
        FishForMessage(m => m is IndexReport { Library: "dstc" }, TimeSpan.FromSeconds(20));
        target.Tell(new CopySnapshot { Library = "dstc", Job = "c1", Attempt = 0, Snapshot = "s1", SourceLibrary = "srcc" });
        var open = region.ExpectMsg<OpenSession>(TimeSpan.FromSeconds(20));
        var asker = region.LastSender;
        var first = await source.Ask<SessionOpened>(open, TimeSpan.FromSeconds(20));
        source.Tell(new EndJobSessions { Library = "srcc", Job = "c1", Attempt = 0 });
        await source.Ask<IndexReport>(new GetLibraryStatus { Library = "srcc" }, TimeSpan.FromSeconds(20)); // the end taken
        target.Tell(new CopySnapshot { Library = "dstc", Job = "c1", Attempt = 1, Snapshot = "s1", SourceLibrary = "srcc" });
        asker.Tell(first); // attempt 0's session, closed by now
        region.FishForMessage(m => m is OpenSession, TimeSpan.FromSeconds(30));
        region.Forward(source);
        var ended = FishForMessage<JobFinished>(m => m.Job == "c1", TimeSpan.FromSeconds(60));
        Assert.True(ended.Ok, ended.Reason);
        Assert.Equal(1, ended.Attempt);
        Assert.Equal(1, ended.Copy.ChunksSent);
        Assert.True(File.Exists(Path.Combine(decl.Path, "refs", "s1.ref")));
    }

    [Fact]
    public async Task A_session_whose_ticket_expired_is_closed_once_nothing_uses_it()
    {
        // Two looks' sessions under tickets that expire at once: one with a channel open (a catalog rebuild reading past
        // its 30 min), one left by a client node that went away (nothing closes it: no job's end names it).
        var (_, media) = await LibraryWithLists("libx", "s1");
        var soon = new JobTicket { Job = "look-1", ExpiresUnixMs = DateTimeOffset.UtcNow.AddSeconds(10).ToUnixTimeMilliseconds() }; // (1 s: a stall before the channel opened let a health look close both)
        var used = await media.Ask<SessionOpened>(new OpenSession { Library = "libx", Job = "look-1", Ticket = soon }, TimeSpan.FromSeconds(20));
        var left = await media.Ask<SessionOpened>(new OpenSession { Library = "libx", Job = "look-2", Ticket = soon }, TimeSpan.FromSeconds(20));
        var channel = DataPlaneSessions.Get(Sys).Connect(used, TimeSpan.FromSeconds(20));
        async Task<int> Sessions() => (await media.Ask<IndexReport>(new GetLibraryStatus { Library = "libx" }, TimeSpan.FromSeconds(20))).ActiveSessions;
        Assert.Equal(2, await Sessions());
        // The one nothing uses goes after its ticket expired (a health look every 5 s); the one in use stays and serves.
        await AwaitAssertAsync(async () => Assert.Equal(1, await Sessions()), TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
        Assert.Single(channel.ReadReferences("s1"));
        Assert.False(DataPlaneSessions.Get(Sys).InUse(left.Ticket));
        // Its channel closed, it goes too.
        channel.Dispose();
        await AwaitAssertAsync(async () => Assert.Equal(0, await Sessions()), TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
        Assert.Throws<LibraryFaultException>(() => channel.ReadReferences("s1"));
    }

    /// <summary>A media agent of library <paramref name="id"/> holding one chunk and a reference list of it for each of <paramref name="snapshots"/>.</summary>
    private async Task<(LibraryDeclaration Decl, IActorRef Media)> LibraryWithLists(string id, params string[] snapshots)
    {
        var decl = new LibraryDeclaration(id, Path.Combine(Dir, id), 1024 * 1024);
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var media = Sys.ActorOf(MediaActor.Props(decl, TestActor), "media-" + id);
        media.Tell(new OpenSession { Library = id, Job = "1", Write = true });
        var granted = FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(20));
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20)))
        {
            foreach (var s in snapshots)
                channel.AddReferences(s, [encoder.Store(System.Text.Encoding.UTF8.GetBytes("chunk of " + s), RecordFlags.None, channel).Id]);
            await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20));
        }
        media.Tell(new CloseSession { Library = id, Ticket = granted.Ticket });
        return (decl, media);
    }

}

/// <summary>The same journeys on PostgreSQL, the journal a cell spanning hosts shares.</summary>
[Collection(nameof(MediaActorJourneys))]
public sealed class MediaActorPostgresTests() : MediaActorJourneys(new TestPostgres())
{
    [PostgresFact]
    public Task The_index_survives_a_restart_through_journal_and_snapshot_and_every_chunk_reads_back() =>
        IndexSurvivesRestart(commits: 2 * MediaActor.SnapshotEvery + 7, trimmed: true);

    [PostgresFact]
    public void Records_written_after_the_last_commit_are_found_again_on_restart() => RecordsAfterLastCommitFoundAgain();
}

/// <summary>The media agent's index recovery, against whichever journal the subclass gives.</summary>
public abstract class MediaActorJourneys : JournalTestKit
{
    protected MediaActorJourneys(TestPostgres? postgres) : base(postgres, "abk-media-")
    {
        OnlyOwnLibraries(this, "libt", "libc", "libr", "libs");
    }

    /// <summary>
    /// Leaves out of <paramref name="kit"/>'s TestActor the registrations and reports of libraries other than its own: a
    /// Tell without a sender from code off an actor's thread (another test's cell) takes the TestActor that TestKit left
    /// in the thread's static as its sender, and the answer of that test's media agent would otherwise come here.
    /// </summary>
    internal static void OnlyOwnLibraries(TestKit kit, params string[] own)
    {
        kit.IgnoreMessages<IndexReport>(r => !own.Contains(r.Library));
        kit.IgnoreMessages<RegisterLibrary>(r => !own.Contains(r.Id));
    }

    protected IActorRef StartMedia(LibraryDeclaration decl, long snapshotMaxChunks = MediaActor.SnapshotMaxChunks, int entriesPerEvent = MediaActor.IndexEntriesPerEvent)
    {
        var media = Sys.ActorOf(MediaActor.Props(decl, TestActor, snapshotMaxChunks: snapshotMaxChunks, entriesPerEvent: entriesPerEvent));
        ExpectMsg<RegisterLibrary>(TimeSpan.FromSeconds(20));
        ExpectMsg<IndexReport>();
        return media;
    }

    protected async Task IndexSurvivesRestart(long snapshotMaxChunks = MediaActor.SnapshotMaxChunks, int commits = MediaActor.SnapshotEvery + 7,
        int entriesPerEvent = MediaActor.IndexEntriesPerEvent, bool trimmed = false)
    {
        var decl = new LibraryDeclaration("libt", Path.Combine(Dir, "libt"), 1024 * 1024);
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var media = StartMedia(decl, snapshotMaxChunks, entriesPerEvent);
        var stored = new List<(ChunkId Id, byte[] Plain)>();
        media.Tell(new OpenSession { Library = "libt", Job = "1", Write = true });
        var granted = ExpectMsg<SessionOpened>();
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20)))
        {
            // More commits than MediaActor.SnapshotEvery, so that recovery goes through a snapshot and events.
            for (var commit = 0; commit < commits; commit++)
            {
                for (var i = 0; i < 3; i++)
                {
                    var plain = new byte[20_000 + commit * 10 + i];
                    new Random(commit * 10 + i).NextBytes(plain);
                    stored.Add((encoder.Store(plain, RecordFlags.None, channel).Id, plain));
                }
                await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20)); // blocks on an Ask, as the engine's thread does
                ExpectMsg<IndexReport>(r => r.Chunks == (ulong)stored.Count, TimeSpan.FromSeconds(20));
            }
        }
        media.Tell(new CloseSession { Library = "libt", Ticket = granted.Ticket });
        Watch(media);
        media.Tell(PoisonPill.Instance);
        ExpectTerminated(media);
        Assert.False(File.Exists(Path.Combine(decl.Path, "index.abi")), "in a cell the journal is the index, not a file");
        // Two snapshots and more: the events before the first went (every commit's entries were kept for good).
        if (trimmed) AwaitAssert(() => Assert.True(Journaled("media-libt").Min() > MediaActor.SnapshotEvery, $"journal from event {Journaled("media-libt").Min()}"),
            TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(300));

        if (entriesPerEvent < 3) // each commit's 3 new chunks journaled in events of entriesPerEvent: more events than commits
            Assert.True(Journaled("media-libt").Count > commits + 5, $"{Journaled("media-libt").Count} events for {commits} commits");
        var again = StartMedia(decl, snapshotMaxChunks, entriesPerEvent);
        again.Tell(new GetLibraryStatus { Library = "libt" });
        Assert.Equal((ulong)stored.Count, ExpectMsg<IndexReport>().Chunks);
        again.Tell(new OpenSession { Library = "libt", Job = "2", Write = false });
        var read = ExpectMsg<SessionOpened>();
        using var reader = DataPlaneSessions.Get(Sys).Connect(read, TimeSpan.FromSeconds(20));
        using var decoder = new ChunkDecoder(keys);
        foreach (var (id, plain) in stored) Assert.Equal(plain, decoder.Load(id, reader).ToArray());
        again.Tell(new ListVolumes { Library = "libt" });
        var volumes = ExpectMsg<VolumeList>();
        Assert.True(volumes.Volumes.Count >= 3, "3.6 MB of random chunks fill more than three 1 MiB volumes");
        Assert.Equal("Full", volumes.Volumes[0].State);
    }

    /// <summary>
    /// A tape library with a read session open refuses the robot (a job may read any cartridge), unless the session is a
    /// backup's file index built in the background: that one is closed and the export done.
    /// </summary>
    protected void BackgroundIndexGivesWay()
    {
        var decl = new LibraryDeclaration("libr", Path.Combine(Dir, "libr"), 1024 * 1024, Drives: 1,
            Tape: new TapeDeclaration(new Engine.Tape.ChangerConfig(4, 1, 1L << 20), Engine.Tape.TapeTimings.Instant, ["AAA001L8", "BBB001L8"]));
        var media = StartMedia(decl);
        var export = new ChangeTape { Library = "libr", Verb = TapeVerb.Export, Barcode = "AAA001L8" };
        media.Tell(new OpenSession { Library = "libr", Job = "find-1", Write = false });
        var find = ExpectMsg<SessionOpened>();
        media.Tell(export);
        Assert.Contains("in use by running jobs (1 session", FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(20)).Reason);
        media.Tell(new CloseSession { Library = "libr", Ticket = find.Ticket });
        media.Tell(new OpenSession { Library = "libr", Job = $"{Trust.JobTickets.BackgroundIndex}-2", Write = false });
        var index = FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(20));
        using var channel = DataPlaneSessions.Get(Sys).Connect(index, TimeSpan.FromSeconds(20));
        Assert.Empty(channel.Missing([])); // open: it answers
        // A robot command refused anyway leaves the index reading.
        media.Tell(new ChangeTape { Library = "libr", Verb = TapeVerb.Export, Barcode = "ZZZ001L8" });
        Assert.Contains("ZZZ001L8", FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(20)).Reason);
        media.Tell(new GetLibraryStatus { Library = "libr" });
        Assert.Equal(1, FishForMessage<IndexReport>(r => r.Library == "libr", TimeSpan.FromSeconds(20)).ActiveSessions);
        media.Tell(export);
        var inventory = FishForMessage<LibraryInventory>(_ => true, TimeSpan.FromSeconds(20));
        Assert.Equal("outside", Assert.Single(inventory.Cartridges, c => c.Barcode == "AAA001L8").Place);
        media.Tell(new GetLibraryStatus { Library = "libr" });
        Assert.Equal(0, FishForMessage<IndexReport>(r => r.Library == "libr", TimeSpan.FromSeconds(20)).ActiveSessions);
        // The channel in place of the session that gave way reads no more (as a socket's connection is closed).
        var buffer = Array.Empty<byte>();
        Assert.Contains("has ended", Assert.Throws<LibraryFaultException>(() => channel.ReadPayload(new ChunkId(new byte[ChunkId.Size]), ref buffer, out _)).Message);
    }

    protected void RecordsAfterLastCommitFoundAgain()
    {
        var decl = new LibraryDeclaration("libc", Path.Combine(Dir, "libc"), 64 * 1024 * 1024);
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var media = StartMedia(decl);
        media.Tell(new OpenSession { Library = "libc", Job = "1", Write = true });
        var granted = ExpectMsg<SessionOpened>();
        ChunkId orphan;
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20)))
            orphan = encoder.Store(new byte[5000], RecordFlags.None, channel).Id; // appended, never committed
        Watch(media);
        media.Tell(PoisonPill.Instance); // closes the library: the record is flushed but its index entry was never journaled
        ExpectTerminated(media);
        var again = StartMedia(decl);
        again.Tell(new GetLibraryStatus { Library = "libc" });
        Assert.Equal(1ul, ExpectMsg<IndexReport>().Chunks);
        again.Tell(new OpenSession { Library = "libc", Job = "2", Write = false });
        using var reader = DataPlaneSessions.Get(Sys).Connect(ExpectMsg<SessionOpened>(), TimeSpan.FromSeconds(20));
        Assert.Equal(new byte[5000], new ChunkDecoder(keys).Load(orphan, reader).ToArray());
    }
}
