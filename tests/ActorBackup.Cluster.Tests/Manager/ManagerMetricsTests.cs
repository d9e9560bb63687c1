using ActorBackup.Cluster.Manager;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>What an operator's alerts go by: the manager's series and a set's on-failure command for a slot that could not run.</summary>
public sealed class ManagerMetricsTests() : TestKit(OneNodeCell.Config)
{
    private static string Scrape()
    {
        using var text = new MemoryStream();
        Prometheus.Metrics.DefaultRegistry.CollectAndExportAsTextAsync(text).GetAwaiter().GetResult();
        return System.Text.Encoding.UTF8.GetString(text.ToArray());
    }

    [Fact]
    public void A_slot_that_cannot_queue_its_backup_runs_the_sets_on_failure_command_and_counts_as_missed()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Address == cluster.SelfAddress && m.Status == MemberStatus.Up), TimeSpan.FromSeconds(60));
        // No library at all: each slot is missed ("no library is reachable"), with no settling time after the start.
        // A client the cell removed: its series go (the registry is the process's: a name no other test uses).
        var gone = "decommissioned-" + Guid.NewGuid().ToString("N")[..8];
        ActorBackup.Cluster.Metrics.CellMetrics.BytesRead.WithLabels(gone).Inc(10);
        ActorBackup.Cluster.Metrics.CellMetrics.BytesStored.WithLabels(gone, "lib1").Inc(10);
        ActorBackup.Cluster.Metrics.CellMetrics.JobErrors.WithLabels("backup", gone).Inc(1);
        ActorBackup.Cluster.Metrics.CellMetrics.BytesRead.WithLabels(gone + "-stays").Inc(10);
        Assert.Contains(gone, Scrape());
        ActorBackup.Cluster.Metrics.CellMetrics.ForgetClient(gone);
        Assert.DoesNotContain($"\"{gone}\"", Scrape());
        Assert.Contains(gone + "-stays", Scrape());
        var manager = Sys.ActorOf(ManagerActor.Props(CreateTestProbe().Ref, new QueueLimits(LibrariesSettle: TimeSpan.Zero)), "manager");
        var client = CreateTestProbe();
        manager.Tell(new RegisterClient { Id = "web1", Address = client.Ref.Path.ToStringWithAddress(cluster.SelfAddress) }, client.Ref);
        client.FishForMessage(m => m is Registered, TimeSpan.FromSeconds(30));

        var dir = Directory.CreateTempSubdirectory("abk-metrics-");
        try
        {
            Missed(manager, Path.Combine(dir.FullName, "missed"));
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { } // a hook firing each second may write in it meanwhile
        }
    }

    private void Missed(IActorRef manager, string mark)
    {
        var set = "metrics-missed-" + Guid.NewGuid().ToString("N")[..8]; // the registry is the process's: a name no other test uses
        var me = CreateTestProbe();
        manager.Tell(new DefineBackupSet
        {
            Set = new BackupSetDefinition
            {
                Name = set, Client = "web1", Paths = { "/srv" }, Schedules = { new ScheduleRule { Cron = "* * * * * *" } },
                OnFailure = $"cat >> {mark}; echo \"$ABK_STATE $ABK_SET [$ABK_JOB]\" >> {mark}", // the JSON first: the line waited for comes last
            },
        }, me.Ref);
        var answer = me.FishForMessage(m => m is BackupSetInfo or CommandRejected, TimeSpan.FromSeconds(30));
        Assert.True(answer is BackupSetInfo, answer.ToString());

        AwaitCondition(() => File.Exists(mark) && File.ReadAllText(mark).Contains($"MISSED {set} []"), TimeSpan.FromSeconds(60));
        var json = File.ReadAllText(mark);
        Assert.Contains("no library is reachable", json); // the reason, in the JSON on its stdin
        AwaitCondition(() => System.Text.RegularExpressions.Regex.IsMatch(Scrape(), $@"actorbackup_slots_missed_total\{{set=""{set}""\}} [1-9]"), TimeSpan.FromSeconds(30));
        var text = Scrape();
        // (actorbackup_manager_active is the process's: other tests' managers stop beside this one; the e2e test checks it.)
        // Never backed up: 0, which an alert on the snapshot's age takes for the oldest of all.
        Assert.Contains($"actorbackup_set_last_snapshot_timestamp_seconds{{set=\"{set}\"}} 0", text);
        // Series a first failure after the manager's start must find at 0 to be an increase.
        Assert.Contains("actorbackup_jobs_ended_total{kind=\"restore\",state=\"failed\"}", text);
        Assert.Contains("actorbackup_job_errors_total{kind=\"backup\",client=\"web1\"}", text);
    }
}
