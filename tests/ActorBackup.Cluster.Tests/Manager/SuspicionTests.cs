using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>A backup that changed far more of its set than the set's recent ones (ransomware?): suspect, and its set's retention held.</summary>
public class SuspicionTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 2, 0, 0, TimeSpan.Zero);

    /// <summary>Snapshot <paramref name="id"/> of host-a's set web, of 1 GiB in 10,000 files of which <paramref name="newShare"/> was new.</summary>
    private static SnapshotManifest Backup(string id, int day, double newShare, double stored = 0.5) => new()
    {
        Id = id, Client = "host-a", BackupSet = "web", Level = day == 0 ? Level.Full : Level.Incremental, Library = "lib1",
        StartedUnixMs = Now.AddDays(day - 10).ToUnixTimeMilliseconds(), FinishedUnixMs = Now.AddDays(day - 10).AddMinutes(5).ToUnixTimeMilliseconds(),
        Stats = new SnapshotStats { Files = 10_000, Bytes = 1UL << 30, BytesNew = (ulong)(newShare * (1UL << 30)), BytesStored = (ulong)(newShare * stored * (1UL << 30)) },
    };

    [Fact]
    public void A_backup_of_mostly_new_bytes_after_quiet_ones_is_suspect_and_says_why()
    {
        var quiet = new[] { Backup("s0", 0, 1.0), Backup("s1", 1, 0.02), Backup("s2", 2, 0.01), Backup("s3", 3, 0.03) };
        var suspicion = new Suspicion();
        var reason = suspicion.Of(Backup("s4", 4, 0.9, stored: 1.0), quiet);
        Assert.NotNull(reason);
        Assert.Contains("90 % of its 1 GiB were new", reason.Replace("\u00a0", " "));
        Assert.Contains("did not compress", reason);
        Assert.Null(suspicion.Of(Backup("s4", 4, 0.3), quiet)); // a busy day, not a mass change
        Assert.Null(suspicion.Of(Backup("s4", 4, 0.9), quiet[..2])); // too little history to judge
        Assert.Null(suspicion.Of(Backup("s4", 4, 0.9), [Backup("f0", 0, 1.0), Backup("f1", 1, 0.9), Backup("f2", 2, 0.8)])); // a set that always changes
        Assert.Null(new Suspicion(0).Of(Backup("s4", 4, 0.9), quiet)); // off
        var small = Backup("s4", 4, 0.9);
        small.Stats.Bytes = 1 << 20;
        Assert.Null(suspicion.Of(small, quiet)); // a few files rewritten: no alarm
    }

    [Fact]
    public void A_suspect_snapshot_holds_its_sets_retention_until_an_operator_clears_it()
    {
        var s = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "a" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1" })
            .Apply(new PolicyDefined { Policy = new StoragePolicy { Name = "keep2", Retention = new RetentionRule { Last = 2 } } })
            .Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" }, Policy = "keep2" } });
        foreach (var (id, day, share) in new[] { ("s0", 0, 1.0), ("s1", 1, 0.02), ("s2", 2, 0.01), ("s3", 3, 0.03) })
            s = s.Apply(new SnapshotRecorded { Manifest = Backup(id, day, share).ToByteString() });
        var encrypted = Backup("s4", 4, 0.95, stored: 1.0);
        s = s.Apply(new SnapshotRecorded { Manifest = encrypted.ToByteString() });
        var suspect = s.DecideSuspect(encrypted, new Suspicion(), Now);
        Assert.NotNull(suspect);
        Assert.Null(s.DecideSuspect(Backup("s3", 3, 0.03), new Suspicion(), Now));
        var elsewhere = Backup("m4", 4, 1.0);
        elsewhere.Library = "lib2"; // the set's first backup into another library: all new there, nothing changed
        Assert.Null(s.DecideSuspect(elsewhere, new Suspicion(), Now));
        // Once the set has a snapshot there, its whole history is the baseline (older snapshots tiered away count).
        var there = Backup("m3", 3, 0.02);
        there.Library = "lib2";
        var next = Backup("m4", 4, 0.95, stored: 1.0);
        next.Library = "lib2";
        Assert.NotNull(s.Apply(new SnapshotRecorded { Manifest = there.ToByteString() }).DecideSuspect(next, new Suspicion(), Now));
        s = s.Apply(suspect);
        // Retention keeps the whole set (the last good ones among them), however many encrypted backups follow.
        var full = Backup("s5", 5, 0.0);
        full.Level = Level.Full;
        s = s.Apply(new SnapshotRecorded { Manifest = full.ToByteString() }).Apply(new SnapshotVerified { Snapshot = "s5", Ok = true });
        Assert.Null(s.DecideRetention(Now));
        Assert.Contains("s4 of its set is suspect", s.RetentionVerdicts(Now)["s1"].Reasons.Single());
        Assert.Contains("ransomware", s.InfoOf(s.FindSnapshot("s4")).Suspect);
        Assert.Equal(["s4"], new ManagerState().Apply(s.ToSnapshot()).Suspects.Keys); // in the manager's snapshot
        // Deleted (held under a deletion delay) and brought back: suspect again.
        var trashed = s.Apply(new SnapshotsTrashed { Snapshots = { "s4" }, UnixMs = Now.ToUnixTimeMilliseconds() });
        Assert.Empty(trashed.Suspects);
        Assert.Equal(["s4"], trashed.Apply(new SnapshotsUndeleted { Snapshots = { "s4" } }).Suspects.Keys);

        Assert.Contains("is not suspect", s.DecideClearSuspect(new ClearSuspect { Snapshots = { "s3" } }, "", Now).Decision.Rejection);
        var (answer, cleared) = s.DecideClearSuspect(new ClearSuspect { Snapshots = { "s4" } }, "operator alice", Now);
        Assert.Equal("s4", Assert.Single(answer.Snapshots).Id);
        s = cleared.Events.Aggregate(s, (st, e) => st.Apply(e));
        Assert.Empty(s.Suspects);
        Assert.Equal(["s0", "s1", "s2", "s3"], s.DecideRetention(Now)!.Snapshots); // retention goes on: the last 2 (s4, s5) stay
    }
}
