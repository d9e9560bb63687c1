using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The media node's side: accepts connections under mutual TLS (nodes of the cell only), checks the ticket, serves
/// one session per connection. Bounded: connections at once, and the handshake and hello within a total deadline
/// (10 s; a HELLO frame of at most <see cref="SocketFrames.MaxHello"/> bytes; a peer that trickles bytes is cut off
/// all the same). After it a connection lives as long as its session (a job may leave one idle for hours while it
/// reads files): it is closed when the session ends, and TCP keepalive finds a peer that vanished.
/// </summary>
public sealed class DataPlaneServer : IDisposable
{
    public const int MaxConnections = 256;
    /// <summary>The most connections one session (one job's ticket) holds.</summary>
    public const int MaxPerSession = MaxConnections / 2;
    private readonly TimeSpan _handshakeTimeout;
    /// <summary>The connections admitted, each with the ticket it serves: closed when their session ends.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Socket, string> _admitted = new();
    private readonly TcpListener _listener;
    private readonly TimeSpan _commitTimeout;
    private readonly DataPlaneSessions _sessions;
    private readonly System.Net.Security.SslServerAuthenticationOptions _tls;
    private readonly SemaphoreSlim _slots = new(MaxConnections);
    /// <summary>Connections not yet admitted (TLS handshake and hello): bounded apart from the sessions', and per address.</summary>
    private readonly Handshakes _handshakes = new();
    /// <summary>The large frames (records above <see cref="SocketFrames.MaxRequest"/>) all connections hold at once: 1 GiB.</summary>
    internal FrameBudget LargeFrames { get; } = new(1L << 30);
    /// <summary>How long a large frame waits for room (tests make it short).</summary>
    internal TimeSpan LargeFrameWait { get; init; } = TimeSpan.FromMinutes(5);
    private volatile bool _stopped;
    private readonly AcceptFailures _acceptFailures;

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>
    /// The most ids one reply of a reference list carries (ReadReferencesFrom: a list of a snapshot of more, a file of
    /// 16 TiB say, comes in pages, each well inside a frame). Tests make it small.
    /// </summary>
    internal int ReferencesPerReply { get; init; } = 4 * 1024 * 1024;

    /// <param name="sessions">the sessions whose tickets this server admits: its ActorSystem's</param>
    /// <param name="trust">this node's certificates: a client must hold a node certificate of the same cell</param>
    /// <param name="log">where a run of failed accepts is said (out of file handles, say)</param>
    public DataPlaneServer(string host, int port, TimeSpan commitTimeout, DataPlaneSessions sessions, Trust.NodeTrust trust,
        TimeSpan? handshakeTimeout = null, Action<string>? log = null)
    {
        _acceptFailures = new AcceptFailures("the data plane", log ?? (_ => { }));
        _handshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(10);
        sessions.Closed += CloseSession;
        _commitTimeout = commitTimeout;
        _sessions = sessions;
        _tls = trust.ServerOptions(id => id.Role == Protocol.Trust.CellRole.Node);
        _listener = new TcpListener(Hosting.HostAddress.Of(host), port);
        _listener.Start();
        new Thread(AcceptLoop) { IsBackground = true, Name = "data-plane-accept" }.Start();
    }

    private readonly object _pagedLock = new();
    /// <summary>
    /// The one list of more than a page (<see cref="ReferencesPerReply"/>) kept for its next pages: read once, not once a
    /// page; one for the whole server (a list of 16 Mi ids is 512 MiB: a connection each could hold one would let a
    /// session's connections hold gigabytes). A connection paging another list meanwhile reads its list again a page.
    /// </summary>
    private (DiskLibrary Library, string Snapshot, ChunkId[] Ids)? _paged;

    /// <summary>A snapshot's reference list from id <paramref name="from"/> on, at most <see cref="ReferencesPerReply"/> ids, packed.</summary>
    private byte[] References(DiskLibrary library, DataPlaneSessions.Session session, string snapshot, long from, out long total)
    {
        ChunkId[]? list = null;
        if (from > 0)
            lock (_pagedLock)
                if (_paged is { } kept && kept.Snapshot == snapshot && ReferenceEquals(kept.Library, library)) list = kept.Ids;
        if (list is null)
        {
            if (!library.HasReferences(snapshot)) throw new KeyNotFoundException($"snapshot {snapshot} has no reference list on library {session.LibraryId}");
            list = library.ReadReferences(snapshot);
        }
        // Kept while pages of it remain to be asked for; let go with its last, or when a session ends (one list at most).
        lock (_pagedLock)
        {
            if (from + ReferencesPerReply < list.Length) _paged = (library, snapshot, list);
            else if (_paged is { } done && done.Snapshot == snapshot && ReferenceEquals(done.Library, library)) _paged = null;
        }
        total = list.Length;
        if (from < 0 || from > list.Length) throw new ArgumentException($"snapshot {snapshot} has {list.Length} references, none from {from}");
        var count = (int)Math.Min(ReferencesPerReply, list.Length - from);
        var packed = new byte[count * ChunkId.Size];
        for (var i = 0; i < count; i++) list[from + i].WriteTo(packed.AsSpan(i * ChunkId.Size));
        return packed;
    }

    private void AcceptLoop()
    {
        while (!_stopped)
        {
            Socket socket;
            try
            {
                socket = _listener.AcceptSocket();
            }
            catch (Exception) when (_stopped)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or IOException or OutOfMemoryException)
            {
                // Out of file handles, say: the failed connection stays queued, so at once again would spin a core.
                Thread.Sleep(_acceptFailures.Failed(e));
                continue;
            }
            _acceptFailures.Accepted();
            socket.NoDelay = true;
            var peer = (socket.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
            if (_handshakes.Enter(peer, socket.Dispose) is not { } handshake)
            {
                socket.Dispose(); // too many handshakes at once from this address: the client hears the connection close
                continue;
            }
            new Thread(() => Serve(socket, peer, handshake)) { IsBackground = true, Name = "data-plane" }.Start();
        }
    }

    /// <param name="address">its address</param>
    /// <param name="handshake">its place among the handshakes in progress, until it is admitted or refused</param>
    private void Serve(Socket socket, IPAddress address, Handshakes.Entry handshake)
    {
        var handshaking = true;
        var slot = false;
        long large = 0; // the large frame this connection holds room for (LargeFrames)
        string? inUse = null; // the session this connection serves, once admitted (counted in use: DataPlaneSessions.InUse)
        // Reservations this connection holds and has not yet appended or released: given back when it ends,
        // however it ends, so that other writers waiting for those chunks go on.
        var held = new HashSet<ChunkId>();
        DiskLibrary? library = null;
        FrameStream? stream = null;
        try
        {
            var buffer = new byte[64 * 1024];
            var readBuffer = new byte[64 * 1024];
            try
            {
                string ticket;
                DataPlaneSessions.Session session;
                // One deadline for the handshake and the hello together: a peer that sends a byte now and then is cut off.
                // (0: in the handshake; 1: admitted, the deadline no longer applies; 2: the deadline passed first.)
                var deadline = 0;
                using (new Timer(_ =>
                       {
                           if (Interlocked.CompareExchange(ref deadline, 2, 0) == 0) socket.Dispose();
                       }, null, _handshakeTimeout, Timeout.InfiniteTimeSpan))
                {
                    stream = FrameStream.Accept(socket, _tls, _handshakeTimeout);
                    var (hello, helloLength) = stream.ReadFrame(ref buffer, SocketFrames.MaxHello);
                    ticket = System.Text.Encoding.UTF8.GetString(buffer, 0, helloLength);
                    if (hello != SocketFrames.Hello || !_sessions.TryGet(ticket, out session))
                    {
                        stream.Write(1, "unknown or expired ticket: ask the media agent for a new session"u8);
                        stream.Flush();
                        return;
                    }
                    // The session is its job's ticket holder's: another node of the cell that learnt the ticket gets nothing.
                    if (session.Ticket is { } jobTicket && (stream.Peer is not { } peer || !Trust.JobTickets.Admits(jobTicket, peer)))
                    {
                        stream.Write(1, System.Text.Encoding.UTF8.GetBytes($"this session is {Trust.JobTickets.Holder(jobTicket)}'s, not {stream.Peer?.ToString() ?? "an unknown peer"}'s"));
                        stream.Flush();
                        return;
                    }
                }
                if (Interlocked.CompareExchange(ref deadline, 1, 0) != 0) return; // the deadline passed as the hello came in
                // Admitted: a session's slot from here on (a peer that never gets this far holds only a handshake's).
                if (!_handshakes.Leave(handshake)) return; // aborted to make room for a newer handshake: its socket is being closed
                handshaking = false;
                if (!(slot = _slots.Wait(0)))
                {
                    stream.Write(1, System.Text.Encoding.UTF8.GetBytes($"the media node serves {MaxConnections} connections already: try again later"));
                    stream.Flush();
                    return;
                }
                // One session (one job's ticket) holds half the connections at most: a client node, however many its
                // threads or however it behaves, leaves room for the others' jobs.
                if (_admitted.Values.Count(t => t == ticket) >= MaxPerSession)
                {
                    stream.Write(1, System.Text.Encoding.UTF8.GetBytes($"this session holds {MaxPerSession} connections already: use fewer threads"));
                    stream.Flush();
                    return;
                }
                _admitted[socket] = ticket;
                _sessions.Use(inUse = ticket);
                if (!_sessions.TryGet(ticket, out _)) return; // closed while being admitted
                stream.Write(0, []);
                stream.Admitted();
                session.Serve(); // this thread serves that job: the tape drives it uses are its
                byte code;
                int length;
                library = session.Library;
                Span<byte> one = stackalloc byte[1];
                string? appendFailure = null;
                var write = session.Write;
                // A chunk's frame only on a connection that holds a reservation (the one chunk it may append): a peer
                // that reserved nothing makes this node hold no more than a request's bytes. A frame above a request's
                // takes its room among all connections' large frames first (LargeFrames), and its buffer goes after it.
                Func<byte, int, int> frameLimit = (c, claimed) =>
                {
                    if (c != SocketFrames.Append || !write || held.Count == 0) return SocketFrames.MaxRequest;
                    if (claimed is > SocketFrames.MaxRequest and <= SocketFrames.MaxFrame)
                    {
                        LargeFrames.Take(claimed, LargeFrameWait);
                        large = claimed;
                    }
                    return SocketFrames.MaxFrame;
                };
                while (true)
                {
                    if (large > 0)
                    {
                        LargeFrames.Give(large);
                        large = 0;
                        buffer = new byte[64 * 1024];
                    }
                    if (readBuffer.Length > SocketFrames.MaxRequest) readBuffer = new byte[64 * 1024]; // a large record read: not kept
                    try
                    {
                        (code, length) = stream.ReadFrame(ref buffer, frameLimit);
                    }
                    catch (Engine.Library.LibraryBusyException e)
                    {
                        // No room for a large frame in time: its bytes are left unread, so the connection ends (logged
                        // here; a client still writing the frame sees the connection lost, one that wrote it whole hears
                        // Busy in the reply to its next request: either way its job is tried again later).
                        Console.Error.WriteLine($"data plane: a connection from {address} ended: {e.Message}");
                        stream.Write(SocketFrames.Busy, System.Text.Encoding.UTF8.GetBytes(e.Message));
                        stream.Flush();
                        return;
                    }
                    if (code == SocketFrames.Append)
                    {
                        if (appendFailure is not null || !session.Write || length <= ChunkId.Size) appendFailure ??= "append refused: a read session, or a frame too short";
                        // Only a chunk this connection reserved (so absent from the library): never a second copy of,
                        // or a replacement for, a chunk the library holds.
                        else if (!held.Contains(new ChunkId(buffer.AsSpan(0, ChunkId.Size))))
                            appendFailure = $"append of chunk {new ChunkId(buffer.AsSpan(0, ChunkId.Size))} refused: this connection did not reserve it";
                        else
                        {
                            try
                            {
                                var appended = new ChunkId(buffer.AsSpan(0, ChunkId.Size));
                                library.Append(appended, (RecordFlags)buffer[ChunkId.Size], buffer.AsSpan(ChunkId.Size + 1, length - ChunkId.Size - 1));
                                held.Remove(appended);
                                Metrics.CellMetrics.DataPlaneIn.Inc(length - ChunkId.Size - 1);
                            }
                            catch (IOException e)
                            {
                                appendFailure = e.Message;
                            }
                        }
                        continue;
                    }
                    if (appendFailure is not null)
                    {
                        stream.Write(1, System.Text.Encoding.UTF8.GetBytes("an earlier append failed: " + appendFailure));
                        continue;
                    }
                    try
                    {
                        var id = length >= ChunkId.Size ? new ChunkId(buffer.AsSpan(0, ChunkId.Size)) : default;
                        switch (code)
                        {
                            case SocketFrames.Reserve when session.Write:
                                // A writer holds one reservation at a time (it appends or releases it before the next):
                                // a peer that reserves and reserves holds up no other writer's chunks without end.
                                if (held.Count >= SocketFrames.MaxHeld)
                                    throw new InvalidOperationException($"this connection holds {held.Count} reservations already: append or release them first");
                                var reserved = library.TryReserve(id);
                                if (reserved) held.Add(id);
                                one[0] = reserved ? (byte)1 : (byte)0;
                                stream.Write(0, one);
                                break;
                            case SocketFrames.Release:
                                // Only a reservation of this connection: never another writer's (a second copy would follow).
                                if (held.Remove(id)) library.Release(id);
                                stream.Write(0, []);
                                break;
                            case SocketFrames.Contains:
                                one[0] = library.Contains(id) ? (byte)1 : (byte)0;
                                stream.Write(0, one);
                                break;
                            case SocketFrames.Missing when length % ChunkId.Size == 0 && length / ChunkId.Size <= SocketFrames.MaxMissing:
                                var asked = new List<ChunkId>(length / ChunkId.Size);
                                for (var o = 0; o < length; o += ChunkId.Size) asked.Add(new ChunkId(buffer.AsSpan(o, ChunkId.Size)));
                                var missing = library.Missing(asked);
                                stream.Write(0, asked.Select(a => missing.Contains(a) ? (byte)1 : (byte)0).ToArray());
                                break;
                            case SocketFrames.Locate when length % ChunkId.Size == 0 && length / ChunkId.Size <= SocketFrames.MaxLocate:
                                var located = new List<ChunkId>(length / ChunkId.Size);
                                for (var o = 0; o < length; o += ChunkId.Size) located.Add(new ChunkId(buffer.AsSpan(o, ChunkId.Size)));
                                var places = library.Places(located);
                                var answer = new byte[1 + places.Count * 12];
                                answer[0] = library.Sequential ? (byte)1 : (byte)0;
                                for (var i = 0; i < places.Count; i++)
                                {
                                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(answer.AsSpan(1 + i * 12), places[i].Volume);
                                    System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(answer.AsSpan(5 + i * 12), places[i].Offset);
                                }
                                stream.Write(0, answer);
                                break;
                            case SocketFrames.Read:
                                var payload = library.ReadPayload(id, ref readBuffer, out var flags);
                                Metrics.CellMetrics.DataPlaneOut.Inc(payload.Length);
                                one[0] = (byte)flags;
                                stream.Write(0, one, payload);
                                break;
                            // At most 64 Ki ids a frame, as the client sends them: a bound on what one frame makes this node hold.
                            case SocketFrames.References when session.Write && length >= 1 && length >= 1 + buffer[0] && (length - 1 - buffer[0]) % ChunkId.Size == 0
                                                             && (length - 1 - buffer[0]) / ChunkId.Size <= 64 * 1024:
                                var snapshot = System.Text.Encoding.ASCII.GetString(buffer, 1, buffer[0]);
                                if (session.ReferencesRefusal(snapshot) is { } refusal) throw new InvalidOperationException(refusal);
                                var refs = new ChunkId[(length - 1 - buffer[0]) / ChunkId.Size];
                                for (var i = 0; i < refs.Length; i++) refs[i] = new ChunkId(buffer.AsSpan(1 + buffer[0] + i * ChunkId.Size, ChunkId.Size));
                                library.AddReferences(snapshot, refs);
                                stream.Write(0, []);
                                break;
                            case SocketFrames.ReadReferences or SocketFrames.ReadReferencesFrom when session.Ticket is { HolderLibrary: "" }:
                                // Only a copy reads a snapshot's reference list (its target's media node holds the ticket):
                                // a client host's session gets none (a whole list read and packed for each ask).
                                throw new InvalidOperationException("a snapshot's reference list is read by a copy's media node only");
                            case SocketFrames.ReadReferences when length is > 0 and <= 64:
                                stream.Write(0, References(library, session, System.Text.Encoding.ASCII.GetString(buffer, 0, length), 0, out _));
                                break;
                            case SocketFrames.ReadReferencesFrom when length > 9 && buffer[0] is > 0 and <= 64 && length == 1 + buffer[0] + 8:
                                // A page: the list's length first, then its ids from the one asked for.
                                var from = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(1 + buffer[0], 8));
                                var page = References(library, session, System.Text.Encoding.ASCII.GetString(buffer, 1, buffer[0]), from, out var total);
                                var framed = new byte[8 + page.Length];
                                BinaryPrimitives.WriteInt64LittleEndian(framed, total);
                                page.CopyTo(framed, 8);
                                stream.Write(0, framed);
                                break;
                            case SocketFrames.Commit when session.Write:
                                var reply = session.Media.Ask<object>(new CommitSession { Library = session.LibraryId, Ticket = ticket }, _commitTimeout).GetAwaiter().GetResult();
                                if (reply is CommandRejected r) stream.Write(r.Transient ? SocketFrames.Busy : (byte)1, System.Text.Encoding.UTF8.GetBytes(r.Reason));
                                else stream.Write(0, []);
                                break;
                            default:
                                stream.Write(1, System.Text.Encoding.UTF8.GetBytes($"request {code} is not allowed on this session"));
                                break;
                        }
                    }
                    catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidOperationException or AskTimeoutException or ArgumentException or InvalidDataException)
                    {
                        // A READ the library could not answer with the chunk (not there, damaged, unreadable on its medium): that
                        // chunk's damage, which a restore reports and goes past and a verify heals; anything else is a fault.
                        var status = e is Engine.Library.LibraryFullException ? SocketFrames.Full
                            : e is Engine.Library.LibraryBusyException ? SocketFrames.Busy
                            : code == SocketFrames.Read && Engine.Codec.SourceFault.IsDamage(e) ? SocketFrames.Damaged : (byte)1; // a newer format's volume: a fault
                        stream.Write(status, System.Text.Encoding.UTF8.GetBytes(e.Message));
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidDataException)
            {
                // The client went away, was refused in the handshake, sent a frame out of bounds or nothing for the idle
                // timeout; its session stays open until the job closes it.
            }
            catch (Exception e)
            {
                // Whatever a peer sends, the node goes on: this connection ends, and the reason is kept.
                Console.Error.WriteLine($"data plane: a connection from {address} ended on an unexpected error: {e}"); // not the socket's own: it may be disposed (the handshake timer)
            }
        }
        finally
        {
            if (handshaking) _handshakes.Leave(handshake);
            if (slot) _slots.Release();
            _admitted.TryRemove(socket, out _);
            if (inUse is not null) _sessions.Unuse(inUse);
            if (large > 0) LargeFrames.Give(large);
            foreach (var id in held) library?.Release(id);
            if (stream is not null) stream.Dispose();
            else socket.Dispose();
        }
    }

    /// <summary>A session ended: the connections serving it go (a blocked read or write on them ends).</summary>
    private void CloseSession(string ticket)
    {
        // A list left by a reader that stopped paging midway goes when a session ends (another reader paging reads it again).
        lock (_pagedLock) _paged = null;
        foreach (var (socket, served) in _admitted)
            if (served == ticket)
                try
                {
                    socket.Shutdown(SocketShutdown.Both);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }
    }

    public void Dispose()
    {
        _sessions.Closed -= CloseSession;
        _stopped = true;
        _listener.Stop();
    }
}
