using ActorBackup.Cluster.Audit;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The audit trail's chain: a record changed, removed or repeated is found, and where.</summary>
public class AuditTrailTests
{
    private static List<AuditRecord> Trail(int n)
    {
        var head = AuditTrail.Genesis;
        var trail = new List<AuditRecord>();
        for (var i = 1; i <= n; i++)
        {
            var r = new AuditRecord
            {
                Seq = i, UnixMs = 1_765_000_000_000 + i * 1000, Caller = i % 2 == 0 ? "operator alice" : "integrator portal", Command = i % 3 == 0 ? "DeleteSnapshots" : "StartBackup",
                What = $"{{\"snapshots\": [\"s{i}\"]}}", Outcome = "taken", Node = "akka.tcp://actorbackup@127.0.0.1:5000",
            };
            r.Hash = head = AuditTrail.Hash(head, r);
            trail.Add(r);
        }
        return trail;
    }

    private static AuditTrail.Check Checked(IEnumerable<AuditRecord> trail)
    {
        var check = new AuditTrail.Check();
        foreach (var r in trail) check.Add(r);
        return check;
    }

    [Fact]
    public void A_whole_trail_checks_and_its_head_is_the_last_records_hash()
    {
        var trail = Trail(10);
        var check = Checked(trail);
        Assert.Equal("", check.Broken);
        Assert.Equal((10L, trail[^1].Hash), (check.Seq, check.Head));
        Assert.Equal(32, check.Head.Length);
    }

    [Fact]
    public void A_record_changed_removed_or_repeated_breaks_the_chain_there()
    {
        var changed = Trail(10);
        changed[3].Caller = "operator mallory"; // who did it, rewritten in the database
        Assert.StartsWith("record 4 (", Checked(changed).Broken);
        Assert.Contains("was changed", Checked(changed).Broken);

        var rehashed = Trail(10);
        rehashed[3].Outcome = "refused: nothing";
        rehashed[3].Hash = AuditTrail.Hash(rehashed[2].Hash, rehashed[3]); // its own hash made again: the next one no longer follows
        Assert.StartsWith("record 5 (", Checked(rehashed).Broken);

        var removed = Trail(10);
        removed.RemoveAt(6);
        Assert.Equal("record 8 follows record 6: records 7 to 7 are gone", Checked(removed).Broken);
        Assert.Equal("the trail starts at record 3, not 1: records 1 to 2 are gone", Checked(Trail(10).Skip(2)).Broken);
        var twice = Trail(5);
        twice.Insert(3, twice[2]);
        Assert.Contains("a record is there twice", Checked(twice).Broken);
    }

    [Fact]
    public void A_query_takes_records_by_time_caller_and_command_and_a_record_keeps_a_bounded_command()
    {
        var r = Trail(6)[5];
        Assert.True(AuditTrail.Matches(r, new ListAudit()));
        Assert.True(AuditTrail.Matches(r, new ListAudit { Caller = "ALICE", Command = "deletesnapshots", SinceUnixMs = r.UnixMs }));
        Assert.False(AuditTrail.Matches(r, new ListAudit { Caller = "bob" }));
        Assert.False(AuditTrail.Matches(r, new ListAudit { Command = "StartBackup" }));
        Assert.False(AuditTrail.Matches(r, new ListAudit { SinceUnixMs = r.UnixMs + 1 }));
        Assert.Equal((100, 500, 7), (AuditTrail.Limit(new ListAudit()), AuditTrail.Limit(new ListAudit { Limit = 10_000 }), AuditTrail.Limit(new ListAudit { Limit = 7 })));

        var what = AuditTrail.What(new DeleteSnapshots { Snapshots = { Enumerable.Range(0, 1000).Select(i => $"snapshot-{i:D6}") } }, out _);
        Assert.Equal(AuditTrail.MaxWhat, what.Length);
        Assert.EndsWith("...", what);
        // The largest record a list answers with stays far inside a 4 MiB frame, 500 of them.
        var big = new AuditRecord { Seq = long.MaxValue, UnixMs = long.MaxValue, Caller = new string('c', 300), Serial = new string('s', 40), Command = new string('n', AuditTrail.MaxName),
            What = what, Outcome = new string('o', AuditTrail.MaxOutcome), Node = new string('a', 300), Hash = ByteString.CopyFrom(new byte[32]) };
        Assert.True(new AuditList { Records = { Enumerable.Repeat(big, AuditTrail.MaxLimit) } }.CalculateSize() < 2 * 1024 * 1024);
    }
}

/// <summary>What a record keeps of a command: bounded in bytes, the set commands and file texts masked.</summary>
public class AuditWhatTests
{
    [Fact]
    public void A_record_masks_the_commands_a_set_runs_and_an_applied_files_text_and_cuts_on_bytes()
    {
        var define = new DefineBackupSet { Set = new BackupSetDefinition { Name = "db", Client = "db1", Paths = { "/srv" }, PreCommand = "PGPASSWORD=s3cret pg_dump app > /srv/dump.sql", OnFailure = "curl -u admin:s3cret https://pager" } };
        var what = AuditTrail.What(define, out var masked);
        Assert.True(masked);
        Assert.DoesNotContain("s3cret", what);
        Assert.Contains("(masked: 45 characters)", what);
        Assert.Contains("\"/srv\"", what); // the rest as it was
        Assert.Equal("PGPASSWORD=s3cret pg_dump app > /srv/dump.sql", define.Set.PreCommand); // the command itself untouched
        var apply = new ApplyDefinitions { Sets = { define.Set } };
        Assert.DoesNotContain("s3cret", AuditTrail.What(apply, out masked));
        Assert.True(masked);
        Assert.DoesNotContain("s3cret", AuditTrail.What(new ApplyFile { Text = "sets { db { pre-command = \"PGPASSWORD=s3cret\" } }", Name = "cell.conf" }, out _));
        Assert.Contains("nosuch", AuditTrail.What(new DeleteSnapshots { Snapshots = { "nosuch" } }, out masked));
        Assert.False(masked);

        // The signed command kept as proof: an operator-only one's and a taken restore's; not a read of the trail, nor a masked one.
        Assert.True(AuditTrail.KeepsProof(new DeleteSnapshots(), masked: false, refused: false));
        Assert.True(AuditTrail.KeepsProof(new DeleteSnapshots(), masked: false, refused: true)); // a refused delete is proof of the try
        Assert.True(AuditTrail.KeepsProof(new StartRestore(), masked: false, refused: false));
        Assert.False(AuditTrail.KeepsProof(new StartRestore(), masked: false, refused: true));
        Assert.False(AuditTrail.KeepsProof(new ListAudit(), masked: false, refused: false));
        Assert.False(AuditTrail.KeepsProof(define, masked: true, refused: false));
        Assert.False(AuditTrail.KeepsProof(new StartBackup(), masked: false, refused: false));
        Assert.False(AuditTrail.KeepsProof(null, masked: false, refused: true));

        // Cut on UTF-8 bytes, never inside a character: 500 records of 3-byte characters stay inside the frame.
        var cjk = AuditTrail.Cut(new string('漢', 2000), AuditTrail.MaxWhat);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(cjk) <= AuditTrail.MaxWhat);
        Assert.EndsWith("...", cjk);
        Assert.Equal("😀😀...", AuditTrail.Cut(new string('x', 0) + string.Concat(Enumerable.Repeat("😀", 10)), 11));
    }
}

/// <summary>The audit trail's writer: each record journaled once, chained; a read from its snapshot or whole.</summary>
public class AuditActorTests() : Akka.TestKit.Xunit2.TestKit("akka.persistence.snapshot-store.plugin = \"akka.persistence.snapshot-store.inmem\"")
{
    private static AuditRecord Record(string command) => new() { UnixMs = 1, Caller = "operator alice", Command = command, Outcome = "taken" };

    [Fact]
    public void A_record_sent_again_is_journaled_once_and_the_trail_reads_back_whole_and_chained()
    {
        var writer = Sys.ActorOf(AuditActor.Props());
        for (var i = 1; i <= 3; i++)
        {
            writer.Tell(new AuditActor.Write(Record($"C{i}"), "run1", i), TestActor);
            Assert.Equal(new AuditActor.Written("run1", i), ExpectMsg<AuditActor.Written>());
        }
        // No answer came (a writer restarted): the manager sends 2 and 3 again; they are answered, not journaled twice.
        writer.Tell(new AuditActor.Write(Record("C2"), "run1", 2), TestActor);
        writer.Tell(new AuditActor.Write(Record("C3"), "run1", 3), TestActor);
        ExpectMsg<AuditActor.Written>();
        ExpectMsg<AuditActor.Written>();
        writer.Tell(new AuditActor.Write(Record("C1"), "run2", 1), TestActor); // a new manager run numbers from 1
        ExpectMsg<AuditActor.Written>();

        writer.Tell(new AuditActor.Read(new ListAudit { Whole = true }, TestActor), TestActor);
        var list = ExpectMsg<AuditList>(TimeSpan.FromSeconds(10));
        Assert.Equal("", list.Broken);
        Assert.Equal(["C1", "C2", "C3", "C1"], list.Records.Select(r => r.Command));
        Assert.Equal((4L, 1L), (list.Total, list.From));

        // The writer again (a restart): it goes on from the last record, chained.
        Watch(writer);
        Sys.Stop(writer);
        ExpectTerminated(writer);
        var again = Sys.ActorOf(AuditActor.Props());
        again.Tell(new AuditActor.Write(Record("C1"), "run2", 1), TestActor); // already journaled before the restart
        ExpectMsg<AuditActor.Written>();
        again.Tell(new AuditActor.Write(Record("C4"), "run2", 2), TestActor);
        ExpectMsg<AuditActor.Written>();
        again.Tell(new AuditActor.Read(new ListAudit { Command = "c4" }, TestActor), TestActor);
        list = ExpectMsg<AuditList>(TimeSpan.FromSeconds(10));
        Assert.Equal(("", 5L, 1L), (list.Broken, list.Total, list.Matched));
        Assert.Equal(5, Assert.Single(list.Records).Seq);
    }

    [Fact]
    public void A_record_that_never_reached_the_writer_is_journaled_when_sent_again_although_later_ones_came_first()
    {
        // Record 1 went to the writer while it restarted (lost); 2 and 3 came after it: they wait, not journaled, not
        // answered (an answer for 3 would tell the manager that 1 is written too).
        var writer = Sys.ActorOf(AuditActor.Props());
        writer.Tell(new AuditActor.Write(Record("C2"), "run1", 2), TestActor);
        writer.Tell(new AuditActor.Write(Record("C3"), "run1", 3), TestActor);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        // The manager sends all three again, in order (AuditAgain): each is journaled once, in order.
        for (var i = 1; i <= 3; i++) writer.Tell(new AuditActor.Write(Record($"C{i}"), "run1", i), TestActor);
        Assert.Equal([1L, 2L, 3L], new[] { ExpectMsg<AuditActor.Written>(), ExpectMsg<AuditActor.Written>(), ExpectMsg<AuditActor.Written>() }.Select(w => w.Ref));
        // A new manager run's first record lost the same way.
        writer.Tell(new AuditActor.Write(Record("D2"), "run2", 2), TestActor);
        writer.Tell(new AuditActor.Write(Record("D1"), "run2", 1), TestActor);
        Assert.Equal(1L, ExpectMsg<AuditActor.Written>().Ref);
        writer.Tell(new AuditActor.Write(Record("D2"), "run2", 2), TestActor);
        Assert.Equal(2L, ExpectMsg<AuditActor.Written>().Ref);
        // Records the manager let go (more than it keeps went unwritten, a long outage): its floor says so, and the writer
        // takes the next it still holds instead of waiting for good.
        writer.Tell(new AuditActor.Write(Record("D9"), "run2", 9, Floor: 9), TestActor);
        Assert.Equal(9L, ExpectMsg<AuditActor.Written>().Ref);
        writer.Tell(new AuditActor.Read(new ListAudit { Whole = true }, TestActor), TestActor);
        var list = ExpectMsg<AuditList>(TimeSpan.FromSeconds(10));
        Assert.Equal("", list.Broken);
        Assert.Equal(["C1", "C2", "C3", "D1", "D2", "D9"], list.Records.Select(r => r.Command));
    }

    [Fact]
    public void A_list_reads_from_the_writers_snapshot_a_window_back_and_verify_reads_the_whole_trail()
    {
        // A snapshot every 3 records, a window of 4: a list of 10 records starts from the snapshot at 6 (at most 10 - 4).
        var writer = Sys.ActorOf(AuditActor.Props(snapshotEvery: 3, window: 4));
        for (var i = 1; i <= 10; i++)
        {
            writer.Tell(new AuditActor.Write(Record($"C{i}"), "run1", i), TestActor);
            ExpectMsg<AuditActor.Written>();
        }
        AwaitAssert(() =>
        {
            writer.Tell(new AuditActor.Read(new ListAudit(), TestActor), TestActor);
            var window = ExpectMsg<AuditList>(TimeSpan.FromSeconds(10));
            Assert.Equal(("", 10L, 7L), (window.Broken, window.Total, window.From)); // the snapshot at 6 is saved by now
            Assert.Equal(["C7", "C8", "C9", "C10"], window.Records.Select(r => r.Command));
        }, TimeSpan.FromSeconds(10));
        writer.Tell(new AuditActor.Read(new ListAudit { Whole = true }, TestActor), TestActor);
        var whole = ExpectMsg<AuditList>(TimeSpan.FromSeconds(10));
        Assert.Equal(("", 10L, 1L, 10L), (whole.Broken, whole.Total, whole.From, whole.Matched));
    }
}
