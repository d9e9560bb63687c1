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

        var what = AuditTrail.What(new DeleteSnapshots { Snapshots = { Enumerable.Range(0, 1000).Select(i => $"snapshot-{i:D6}") } });
        Assert.Equal(AuditTrail.MaxWhat, what.Length);
        Assert.EndsWith("...", what);
        // The largest record a list answers with stays far inside a 4 MiB frame, 500 of them.
        var big = new AuditRecord { Seq = long.MaxValue, UnixMs = long.MaxValue, Caller = new string('c', 300), Serial = new string('s', 40), Command = new string('n', AuditTrail.MaxName),
            What = what, Outcome = new string('o', AuditTrail.MaxOutcome), Node = new string('a', 300), Hash = ByteString.CopyFrom(new byte[32]) };
        Assert.True(new AuditList { Records = { Enumerable.Repeat(big, AuditTrail.MaxLimit) } }.CalculateSize() < 2 * 1024 * 1024);
    }
}
