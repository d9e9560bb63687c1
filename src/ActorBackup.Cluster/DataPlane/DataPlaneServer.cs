using System.Net;
using System.Net.Sockets;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

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
                                Metrics.CellMetrics.DataPlaneOut.Inc(payload.Length);
                                one[0] = (byte)flags;
                                SocketFrames.Write(socket, 0, one, payload);
                                break;
                            // At most 64 Ki ids a frame, as the client sends them: a bound on what one frame makes this node hold.
                            case SocketFrames.References when session.Write && length >= 1 && length >= 1 + buffer[0] && (length - 1 - buffer[0]) % ChunkId.Size == 0
                                                             && (length - 1 - buffer[0]) / ChunkId.Size <= 64 * 1024:
                                var snapshot = System.Text.Encoding.ASCII.GetString(buffer, 1, buffer[0]);
                                var refs = new ChunkId[(length - 1 - buffer[0]) / ChunkId.Size];
                                for (var i = 0; i < refs.Length; i++) refs[i] = new ChunkId(buffer.AsSpan(1 + buffer[0] + i * ChunkId.Size, ChunkId.Size));
                                library.AddReferences(snapshot, refs);
                                SocketFrames.Write(socket, 0, []);
                                break;
                            case SocketFrames.ReadReferences when length is > 0 and <= 64:
                                var wanted = System.Text.Encoding.ASCII.GetString(buffer, 0, length);
                                if (!library.HasReferences(wanted)) throw new KeyNotFoundException($"snapshot {wanted} has no reference list on library {session.LibraryId}");
                                var list = library.ReadReferences(wanted);
                                var packed = new byte[list.Length * ChunkId.Size];
                                for (var i = 0; i < list.Length; i++) list[i].WriteTo(packed.AsSpan(i * ChunkId.Size));
                                SocketFrames.Write(socket, 0, packed);
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
                    catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidOperationException or AskTimeoutException or ArgumentException or InvalidDataException)
                    {
                        SocketFrames.Write(socket, e is Engine.Library.LibraryFullException ? SocketFrames.Full : (byte)1, System.Text.Encoding.UTF8.GetBytes(e.Message));
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
