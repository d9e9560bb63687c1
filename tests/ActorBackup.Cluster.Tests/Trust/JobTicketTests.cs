using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// Tickets and assignments: a media agent opens a session only under a ticket a manager node signed for that job,
/// that library and that access, not expired and not ended; a client or media agent takes an assignment only from a
/// manager node; the manager gives a look's read ticket only to the client whose node asks.
/// </summary>
public sealed class JobTicketTests : IDisposable
{
    private readonly TestTrust _cell = new();
    private readonly NodeTrust _manager, _media, _hostA, _hostB;
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private static readonly JobInfo Backup = new() { Id = "7", Kind = JobKind.Backup, Client = "host-a", Library = "lib1", Attempt = 1 };

    public JobTicketTests()
    {
        _manager = Node(CellIdentity.Of(CellRole.Node, "mgr", "", ["manager"]));
        _media = Node(CellIdentity.Of(CellRole.Node, "store", "", ["media"], ["lib1", "lib2"]));
        _hostA = Node(CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        _hostB = Node(CellIdentity.Of(CellRole.Node, "host-b", "host-b", ["client"]));
    }

    public void Dispose()
    {
        foreach (var n in new[] { _manager, _media, _hostA, _hostB }) n.Dispose();
        _cell.Dispose();
    }

    private NodeTrust Node(CellIdentity identity) => _cell.Node(identity);

    private JobTicket Issued(NodeTrust? by = null) => MessageSignature.Sign(JobTickets.For(Backup, read: ["lib3"], write: ["lib1", "lib2"], Now), by ?? _manager);

    private string? Check(JobTicket? ticket, string library = "lib1", string job = "7", bool write = true, DateTimeOffset? at = null, EndedJobs? ended = null) =>
        JobTickets.Refusal(_media, ticket, library, job, write, at ?? Now, (ended ?? new EndedJobs()).Ended);

    [Fact]
    public void A_ticket_names_the_drive_its_job_holds_in_its_own_library_and_a_changed_drive_does_not_check()
    {
        var onDrive2 = Backup.Clone();
        onDrive2.Drive = 2;
        var ticket = MessageSignature.Sign(JobTickets.For(onDrive2, read: ["lib3"], write: ["lib1", "lib2"], Now), _manager);
        Assert.Null(Check(ticket));
        Assert.Equal(2, JobTickets.DriveIn(ticket, "lib1"));
        Assert.Equal(0, JobTickets.DriveIn(ticket, "lib2")); // a library it spans into: no drive of it held
        Assert.Equal(0, JobTickets.DriveIn(Issued(), "lib1")); // a job started before drives were recorded
        Assert.Equal(0, JobTickets.DriveIn(null, "lib1"));
        ticket.Drive = 1; // taken over on the way: another job's drive
        Assert.Contains("does not check", Check(ticket));
    }

    [Fact]
    public void A_session_opens_only_under_a_ticket_the_manager_signed_for_that_job_library_and_access()
    {
        Assert.Null(Check(Issued()));
        Assert.Null(Check(Issued(), library: "lib2")); // a library it may span into
        Assert.Null(Check(Issued(), library: "lib3", write: false)); // its parent's, to read
        Assert.Contains("no ticket", Check(null));
        Assert.Contains("not signed", Check(JobTickets.For(Backup, [], ["lib1"], Now)));
        // A client node signing a ticket for itself: no manager.
        Assert.Contains("not by a manager node", Check(Issued(by: _hostA)));
        // Changed on the way (another library put in): the signature does not check.
        var widened = Issued();
        widened.Write.Add("lib9");
        Assert.Contains("does not check", Check(widened, library: "lib9"));
        Assert.Contains("job 7's, not job 8's", Check(Issued(), job: "8"));
        Assert.Contains("does not let it write library lib3", Check(Issued(), library: "lib3"));
        Assert.Contains("does not let it read library lib4", Check(Issued(), library: "lib4", write: false));
        Assert.Contains("expired", Check(Issued(), at: Now + JobTickets.JobLifetime + TimeSpan.FromMinutes(1)));
        // Of another cell's manager: not this cell's.
        using var elsewhere = new TestTrust("elsewhere");
        using var otherManager = elsewhere.Node(CellIdentity.Of(CellRole.Node, "mgr", "", ["manager"]));
        Assert.Contains("not from this cell's CA", Check(Issued(by: otherManager)));
    }

    [Fact]
    public void A_ticket_ends_with_its_attempt_or_its_job()
    {
        var ended = new EndedJobs();
        ended.End("7", attempt: 0, wholeJob: false); // an earlier attempt given up
        Assert.Null(Check(Issued(), ended: ended));
        ended.End("7", attempt: 1, wholeJob: false); // this one
        Assert.Contains("has ended", Check(Issued(), ended: ended));
        var done = new EndedJobs();
        done.End("7", attempt: 0, wholeJob: true);
        Assert.Contains("has ended", Check(Issued(), ended: done));
        // Bounded: the oldest are forgotten (their tickets still expire).
        for (var i = 0; i < EndedJobs.Capacity; i++) done.End("other-" + i, 0, true);
        Assert.False(done.Ended("7", 1));
        Assert.True(done.Ended("other-" + (EndedJobs.Capacity - 1), 5));
    }

    [Fact]
    public void Only_the_tickets_holder_may_use_its_sessions()
    {
        var ticket = Issued();
        Assert.True(JobTickets.Admits(ticket, _hostA.Identity));
        Assert.False(JobTickets.Admits(ticket, _hostB.Identity));
        Assert.False(JobTickets.Admits(ticket, _media.Identity));
        Assert.False(JobTickets.Admits(ticket, CellIdentity.Of(CellRole.Client, "host-a", "host-a"))); // a shell's certificate is no node's
        // A copy's ticket is held by the media node of its target library.
        var copy = JobTickets.For(new JobInfo { Id = "9", Kind = JobKind.Copy, Library = "lib2", SourceLibrary = "lib1" }, ["lib1"], [], Now, holderLibrary: "lib2");
        Assert.True(JobTickets.Admits(copy, _media.Identity));
        Assert.False(JobTickets.Admits(copy, _hostA.Identity));
        Assert.Empty(copy.Write);
    }

    [Fact]
    public void A_looks_read_ticket_is_given_only_to_the_client_whose_node_asks()
    {
        var request = MessageSignature.Sign(new RequestTicket { Client = "host-a", Read = { "lib1" }, Purpose = "ls" }, _hostA);
        Assert.Null(JobTickets.LookRefusal(request, MessageSignature.Signer(_manager, request, out var why), why));
        var ticket = JobTickets.ForLook(request, Now);
        Assert.StartsWith("ls-", ticket.Job);
        Assert.Empty(ticket.Write);
        Assert.True(JobTickets.Admits(ticket, _hostA.Identity));

        // Host B asking in host A's name, or nobody signing: refused.
        var forged = MessageSignature.Sign(new RequestTicket { Client = "host-a", Read = { "lib1" } }, _hostB);
        Assert.Contains("not by the node of client host-a", JobTickets.LookRefusal(forged, MessageSignature.Signer(_manager, forged, out why), why));
        var unsigned = new RequestTicket { Client = "host-a", Read = { "lib1" } };
        Assert.Contains("not signed", JobTickets.LookRefusal(unsigned, MessageSignature.Signer(_manager, unsigned, out why), why));
    }

    [Fact]
    public void Assignments_and_cancels_are_taken_only_from_a_manager_node()
    {
        var assignment = new BackupAssignment { Job = Backup, Ticket = Issued() };
        Assert.Contains("not signed", MessageSignature.NotFromManager(_hostA, assignment));
        Assert.Null(MessageSignature.NotFromManager(_hostA, MessageSignature.Sign(assignment, _manager)));
        // Another node of the cell (a client host, a media node) cannot make a host restore or stop.
        Assert.Contains("not by a manager node", MessageSignature.NotFromManager(_hostA, MessageSignature.Sign(new RestoreAssignment { Job = Backup }, _hostB)));
        Assert.Contains("not by a manager node", MessageSignature.NotFromManager(_media, MessageSignature.Sign(new PruneLibrary { Library = "lib1", Job = "3" }, _media)));
        Assert.Contains("not by a manager node", MessageSignature.NotFromManager(_hostA, MessageSignature.Sign(new CancelAssignment { Job = "7" }, _media)));
        // A signed assignment changed on the way (another target folder): refused.
        var restore = MessageSignature.Sign(new RestoreAssignment { Job = new JobInfo { Id = "8", Target = "/tmp/r" } }, _manager);
        restore.Job.Target = "/etc";
        Assert.Contains("does not check", MessageSignature.NotFromManager(_hostA, restore));
        // An ActorSystem without trust (a test of one actor): taken.
        Assert.Null(MessageSignature.NotFromManager(null, new CancelAssignment { Job = "7" }));
    }

    [Fact]
    public void Registrations_are_taken_only_from_the_node_they_name()
    {
        var asHostA = MessageSignature.Sign(new RegisterClient { Id = "host-a" }, _hostB);
        Assert.Contains("not by the node of client host-a",
            MessageSignature.Refusal(_manager, asHostA, id => MessageSignature.IsClientNode(id, "host-a"), "the node of client host-a"));
        var library = MessageSignature.Sign(new RegisterLibrary { Id = "lib7" }, _media); // a media node, but not of lib7
        Assert.NotNull(MessageSignature.Refusal(_manager, library, id => MessageSignature.IsMediaNode(id, "lib7"), "a media node of library lib7"));
        var own = MessageSignature.Sign(new RegisterLibrary { Id = "lib2" }, _media);
        Assert.Null(MessageSignature.Refusal(_manager, own, id => MessageSignature.IsMediaNode(id, "lib2"), "a media node of library lib2"));
    }
}
