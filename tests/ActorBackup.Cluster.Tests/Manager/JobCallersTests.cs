using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// The manager decides what the certificate that signed a job command may do, on its own catalog: a client host only
/// its own client's jobs, an integrator no restore onto another host, an operator anything.
/// </summary>
public class JobCallersTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 1, 0, 0, TimeSpan.Zero);
    private static readonly CellIdentity Operator = CellIdentity.Of(CellRole.Operator, "alice");
    private static readonly CellIdentity Integrator = CellIdentity.Of(CellRole.Integrator, "ci");
    private static readonly CellIdentity HostA = CellIdentity.Of(CellRole.Client, "host-a", "host-a");
    private static readonly CellIdentity NodeA = CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]);

    /// <summary>host-a's snapshots a0 (older) and a1, host-b's b0 (newest of all); set "web" of host-a; job 1 of host-b.</summary>
    private static ManagerState Cell()
    {
        var s = new ManagerState()
            .Apply(new ClientRegistered { Id = "host-a", Address = "akka.tcp://actorbackup@a/user/client" })
            .Apply(new ClientRegistered { Id = "host-b", Address = "akka.tcp://actorbackup@b/user/client" })
            .Apply(new LibraryRegistered { Id = "lib1", Node = "n1", Drives = 2 })
            .Apply(new BackupSetDefined { Set = new BackupSetDefinition { Name = "web", Client = "host-a", Paths = { "/www" } } })
            .Apply(new JobQueued { Job = new JobInfo { Id = "1", Kind = JobKind.Backup, State = JobState.Queued, Client = "host-b", Library = "lib1", Paths = { "/b" } } });
        foreach (var (id, client, day) in new[] { ("a0", "host-a", -3), ("a1", "host-a", -2), ("b0", "host-b", -1) })
            s = s.Apply(new SnapshotRecorded
            {
                Manifest = new SnapshotManifest { Id = id, Client = client, BackupSet = "s", FinishedUnixMs = Now.AddDays(day).ToUnixTimeMilliseconds(), Library = "lib1" }.ToByteString(),
            });
        return s;
    }

    [Fact]
    public void A_client_host_starts_and_stops_its_own_clients_jobs_only_and_latest_means_its_own_newest()
    {
        var s = Cell();
        var restore = new StartRestore { Snapshot = "latest", Target = "/srv/r" };
        Assert.Null(JobCallers.Narrow(HostA, restore, s));
        Assert.Equal("a1", restore.Snapshot); // not b0, the cell's newest
        Assert.Equal("host-a", restore.Client);
        Assert.Contains("no snapshot 'b0' of client host-a", JobCallers.Narrow(HostA, new StartRestore { Snapshot = "b0", Target = "/r" }, s));
        Assert.Contains("for client host-a only, not host-b", JobCallers.Narrow(HostA, new StartRestore { Snapshot = "a1", Client = "host-b", Target = "/r" }, s));
        var backup = new StartBackup { Paths = { "/etc" } };
        Assert.Null(JobCallers.Narrow(HostA, backup, s));
        Assert.Equal("host-a", backup.Client);
        Assert.Contains("for client host-a only", JobCallers.Narrow(HostA, new StartBackup { Client = "host-b", Paths = { "/etc" } }, s));
        Assert.Contains("defined backup set", JobCallers.Narrow(HostA, new StartBackup { BackupSet = "web", Paths = { "/" } }, s));
        Assert.Contains("job 1 is not one of them", JobCallers.Narrow(HostA, new CancelJob { Job = "1" }, s));
        Assert.Contains("whole library", JobCallers.Narrow(HostA, new StartVerify { Library = "lib1" }, s));
        Assert.NotNull(JobCallers.Narrow(HostA, new RunBackupSet { Name = "web" }, s));
        Assert.NotNull(JobCallers.Narrow(HostA, new SetJobPriority { Job = "1", Priority = 9 }, s));
        // Nor does it put its own jobs ahead of others' by starting them at a priority.
        Assert.Contains("may not set a job's priority", JobCallers.Narrow(HostA, new StartBackup { Paths = { "/etc" }, Priority = 10 }, s));
        Assert.Contains("may not set a job's priority", JobCallers.Narrow(HostA, new StartVerify { Snapshot = "a1", Priority = 10 }, s));
    }

    [Fact]
    public void An_integrator_restores_a_snapshot_onto_its_own_host_only_and_an_operator_anywhere()
    {
        var s = Cell();
        Assert.Contains("takes an operator certificate", JobCallers.Narrow(Integrator, new StartRestore { Snapshot = "a1", Client = "host-b", Target = "/r" }, s));
        // 'latest' without a client in a cell of two hosts: which host's? Refused (it would roll back whichever backed up last).
        Assert.Contains("'latest' of which host?", JobCallers.Narrow(Integrator, new StartRestore { Snapshot = "latest", Target = "/r" }, s));
        var own = new StartRestore { Snapshot = "latest", Client = "host-b", Target = "/r" };
        Assert.Null(JobCallers.Narrow(Integrator, own, s));
        Assert.Equal("b0", own.Snapshot); // pinned to the one checked
        Assert.Contains("defined backup set", JobCallers.Narrow(Integrator, new StartBackup { BackupSet = "web", Paths = { "/" } }, s));
        var started = new StartBackup { Paths = { "/x" } };
        Assert.Null(JobCallers.Narrow(Integrator, started, s));
        Assert.Equal(JobOrigin.Integrator, started.Origin);
        Assert.Equal("", started.Client); // an integrator's backup names its client (or the cell has one)

        Assert.Null(JobCallers.Narrow(Operator, new StartRestore { Snapshot = "a1", Client = "host-b", Target = "/r" }, s));
        var here = new StartBackup { Paths = { "/x" } };
        Assert.Null(JobCallers.Narrow(Operator, here, s));
        Assert.Equal("", here.Client); // as signed: abk names the client (its node's) before it signs
        Assert.Equal(JobOrigin.Operator, here.Origin);
        // A node certificate is no caller's.
        Assert.Contains("node certificate", JobCallers.Narrow(NodeA, new StartBackup { Paths = { "/x" } }, s));
    }

    [Fact]
    public void A_client_host_sees_its_own_clients_jobs_and_snapshots_only_and_a_node_nothing()
    {
        var s = Cell();
        var jobs = new ListJobs();
        Assert.Null(JobCallers.NarrowLook(HostA, jobs, s));
        Assert.Equal("host-a", jobs.Client);
        Assert.Contains("for client host-a only, not host-b", JobCallers.NarrowLook(HostA, new ListJobs { Client = "host-b" }, s));
        var snapshots = new ListSnapshots();
        Assert.Null(JobCallers.NarrowLook(HostA, snapshots, s));
        Assert.Equal("host-a", snapshots.Client);
        var latest = new GetSnapshot { Snapshot = "latest" };
        Assert.Null(JobCallers.NarrowLook(HostA, latest, s));
        Assert.Equal("a1", latest.Snapshot); // its own newest, not the cell's (b0)
        Assert.Contains("no snapshot 'b0' of client host-a", JobCallers.NarrowLook(HostA, new GetSnapshot { Snapshot = "b0" }, s));
        Assert.Contains("job 1 is not one of them", JobCallers.NarrowLook(HostA, new GetJob { Job = "1" }, s));
        Assert.Contains("job 1 is not one of them", JobCallers.NarrowLook(HostA, new WatchJob { Job = "1" }, s));
        Assert.Contains("operator certificate", JobCallers.NarrowLook(HostA, new GetBackupSet { Name = "web" }, s)); // its commands are the operator's
        Assert.NotNull(JobCallers.NarrowLook(HostA, new ListPolicies(), s));

        var all = new ListSnapshots();
        Assert.Null(JobCallers.NarrowLook(Integrator, all, s));
        Assert.Equal("", all.Client);
        Assert.Null(JobCallers.NarrowLook(Operator, new GetBackupSet { Name = "web" }, s));
        Assert.Contains("node certificate", JobCallers.NarrowLook(NodeA, new ListJobs(), s));
    }
}
