using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The catalog's lifecycle decisions: an operator's delete, retention by policy, snapshots a job reads.</summary>
public class RetentionStateTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    private static ManagerState Apply(ManagerState s, IEnumerable<IMessage> events) => events.Aggregate(s, (st, e) => st.Apply(e));

    /// <summary>Set "web" of host-a under a policy keeping the last 2; snapshots s0 (full, lib1), s1, s2, s3 (full, lib2), one a day.</summary>
    private static ManagerState Cell()
    {
        var s = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 2 })
            .Apply(new LibraryRegistered { Id = "lib2", Node = "n2", Drives = 2 })
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep2", Retention = new RetentionRule { Last = 2 } } })
            .Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "keep2" } });
        for (var i = 0; i < 4; i++)
            s = s.Apply(new SnapshotRecorded
            {
                Manifest = new SnapshotManifest
                {
                    Id = $"s{i}", Client = "host-a", BackupSet = "web", Level = i is 0 or 3 ? Level.Full : Level.Incremental,
                    FinishedUnixMs = Now.AddDays(i - 4).ToUnixTimeMilliseconds(), Library = i == 3 ? "lib2" : "lib1",
                }.ToByteString(),
            });
        return s;
    }

    [Fact]
    public void A_deletion_held_for_the_delay_keeps_the_data_and_comes_back_whole_until_it_is_purged()
    {
        var s = Cell().Apply(new SnapshotVerified { Snapshot = "s3", Ok = true }).Apply(new SnapshotCopied { Snapshot = "s3", Library = "lib1" });
        var deleted = s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s3", "s0" } }, Now).Decision.Events.OfType<SnapshotsDeleted>().Single();
        // As the manager holds it under a deletion delay.
        var held = s.Apply(new SnapshotsTrashed { Snapshots = { deleted.Snapshots }, Reason = deleted.Reason, UnixMs = deleted.UnixMs });
        Assert.Equal(["s1", "s2"], held.Snapshots.Select(x => x.Id));
        Assert.Equal(["s0", "s3"], held.Trash.Keys);
        Assert.Empty(held.PendingDeletions); // no prune lets their data go
        Assert.Contains("s3", held.KeptOn("lib2"));
        Assert.Contains("s3", held.KeptOn("lib1")); // its copy
        Assert.Contains("s0", held.KeptOn("lib1"));
        Assert.Throws<KeyNotFoundException>(() => held.FindSnapshot("s3")); // out of the catalog: no restore of it
        Assert.Equal(held.Trash.Keys, new ManagerState().Apply(held.ToSnapshot()).Trash.Keys); // in the manager's snapshot
        var listed = held.TrashInfos(TimeSpan.FromDays(7), "").Single(i => i.Id == "s3");
        Assert.Equal((Now.ToUnixTimeMilliseconds(), Now.AddDays(7).ToUnixTimeMilliseconds(), true), (listed.DeletedUnixMs, listed.PurgeAfterUnixMs, listed.Verified));
        Assert.Empty(held.TrashInfos(TimeSpan.FromDays(7), "host-b"));

        // Brought back whole: where it was in the catalog, verified, with its copy, the chain's newest again.
        var (answer, undelete) = held.DecideUndelete(new UndeleteSnapshots { Snapshots = { "s3" } }, "operator alice", Now);
        Assert.Equal("s3", Assert.Single(answer.Snapshots).Id);
        var back = Apply(held, undelete.Events);
        Assert.Equal(["s1", "s2", "s3"], back.Snapshots.Select(x => x.Id));
        Assert.Contains("s3", back.Verified);
        Assert.Equal(["lib1"], back.Copies["s3"]);
        Assert.Equal("lib2", back.ChainLibrary("host-a", "web"));
        // Retention (keep the last 2) would delete s0 at once again: an operator brought it back, so it does not.
        var both = Apply(back, back.DecideUndelete(new UndeleteSnapshots { Snapshots = { "s0" } }, "", Now).Decision.Events);
        Assert.Equal(["s1"], both.DecideRetention(Now)!.Snapshots);
        Assert.Contains("brought back by an operator", both.RetentionVerdicts(Now)["s0"].Reasons.Last());
        Assert.Equal(["s1"], new ManagerState().Apply(both.ToSnapshot()).DecideRetention(Now)!.Snapshots); // in the manager's snapshot
        Assert.Contains("in the catalog, not deleted", back.DecideUndelete(new UndeleteSnapshots { Snapshots = { "s3" } }, "", Now).Decision.Rejection);
        Assert.Contains("no deleted snapshot zz is held", back.DecideUndelete(new UndeleteSnapshots { Snapshots = { "zz", "s0" } }, "", Now).Decision.Rejection);
        Assert.Equal(["s0"], back.Trash.Keys); // a refusal brings nothing back

        // Purged once the delay passed (the setting now, not when it was deleted): then its data goes at the next prune.
        Assert.Null(back.DecidePurge(Now.AddDays(6), TimeSpan.FromDays(7)));
        var purged = back.DecidePurge(Now.AddDays(7), TimeSpan.FromDays(7))!;
        Assert.Equal(["s0"], purged.Snapshots);
        Assert.NotNull(back.DecidePurge(Now.AddMinutes(1), TimeSpan.Zero)); // the delay shortened on the manager's node
        var gone = back.Apply(purged);
        Assert.Empty(gone.Trash);
        Assert.Contains("s0", gone.PendingDeletions["lib1"]);
        Assert.DoesNotContain("s0", gone.KeptOn("lib1"));
        Assert.Contains("no deleted snapshot s0 is held", gone.DecideUndelete(new UndeleteSnapshots { Snapshots = { "s0" } }, "", Now).Decision.Rejection);

        // A copy its rule's retention lets go is held too: kept by prunes of its library, back with an undelete, or purged.
        var copyHeld = back.Apply(new CopyTrashed { Snapshot = "s3", Library = "lib1", Reason = "retention of the copy", UnixMs = Now.ToUnixTimeMilliseconds() });
        Assert.False(copyHeld.Copies.ContainsKey("s3"));
        Assert.Contains("s3", copyHeld.KeptOn("lib1"));
        Assert.Contains(copyHeld.TrashInfos(TimeSpan.FromDays(7), ""), i => i.Id == "s3" && i.DeletedReason.StartsWith("its copy on lib1"));
        var copyBack = Apply(copyHeld, copyHeld.DecideUndelete(new UndeleteSnapshots { Snapshots = { "s3" } }, "", Now).Decision.Events);
        Assert.Equal(["lib1"], copyBack.Copies["s3"]);
        Assert.Equal(back.Undeleted, copyBack.Undeleted); // its copy came back, the snapshot was never deleted: retention's still
        Assert.Empty(copyHeld.Apply(new SnapshotCopied { Snapshot = "s3", Library = "lib1" }).HeldCopies); // copied there again
        var copyGone = copyHeld.Apply(copyHeld.DecidePurge(Now.AddDays(8), TimeSpan.FromDays(7))!);
        Assert.Contains("s3", copyGone.PendingDeletions["lib1"]);
        Assert.Contains(copyGone.Snapshots, x => x.Id == "s3"); // the snapshot itself stays
        Assert.Empty(copyGone.HeldCopies);
    }

    [Fact]
    public void A_copy_rules_retention_drops_an_old_copy_but_not_the_copy_of_a_held_snapshot()
    {
        // keep2 with a copy on lib2 kept by its own rule (last 1): s3 lives on lib2, s2 has a copy there.
        var s = Cell()
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep2", Retention = new RetentionRule { Last = 2 },
                Copies = { new CopyRule { Libraries = { "lib2" }, Retention = new RetentionRule { Last = 1 } } } } })
            .Apply(new SnapshotVerified { Snapshot = "s3", Ok = true })
            .Apply(new SnapshotCopied { Snapshot = "s2", Library = "lib2" });
        var dropped = Assert.Single(s.DecideCopyRetention(Now).OfType<CopyDropped>());
        Assert.Equal(("s2", "lib2"), (dropped.Snapshot, dropped.Library));
        var held = Apply(s, s.DecideHold(new HoldSnapshots { Snapshots = { "s2" }, UntilUnixMs = Now.AddDays(30).ToUnixTimeMilliseconds(), Reason = "case 7" },
            "operator alice", Now).Decision.Events);
        Assert.Empty(held.DecideCopyRetention(Now).OfType<CopyDropped>());
    }

    [Fact]
    public void A_held_snapshot_outlives_retention_and_an_operators_delete_until_its_hold_ends_and_a_hold_is_never_shortened()
    {
        var s = Cell().Apply(new SnapshotVerified { Snapshot = "s3", Ok = true }).Apply(new SnapshotCopied { Snapshot = "s0", Library = "lib2" });
        HoldSnapshots Hold(DateTimeOffset until, params string[] ids) => new() { Snapshots = { ids }, UntilUnixMs = until.ToUnixTimeMilliseconds(), Reason = "case 2026-114" };
        Assert.Contains("needs its reason", s.DecideHold(new HoldSnapshots { Snapshots = { "s0" }, UntilUnixMs = Now.AddDays(1).ToUnixTimeMilliseconds() }, "", Now).Decision.Rejection);
        Assert.Contains("ends in the future", s.DecideHold(Hold(Now.AddDays(-1), "s0"), "", Now).Decision.Rejection);
        Assert.Contains("no snapshot 'nosuch'", s.DecideHold(Hold(Now.AddDays(1), "s0", "nosuch"), "", Now).Decision.Rejection);

        var (answer, decision) = s.DecideHold(Hold(Now.AddDays(30), "s0"), "operator alice", Now);
        Assert.Null(decision.Rejection);
        Assert.Equal(Now.AddDays(30).ToUnixTimeMilliseconds(), Assert.Single(answer.Snapshots).HeldUntilUnixMs);
        var held = Apply(s, decision.Events);
        // Retention (last 2) would delete s0 and s1: s0 stays, with its copy; the reason is said.
        Assert.Equal(["s1"], held.DecideRetention(Now)!.Snapshots);
        Assert.Empty(held.DecideCopyRetention(Now).OfType<CopyDropped>());
        Assert.Contains("held until", held.RetentionVerdicts(Now)["s0"].Reasons.Single(r => r.Contains("case 2026-114")));
        Assert.Contains("by operator alice", held.RetentionVerdicts(Now)["s0"].Reasons.Single(r => r.Contains("case 2026-114")));
        // An operator's delete, even with the operator key: refused whole while it lasts.
        var refused = held.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s1", "s0" } }, Now).Decision.Rejection;
        Assert.Contains("snapshot s0 is held until", refused);
        Assert.Contains("nothing was deleted", refused);
        // Extended, yes; shortened, no.
        Assert.Contains("a hold is never shortened", held.DecideHold(Hold(Now.AddDays(10), "s0"), "operator mallory", Now).Decision.Rejection);
        var longer = Apply(held, held.DecideHold(Hold(Now.AddDays(60), "s0"), "operator alice", Now).Decision.Events);
        Assert.Equal(Now.AddDays(60).ToUnixTimeMilliseconds(), longer.Holds["s0"].UntilUnixMs);
        // Across the manager's snapshot.
        Assert.Equal(longer.Holds["s0"], new ManagerState().Apply(longer.ToSnapshot()).Holds["s0"]);
        Assert.Equal("case 2026-114 (operator alice)", longer.InfoOf(longer.Snapshots[0]).HoldReason);

        // Each snapshot's last verify, for an auditor: when, which job, its outcome; across the manager's snapshot.
        var verified = longer.Apply(new SnapshotVerified { Snapshot = "s0", Ok = true, UnixMs = 1_765_000_000_000, Job = "42" });
        var shown = new ManagerState().Apply(verified.ToSnapshot()).InfoOf(verified.Snapshots[0]);
        Assert.Equal((1_765_000_000_000L, "42", true, true), (shown.LastVerifyUnixMs, shown.LastVerifyJob, shown.LastVerifyOk, shown.Verified));
        Assert.Equal(0, longer.InfoOf(longer.Snapshots[1]).LastVerifyUnixMs);
        // Deleted under a deletion delay and brought back: with its last verify.
        var trashed = verified.Apply(new SnapshotsTrashed { Snapshots = { "s1" }, Reason = "x", UnixMs = 1 })
            .Apply(new SnapshotVerified { Snapshot = "s1", Ok = true, UnixMs = 7, Job = "ignored: not in the catalog" });
        var back = verified.Apply(new SnapshotVerified { Snapshot = "s1", Ok = true, UnixMs = 5, Job = "43" }).Apply(new SnapshotsTrashed { Snapshots = { "s1" }, Reason = "x", UnixMs = 1 })
            .Apply(new SnapshotsUndeleted { Snapshots = { "s1" } });
        Assert.Equal("43", back.InfoOf(back.Snapshots.Single(x => x.Id == "s1")).LastVerifyJob);
        Assert.DoesNotContain("s1", trashed.Verifications.Keys);

        // Once it ends: the rules and an operator decide again, and the hold goes with its snapshot.
        var later = Now.AddDays(61);
        Assert.Equal(["s0", "s1"], longer.DecideRetention(later)!.Snapshots);
        var deleted = longer.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s0" } }, later).Decision;
        Assert.Null(deleted.Rejection);
        Assert.Empty(Apply(longer, deleted.Events).Holds);
        Assert.Equal(["s3"], Apply(verified, verified.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s0" } }, later).Decision.Events).Verifications.Keys);
    }

    [Fact]
    public void Retention_waits_for_a_verified_full_then_deletes_what_no_rule_keeps_but_not_what_a_restore_reads()
    {
        var s = Cell();
        Assert.Null(s.DecideRetention(Now)); // no verified full yet: everything stays
        s = s.Apply(new SnapshotVerified { Snapshot = "s3", Ok = true });
        var deleted = s.DecideRetention(Now);
        Assert.NotNull(deleted);
        Assert.Equal(["s0", "s1"], deleted.Snapshots); // last 2: s3, s2
        Assert.True(deleted.ByRetention);
        Assert.Contains("'keep2' (last 2)", deleted.Reason);

        // A restore of s0 is queued: s0 stays until it ends, s1 goes.
        var restore = s.DecideStartRestore(new StartRestore { Snapshot = "s0", Target = "/tmp/r" }, Now);
        var withRestore = Apply(s, restore.Events);
        Assert.Equal(["s1"], withRestore.DecideRetention(Now)!.Snapshots);
        var refused = withRestore.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s0" } }, Now).Decision;
        Assert.Contains($"read by job {restore.Job!.Id}", refused.Rejection);

        // Applied: the catalog, the verified set and the set's chain library follow.
        var after = s.Apply(deleted);
        Assert.Equal(["s2", "s3"], after.Snapshots.Select(x => x.Id));
        Assert.Equal("lib2", after.ChainLibrary("host-a", "web"));
        Assert.Null(after.DecideRetention(Now)); // nothing more to delete: it does not creep
        var restored = new ManagerState().Apply(after.ToSnapshot());
        Assert.Contains("s3", restored.Verified);
        Assert.Equal(["s2", "s3"], restored.Snapshots.Select(x => x.Id));
    }

    [Fact]
    public void An_operators_delete_is_whole_or_nothing_and_a_dry_run_changes_nothing()
    {
        var s = Cell();
        var (dry, dryDecision) = s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s1", "s2" }, DryRun = true }, Now);
        Assert.Empty(dryDecision.Events);
        Assert.False(dry.Applied);
        Assert.Equal(["s1", "s2"], dry.Snapshots.Select(x => x.Id));

        var (_, bad) = s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s1", "nope" } }, Now);
        Assert.Contains("no snapshot 'nope'", bad.Rejection);
        Assert.Contains("nothing was deleted", bad.Rejection);

        var (answer, ok) = s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s3" } }, Now);
        Assert.True(answer.Applied);
        var after = Apply(s, ok.Events);
        Assert.Equal(["s0", "s1", "s2"], after.Snapshots.Select(x => x.Id));
        Assert.Equal("lib1", after.ChainLibrary("host-a", "web")); // the chain goes back to where the newest now is
    }

    [Fact]
    public void A_policy_with_bad_retention_is_refused()
    {
        var s = Cell();
        var d = s.DecideDefinePolicy(new DefinePolicy { Policy = new StoragePolicy { Name = "neg", Retention = new RetentionRule { Daily = -1 } } }, Now);
        Assert.Contains("retention counts are 0", d.Rejection);
    }

    [Fact]
    public void A_prune_is_told_the_snapshots_deleted_since_the_last_one_and_forgets_them_when_it_succeeds()
    {
        var s = Cell();
        var (_, delete) = s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s0", "s3" } }, Now);
        s = Apply(s, delete.Events);
        Assert.Equal(["s0"], s.PendingDeletions["lib1"]);
        Assert.Equal(["s3"], s.PendingDeletions["lib2"]);

        var all = s.DecidePrune(new StartPrune(), Now);
        Assert.Null(all.Rejection);
        Assert.Equal(["lib1", "lib2"], all.Events.Cast<JobQueued>().Select(q => q.Job.Library));
        Assert.All(all.Events.Cast<JobQueued>(), q => Assert.Equal(JobKind.Prune, q.Job.Kind));
        Assert.Contains("unknown library 'nope'", s.DecidePrune(new StartPrune { Library = "nope" }, Now).Rejection);

        var queued = Apply(s, all.Events);
        var lib1Job = queued.Job(all.Job!.Id)!;
        var request = queued.PruneRequest(lib1Job, 0.2, TimeSpan.FromDays(1));
        Assert.Equal(["s1", "s2"], request.Keep);
        Assert.Equal(["s0"], request.Deleted);

        // Another delete while it runs stays pending after it.
        var (_, later) = queued.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s1" } }, Now);
        var done = Apply(queued, later.Events).Apply(new LibraryPruned { Library = "lib1", Snapshots = { "s0" } });
        Assert.Equal(["s1"], done.PendingDeletions["lib1"]);
        var restored = new ManagerState().Apply(done.ToSnapshot());
        Assert.Equal(["s1"], restored.PendingDeletions["lib1"]);
        Assert.Equal(["s3"], restored.PendingDeletions["lib2"]);
    }

    [Fact]
    public void A_copy_made_again_where_one_was_dropped_is_not_pruned_while_its_end_is_on_its_way()
    {
        // s0's copy on lib2 was dropped (a copy rule's retention, say): lib2's next prune lets its list go.
        var s = Cell().Apply(new SnapshotCopied { Snapshot = "s0", Library = "lib2" }).Apply(new CopyDropped { Snapshot = "s0", Library = "lib2", Reason = "copy rule" });
        var prune = new JobInfo { Id = "9", Kind = JobKind.Prune, Library = "lib2" };
        Assert.Contains("s0", s.PruneRequest(prune, 0.2, TimeSpan.FromDays(1)).Deleted);

        // An operator copies it there again. While that job has not ended in the catalog, its list on lib2 may be the
        // new copy's, written before a prune began: a prune is told neither to keep it nor that it was deleted.
        var copy = s.DecideStartCopy(new StartCopy { Snapshot = "s0", Library = "lib2" }, Now);
        Assert.Null(copy.Rejection);
        var copying = Apply(s, copy.Events).Apply(new JobStarted { Job = copy.Job!.Id, Library = "lib2" });
        var during = copying.PruneRequest(prune, 0.2, TimeSpan.FromDays(1));
        Assert.DoesNotContain("s0", during.Deleted);
        Assert.DoesNotContain("s0", during.Keep);
        Assert.Contains("s0", copying.PruneRequest(new JobInfo { Id = "10", Kind = JobKind.Prune, Library = "lib1" }, 0.2, TimeSpan.FromDays(1)).Keep);

        // Recorded: lib2 keeps it, and nothing of it is left to delete there (a later prune would otherwise be told both).
        var copied = copying.Apply(new JobEnded { Job = copy.Job.Id, State = JobState.Succeeded, UnixMs = Now.ToUnixTimeMilliseconds() })
            .Apply(new SnapshotCopied { Snapshot = "s0", Library = "lib2", Job = copy.Job.Id });
        Assert.False(copied.PendingDeletions.ContainsKey("lib2"));
        var after = copied.PruneRequest(prune, 0.2, TimeSpan.FromDays(1));
        Assert.Contains("s0", after.Keep);
        Assert.DoesNotContain("s0", after.Deleted);

        // The copy failed instead: its list there (if any) is let go as before.
        var failed = copying.Apply(new JobEnded { Job = copy.Job.Id, State = JobState.Failed, UnixMs = Now.ToUnixTimeMilliseconds() });
        Assert.Contains("s0", failed.PruneRequest(prune, 0.2, TimeSpan.FromDays(1)).Deleted);

        // A copy that ends after its snapshot was deleted leaves its data there to the next prune.
        var deleted = Apply(copying, copying.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s1" } }, Now).Decision.Events)
            .Apply(new SnapshotCopied { Snapshot = "s1", Library = "lib2" });
        Assert.Contains("s1", deleted.PendingDeletions["lib2"]);
        Assert.Contains("s1", new ManagerState().Apply(deleted.ToSnapshot()).PendingDeletions["lib2"]);
    }

    [Fact]
    public void An_aged_snapshot_gets_a_tier_copy_then_moves_and_its_old_library_lets_it_go()
    {
        var s = Cell().Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep2", Tier = new TierRule { Libraries = { "lib2" }, AfterSeconds = 2 * 86400 } } });
        // s0..s3 finished 4..1 days ago; s3 is on lib2 already.
        var (jobs, moves) = s.DecideTiering(Now);
        Assert.Empty(moves);
        Assert.Equal(["s0", "s1", "s2"], jobs.Select(j => j.Job.Snapshot));
        Assert.All(jobs, j => Assert.True(j.Job.TierMove && j.Job.Library == "lib2" && j.Job.SourceLibrary == "lib1"));
        var queued = Apply(s, jobs);
        Assert.Empty(queued.DecideTiering(Now).Jobs); // not twice while a move runs

        // s0's move fails (a chunk it cannot read, say): not queued again at the next look, but after 10 minutes, then
        // after 20 more when it fails again.
        var s0Job = jobs.Single(j => j.Job.Snapshot == "s0").Job.Id;
        var failedOnce = queued.Apply(new JobStarted { Job = s0Job, Library = "lib2" }).Apply(new JobEnded { Job = s0Job, State = JobState.Failed, UnixMs = Now.ToUnixTimeMilliseconds() });
        Assert.Empty(failedOnce.DecideTiering(Now.AddSeconds(10)).Jobs);
        Assert.Empty(failedOnce.DecideTiering(Now.AddMinutes(9)).Jobs);
        var retry = Assert.Single(failedOnce.DecideTiering(Now.AddMinutes(10)).Jobs).Job;
        Assert.Equal("s0", retry.Snapshot);
        var failedTwice = Apply(failedOnce, [new JobQueued { Job = retry }]).Apply(new JobStarted { Job = retry.Id, Library = "lib2" })
            .Apply(new JobEnded { Job = retry.Id, State = JobState.Failed, UnixMs = Now.AddMinutes(11).ToUnixTimeMilliseconds() });
        Assert.Empty(failedTwice.DecideTiering(Now.AddMinutes(30)).Jobs);
        Assert.Equal("s0", Assert.Single(failedTwice.DecideTiering(Now.AddMinutes(31)).Jobs).Job.Snapshot);
        Assert.Equal(TimeSpan.FromDays(1), ManagerState.TierRetryWait(40)); // never longer than a day

        // A copy that ends after its snapshot was deleted (retention in the same moments) leaves no copy of nothing behind.
        var gone = Apply(s, s.DecideDeleteSnapshots(new DeleteSnapshots { Snapshots = { "s1" } }, Now).Decision.Events).Apply(new SnapshotCopied { Snapshot = "s1", Library = "lib2" });
        Assert.False(gone.Copies.ContainsKey("s1"));

        // s0's copy is there (a copy rule made it, say), never read back: a copy job to it reads it back first (the fast
        // copy goes on its strength), and once that job succeeded, s0 moves without another copy.
        var copied = s.Apply(new SnapshotCopied { Snapshot = "s0", Library = "lib2" });
        var (checks, none) = copied.DecideTiering(Now);
        Assert.Empty(none);
        var check = checks.Single(j => j.Job.Snapshot == "s0").Job;
        Assert.True(check.TierMove && check.Library == "lib2");
        copied = Apply(copied, [new JobQueued { Job = check }]).Apply(new JobStarted { Job = check.Id, Library = "lib2" })
            .Apply(new JobEnded { Job = check.Id, State = JobState.Succeeded, UnixMs = Now.ToUnixTimeMilliseconds() });
        var (_, direct) = copied.DecideTiering(Now);
        var move = Assert.Single(direct);
        var moved = copied.Apply(move);
        var s0 = moved.Snapshots.Single(x => x.Id == "s0");
        Assert.Equal("lib2", s0.Library);
        Assert.Empty(moved.InfoOf(s0).Copies);
        Assert.Equal(["s0"], moved.PendingDeletions["lib1"]);
        Assert.DoesNotContain("s0", moved.PruneRequest(new JobInfo { Id = "9", Library = "lib1" }, 0.2, TimeSpan.FromDays(1)).Keep);
    }

    [Fact]
    public void A_prune_schedule_prunes_every_library_once_a_slot_and_once_after_a_downtime()
    {
        var s = Cell();
        const string daily = "0 4 * * *";
        var start = s.DecideScheduledPrune(daily, Now); // 01:00: the clock starts, no slot from before runs
        Assert.IsType<SlotMissed>(Assert.Single(start));
        s = Apply(s, start);
        Assert.Empty(s.DecideScheduledPrune(daily, Now.AddHours(2)));

        var due = s.DecideScheduledPrune(daily, Now.AddHours(3).AddSeconds(1)).Cast<JobQueued>().ToList();
        Assert.Equal(["lib1", "lib2"], due.Select(q => q.Job.Library));
        Assert.All(due, q => Assert.Equal((JobKind.Prune, JobOrigin.Schedule, Now.AddHours(3).ToUnixTimeMilliseconds()), (q.Job.Kind, q.Job.Origin, q.Job.SlotUnixMs)));
        s = Apply(s, due);
        Assert.Empty(s.DecideScheduledPrune(daily, Now.AddHours(3).AddSeconds(2))); // each slot once

        // The next slot while lib1's prune has not ended (its library down, say): lib2's alone, not a second of lib1.
        s = s.Apply(new JobEnded { Job = due[1].Job.Id, State = JobState.Succeeded, UnixMs = 1 });
        var next = s.DecideScheduledPrune(daily, Now.AddDays(1).AddHours(3).AddSeconds(1)).Cast<JobQueued>().ToList();
        Assert.Equal(["lib2"], next.Select(q => q.Job.Library));
        s = Apply(s, next);
        // Neither ended by the slot after: none queued, the slot missed, the jobs named.
        var none = Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledPrune(daily, Now.AddDays(2).AddHours(3).AddSeconds(1))));
        Assert.Contains($"lib1 (job {due[0].Job.Id}), lib2 (job {next[0].Job.Id})", none.Reason);
        s = s.Apply(none);
        s = Apply(s, [new JobEnded { Job = due[0].Job.Id, State = JobState.Succeeded, UnixMs = 1 }, new JobEnded { Job = next[0].Job.Id, State = JobState.Failed, UnixMs = 1 }]);

        // Three days down: one prune, at the latest slot.
        var after = s.DecideScheduledPrune(daily, Now.AddDays(5).AddHours(5)).Cast<JobQueued>().ToList();
        Assert.Equal(2, after.Count);
        Assert.All(after, q => Assert.Equal(Now.AddDays(5).AddHours(3).ToUnixTimeMilliseconds(), q.Job.SlotUnixMs));
        // An operator's dry run of lib1 not ended: the next slot prunes lib2 alone (the media agent runs one prune of a
        // library at a time: a second beside it was refused, retried and ended FAILED).
        s = Apply(s, after.Select(q => new JobEnded { Job = q.Job.Id, State = JobState.Succeeded, UnixMs = 1 }));
        s = Apply(s, s.DecidePrune(new StartPrune { Library = "lib1", DryRun = true }, Now.AddDays(5).AddHours(6)).Events);
        Assert.Equal(["lib2"], s.DecideScheduledPrune(daily, Now.AddDays(6).AddHours(3).AddSeconds(1)).Cast<JobQueued>().Select(q => q.Job.Library));
        Assert.Empty(s.DecideScheduledPrune("", Now.AddDays(9))); // no schedule: nothing
    }

    [Fact]
    public void A_verify_schedule_verifies_the_newest_unverified_snapshot_of_each_set_once_per_slot()
    {
        var s = Cell().Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep2", Retention = new RetentionRule { Last = 2 }, Verify = new VerifyRule { Schedule = "0 3 * * *" } } });
        Assert.Null(s.InvalidPolicy(new StoragePolicy { Name = "x", Verify = new VerifyRule { Schedule = "0 3 * * *" } }));
        Assert.Contains("does not parse", s.InvalidPolicy(new StoragePolicy { Name = "x", Verify = new VerifyRule { Schedule = "every day" } }));

        // The schedule starts when first seen: no slot of before runs.
        var start = Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledVerifies(Now)));
        s = s.Apply(start);
        Assert.Empty(s.DecideScheduledVerifies(Now.AddHours(1))); // 02:00: no slot yet

        // A removed client's snapshots are passed over (no node of it runs the job).
        Assert.IsType<SlotMissed>(Assert.Single(s.Apply(new ClientRemoved { Id = "host-a" }).DecideScheduledVerifies(Now.AddHours(2).AddSeconds(1))));
        var due = s.DecideScheduledVerifies(Now.AddHours(2).AddSeconds(1)); // 03:00:01
        var job = Assert.IsType<JobQueued>(Assert.Single(due)).Job;
        Assert.Equal((JobKind.Verify, "s3", "host-a", "lib2", JobOrigin.Schedule), (job.Kind, job.Snapshot, job.Client, job.Library, job.Origin));
        s = Apply(s, due);
        Assert.Empty(s.DecideScheduledVerifies(Now.AddHours(2).AddSeconds(2))); // the slot ran: once

        // The next day: s3 passed, nothing new: the slot is marked, nothing runs.
        s = s.Apply(new JobEnded { Job = job.Id, State = JobState.Succeeded }).Apply(new SnapshotVerified { Snapshot = "s3", Ok = true });
        var quiet = Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledVerifies(Now.AddDays(1).AddHours(2).AddSeconds(1))));
        Assert.Contains("passed a verify", quiet.Reason);
    }

    [Fact]
    public void A_sampling_verify_schedule_reads_the_newest_whole_once_the_last_verified_is_a_week_older_so_retention_goes_on()
    {
        // One full 30 days ago, verified; an incremental a day since (restic's way); the policy samples 10% each night.
        var s = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 2 })
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "daily", Retention = new RetentionRule { Daily = 7 }, Verify = new VerifyRule { Schedule = "0 3 * * *", SharePercent = 10 } } })
            .Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "daily" } });
        for (var d = 30; d >= 1; d--)
            s = s.Apply(new SnapshotRecorded
            {
                Manifest = new SnapshotManifest { Id = $"d{d:D2}", Client = "host-a", BackupSet = "web", Library = "lib1", Level = d == 30 ? Level.Full : Level.Incremental,
                    FinishedUnixMs = Now.AddDays(-d).ToUnixTimeMilliseconds() }.ToByteString(),
            });
        s = s.Apply(new SnapshotVerified { Snapshot = "d30", Ok = true });
        s = s.Apply(Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledVerifies(Now))));
        IReadOnlyList<JobInfo> Slot(ManagerState st) => st.DecideScheduledVerifies(Now.AddHours(2).AddSeconds(1)).OfType<JobQueued>().Select(q => q.Job).ToList();
        // Only the full is verified, 29 days older than the newest: the newest is read whole (a sample would never let retention go on).
        var job = Slot(s).Single(j => j.Snapshot == "d01"); // (the full is sampled again beside it)
        Assert.Equal(0, job.VerifySharePercent);
        var after = s.Apply(new SnapshotVerified { Snapshot = "d01", Ok = true });
        Assert.Equal(22, after.DecideRetention(Now)!.Snapshots.Count); // daily 7 keep d07..d01; d30 stays, the newest full
        // A verified snapshot of the last week: the newest is sampled, as the policy says.
        var recent = s.Apply(new SnapshotVerified { Snapshot = "d05", Ok = true });
        Assert.Equal(10, Slot(recent).Single(j => j.Snapshot == "d01").VerifySharePercent);
    }

    [Fact]
    public void A_copy_with_its_own_retention_keeps_snapshots_the_primary_lets_go_and_drops_what_it_does_not_keep()
    {
        // Primary on lib1 keeps the last 1; fulls are copied to lib2, whose copies keep the last 2.
        var copy = new CopyRule { Libraries = { "lib2" }, FullsOnly = true, Retention = new RetentionRule { Last = 2 } };
        var s = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 2 })
            .Apply(new LibraryRegistered { Id = "lib2", Node = "n2", Drives = 2 })
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "disk", Libraries = { "lib1" }, Retention = new RetentionRule { Last = 1 }, Copies = { copy } } })
            .Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "disk" } });
        Assert.Contains("retention counts", s.InvalidPolicy(new StoragePolicy { Name = "x", Copies = { new CopyRule { Libraries = { "lib2" }, Retention = new RetentionRule { Last = -1 } } } }));
        Assert.Contains("needs the policy's own libraries named", s.InvalidPolicy(new StoragePolicy { Name = "x", Copies = { copy } }));
        Assert.Contains("keep them apart", s.InvalidPolicy(new StoragePolicy { Name = "x", Libraries = { "lib1", "lib2" }, Copies = { copy } }));
        // Tiered onto the library it copies to (no retention of its own there): two copies would become one.
        Assert.Contains("would lose its second copy", s.InvalidPolicy(new StoragePolicy
        {
            Name = "x", Libraries = { "lib1" }, Copies = { new CopyRule { Libraries = { "lib2" } } }, Tier = new TierRule { Libraries = { "lib2" }, AfterSeconds = 86400 },
        }));
        Assert.Null(s.InvalidPolicy(new StoragePolicy { Name = "x", Libraries = { "lib1" }, Copies = { new CopyRule { Libraries = { "lib2" } } } }));
        ManagerState Backup(ManagerState st, int i, bool full)
        {
            st = st.Apply(new SnapshotRecorded
            {
                Manifest = new SnapshotManifest
                {
                    Id = $"s{i}", Client = "host-a", BackupSet = "web", Level = full ? Level.Full : Level.Incremental, Library = "lib1",
                    FinishedUnixMs = Now.AddDays(i - 10).ToUnixTimeMilliseconds(), Policy = "disk",
                }.ToByteString(),
            });
            return full ? st.Apply(new SnapshotCopied { Snapshot = $"s{i}", Library = "lib2" }) : st;
        }
        s = Backup(s, 0, true);
        // Its copy to lib2 may become its only home (the primary keeps 1): it is read back as a tier move's is.
        Assert.True(s.CopyReadsBack(new JobInfo { Kind = JobKind.Copy, Snapshot = "s0", Library = "lib2", SourceLibrary = "lib1" }));
        Assert.False(s.CopyReadsBack(new JobInfo { Kind = JobKind.Copy, Snapshot = "s0", Library = "lib3", SourceLibrary = "lib1" }));
        s = Backup(s, 1, false);
        s = Backup(s, 2, true);
        s = Backup(s, 3, true).Apply(new SnapshotVerified { Snapshot = "s3", Ok = true });

        // s0: neither keeps it: it goes (its copy with it). s1: only on lib1. s2: lib1 lets it go, its copy keeps it.
        var deleted = s.DecideRetention(Now);
        Assert.Equal(["s0", "s1"], deleted!.Snapshots);
        var moved = Assert.IsType<SnapshotMoved>(Assert.Single(s.DecideCopyRetention(Now)));
        Assert.Equal(("s2", "lib1", "lib2"), (moved.Snapshot, moved.From, moved.To));
        s = s.Apply(moved).Apply(deleted);
        Assert.Equal(["s2", "s3"], s.Snapshots.Select(x => x.Id));
        Assert.Equal("lib2", s.Snapshots[0].Library);
        Assert.Equal(["s0", "s1", "s2"], s.PendingDeletions["lib1"]);
        Assert.Null(s.DecideRetention(Now));
        Assert.Empty(s.DecideCopyRetention(Now)); // it does not creep

        // Changed definitions that would leave s2 (on lib2 for the copy's retention) to the primary's rules are refused:
        // retention would delete it at its next look.
        var web = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "disk" };
        ApplyDefinitions Definitions(params CopyRule[] copies) =>
            new() { Policies = { new StoragePolicy { Name = "disk", Libraries = { "lib1" }, Retention = new RetentionRule { Last = 1 }, Copies = { copies } } }, Sets = { web } };
        Assert.Contains("1 snapshot (s2) lives only on lib2", s.DecideApply(Definitions(), Now).Decision.Rejection);
        Assert.Contains("lives only on lib2", s.DecideApply(Definitions(new CopyRule { Libraries = { "lib2" } }), Now).Decision.Rejection); // no retention of its own
        Assert.Contains("lives only on lib2", s.DecideApply(Definitions(new CopyRule { Libraries = { "lib3" }, Retention = new RetentionRule { Last = 2 } }), Now).Decision.Rejection);
        // Nor by way of a set removed and added again under a policy without that copy.
        var removedSet = s.Apply(Assert.Single(s.DecideRemoveSet(new RemoveBackupSet { Name = "web" }, Now).Events))
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "short", Retention = new RetentionRule { Last = 1 } } });
        Assert.Contains("lives only on lib2", removedSet.DecideDefineSet(new DefineBackupSet { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "short" } }, Now).Rejection);
        // Nor by way of the set moved to a policy that keeps everything (that passes), later given limits.
        var disk = new StoragePolicy { Name = "disk", Libraries = { "lib1" }, Retention = new RetentionRule { Last = 1 }, Copies = { copy } };
        var webAll = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "all" };
        var moveToAll = s.DecideApply(new ApplyDefinitions { Policies = { disk, new StoragePolicy { Name = "all" } }, Sets = { webAll } }, Now);
        Assert.Null(moveToAll.Decision.Rejection);
        var onAll = Apply(s, moveToAll.Decision.Events);
        var limitAll = onAll.DecideApply(new ApplyDefinitions { Policies = { disk, new StoragePolicy { Name = "all", Retention = new RetentionRule { Last = 1 } } }, Sets = { webAll } }, Now);
        Assert.Contains("lives only on lib2", limitAll.Decision.Rejection);
        // A snapshot left uncovered before (the set moved to a limited policy with no such copy) is not this change's
        // doing: it blocks no later, unrelated change.
        var webShort = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "short" };
        var shortPolicy = new StoragePolicy { Name = "short", Retention = new RetentionRule { Last = 1 } };
        var uncovered = Apply(s, s.DecideApply(new ApplyDefinitions { Policies = { disk, shortPolicy }, Sets = { web } }, Now).Decision.Events)
            .Apply(new BackupSetDefined { Set = webShort }); // as an older build let it pass
        Assert.Null(uncovered.DecideApply(new ApplyDefinitions { Policies = { disk, shortPolicy, new StoragePolicy { Name = "other" } }, Sets = { webShort } }, Now).Decision.Rejection);
        // A change after which the policy's own rules keep them (here: everything) deletes nothing: it passes.
        var generous = new ApplyDefinitions { Policies = { new StoragePolicy { Name = "disk", Libraries = { "lib1" } } }, Sets = { web } };
        Assert.Null(s.DecideApply(generous, Now).Decision.Rejection);
        var keptLonger = s.DecideApply(Definitions(new CopyRule { Libraries = { "lib2" }, FullsOnly = true, Retention = new RetentionRule { Last = 5 } }), Now);
        Assert.Null(keptLonger.Decision.Rejection);
        Assert.True(keptLonger.Result.Applied);

        // A tier of the policy leaves what lives on the copy's library where it is (it would be judged by the primary's
        // rules once moved), and may not be that library.
        var tiered = s.Apply(new LibraryRegistered { Id = "lib3", Node = "n3", Drives = 1 }).Apply(new PolicyDefined
        {
            Policy = new StoragePolicy { Name = "disk", Libraries = { "lib1" }, Retention = new RetentionRule { Last = 1 }, Copies = { copy }, Tier = new TierRule { Libraries = { "lib3" }, AfterSeconds = 86400 } },
        });
        var tierJobs = tiered.DecideTiering(Now).Jobs;
        Assert.Equal(["s3"], tierJobs.Select(j => j.Job.Snapshot)); // the primary's, 7 days old; not s2
        Assert.Contains("library lib2 is the policy's tier and holds copies with a retention of their own",
            tiered.InvalidPolicy(new StoragePolicy { Name = "x", Libraries = { "lib1" }, Copies = { copy }, Tier = new TierRule { Libraries = { "lib2" } } }));
        // abk snapshot list --why says which copy keeps what.
        var why = s.RetentionVerdicts(Now);
        Assert.All(why["s2"].Reasons, r => Assert.StartsWith("its copy on lib2: ", r));
        Assert.Contains(why["s3"].Reasons, r => r.StartsWith("its copy on lib2: ", StringComparison.Ordinal));
        Assert.Contains(why["s3"].Reasons, r => !r.StartsWith("its copy", StringComparison.Ordinal));

        // A new verified full: lib2 keeps its last 2 copies (s3, s4), so s2 (only there now) goes; s3 lives on in its copy.
        s = Backup(s, 4, true).Apply(new SnapshotVerified { Snapshot = "s4", Ok = true });
        Assert.Equal(["s2"], s.DecideRetention(Now)!.Snapshots);
        Assert.Contains("its copy on lib2: last 2", s.DecideRetention(Now)!.Reason);
        moved = Assert.IsType<SnapshotMoved>(Assert.Single(s.DecideCopyRetention(Now)));
        Assert.Equal(("s3", "lib2"), (moved.Snapshot, moved.To));

        // A copy rule's retention that lets a copy go while the primary keeps the snapshot: the copy alone goes.
        var drop = new ManagerState().Apply(new CopyDropped { Snapshot = "x", Library = "lib2" });
        Assert.Equal(["x"], drop.PendingDeletions["lib2"]);
    }

    [Fact]
    public void A_snapshot_whose_client_clock_is_off_the_managers_is_not_recorded_and_says_what_to_do()
    {
        var job = new JobInfo { Id = "4", Client = "web1", StartedUnixMs = Now.ToUnixTimeMilliseconds() };
        SnapshotManifest Made(TimeSpan startedAfterJob, TimeSpan took) => new()
        {
            StartedUnixMs = (Now + startedAfterJob).ToUnixTimeMilliseconds(), FinishedUnixMs = (Now + startedAfterJob + took).ToUnixTimeMilliseconds(),
        };
        var done = Now + TimeSpan.FromMinutes(30);
        Assert.Null(ManagerState.BadTimes(job, Made(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(29)), done));
        Assert.Null(ManagerState.BadTimes(job, Made(TimeSpan.FromMinutes(-4), TimeSpan.FromMinutes(30)), done)); // within 5 minutes
        var behind = ManagerState.BadTimes(job, Made(TimeSpan.FromDays(-3), TimeSpan.FromMinutes(29)), done);
        Assert.Contains("the clock of client web1 is 3 days behind the manager's: its snapshot is not recorded", behind);
        Assert.Contains("deleted by retention at once", behind);
        Assert.Contains("set that host's clock right (NTP)", behind);
        var ahead = ManagerState.BadTimes(job, Made(TimeSpan.FromHours(5), TimeSpan.FromMinutes(1)), done);
        Assert.Contains("is 5 hours ahead of the manager's", ahead);
        Assert.Contains("would count as the newest", ahead);

        // The refused snapshot is in its library (and one it spans) already: let go there, so that a prune frees it and
        // a catalog rebuild does not bring it back.
        var refused = new SnapshotManifest
        {
            Id = "0123456789abcdef", Client = "web1", BackupSet = "web", Library = "lib1", Spans = { "lib2" }, Level = Level.Full,
            RootTree = Google.Protobuf.ByteString.CopyFrom(new byte[32]), FinishedUnixMs = Now.AddDays(-3).ToUnixTimeMilliseconds(),
        };
        var s = Apply(Cell(), Cell().DecideRefusedSnapshot(job, refused, ahead!, done));
        Assert.Contains("0123456789abcdef", s.PendingDeletions["lib1"]);
        Assert.Contains("0123456789abcdef", s.PendingDeletions["lib2"]);
        Assert.DoesNotContain(s.Snapshots, x => x.Id == "0123456789abcdef");
        Assert.Contains("0123456789abcdef", s.PruneRequest(new JobInfo { Id = "9", Library = "lib1" }, 0.2, TimeSpan.FromDays(1)).Deleted);
        Assert.Empty(s.DecideRecordSnapshots(new RecordSnapshots { Library = "lib1", Manifests = { refused.ToByteString() }, Referenced = { refused.Id } }).Events);
    }

    [Fact]
    public void Snapshots_of_a_set_no_longer_defined_are_judged_each_by_the_policy_it_was_made_under()
    {
        // Set "old" was removed: its first snapshot under a policy that keeps everything, the later ones under "keep1".
        var s = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@h/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 2 })
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "all" } })
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep1", Retention = new RetentionRule { Last = 1 } } });
        for (var i = 0; i < 3; i++)
            s = s.Apply(new SnapshotRecorded
            {
                Manifest = new SnapshotManifest
                {
                    Id = $"o{i}", Client = "host-a", BackupSet = "old", Level = Level.Full, Library = "lib1", Policy = i == 0 ? "all" : "keep1",
                    FinishedUnixMs = Now.AddDays(i - 3).ToUnixTimeMilliseconds(),
                }.ToByteString(),
            }).Apply(new SnapshotVerified { Snapshot = $"o{i}", Ok = true });
        // Not all by the oldest's policy (nothing would ever go), nor all by keep1 (o0 would go).
        Assert.Equal(["o1"], s.DecideRetention(Now)!.Snapshots);
        Assert.True(s.RetentionVerdicts(Now)["o0"].Keep);
    }

    [Fact]
    public void A_copy_on_a_schedule_copies_at_its_slots_every_snapshot_still_lacking_one()
    {
        var rule = new CopyRule { Libraries = { "lib2" }, Schedule = "0 1 * * *" };
        var s = Cell().Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep2", Retention = new RetentionRule { Last = 2 }, Copies = { rule } } });
        Assert.Contains("does not parse", s.InvalidPolicy(new StoragePolicy { Name = "x", Copies = { new CopyRule { Libraries = { "lib2" }, Schedule = "nightly" } } }));
        Assert.Empty(s.DecideCopiesAfter(s.Snapshots[0], Now)); // not after each backup: at the slots
        s = s.Apply(Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledCopies(Now))));
        Assert.Empty(s.DecideScheduledCopies(Now.AddHours(12)));
        var due = s.DecideScheduledCopies(Now.AddDays(1).AddSeconds(1));
        var jobs = due.Cast<JobQueued>().Select(q => q.Job).ToList();
        Assert.Equal(["s0", "s1", "s2"], jobs.Select(j => j.Snapshot)); // s3 is on lib2 already
        Assert.All(jobs, j => Assert.Equal((JobKind.Copy, "lib2", JobOrigin.Schedule), (j.Kind, j.Library, j.Origin)));
        Assert.Equal(3, jobs.Select(j => j.Id).Distinct().Count());
        s = Apply(s, due);
        Assert.Empty(s.DecideScheduledCopies(Now.AddDays(1).AddSeconds(2))); // once per slot
        // The next slot: the copies are running (or made): nothing more to queue.
        Assert.Contains("has one", Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledCopies(Now.AddDays(2).AddSeconds(1)))).Reason);
    }

    [Fact]
    public void A_check_schedule_checks_every_library_once_per_slot()
    {
        var s = Cell();
        Assert.Empty(s.DecideScheduledChecks("", Now));
        s = s.Apply(Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledChecks("0 5 * * *", Now))));
        var due = s.DecideScheduledChecks("0 5 * * *", Now.AddHours(4).AddSeconds(1));
        var jobs = due.Cast<JobQueued>().Select(q => q.Job).ToList();
        Assert.Equal(["lib1", "lib2"], jobs.Select(j => j.Library).Order());
        Assert.All(jobs, j => Assert.Equal((JobKind.Verify, "", JobOrigin.Schedule), (j.Kind, j.Snapshot, j.Origin)));
        Assert.Equal(2, jobs.Select(j => j.Id).Distinct().Count());
        s = Apply(s, due);
        Assert.Empty(s.DecideScheduledChecks("0 5 * * *", Now.AddHours(4).AddSeconds(2)));
        // The next day's slot while lib2's check still runs (a tape library's takes hours): lib1's alone; then neither.
        s = s.Apply(new JobEnded { Job = jobs.Single(j => j.Library == "lib1").Id, State = JobState.Succeeded, UnixMs = 1 });
        var next = s.DecideScheduledChecks("0 5 * * *", Now.AddDays(1).AddHours(4).AddSeconds(1)).Cast<JobQueued>().ToList();
        Assert.Equal(["lib1"], next.Select(q => q.Job.Library));
        s = Apply(s, next);
        Assert.Contains("every library's check has not ended yet",
            Assert.IsType<SlotMissed>(Assert.Single(s.DecideScheduledChecks("0 5 * * *", Now.AddDays(2).AddHours(4).AddSeconds(1)))).Reason);
    }
}
