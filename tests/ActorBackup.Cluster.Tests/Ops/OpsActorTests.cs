using System.Threading.Channels;
using ActorBackup.Cluster.Ops;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests.Ops;

/// <summary>The operator endpoint's actor: one handler per command, so a stuck command holds up nobody.</summary>
public sealed class OpsActorTests() : TestKit("akka.actor.provider = cluster\nakka.remote.dot-netty.tcp.port = 0\nakka.loglevel = WARNING\n" + SlowMachine.Expect)
{
    private static (OpsCall Call, ChannelReader<OpsAnswer> Answers) Call(IMessage command, CancellationToken cancel = default)
    {
        var channel = Channel.CreateUnbounded<OpsAnswer>();
        return (new OpsCall(command, channel.Writer, cancel, ActorBackup.Protocol.Trust.CellIdentity.Of(ActorBackup.Protocol.Trust.CellRole.Operator, "test")), channel.Reader);
    }

    /// <summary>A manager that answers ListJobs and ListLibraries at once.</summary>
    private sealed class PromptManager : ReceiveActor
    {
        public PromptManager()
        {
            Receive<ListJobs>(_ => Sender.Tell(new JobList { Jobs = { new JobInfo { Id = "7" } } }));
            Receive<ListLibraries>(_ => Sender.Tell(new LibraryList { Libraries = { new LibraryInfo { Id = "lib9", Reachable = true } } }));
        }
    }

    [Fact]
    public async Task Nineteen_commands_are_answered_while_one_waits_on_a_media_agent_that_never_answers()
    {
        var manager = Sys.ActorOf(Props.Create(() => new PromptManager()));
        var stuckMedia = CreateTestProbe(); // receives ListVolumes and never answers
        var ops = Sys.ActorOf(OpsActor.Props(manager, stuckMedia.Ref, null, "", askTimeout: TimeSpan.FromSeconds(10)));

        var stuck = Call(new ListVolumes { Library = "lib9" });
        ops.Tell(stuck.Call);
        var sinceStuck = System.Diagnostics.Stopwatch.StartNew();
        stuckMedia.ExpectMsg<ListVolumes>(); // the stuck command has reached the media agent
        var others = Enumerable.Range(0, 19).Select(_ => Call(new ListJobs { Limit = 5 })).ToList();
        foreach (var o in others) ops.Tell(o.Call);
        foreach (var o in others)
        {
            var answer = await o.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(8));
            Assert.False(answer.More);
            Assert.Equal("7", Assert.IsType<JobList>(answer.Message).Jobs[0].Id);
        }
        // Unanswered still, unless its own 10 s passed meanwhile (a loaded machine): then its answer is the timeout, below.
        if (sinceStuck.Elapsed < TimeSpan.FromSeconds(9))
            Assert.False(stuck.Answers.TryRead(out _), "the stuck command was answered before its media agent answered");

        var late = await stuck.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("did not answer in 10 s", Assert.IsType<CommandRejected>(late.Message).Reason);
    }

    /// <summary>A manager that knows one snapshot, of client "web1".</summary>
    private sealed class CatalogManager : ReceiveActor
    {
        public CatalogManager() =>
            Receive<GetSnapshot>(g => Sender.Tell(new SnapshotDetail { Info = new SnapshotInfo { Id = g.Snapshot, Client = "web1" }, Manifest = ByteString.CopyFromUtf8("m") }));
    }

    [Fact]
    public async Task An_ls_lets_its_client_node_send_a_page_for_each_one_written_to_the_shell_and_waits_on_a_slow_shell_without_giving_up()
    {
        var client = CreateTestProbe();
        // An ask timeout short enough to wait past, long enough that the test thread's own turns (a reply to a page
        // asked for) never miss it on a busy machine; the parts that do not wait past it use a patient one.
        var catalog = Sys.ActorOf(Props.Create(() => new CatalogManager()));
        var ops = Sys.ActorOf(OpsActor.Props(catalog, CreateTestProbe().Ref, client.Ref, "web1", askTimeout: TimeSpan.FromSeconds(6)));
        var patient = Sys.ActorOf(OpsActor.Props(catalog, CreateTestProbe().Ref, client.Ref, "web1", askTimeout: TimeSpan.FromSeconds(60)));
        var call = Call(new ListSnapshotTree { Snapshot = "s1" });
        ops.Tell(call.Call);
        var asked = client.ExpectMsg<ListTree>(TimeSpan.FromSeconds(10));
        Assert.Equal("s1", asked.Snapshot);
        Assert.True(asked.Window is > 0 and <= Cluster.Client.ClientActor.MaxListingWindow);
        Assert.NotEmpty(asked.Listing);
        for (var i = 0; i < 3; i++) client.Reply(new SnapshotTree { Snapshot = "s1", More = true, Paced = true, Entries = { new TreeEntry { Path = $"/f{i}" } } });

        // The shell has not read them: no page is taken, and the command waits past its ask timeout (the client node is
        // not the slow one).
        var first = await call.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(first.More);
        client.ExpectNoMsg(TimeSpan.FromSeconds(7));
        Assert.True(call.Answers.TryRead(out var second) && second.More);
        Assert.True(call.Answers.TryRead(out var third) && third.More);
        Assert.False(call.Answers.TryRead(out _));

        // Written to the shell, one by one: a page taken for each.
        foreach (var answer in new[] { first, second, third })
        {
            answer.Written!();
            var taken = client.ExpectMsg<TreePagesTaken>(TimeSpan.FromSeconds(10));
            Assert.Equal(asked.Listing, taken.Listing);
            Assert.Equal(1, taken.Pages);
        }
        client.Reply(new SnapshotTree { Snapshot = "s1", More = false });
        var last = await call.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(last.More);
        Assert.IsType<SnapshotTree>(last.Message);

        // Nothing written and nothing coming: the client node is said not to answer (and told to stop).
        var stalled = Call(new ListSnapshotTree { Snapshot = "s2" });
        ops.Tell(stalled.Call);
        var stalledListing = client.ExpectMsg<ListTree>(TimeSpan.FromSeconds(10)).Listing;
        var gaveUp = await stalled.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("did not answer in 6 s", Assert.IsType<CommandRejected>(gaveUp.Message).Reason);
        Assert.True(client.ExpectMsg<TreePagesTaken>(TimeSpan.FromSeconds(10)) is { Done: true } stop && stop.Listing == stalledListing);

        // The shell goes away mid-listing: the client node is told to stop at once.
        using var hangUp = new CancellationTokenSource();
        var gone = Call(new ListSnapshotTree { Snapshot = "s3" }, hangUp.Token);
        patient.Tell(gone.Call);
        var goneListing = client.ExpectMsg<ListTree>(TimeSpan.FromSeconds(10)).Listing;
        client.Reply(new SnapshotTree { Snapshot = "s3", More = true, Paced = true });
        await gone.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        await hangUp.CancelAsync();
        Assert.True(client.ExpectMsg<TreePagesTaken>(TimeSpan.FromSeconds(10)) is { Done: true } done && done.Listing == goneListing);

        // A client node before pacing: its pages are passed on, none is said taken.
        var old = Call(new ListSnapshotTree { Snapshot = "s4" });
        patient.Tell(old.Call);
        client.ExpectMsg<ListTree>(TimeSpan.FromSeconds(10));
        client.Reply(new SnapshotTree { Snapshot = "s4", More = true });
        var unpaced = await old.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(unpaced.Written);
        client.Reply(new SnapshotTree { Snapshot = "s4", More = false });
        Assert.False((await old.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10))).More);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // finished whole: no stop either
    }

    [Fact]
    public async Task A_manager_that_does_not_answer_is_said_to_be_down_or_starting_again_after_a_journal_failure()
    {
        var silentManager = CreateTestProbe(); // as the manager singleton while its supervisor waits to start it again
        var ops = Sys.ActorOf(OpsActor.Props(silentManager.Ref, CreateTestProbe().Ref, null, "", askTimeout: TimeSpan.FromSeconds(1)));
        var call = Call(new ListJobs { Limit = 5 });
        ops.Tell(call.Call);
        var answer = await call.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        var reason = Assert.IsType<CommandRejected>(answer.Message).Reason;
        Assert.Contains("the manager did not answer in 1 s", reason);
        Assert.Contains("starting again after a failure of its journal, the catalog's database", reason);
    }

    [Fact]
    public async Task A_command_for_an_unknown_library_says_which_are_known()
    {
        var manager = Sys.ActorOf(Props.Create(() => new PromptManager()));
        var ops = Sys.ActorOf(OpsActor.Props(manager, CreateTestProbe().Ref, null));
        var call = Call(new ListVolumes { Library = "nope" });
        ops.Tell(call.Call);
        var answer = await call.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("unknown library 'nope': known are lib9", Assert.IsType<CommandRejected>(answer.Message).Reason);
    }

    [Fact]
    public async Task A_message_that_is_no_operator_command_is_refused_by_name()
    {
        var ops = Sys.ActorOf(OpsActor.Props(CreateTestProbe().Ref, CreateTestProbe().Ref, null));
        var call = Call(new JobFinished { Job = "1", Ok = true });
        ops.Tell(call.Call);
        var answer = await call.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains("JobFinished is not an operator command", Assert.IsType<CommandRejected>(answer.Message).Reason);
    }

    [Fact]
    public async Task Job_watch_streams_progress_then_ends_with_the_final_state_and_stops_when_the_shell_hangs_up()
    {
        var manager = CreateTestProbe();
        var ops = Sys.ActorOf(OpsActor.Props(manager.Ref, CreateTestProbe().Ref, null));
        var watch = Call(new WatchJob { Job = "3" });
        ops.Tell(watch.Call);
        manager.ExpectMsg<WatchJob>();
        var handler = manager.LastSender;
        handler.Tell(new JobProgress { Job = "3", BytesDone = 10, BytesTotal = 100 });
        var progress = await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(progress.More);
        // Not ended: passed on when it changes (queued and why, a new attempt), once.
        handler.Tell(new JobInfo { Id = "3", State = JobState.Queued, Reason = "waiting: client web1 is offline" });
        handler.Tell(new JobInfo { Id = "3", State = JobState.Queued, Reason = "waiting: client web1 is offline" });
        handler.Tell(new JobInfo { Id = "3", State = JobState.Running, Attempt = 1 });
        var waiting = await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(waiting.More);
        Assert.Equal("waiting: client web1 is offline", Assert.IsType<JobInfo>(waiting.Message).Reason);
        var running = await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((JobState.Running, 1), (Assert.IsType<JobInfo>(running.Message).State, ((JobInfo)running.Message).Attempt));
        handler.Tell(new JobInfo { Id = "3", State = JobState.Succeeded });
        var end = await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(end.More);
        Assert.Equal(JobState.Succeeded, Assert.IsType<JobInfo>(end.Message).State);

        using var hangUp = new CancellationTokenSource();
        var abandoned = Call(new WatchJob { Job = "4" }, hangUp.Token);
        ops.Tell(abandoned.Call);
        manager.ExpectMsg<WatchJob>();
        var abandonedHandler = manager.LastSender;
        Watch(abandonedHandler);
        await hangUp.CancelAsync();
        ExpectTerminated(abandonedHandler);
    }

    [Fact]
    public async Task A_watch_is_given_again_to_a_manager_that_took_over_and_ends_with_what_it_recorded()
    {
        var manager = CreateTestProbe(); // the manager's singleton proxy: whichever manager is up
        var ops = Sys.ActorOf(OpsActor.Props(manager.Ref, CreateTestProbe().Ref, null, watchEvery: TimeSpan.FromMilliseconds(200)));
        var watch = Call(new WatchJob { Job = "5" });
        ops.Tell(watch.Call);
        manager.ExpectMsg<WatchJob>(); // the first manager took it, then stopped: no answer ever comes from it
        // Its successor gets the watch again (its job actor knows no watcher), and answers with the job as recorded.
        manager.ExpectMsg<WatchJob>(TimeSpan.FromSeconds(20));
        manager.Reply(new JobInfo { Id = "5", State = JobState.Running }); // not ended: the watch goes on (the shell hears it runs)
        Assert.True((await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20))).More);
        manager.ExpectMsg<WatchJob>(TimeSpan.FromSeconds(20));
        manager.Reply(new JobInfo { Id = "5", State = JobState.Failed, Reason = "disk full" });
        var end = await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(end.More);
        Assert.Equal(JobState.Failed, Assert.IsType<JobInfo>(end.Message).State);
    }

    [Fact]
    public async Task A_first_watch_refused_is_the_answer()
    {
        var manager = CreateTestProbe();
        var ops = Sys.ActorOf(OpsActor.Props(manager.Ref, CreateTestProbe().Ref, null, watchEvery: TimeSpan.FromMinutes(5)));
        var watch = Call(new WatchJob { Job = "6" });
        ops.Tell(watch.Call);
        manager.ExpectMsg<WatchJob>();
        manager.Reply(new CommandRejected { Reason = "no job 6: list them with 'abk job list'" });
        var end = await watch.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Contains("no job 6", Assert.IsType<CommandRejected>(end.Message).Reason);
    }

    /// <summary>
    /// A manager whose catalog holds <paramref name="count"/> snapshots, answering as the manager does, page by page;
    /// with <paramref name="deleteCursor"/> the last snapshot of the first page is deleted right after it is sent.
    /// </summary>
    private sealed class LargeCatalog : ReceiveActor
    {
        public LargeCatalog(int count, bool deleteCursor)
        {
            var catalog = Enumerable.Range(0, count).Select(i => new SnapshotInfo { Id = $"s{i:D5}", Client = "host-a" }).ToList();
            Receive<ListSnapshots>(m =>
            {
                var page = Manager.SnapshotPages.Page(catalog, s => s.Id, m, out var more);
                if (page is null)
                {
                    Sender.Tell(new CommandRejected { Reason = Manager.SnapshotPages.Changed });
                    return;
                }
                Assert.True(page.Count <= Manager.SnapshotPages.PageSize, "a page larger than a page");
                Sender.Tell(new SnapshotList { Snapshots = { page }, More = more });
                if (deleteCursor && m.After == "")
                {
                    catalog.Remove(page[^1]); // retention deletes it before the next page is asked for
                    deleteCursor = false;
                }
            });
        }
    }

    /// <summary>A manager of a build that pages by offset, taking no cursor: every ask is its first page.</summary>
    private sealed class OlderCatalog : ReceiveActor
    {
        public OlderCatalog(int count) => Receive<ListSnapshots>(m => Sender.Tell(new SnapshotList
        {
            Snapshots = { Enumerable.Range(0, (int)m.Take).Select(i => new SnapshotInfo { Id = $"s{i:D5}" }) }, More = count > m.Take,
        }));
    }

    private async Task<List<string>> ListAll(IActorRef ops, List<int> frames, uint take = Manager.SnapshotPages.PageSize)
    {
        var list = Call(new ListSnapshots { Take = take });
        ops.Tell(list.Call);
        var ids = new List<string>();
        while (true)
        {
            var answer = await list.Answers.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            frames.Add(Assert.IsType<SnapshotList>(answer.Message).Snapshots.Count);
            ids.AddRange(((SnapshotList)answer.Message).Snapshots.Select(s => s.Id));
            if (!answer.More) return ids;
        }
    }

    [Fact]
    public async Task A_catalog_larger_than_a_message_is_listed_page_by_page_every_snapshot_once_in_order_even_as_one_is_deleted()
    {
        var count = (int)Manager.SnapshotPages.PageSize * 2 + 500;
        var frames = new List<int>();
        var ops = Sys.ActorOf(OpsActor.Props(Sys.ActorOf(Props.Create(() => new LargeCatalog(count, false))), CreateTestProbe().Ref, null));
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"s{i:D5}"), await ListAll(ops, frames));
        Assert.Equal([1000, 1000, 500], frames);
        // A shell that asks for no pages (older than paging) gets the list in one answer, never a last page alone.
        frames.Clear();
        Assert.Equal(count, (await ListAll(ops, frames, take: 0)).Count);
        Assert.Equal([count], frames);
        // The snapshot a page would go on after is deleted between two pages: nothing is left out, nothing twice.
        var changing = Sys.ActorOf(OpsActor.Props(Sys.ActorOf(Props.Create(() => new LargeCatalog(count, true))), CreateTestProbe().Ref, null));
        var deleted = $"s{Manager.SnapshotPages.PageSize - 1:D5}";
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"s{i:D5}").Where(id => id != deleted), await ListAll(changing, []));
        // A manager that knows no cursor answers its first page again: said, not looped on for ever.
        var older = Sys.ActorOf(Props.Create(() => new OlderCatalog(count)));
        Assert.Contains("same page again", Assert.IsType<CommandRejected>(await Manager.SnapshotPages.All(new ListSnapshots(), m => older.Ask<object>(m, TimeSpan.FromSeconds(20)))).Reason);
        // Asked for no page, the manager answers the whole list in one (what an older node asks).
        Assert.Equal(7, Manager.SnapshotPages.Page(Enumerable.Range(0, 7).ToList(), i => i.ToString(), new ListSnapshots(), out var more)!.Count);
        Assert.False(more);
    }
}
