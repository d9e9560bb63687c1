using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// A job's own actor: it sends the assignment, tells its watchers, and tells the manager (its parent, here the
/// test actor) when the client of the running attempt is gone or no longer runs the job, or ignores a cancel.
/// </summary>
public sealed class JobActorTests() : TestKit("akka.loglevel = WARNING\n" + SlowMachine.Expect)
{
    private static readonly TimeSpan Probe = TimeSpan.FromMilliseconds(200);

    private IActorRef Job(string id = "7", TimeSpan? probe = null) => ChildActorOf(JobActor.Props(id, "web01", probe ?? Probe), JobActor.NameOf(id));

    [Fact]
    public void The_assignment_goes_to_the_client_and_watchers_hear_progress_and_the_end()
    {
        var job = Job(probe: TimeSpan.FromSeconds(30)); // the probe client never answers: no probe within this test
        var client = CreateTestProbe();
        var watcher = CreateTestProbe();
        job.Tell(new JobActor.Watch(watcher.Ref), TestActor); // while it is queued: from the manager, which took the WatchJob signed
        job.Tell(new JobActor.Attempt(0, client.Ref, new BackupAssignment { Job = new JobInfo { Id = "7" } }), TestActor);
        Assert.Equal("7", client.ExpectMsg<BackupAssignment>().Job.Id);

        job.Tell(new JobProgress { Job = "7", FilesDone = 3 }, TestActor);
        Assert.Equal(3, watcher.ExpectMsg<JobProgress>().FilesDone);
        // Anyone else that learnt the job actor's address: no watch taken, no progress faked.
        var stranger = CreateTestProbe();
        job.Tell(new WatchJob { Job = "7" }, stranger.Ref);
        job.Tell(new JobActor.Watch(stranger.Ref), stranger.Ref);
        job.Tell(new JobProgress { Job = "7", FilesDone = 999 }, stranger.Ref);
        var late = CreateTestProbe();
        job.Tell(new JobActor.Watch(late.Ref), TestActor);
        Assert.Equal(3, late.ExpectMsg<JobProgress>().FilesDone); // a watcher that comes late sees where it is

        Watch(job);
        job.Tell(new JobActor.Closed(new JobInfo { Id = "7", State = JobState.Succeeded }), TestActor);
        Assert.Equal(JobState.Succeeded, watcher.ExpectMsg<JobInfo>().State);
        Assert.Equal(JobState.Succeeded, late.ExpectMsg<JobInfo>().State);
        ExpectTerminated(job);
        stranger.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // it heard nothing (and the late watcher saw 3, not 999)
    }

    [Fact]
    public void The_parts_of_a_long_list_go_before_the_assignment_in_order_and_from_the_manager()
    {
        var job = Job("8", TimeSpan.FromSeconds(30));
        var media = CreateTestProbe();
        var prune = new PruneLibrary { Library = "lib1", Job = "8", Keep = { "a", "b", "c" } };
        var parts = ActorBackup.Cluster.Media.KeepPages.Split(prune, pageSize: 1);
        job.Tell(new JobActor.Attempt(0, media.Ref, prune, Before: parts), TestActor);
        foreach (var part in parts)
        {
            Assert.Equal(part.Page, media.ExpectMsg<KeepPage>().Page);
            Assert.Equal(TestActor, media.LastSender); // as the assignment: from the manager (the media agent takes parts only from its request's sender)
        }
        Assert.Equal(3, media.ExpectMsg<PruneLibrary>().KeepPages);
        Assert.Equal(TestActor, media.LastSender);
    }

    [Fact]
    public void A_client_that_stops_loses_the_job_and_one_that_stops_after_a_requeue_does_not()
    {
        var job = Job(probe: TimeSpan.FromSeconds(30)); // death watch alone: no probe can lose it first on a busy machine
        var first = Sys.ActorOf(Props.Create(() => new Silent()));
        job.Tell(new JobActor.Attempt(0, first, null), TestActor);
        job.Tell(new JobActor.Requeued(0), TestActor);
        var second = Sys.ActorOf(Props.Create(() => new Silent()));
        job.Tell(new JobActor.Attempt(1, second, null), TestActor);
        Sys.Stop(first);
        Sys.Stop(second);
        var lost = ExpectMsg<JobActor.JobLost>();
        Assert.Equal(1, lost.Attempt); // only the attempt that ran when its client went
        Assert.Contains("vanished", lost.Reason);
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
    }

    [Fact]
    public void A_cancel_goes_to_the_client_and_an_unconfirmed_one_comes_back_to_the_manager()
    {
        // The cancel waits one probe interval; the unanswered probes would lose the job only after three.
        var job = Job(probe: TimeSpan.FromSeconds(1));
        var client = CreateTestProbe();
        job.Tell(new JobActor.Attempt(1, client.Ref, null), TestActor);
        job.Tell(new CancelJob { Job = "7" }, TestActor);
        client.FishForMessage(m => m is CancelAssignment { Job: "7" });
        var unconfirmed = ExpectMsg<JobActor.CancelUnconfirmed>(TimeSpan.FromSeconds(10));
        Assert.Equal(("7", 1), (unconfirmed.Job, unconfirmed.Attempt));
    }

    /// <summary>A client that never answers a probe (death watch is what notices it).</summary>
    private sealed class Silent : ReceiveActor
    {
        public Silent() => ReceiveAny(_ => { });
    }
}

/// <summary>
/// A job actor's probes on a scheduler the test moves by hand: each probe is answered (the answer is in the job actor's
/// mailbox) before the test lets the next interval pass, so a busy machine cannot turn an answer into a miss.
/// </summary>
public sealed class JobActorProbeTests() : TestKit("""
    akka.loglevel = WARNING
    akka.scheduler.implementation = "Akka.TestKit.TestScheduler, Akka.TestKit"
    """ + "\n" + SlowMachine.Expect)
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(1);
    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;

    private static RegisterClient Running(params string[] jobs) => new() { Id = "web01", RunningJobs = { jobs } };

    /// <summary>Job 7's actor running attempt <paramref name="attempt"/> on <paramref name="client"/>, once it took it (its probe timer armed).</summary>
    private IActorRef Attempting(int attempt, IActorRef client, Google.Protobuf.IMessage? probe = null)
    {
        var job = ChildActorOf(JobActor.Props("7", "web01", Every), JobActor.NameOf("7"));
        job.Tell(new JobActor.Attempt(attempt, client, null, probe), TestActor);
        Taken(job);
        return job;
    }

    /// <summary>Returns once the job actor took what was sent to it before: a watcher's progress, sent after, reaches the watcher.</summary>
    private void Taken(IActorRef job)
    {
        var watcher = CreateTestProbe();
        job.Tell(new JobActor.Watch(watcher.Ref), TestActor);
        job.Tell(new JobProgress { Job = "7" }, TestActor);
        watcher.ExpectMsg<JobProgress>();
    }

    /// <summary>The job is lost for <paramref name="reason"/>, and <paramref name="asked"/> gets no probe after.</summary>
    private void ExpectLost(int attempt, string reason, Akka.TestKit.TestProbe asked)
    {
        var lost = ExpectMsg<JobActor.JobLost>();
        Assert.Equal(("7", attempt), (lost.Job, lost.Attempt));
        Assert.Contains(reason, lost.Reason);
        Clock.Advance(Every * 5);
        asked.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_client_that_no_longer_runs_the_job_twice_in_a_row_loses_it_once_running_it_keeps_it()
    {
        // Three times with the job, once without (it may have just finished), once with, then twice without.
        string[][] script = [["7", "8"], ["7", "8"], ["7", "8"], ["8"], ["7"], [], []];
        var answered = CreateTestProbe();
        Attempting(2, Sys.ActorOf(Props.Create(() => new ScriptedClient(new Queue<string[]>(script), answered.Ref))));
        for (var i = 0; i < script.Length; i++)
        {
            // One interval: one probe. The next timer is armed before the probe goes, so before its answer is heard.
            Clock.Advance(Every);
            Assert.Equal(script[i].Length, answered.ExpectMsg<int>()); // a job lost early would be probed no more
        }
        ExpectLost(2, "no longer runs", answered);
    }

    [Fact]
    public void Only_the_probed_librarys_reports_count_for_a_media_agents_job()
    {
        // The media agent runs the job at the first probe, then twice no longer.
        string[][] script = [["7"], [], []];
        var answered = CreateTestProbe();
        var job = Attempting(0, Sys.ActorOf(Props.Create(() => new ScriptedMedia(new Queue<string[]>(script), answered.Ref))), new GetLibraryStatus { Library = "lib1" });

        Clock.Advance(Every);
        Assert.Equal(1, answered.ExpectMsg<int>());
        // Reports of another library, from anyone, saying no job: not counted (a loss would be sent as they are taken,
        // before the progress that follows them reaches the watcher).
        var other = CreateTestProbe();
        for (var i = 0; i < 3; i++) job.Tell(new IndexReport { Library = "lib2" }, other.Ref);
        Taken(job);
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));

        Clock.Advance(Every);
        Assert.Equal(0, answered.ExpectMsg<int>());
        Clock.Advance(Every);
        Assert.Equal(0, answered.ExpectMsg<int>());
        ExpectLost(0, "the media agent of library lib1 no longer runs the job", answered);
    }

    [Fact]
    public void A_client_that_answers_no_probe_loses_the_job_at_the_second_probe_unanswered()
    {
        var client = CreateTestProbe(); // it gets the probes and answers none
        Attempting(1, client.Ref);

        Clock.Advance(Every);
        client.ExpectMsg<RegistrationRequest>(); // the first probe: nothing unanswered yet
        Clock.Advance(Every);
        client.ExpectMsg<RegistrationRequest>(); // the first unanswered: one miss, asked again
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Clock.Advance(Every);
        ExpectLost(1, "client web01 does not answer", client); // the second unanswered in a row
    }

    [Fact]
    public void A_media_agent_that_answers_no_probe_loses_its_job_only_after_a_long_silence()
    {
        // Journaling a large sweep, it answers nothing (its commands wait for the write): its prune runs on, and is not
        // taken for lost at the second probe as a client's job is.
        var media = CreateTestProbe();
        Attempting(0, media.Ref, new GetLibraryStatus { Library = "lib1" });
        for (var probe = 0; probe < JobActor.MediaSilencesBeforeLost; probe++)
        {
            Clock.Advance(Every);
            media.ExpectMsg<GetLibraryStatus>();
        }
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Clock.Advance(Every);
        ExpectLost(0, "the media agent of library lib1 does not answer", media);
    }

    [Fact]
    public void A_cancel_asked_again_does_not_put_off_the_end_of_one_the_client_does_not_confirm()
    {
        var client = CreateTestProbe(); // it confirms no cancel
        var job = Attempting(1, client.Ref);
        job.Tell(new CancelJob { Job = "7" }, TestActor);
        Taken(job); // the cancel's timer runs
        client.FishForMessage(m => m is CancelAssignment);
        Clock.Advance(Every * 0.6);
        job.Tell(new CancelJob { Job = "7" }, TestActor); // asked again before the first's interval is over
        client.FishForMessage(m => m is CancelAssignment); // passed on again
        Clock.Advance(Every * 0.5); // one interval after the first cancel
        var unconfirmed = ExpectMsg<JobActor.CancelUnconfirmed>();
        Assert.Equal(("7", 1), (unconfirmed.Job, unconfirmed.Attempt));
    }

    /// <summary>A media agent that answers each probe with a report naming the next jobs of its script.</summary>
    private sealed class ScriptedMedia : ReceiveActor
    {
        public ScriptedMedia(Queue<string[]> script, IActorRef answered) =>
            Receive<GetLibraryStatus>(g =>
            {
                var jobs = script.Count > 0 ? script.Dequeue() : [];
                Sender.Tell(new IndexReport { Library = g.Library, Jobs = { jobs } });
                answered.Tell(jobs.Length);
            });
    }

    /// <summary>A client that answers each probe with the next running-jobs list of its script.</summary>
    private sealed class ScriptedClient : ReceiveActor
    {
        public ScriptedClient(Queue<string[]> script, IActorRef answered) =>
            Receive<RegistrationRequest>(_ =>
            {
                var jobs = script.Count > 0 ? script.Dequeue() : [];
                Sender.Tell(Running(jobs));
                answered.Tell(jobs.Length);
            });
    }
}

/// <summary>A job actor's stall watch: a client that answers every probe with the job but reports figures that do not move.</summary>
public sealed class JobActorStallTests() : TestKit("akka.loglevel = WARNING\n" + SlowMachine.Expect)
{
    /// <summary>Job 7's actor (probes every 500 ms, stalled after <paramref name="stallMs"/>) running attempt 3 on a client that
    /// runs it; what the client is told comes to the probe returned. (At 100 ms, a client actor starved for 200 ms on a
    /// loaded machine missed two probes and the job was lost as silent, not stalled.)</summary>
    private (IActorRef Job, Akka.TestKit.TestProbe Told) Attempting(int stallMs)
    {
        var told = CreateTestProbe();
        var client = Sys.ActorOf(Props.Create(() => new Running(told.Ref)));
        var job = ChildActorOf(JobActor.Props("7", "web01", TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(stallMs)), JobActor.NameOf("7"));
        job.Tell(new JobActor.Attempt(3, client, null), TestActor);
        return (job, told);
    }

    [Fact]
    public void An_attempt_whose_figures_stop_moving_is_lost_and_its_client_told_to_stop_it()
    {
        var (job, told) = Attempting(stallMs: 2000);
        job.Tell(new JobProgress { Job = "7", FilesDone = 42 }, TestActor);
        var lost = ExpectMsg<JobActor.JobLost>(TimeSpan.FromSeconds(20));
        Assert.Equal(("7", 3), (lost.Job, lost.Attempt));
        Assert.Contains("no progress on client web01", lost.Reason);
        Assert.Contains("still at 42 files", lost.Reason);
        var cancel = (CancelAssignment)told.FishForMessage(m => m is CancelAssignment { Job: "7" });
        Assert.Contains("stopped by the manager: no progress", cancel.Reason); // not an operator's cancel
    }

    [Fact]
    public void An_attempt_that_reports_nothing_is_not_stalled()
    {
        var (_, told) = Attempting(stallMs: 1000);
        // Probes answered (the client runs the job), no report: a pre-command. A few probes' worth, then still running.
        for (var i = 0; i < 6; i++) told.ExpectMsg<RegistrationRequest>(TimeSpan.FromSeconds(20));
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    /// <summary>A client that runs job 7: it answers each probe with it and passes on what it is told.</summary>
    private sealed class Running : ReceiveActor
    {
        public Running(IActorRef told)
        {
            Receive<RegistrationRequest>(r =>
            {
                Sender.Tell(new RegisterClient { Id = "web01", RunningJobs = { "7" } });
                told.Tell(r);
            });
            ReceiveAny(told.Tell);
        }
    }
}
