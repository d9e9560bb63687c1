using System.Collections.Concurrent;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The data plane of one ActorSystem (an extension: <c>DataPlaneSessions.Get(system)</c>): the sessions its
/// media agents have open, each under a one-time ticket. A client in the same ActorSystem (the embedded cell)
/// uses the ticket in place, no serialization, no copy; the socket server admits a remote client by it.
/// </summary>
public sealed class DataPlaneSessions : IExtension
{
    /// <param name="Ticket">what the session was opened under: the socket server admits only its holder's connections (none: a test's actor without trust)</param>
    internal sealed record Session(DiskLibrary Library, IActorRef Media, string LibraryId, bool Write, JobTicket? Ticket)
    {
        /// <summary>
        /// This thread serves the session's job: a tape library mounts and writes its cartridges in the drive it holds.
        /// Disposing puts back what the thread served before (a copy that reads its source in place writes its own drive).
        /// </summary>
        public Engine.Tape.TapeMedium.Served Serve() => Engine.Tape.TapeMedium.WorkingFor(Ticket?.Job, Trust.JobTickets.DriveIn(Ticket, LibraryId), Write);

        private string? _referencesOf;
        private readonly object _referencesLock = new();

        /// <summary>
        /// The one snapshot whose reference list this write session may add to: the first it names, if the library has
        /// no list of that snapshot yet (a backup's snapshot is new). A client cannot add to another snapshot's list
        /// (pinning chunks a prune should take, or pushing the list past what it may hold). Null: may add; else why not.
        /// </summary>
        public string? ReferencesRefusal(string snapshot)
        {
            lock (_referencesLock)
            {
                if (_referencesOf is null)
                {
                    if (Library.HasReferences(snapshot)) return $"snapshot {snapshot} already has a reference list: a backup's session adds to its own new snapshot's only";
                    _referencesOf = snapshot;
                }
                return _referencesOf == snapshot ? null : $"this session adds references to snapshot {_referencesOf}'s list only, not {snapshot}'s";
            }
        }
    }
    private readonly ConcurrentDictionary<string, Session> _sessions = new();
    private readonly Trust.NodeTrust? _trust;

    /// <param name="trust">this node's certificates, for connections to other nodes' data planes; none: in place only</param>
    public DataPlaneSessions(Trust.NodeTrust? trust = null) => _trust = trust;

    public static DataPlaneSessions Get(ActorSystem system) => system.WithExtension<DataPlaneSessions, DataPlaneSessionsProvider>();

    /// <summary>A session of <paramref name="libraryId"/> opened under <paramref name="jobTicket"/> (checked by the media agent): its one-time ticket.</summary>
    public string Open(DiskLibrary library, IActorRef media, string libraryId, bool write, JobTicket? jobTicket = null)
    {
        var ticket = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        _sessions[ticket] = new Session(library, media, libraryId, write, jobTicket);
        return ticket;
    }

    /// <summary>Ends a session: its ticket admits no one any more, and the socket connections that serve it are closed.</summary>
    /// <param name="transient">why, when the session ends for a passing trouble (its agent's journal failed): a channel in
    /// place that calls it after hears a LibraryBusyException (its job is tried again later), not a library fault</param>
    public void Close(string ticket) => Close(ticket, null);

    public void Close(string ticket, string? transient)
    {
        if (transient is not null && InUse(ticket)) _endedFor[ticket] = transient; // forgotten when its last channel goes (Unuse)
        _sessions.TryRemove(ticket, out _);
        Closed?.Invoke(ticket);
    }

    /// <summary>Sessions closed for a passing trouble that a channel in place still holds: why (Close's transient).</summary>
    private readonly ConcurrentDictionary<string, string> _endedFor = new();

    /// <summary>A session ended (the socket server closes the connections that served it).</summary>
    internal event Action<string>? Closed;

    /// <summary>How many channels in place and socket connections each session serves now.</summary>
    private readonly Dictionary<string, int> _users = [];

    internal void Use(string ticket)
    {
        lock (_users) _users[ticket] = _users.GetValueOrDefault(ticket) + 1;
    }

    internal void Unuse(string ticket)
    {
        lock (_users)
            if (_users.GetValueOrDefault(ticket) <= 1)
            {
                _users.Remove(ticket);
                _endedFor.TryRemove(ticket, out _);
            }
            else _users[ticket]--;
    }

    /// <summary>
    /// Whether a channel in place or a socket connection serves the session now: one whose ticket expired is closed
    /// only when none does (a look whose client node went leaves none: its process's sockets closed, or its host's
    /// ended by keepalive; a catalog rebuild of a slow library reading past its look's 30 min still uses its own).
    /// </summary>
    public bool InUse(string ticket)
    {
        lock (_users) return _users.ContainsKey(ticket);
    }

    internal bool TryGet(string ticket, out Session session) => _sessions.TryGetValue(ticket, out session!);

    /// <summary>
    /// The channel for a granted session: in place when the media agent runs in this ActorSystem (its ticket is
    /// registered here), else the socket the media agent offers.
    /// </summary>
    public IDataPlaneChannel Connect(SessionOpened granted, TimeSpan commitTimeout)
    {
        if (_sessions.TryGetValue(granted.Ticket, out var s)) return new Channel(this, granted.Ticket, s, commitTimeout);
        if (granted.SocketPort <= 0) throw new IOException($"library {granted.Library} is on another node and offers no socket data plane");
        if (_trust is null) throw new IOException($"library {granted.Library} is on another node, and this ActorSystem has no certificate to reach it with");
        return new SocketChannel(granted.SocketHost, granted.SocketPort, granted.Ticket, _trust.ClientOptions(granted.Library));
    }

    private sealed class Channel : IDataPlaneChannel
    {
        private readonly DataPlaneSessions owner;
        private readonly string ticket;
        private readonly Session open;
        private readonly TimeSpan commitTimeout;
        private int _disposed;
        /// <summary>
        /// The reservations this channel holds and has not yet appended or released: given back when it is disposed or
        /// released, whether or not its session is still open (as the socket server's connections do). Held past a
        /// closed session, a reservation made the job's next attempt wait on its own chunks for the reservation timeout.
        /// </summary>
        private readonly HashSet<ChunkId> _held = [];

        public Channel(DataPlaneSessions owner, string ticket, Session open, TimeSpan commitTimeout)
        {
            this.owner = owner;
            this.ticket = ticket;
            this.open = open;
            this.commitTimeout = commitTimeout;
            owner.Use(ticket);
        }

        public string Ticket => ticket;

        /// <summary>
        /// The session, while it is open: one the media agent closed (its job ended, the agent opened its library again,
        /// or a background read gave way to an operator's robot command) serves no call more, in place as over a socket
        /// (whose connections the server closes).
        /// </summary>
        private Session session => owner._sessions.TryGetValue(ticket, out var s) && ReferenceEquals(s, open) ? s
            : owner._endedFor.TryGetValue(ticket, out var why) ? throw new Engine.Library.LibraryBusyException($"the session on library {open.LibraryId} has ended: {why}")
            : throw new LibraryFaultException($"the session on library {open.LibraryId} has ended (its job ended, the media agent opened the library again, or a background read gave way to an operator's command)");

        // A library that failed a write (out of space, say) refuses every call after it with the reason: each is
        // a library fault, as a socket client hears it. A library down to its reserve refuses new chunks with a
        // LibraryFullException, passed on as it is (the backup goes on in another library).
        private static LibraryFaultException Fault(IOException e) => new(e.Message);

        public bool TryReserve(ChunkId id)
        {
            var live = session;
            if (!live.Write) throw new InvalidOperationException("a read session cannot store chunks");
            try
            {
                if (!live.Library.TryReserve(id)) return false;
                lock (_held) _held.Add(id);
                return true;
            }
            // A chunk another writer holds too long (LibraryBusyException) is a passing trouble, as a socket client hears it.
            catch (IOException e) when (e is not LibraryFaultException and not Engine.Library.LibraryFullException and not Engine.Library.LibraryBusyException) { throw Fault(e); }
        }

        public void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
        {
            var live = session;
            using var served = live.Serve();
            try
            {
                live.Library.Append(id, flags, payload);
                lock (_held) _held.Remove(id);
                Metrics.CellMetrics.DataPlaneIn.Inc(payload.Length);
            }
            catch (IOException e) when (e is not LibraryFaultException and not Engine.Library.LibraryFullException and not Engine.Library.LibraryBusyException) { throw Fault(e); }
        }

        /// <summary>Gives back a reservation this channel holds (only its own), on the library it was made in, even after the session closed.</summary>
        public void Release(ChunkId id)
        {
            lock (_held)
                if (!_held.Remove(id)) return;
            open.Library.Release(id);
        }

        public bool Contains(ChunkId id)
        {
            try { return session.Library.Contains(id); }
            catch (IOException e) when (e is not LibraryFaultException and not Engine.Library.LibraryFullException and not Engine.Library.LibraryBusyException) { throw Fault(e); }
        }

        public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
        {
            try { return session.Library.Missing(ids); }
            catch (IOException e) when (e is not LibraryFaultException and not Engine.Library.LibraryFullException and not Engine.Library.LibraryBusyException) { throw Fault(e); }
        }

        public bool Sequential => open.Library.Sequential;

        public IReadOnlyList<ChunkPlace> Places(IReadOnlyList<ChunkId> ids) => session.Library.Places(ids);

        public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
        {
            var live = session;
            using var served = live.Serve();
            try
            {
                var payload = live.Library.ReadPayload(id, ref buffer, out flags);
                Metrics.CellMetrics.DataPlaneOut.Inc(payload.Length);
                return payload;
            }
            catch (ObjectDisposedException e) { throw new LibraryFaultException($"library {live.LibraryId} was closed: {e.Message}"); }
            // Anything else the library says of a read (not there, damaged, unreadable on its medium) is that chunk's
            // damage, as a socket client hears it (SocketFrames.Damaged): passed on as it is, never a fault.
        }

        public void AddReferences(string snapshot, IReadOnlyList<ChunkId> ids)
        {
            var live = session;
            if (!live.Write) throw new InvalidOperationException("a read session cannot record references");
            try { live.Library.AddReferences(snapshot, ids); }
            catch (IOException e) when (e is not LibraryFaultException and not Engine.Library.LibraryFullException and not Engine.Library.LibraryBusyException) { throw Fault(e); }
            catch (ObjectDisposedException e) { throw new LibraryFaultException($"library {live.LibraryId} was closed: {e.Message}"); } // opened again: the job runs again
        }

        public ChunkId[] ReadReferences(string snapshot)
        {
            var live = session;
            if (!live.Library.HasReferences(snapshot))
                throw new LibraryFaultException($"snapshot {snapshot} has no reference list on library {live.LibraryId}");
            try { return live.Library.ReadReferences(snapshot); }
            catch (InvalidDataException e) { throw new LibraryFaultException(e.Message); }
            catch (ObjectDisposedException e) { throw new LibraryFaultException($"library {live.LibraryId} was closed: {e.Message}"); }
        }

        public void Commit()
        {
            // Called from the engine's own thread, never from an actor: blocking here blocks nobody.
            var reply = open.Media.Ask<object>(new CommitSession { Library = open.LibraryId, Ticket = ticket }, commitTimeout).GetAwaiter().GetResult();
            if (reply is CommandRejected r)
                throw r.Transient ? new Engine.Library.LibraryBusyException($"library {open.LibraryId} could not commit: {r.Reason}")
                    : new LibraryFaultException($"library {open.LibraryId} could not commit: {r.Reason}");
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            List<ChunkId> held;
            lock (_held)
            {
                held = [.. _held];
                _held.Clear();
            }
            foreach (var id in held) open.Library.Release(id);
            owner.Unuse(ticket);
        }
    }
}
