using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The manager takes a job's end only from the node the job belongs to, proven by the node's certificate.</summary>
public sealed class JobSignatureTests : IDisposable
{
    private readonly TestTrust _cell = new();
    private readonly NodeTrust _manager;

    public JobSignatureTests() => _manager = Node(_cell, CellIdentity.Of(CellRole.Node, "mgr", "", ["manager"]));

    public void Dispose()
    {
        _manager.Dispose();
        _cell.Dispose();
    }

    private static NodeTrust Node(TestTrust cell, CellIdentity identity) =>
        new(cell.Dir, X509CertificateLoader.LoadCertificate(cell.Ca.RawData), cell.Issue(identity).Certificate, identity);

    private static JobFinished Finished(string job) => new() { Job = job, Ok = true, Outcome = JobState.Succeeded, Manifest = ByteString.CopyFromUtf8("snapshot of host-a") };

    [Fact]
    public void A_client_jobs_end_is_taken_only_signed_by_that_client_and_unchanged()
    {
        var backup = new JobInfo { Id = "7", Kind = JobKind.Backup, Client = "host-a", Library = "lib1" };
        using var hostA = Node(_cell, CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        using var hostB = Node(_cell, CellIdentity.Of(CellRole.Node, "host-b", "host-b", ["client"]));
        Assert.Null(JobSignature.Refusal(_manager, backup, JobSignature.Sign(Finished("7"), hostA)));

        // Another host's valid certificate: refused, whatever the message says.
        var forged = JobSignature.Refusal(_manager, backup, JobSignature.Sign(Finished("7"), hostB));
        Assert.Contains("not by client host-a", forged);
        Assert.Contains("not signed", JobSignature.Refusal(_manager, backup, Finished("7")));
        // Signed by the right host, then changed on the way (another snapshot put in): the signature does not check.
        var changed = JobSignature.Sign(Finished("7"), hostA);
        changed.Manifest = ByteString.CopyFromUtf8("an empty snapshot");
        Assert.Contains("does not check", JobSignature.Refusal(_manager, backup, changed));
        // A certificate of another cell's CA, with the right name: not this cell's.
        using var elsewhere = new TestTrust("elsewhere");
        using var impostor = Node(elsewhere, CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        Assert.Contains("not from this cell's CA", JobSignature.Refusal(_manager, backup, JobSignature.Sign(Finished("7"), impostor)));
        // An operator's or a media node's certificate is no client's.
        using var media = Node(_cell, CellIdentity.Of(CellRole.Node, "store", "", ["media"], ["lib1"]));
        Assert.NotNull(JobSignature.Refusal(_manager, backup, JobSignature.Sign(Finished("7"), media)));
    }

    [Fact]
    public void A_media_jobs_end_is_taken_only_from_a_media_node_of_its_library()
    {
        var prune = new JobInfo { Id = "9", Kind = JobKind.Prune, Library = "lib1" };
        using var lib1 = Node(_cell, CellIdentity.Of(CellRole.Node, "store1", "", ["media"], ["lib1"]));
        using var lib2 = Node(_cell, CellIdentity.Of(CellRole.Node, "store2", "", ["media"], ["lib2"]));
        using var client = Node(_cell, CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        Assert.Null(JobSignature.Refusal(_manager, prune, JobSignature.Sign(Finished("9"), lib1)));
        Assert.Contains("the media node of library lib1", JobSignature.Refusal(_manager, prune, JobSignature.Sign(Finished("9"), lib2)));
        Assert.NotNull(JobSignature.Refusal(_manager, prune, JobSignature.Sign(Finished("9"), client)));
        var check = new JobInfo { Id = "10", Kind = JobKind.Verify, Library = "lib1" }; // a library check: the media side
        Assert.Null(JobSignature.Refusal(_manager, check, JobSignature.Sign(Finished("10"), lib1)));
    }

    [Fact]
    public void A_jobs_progress_is_taken_only_signed_by_the_node_running_it()
    {
        var restore = new JobInfo { Id = "8", Kind = JobKind.Restore, Client = "host-a", Library = "lib1" };
        using var hostA = Node(_cell, CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        using var hostB = Node(_cell, CellIdentity.Of(CellRole.Node, "host-b", "host-b", ["client"]));
        JobProgress Progress() => new() { Job = "8", FilesDone = 10, FilesTotal = 20 };
        Assert.Null(JobSignature.Refusal(_manager, restore, MessageSignature.Sign(Progress(), hostA)));
        Assert.Contains("not by client host-a", JobSignature.Refusal(_manager, restore, MessageSignature.Sign(Progress(), hostB)));
        Assert.Contains("not signed", JobSignature.Refusal(_manager, restore, Progress()));
        var changed = MessageSignature.Sign(Progress(), hostA);
        changed.FilesDone = 20;
        Assert.Contains("does not check", JobSignature.Refusal(_manager, restore, changed));
    }
}
