using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// Tickets: what a job may do on the data plane (<see cref="JobTicket"/>). The manager issues one with each
/// assignment (and, signed requests of a client's node, for a look: ls, find, catalog rebuild); a media agent opens
/// a session only under a ticket that checks (<see cref="Refusal"/>), and its data plane admits only the holder's
/// connections (<see cref="Admits"/>). A ticket ends with its attempt or its job (the manager's EndJobSessions) or
/// when it expires, whichever comes first.
/// </summary>
public static class JobTickets
{
    /// <summary>How long a job's ticket lasts at most (its end closes it before that; a media agent that restarted
    /// since has forgotten which jobs ended, and this is what bounds the ticket then).</summary>
    public static readonly TimeSpan JobLifetime = TimeSpan.FromDays(7);

    /// <summary>How long a look's read ticket lasts (ls, find, a catalog rebuild open their sessions at once).</summary>
    public static readonly TimeSpan LookLifetime = TimeSpan.FromMinutes(30);

    /// <summary>At most this many libraries in a ticket (a snapshot's library, its spans and its copies).</summary>
    public const int MaxLibraries = 256;

    /// <summary>
    /// The purpose of the look that builds a backup's file index after it, in the background: its job id is this, then
    /// '-' and a GUID (without trust: this alone). Its sessions give way to an operator's robot command (MediaActor.GiveWay); abk find builds the
    /// index again when it needs it.
    /// </summary>
    public const string BackgroundIndex = "index";

    /// <summary>Whether a session's job is a background index build (<see cref="BackgroundIndex"/>).</summary>
    public static bool IsBackgroundIndex(string job) =>
        job == BackgroundIndex || job.StartsWith(BackgroundIndex + "-", StringComparison.Ordinal);

    /// <summary>The (unsigned) ticket of <paramref name="job"/>'s current attempt, held by its client or, given
    /// <paramref name="holderLibrary"/>, by that library's media node.</summary>
    public static JobTicket For(JobInfo job, IEnumerable<string> read, IEnumerable<string> write, DateTimeOffset now, string holderLibrary = "")
    {
        var t = new JobTicket
        {
            Job = job.Id, Attempt = job.Attempt, Client = holderLibrary == "" ? job.Client : "", HolderLibrary = holderLibrary,
            ExpiresUnixMs = (now + JobLifetime).ToUnixTimeMilliseconds(),
            DriveLibrary = job.Drive > 0 ? job.Library : "", Drive = job.Drive,
            ReadDriveLibrary = job.SourceDrive > 0 ? job.SourceLibrary : "", ReadDrive = job.SourceDrive,
        };
        t.Write.AddRange(write.Where(l => l != "").Distinct());
        t.Read.AddRange(read.Where(l => l != "" && !t.Write.Contains(l)).Distinct());
        return t;
    }

    /// <summary>The drive of <paramref name="library"/> that the ticket's job holds (the manager's queue gave it), or 0.</summary>
    public static int DriveIn(JobTicket? ticket, string library) =>
        ticket is null ? 0 : ticket.DriveLibrary == library ? ticket.Drive : ticket.ReadDriveLibrary == library ? ticket.ReadDrive : 0;

    /// <summary>Why the manager gives <paramref name="request"/> no read ticket (signed by <paramref name="signer"/>); null: it may.</summary>
    public static string? LookRefusal(RequestTicket request, CellIdentity? signer, string signerRefusal)
    {
        if (signer is null) return $"a ticket request refused: {signerRefusal}";
        if (!MessageSignature.IsClientNode(signer, request.Client))
            return $"a ticket request refused: it is signed by {signer}, not by the node of client {request.Client}";
        if (request.Read.Count is 0 or > MaxLibraries) return $"a ticket request names {request.Read.Count} libraries (1 to {MaxLibraries})";
        return null;
    }

    /// <summary>A look's read ticket for the client that asked.</summary>
    public static JobTicket ForLook(RequestTicket request, DateTimeOffset now)
    {
        var purpose = new string(request.Purpose.Where(c => char.IsAsciiLetterOrDigit(c) || c == '-').Take(32).ToArray());
        var t = new JobTicket
        {
            Job = $"{(purpose == "" ? "look" : purpose)}-{Guid.NewGuid():N}", Client = request.Client,
            ExpiresUnixMs = (now + LookLifetime).ToUnixTimeMilliseconds(),
        };
        t.Read.AddRange(request.Read.Distinct());
        return t;
    }

    /// <summary>
    /// Why the media agent of <paramref name="library"/> must not open a session for (<paramref name="job"/>,
    /// <paramref name="write"/>) under <paramref name="ticket"/>; null when it may. <paramref name="ended"/> says
    /// whether the ticket's attempt (or its whole job) has ended. In an ActorSystem without trust (tests of one
    /// actor) every session is opened.
    /// </summary>
    public static string? Refusal(NodeTrust? trust, JobTicket? ticket, string library, string job, bool write, DateTimeOffset now, Func<string, int, bool> ended)
    {
        if (trust is null) return null;
        if (ticket is null) return "no ticket: sessions are opened only for a job the manager assigned";
        if (MessageSignature.NotFromManager(trust, ticket) is { } forged) return forged;
        if (ticket.Job != job) return $"the ticket is job {ticket.Job}'s, not job {job}'s";
        if (write ? !ticket.Write.Contains(library) : !ticket.Read.Contains(library) && !ticket.Write.Contains(library))
            return $"job {job}'s ticket does not let it {(write ? "write" : "read")} library {library}";
        if (now.ToUnixTimeMilliseconds() > ticket.ExpiresUnixMs) return $"job {job}'s ticket expired at {DateTimeOffset.FromUnixTimeMilliseconds(ticket.ExpiresUnixMs):u}";
        if (ended(job, ticket.Attempt)) return $"job {job} (attempt {ticket.Attempt + 1}) has ended: its ticket opens no session any more";
        return null;
    }

    /// <summary>Whether a data-plane connection whose certificate says <paramref name="peer"/> may use a session opened under <paramref name="ticket"/>.</summary>
    public static bool Admits(JobTicket ticket, CellIdentity peer) =>
        ticket.HolderLibrary != "" ? MessageSignature.IsMediaNode(peer, ticket.HolderLibrary) : MessageSignature.IsClientNode(peer, ticket.Client);

    /// <summary>Who may use a ticket's sessions, for messages.</summary>
    public static string Holder(JobTicket ticket) => ticket.HolderLibrary != "" ? $"the media node of library {ticket.HolderLibrary}" : $"the node of client {ticket.Client}";
}

/// <summary>
/// The jobs whose sessions a media agent no longer opens: attempts given up and jobs ended, as the manager said
/// (EndJobSessions). Bounded: the oldest are forgotten past <see cref="Capacity"/> (their tickets still expire).
/// </summary>
public sealed class EndedJobs
{
    public const int Capacity = 10_000;
    private readonly Dictionary<string, int> _ended = [];
    private readonly Queue<string> _order = new();

    /// <summary>Attempts up to <paramref name="attempt"/> ended; <paramref name="wholeJob"/>: every attempt.</summary>
    public void End(string job, int attempt, bool wholeJob)
    {
        var upTo = wholeJob ? int.MaxValue : attempt;
        if (_ended.TryGetValue(job, out var had))
        {
            _ended[job] = Math.Max(had, upTo);
            return;
        }
        _ended[job] = upTo;
        _order.Enqueue(job);
        while (_order.Count > Capacity) _ended.Remove(_order.Dequeue());
    }

    public bool Ended(string job, int attempt) => _ended.TryGetValue(job, out var upTo) && attempt <= upTo;
}
