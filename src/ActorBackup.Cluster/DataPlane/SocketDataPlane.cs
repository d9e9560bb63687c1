using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using ActorBackup.Engine.Chunks;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The data plane between nodes: a plain TCP socket of its own (never Akka.Remote's connection, so bulk data
/// cannot delay heartbeats), admitted by the media agent's one-time ticket. Request and reply frames:
/// <code>
/// request: u8 op | u32 length | payload        reply: u8 status (0 ok, 1 error) | u32 length | payload
/// HELLO ticket · RESERVE id → u8 · APPEND id flags bytes (no reply) · RELEASE id · CONTAINS id → u8 · READ id → flags bytes · COMMIT
/// MISSING id... → one byte per id (1: missing)
/// </code>
/// APPEND streams without waiting for a reply (TCP's own flow control holds the sender back when the media
/// side falls behind); a failed append is reported on the reply to the next request, COMMIT at the latest,
/// so nothing is committed past it. Each engine thread gets a connection of its own, so that both cores
/// stream at once.
/// </summary>
/// <summary>The socket to the other side of a job's data plane broke (its node stopped, or the network failed).</summary>
public sealed class DataPlaneLostException(string reason, Exception? inner = null)
    : IOException($"lost the data plane connection to the media agent ({reason})", inner);

internal static class SocketFrames
{
    public const byte Hello = 1, Reserve = 2, Append = 3, Release = 4, Contains = 5, Read = 6, Commit = 7, Missing = 8;
    public const int MaxFrame = VolumeFormat.MaxPayload + 1024;

    public static void ReadExactly(Socket s, Span<byte> buffer)
    {
        try
        {
            while (buffer.Length > 0)
            {
                var n = s.Receive(buffer);
                if (n == 0) throw new DataPlaneLostException("the other side closed the connection");
                buffer = buffer[n..];
            }
        }
        catch (SocketException e)
        {
            throw new DataPlaneLostException(e.Message, e);
        }
    }

    public static void Write(Socket s, byte code, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        Span<byte> head = stackalloc byte[5];
        head[0] = code;
        BinaryPrimitives.WriteInt32LittleEndian(head[1..], a.Length + b.Length);
        Send(s, head);
        if (a.Length > 0) Send(s, a);
        if (b.Length > 0) Send(s, b);
    }

    public static void Send(Socket s, ReadOnlySpan<byte> bytes)
    {
        try
        {
            s.Send(bytes);
        }
        catch (SocketException e)
        {
            throw new DataPlaneLostException(e.Message, e);
        }
    }

    /// <summary>Reads one frame into <paramref name="buffer"/> (grown when needed); returns its code and length.</summary>
    public static (byte Code, int Length) ReadFrame(Socket s, ref byte[] buffer)
    {
        Span<byte> head = stackalloc byte[5];
        ReadExactly(s, head);
        var length = BinaryPrimitives.ReadInt32LittleEndian(head[1..]);
        if (length < 0 || length > MaxFrame) throw new IOException($"data plane frame of {length} bytes is out of bounds");
        if (buffer.Length < length) buffer = new byte[Math.Max(length, buffer.Length * 2)];
        ReadExactly(s, buffer.AsSpan(0, length));
        return (head[0], length);
    }
}

/// <summary>The media node's side: accepts connections, checks the ticket, serves one session per connection.</summary>
public sealed class DataPlaneServer : IDisposable
{
    private readonly TcpListener _listener;
    private readonly TimeSpan _commitTimeout;
    private readonly DataPlaneSessions _sessions;
    private volatile bool _stopped;

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <param name="sessions">the sessions whose tickets this server admits: its ActorSystem's</param>
    public DataPlaneServer(string host, int port, TimeSpan commitTimeout, DataPlaneSessions sessions)
    {
        _commitTimeout = commitTimeout;
        _sessions = sessions;
        _listener = new TcpListener(IPAddress.Parse(host), port);
        _listener.Start();
        new Thread(AcceptLoop) { IsBackground = true, Name = "data-plane-accept" }.Start();
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
            catch (SocketException)
            {
                continue;
            }
            socket.NoDelay = true;
            new Thread(() => Serve(socket)) { IsBackground = true, Name = "data-plane" }.Start();
        }
    }

    private void Serve(Socket socket)
    {
        // Reservations this connection holds and has not yet appended or released: given back when it ends,
        // however it ends, so that other writers waiting for those chunks go on.
        var held = new HashSet<ChunkId>();
        DiskLibrary? library = null;
        using (socket)
        try
        {
            var buffer = new byte[64 * 1024];
            var readBuffer = new byte[64 * 1024];
            try
            {
                var (code, length) = SocketFrames.ReadFrame(socket, ref buffer);
                var ticket = System.Text.Encoding.UTF8.GetString(buffer, 0, length);
                if (code != SocketFrames.Hello || !_sessions.TryGet(ticket, out var session))
                {
                    SocketFrames.Write(socket, 1, "unknown or expired ticket: ask the media agent for a new session"u8);
                    return;
                }
                SocketFrames.Write(socket, 0, []);
                library = session.Library;
                Span<byte> one = stackalloc byte[1];
                string? appendFailure = null;
                while (true)
                {
                    (code, length) = SocketFrames.ReadFrame(socket, ref buffer);
                    if (code == SocketFrames.Append)
                    {
                        if (appendFailure is not null || !session.Write || length <= ChunkId.Size) appendFailure ??= "append refused: a read session, or a frame too short";
                        else
                        {
                            try
                            {
                                var appended = new ChunkId(buffer.AsSpan(0, ChunkId.Size));
                                library.Append(appended, (RecordFlags)buffer[ChunkId.Size], buffer.AsSpan(ChunkId.Size + 1, length - ChunkId.Size - 1));
                                held.Remove(appended);
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
                        SocketFrames.Write(socket, 1, System.Text.Encoding.UTF8.GetBytes("an earlier append failed: " + appendFailure));
                        continue;
                    }
                    try
                    {
                        var id = length >= ChunkId.Size ? new ChunkId(buffer.AsSpan(0, ChunkId.Size)) : default;
                        switch (code)
                        {
                            case SocketFrames.Reserve when session.Write:
                                var reserved = library.TryReserve(id);
                                if (reserved) held.Add(id);
                                one[0] = reserved ? (byte)1 : (byte)0;
                                SocketFrames.Write(socket, 0, one);
                                break;
                            case SocketFrames.Release:
                                library.Release(id);
                                held.Remove(id);
                                SocketFrames.Write(socket, 0, []);
                                break;
                            case SocketFrames.Contains:
                                one[0] = library.Contains(id) ? (byte)1 : (byte)0;
                                SocketFrames.Write(socket, 0, one);
                                break;
                            case SocketFrames.Missing when length % ChunkId.Size == 0:
                                var asked = new List<ChunkId>(length / ChunkId.Size);
                                for (var o = 0; o < length; o += ChunkId.Size) asked.Add(new ChunkId(buffer.AsSpan(o, ChunkId.Size)));
                                var missing = library.Missing(asked);
                                SocketFrames.Write(socket, 0, asked.Select(a => missing.Contains(a) ? (byte)1 : (byte)0).ToArray());
                                break;
                            case SocketFrames.Read:
                                var payload = library.ReadPayload(id, ref readBuffer, out var flags);
                                one[0] = (byte)flags;
                                SocketFrames.Write(socket, 0, one, payload);
                                break;
                            case SocketFrames.Commit when session.Write:
                                var reply = session.Media.Ask<object>(new CommitSession { Library = session.LibraryId, Ticket = ticket }, _commitTimeout).GetAwaiter().GetResult();
                                if (reply is CommandRejected r) SocketFrames.Write(socket, 1, System.Text.Encoding.UTF8.GetBytes(r.Reason));
                                else SocketFrames.Write(socket, 0, []);
                                break;
                            default:
                                SocketFrames.Write(socket, 1, System.Text.Encoding.UTF8.GetBytes($"request {code} is not allowed on this session"));
                                break;
                        }
                    }
                    catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidOperationException or AskTimeoutException)
                    {
                        SocketFrames.Write(socket, 1, System.Text.Encoding.UTF8.GetBytes(e.Message));
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                // The client went away; its session stays open until the job closes it.
            }
        }
        finally
        {
            foreach (var id in held) library?.Release(id);
        }
    }

    public void Dispose()
    {
        _stopped = true;
        _listener.Stop();
    }
}

/// <summary>The client's side: one connection per engine thread, opened on first use.</summary>
public sealed class SocketChannel : IDataPlaneChannel
{
    private readonly string _host;
    private readonly int _port;
    private readonly ThreadLocal<Connection> _connections;

    public string Ticket { get; }

    private sealed class Connection(Socket socket) : IDisposable
    {
        public readonly Socket Socket = socket;
        public byte[] Buffer = new byte[64 * 1024];
        public void Dispose() => Socket.Dispose();
    }

    public SocketChannel(string host, int port, string ticket)
    {
        _host = host;
        _port = port;
        Ticket = ticket;
        _connections = new ThreadLocal<Connection>(Open, trackAllValues: true);
        _ = _connections.Value; // fail now, not in the middle of a backup, when the media node is unreachable
    }

    private Connection Open()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.Connect(_host, _port);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cannot reach the media agent's data plane at {_host}:{_port}: {e.Message}", e);
        }
        var c = new Connection(socket);
        Call(c, SocketFrames.Hello, System.Text.Encoding.UTF8.GetBytes(Ticket));
        return c;
    }

    private static ReadOnlySpan<byte> Call(Connection c, byte op, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        SocketFrames.Write(c.Socket, op, a, b);
        return Reply(c);
    }

    private static ReadOnlySpan<byte> Reply(Connection c)
    {
        var (status, length) = SocketFrames.ReadFrame(c.Socket, ref c.Buffer);
        if (status != 0) throw new IOException("media agent: " + System.Text.Encoding.UTF8.GetString(c.Buffer, 0, length));
        return c.Buffer.AsSpan(0, length);
    }

    private static ReadOnlySpan<byte> Id(ChunkId id, Span<byte> buffer)
    {
        id.WriteTo(buffer);
        return buffer;
    }

    public bool TryReserve(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        return Call(_connections.Value!, SocketFrames.Reserve, Id(id, b))[0] == 1;
    }

    public bool DefersReserve => true;

    public void StartReserve(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        SocketFrames.Write(_connections.Value!.Socket, SocketFrames.Reserve, Id(id, b));
    }

    public bool FinishReserve(ChunkId id) => Reply(_connections.Value!)[0] == 1;

    public void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        Span<byte> head = stackalloc byte[ChunkId.Size + 1];
        id.WriteTo(head);
        head[ChunkId.Size] = (byte)flags;
        SocketFrames.Write(_connections.Value!.Socket, SocketFrames.Append, head, payload); // no reply: see the frame notes
    }

    public void Release(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        Call(_connections.Value!, SocketFrames.Release, Id(id, b));
    }

    public bool Contains(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        return Call(_connections.Value!, SocketFrames.Contains, Id(id, b))[0] == 1;
    }

    public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        var missing = new HashSet<ChunkId>();
        const int batch = 100_000; // 3.2 MB a frame
        for (var start = 0; start < ids.Count; start += batch)
        {
            var part = ids.Skip(start).Take(batch).ToList();
            var request = new byte[part.Count * ChunkId.Size];
            for (var i = 0; i < part.Count; i++) part[i].WriteTo(request.AsSpan(i * ChunkId.Size));
            var reply = Call(_connections.Value!, SocketFrames.Missing, request);
            for (var i = 0; i < part.Count; i++) if (reply[i] == 1) missing.Add(part[i]);
        }
        return missing;
    }

    public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        var reply = Call(_connections.Value!, SocketFrames.Read, Id(id, b));
        flags = (RecordFlags)reply[0];
        if (buffer.Length < reply.Length - 1) buffer = new byte[reply.Length];
        reply[1..].CopyTo(buffer);
        return buffer.AsSpan(0, reply.Length - 1);
    }

    /// <summary>
    /// Read-ahead: keeps up to <see cref="ReadWindow"/> READ requests in flight on this thread's connection and
    /// hands each reply over as it comes (the server answers in order), so a batch costs about one round trip
    /// instead of one per chunk. Requests are 37 bytes, so the window never fills the server's receive buffer
    /// while its replies wait in ours.
    /// </summary>
    public void ReadPayloads(IReadOnlyList<ChunkId> ids, ref byte[] buffer, PayloadHandler handle)
    {
        var c = _connections.Value!;
        Span<byte> requests = stackalloc byte[ReadWindow * ReadRequestSize];
        int sent = 0, received = 0;
        Exception? abort = null;
        while (received < ids.Count)
        {
            var batch = 0;
            while (abort is null && sent < ids.Count && sent - received < ReadWindow)
            {
                var frame = requests.Slice(batch * ReadRequestSize, ReadRequestSize);
                frame[0] = SocketFrames.Read;
                BinaryPrimitives.WriteInt32LittleEndian(frame[1..], ChunkId.Size);
                ids[sent].WriteTo(frame[5..]);
                batch++;
                sent++;
            }
            if (batch > 0) SocketFrames.Send(c.Socket, requests[..(batch * ReadRequestSize)]);
            if (received == sent) break; // the handler failed: every reply asked for has been drained
            var (status, length) = SocketFrames.ReadFrame(c.Socket, ref c.Buffer);
            var i = received++;
            if (abort is not null) continue;
            try
            {
                if (status != 0) handle(i, default, default, new IOException("media agent: " + System.Text.Encoding.UTF8.GetString(c.Buffer, 0, length)));
                else handle(i, c.Buffer.AsSpan(1, length - 1), (RecordFlags)c.Buffer[0], null);
            }
            catch (Exception e)
            {
                abort = e; // drain what is still in flight, so the connection stays usable, then rethrow
            }
        }
        if (abort is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(abort).Throw();
    }

    private const int ReadWindow = 16, ReadRequestSize = 5 + ChunkId.Size;

    /// <summary>
    /// Every connection first confirms that all its appends were taken (a request's reply comes after the
    /// appends sent before it), then one of them asks the media agent to commit.
    /// </summary>
    public void Commit()
    {
        Span<byte> none = stackalloc byte[ChunkId.Size];
        foreach (var c in _connections.Values) Call(c, SocketFrames.Contains, none);
        Call(_connections.Value!, SocketFrames.Commit, []);
    }

    public void Dispose()
    {
        foreach (var c in _connections.Values) c.Dispose();
        _connections.Dispose();
    }
}
