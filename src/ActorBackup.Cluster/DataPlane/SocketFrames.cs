using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The data plane between nodes: a TCP socket of its own under mutual TLS (never Akka.Remote's connection, so bulk
/// data cannot delay heartbeats), admitted by the media agent's one-time ticket. Request and reply frames:
/// <code>
/// request: u8 op | u32 length | payload        reply: u8 status (0 ok, 1 error, 2 library full) | u32 length | payload
/// HELLO ticket · RESERVE id → u8 · APPEND id flags bytes (no reply) · RELEASE id · CONTAINS id → u8 · READ id → flags bytes · COMMIT
/// MISSING id... → one byte per id (1: missing) · REFERENCES u8 n, snapshot id (n bytes), id... (written at the next COMMIT)
/// READREFS snapshot id → the snapshot's reference list, id...
/// LOCATE id... (at most 64 Ki) → u8 sequential (1: tape), then u32 volume | i64 offset per id (volume 0: not here)
/// </code>
/// APPEND streams without waiting for a reply (TCP's own flow control holds the sender back when the media
/// side falls behind); a failed append is reported on the reply to the next request, COMMIT at the latest,
/// so nothing is committed past it. Each engine thread gets a connection of its own, so that both cores
/// stream at once.
/// </summary>
internal static class SocketFrames
{
    public const byte Hello = 1, Reserve = 2, Append = 3, Release = 4, Contains = 5, Read = 6, Commit = 7, Missing = 8, References = 9, ReadReferences = 10, Locate = 11, ReadReferencesFrom = 12;

    /// <summary>Ids a LOCATE frame may carry: a bound on what one frame makes the media node hold and answer.</summary>
    public const int MaxLocate = 64 * 1024;
    /// <summary>The most ids one MISSING frame asks about (3.2 MB; SocketChannel.Missing sends them in frames of this many).</summary>
    public const int MaxMissing = 100_000;
    /// <summary>
    /// The most bytes of any frame a media node takes but a write session's APPEND (a chunk or tree record, up to
    /// <see cref="MaxFrame"/>): a peer cannot have it hold more than this per connection for anything else.
    /// </summary>
    public const int MaxRequest = 4 * 1024 * 1024;
    /// <summary>Reply status of a RESERVE the library refused because it is down to its reserve (the backup spans on).</summary>
    public const byte Full = 2;
    /// <summary>A READ's reply status: that chunk is missing or damaged in the library (the library itself answers; any other error status is a fault of the session or the library).</summary>
    public const byte Damaged = 3;
    /// <summary>A RESERVE's reply status: another writer has held the chunk too long (DiskLibrary.ReserveWaitLimit); the job is tried again later.</summary>
    public const byte Busy = 4;
    public const int MaxFrame = VolumeFormat.MaxPayload + 1024;

    /// <summary>Reservations one connection may hold at once (a writer holds one: it appends or releases it before the next).</summary>
    public const int MaxHeld = 16;

    /// <summary>
    /// How long a client waits for a media node's reply (its handshake and hello: <see cref="HandshakeTimeout"/>): longer
    /// than the slowest a healthy node takes (a commit's 5 minutes, a reservation's wait for another writer, a tape
    /// mounted and positioned), so that one whose disk or drive hangs fails the job instead of holding its thread.
    /// </summary>
    public static readonly TimeSpan ReplyTimeout = TimeSpan.FromMinutes(15);

    /// <summary>How long a client gives a media node to complete the TLS handshake and answer the hello.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The HELLO frame carries a ticket (32 hex digits): a bound checked before anything of a claimed size is read.</summary>
    public const int MaxHello = 256;
}

/// <summary>
/// One data-plane connection under mutual TLS (the cell's CA; see NodeTrust): frames written through a buffer that
/// is flushed before each reply is awaited (an APPEND stream becomes full TLS records, not one per frame header),
/// read straight from the TLS stream. A socket error becomes a <see cref="DataPlaneLostException"/>.
/// </summary>
internal sealed class FrameStream : IDisposable
{
    private readonly Socket _socket;
    private readonly SslStream _tls;
    private readonly BufferedStream _out;

    private FrameStream(Socket socket, SslStream tls)
    {
        _socket = socket;
        _tls = tls;
        _out = new BufferedStream(tls, 64 * 1024);
    }

    /// <summary>The media node's side: the TLS handshake within <paramref name="handshake"/>; a peer must be a node of the cell.</summary>
    public static FrameStream Accept(Socket socket, System.Net.Security.SslServerAuthenticationOptions options, TimeSpan handshake)
    {
        socket.ReceiveTimeout = socket.SendTimeout = (int)handshake.TotalMilliseconds;
        // A TLS client's first record is a handshake record (content type 22). Anything else (a plain frame, an HTTP
        // probe, a port scan's bytes) is refused at once: SslStream would wait for the rest of what its header claims,
        // holding a handshake's place until the deadline.
        var first = new byte[1];
        if (socket.Receive(first, SocketFlags.Peek) == 1 && first[0] != 22)
            throw new DataPlaneLostException($"not a TLS handshake (first byte {first[0]}): a data-plane peer speaks TLS with a certificate of the cell");
        return Handshake(socket, tls => tls.AuthenticateAsServer(options));
    }

    /// <summary>The client's side, to a media node of the cell: the handshake (and the hello after it) within <see cref="SocketFrames.HandshakeTimeout"/>.</summary>
    public static FrameStream Connect(Socket socket, System.Net.Security.SslClientAuthenticationOptions options)
    {
        socket.ReceiveTimeout = socket.SendTimeout = (int)SocketFrames.HandshakeTimeout.TotalMilliseconds;
        var stream = Handshake(socket, tls => tls.AuthenticateAsClient(options));
        stream._timedOut = $"no answer to its hello within {SocketFrames.HandshakeTimeout.TotalSeconds:F0} s";
        return stream;
    }

    private static FrameStream Handshake(Socket socket, Action<SslStream> authenticate)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            authenticate(tls);
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
        {
            tls.Dispose();
            throw new DataPlaneLostException("TLS handshake: " + e.Message, e);
        }
        return new FrameStream(socket, tls);
    }

    /// <summary>Who the other side is, as its certificate (checked in the handshake) says.</summary>
    public ActorBackup.Protocol.Trust.CellIdentity? Peer =>
        _tls.RemoteCertificate is System.Security.Cryptography.X509Certificates.X509Certificate2 c ? ActorBackup.Protocol.Trust.CellIdentity.From(c) : null;

    /// <summary>
    /// After the hello: no read or write timeout (a session may stay idle for as long as its job reads files, and a
    /// slow reader of pipelined replies is no fault); TCP keepalive finds a peer that is gone (about 2 minutes).
    /// </summary>
    public void Admitted()
    {
        _socket.ReceiveTimeout = _socket.SendTimeout = 0;
        KeepAlive();
    }

    /// <summary>
    /// The client's side after the hello: keepalive, as the media node's, and a reply (or a write the node does not
    /// take in) awaited at most <paramref name="within"/>: a media node whose disk or drive hangs ends the connection
    /// with a <see cref="DataPlaneLostException"/> (the job fails and is tried again), not a thread held for good.
    /// </summary>
    public void AwaitReplies(TimeSpan within)
    {
        _socket.ReceiveTimeout = _socket.SendTimeout = (int)within.TotalMilliseconds;
        _timedOut = $"no reply within {within.TotalSeconds:F0} s: its disk or drive may hang, or the network between";
        KeepAlive();
    }

    /// <summary>What a read that timed out means on this side.</summary>
    private string _timedOut = "no request within the idle timeout";

    private void KeepAlive()
    {
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        _socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 60);
        _socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 10);
        _socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 6);
    }

    public void ReadExactly(Span<byte> buffer)
    {
        try
        {
            _out.Flush(); // whatever was written before is what the other side needs to answer
            while (buffer.Length > 0)
            {
                var n = _tls.Read(buffer);
                if (n == 0) throw new DataPlaneLostException("the other side closed the connection");
                buffer = buffer[n..];
            }
        }
        catch (IOException e) when (e is not DataPlaneLostException)
        {
            throw new DataPlaneLostException(e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut } ? _timedOut : e.Message, e);
        }
    }

    public void Write(byte code, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        Span<byte> head = stackalloc byte[5];
        head[0] = code;
        BinaryPrimitives.WriteInt32LittleEndian(head[1..], a.Length + b.Length);
        Send(head);
        if (a.Length > 0) Send(a);
        if (b.Length > 0) Send(b);
    }

    public void Send(ReadOnlySpan<byte> bytes)
    {
        try
        {
            _out.Write(bytes);
        }
        catch (IOException e) when (e is not DataPlaneLostException)
        {
            throw new DataPlaneLostException(e.Message, e);
        }
    }

    public void Flush()
    {
        try
        {
            _out.Flush();
        }
        catch (IOException e) when (e is not DataPlaneLostException)
        {
            throw new DataPlaneLostException(e.Message, e);
        }
    }

    /// <summary>
    /// Reads one frame into <paramref name="buffer"/> (grown when needed, never beyond <paramref name="max"/>, which
    /// is checked before anything is allocated); returns its code and length.
    /// </summary>
    public (byte Code, int Length) ReadFrame(ref byte[] buffer, int max = SocketFrames.MaxFrame) => ReadFrame(ref buffer, _ => max);

    /// <summary>A frame whose length is at most what <paramref name="maxOf"/> allows a frame of its code.</summary>
    public (byte Code, int Length) ReadFrame(ref byte[] buffer, Func<byte, int> maxOf) => ReadFrame(ref buffer, (code, _) => maxOf(code));

    /// <summary>A frame whose length is at most what <paramref name="maxOf"/> allows a frame of its code and length (asked before its bytes are read).</summary>
    public (byte Code, int Length) ReadFrame(ref byte[] buffer, Func<byte, int, int> maxOf)
    {
        Span<byte> head = stackalloc byte[5];
        ReadExactly(head);
        var length = BinaryPrimitives.ReadInt32LittleEndian(head[1..]);
        var max = maxOf(head[0], length);
        if (length < 0 || length > max) throw new InvalidDataException($"data plane frame of {length} bytes is out of bounds (at most {max})");
        // Grown as the bytes come, doubling: a length the peer only claims (and then sends nothing) costs no more than
        // what it did send, not the 256 MiB a chunk's frame may have.
        var have = 0;
        while (have < length)
        {
            if (buffer.Length == have)
            {
                var grown = new byte[Math.Min(length, Math.Max(buffer.Length * 2, 64 * 1024))];
                buffer.AsSpan(0, have).CopyTo(grown);
                buffer = grown;
            }
            var part = Math.Min(length, buffer.Length) - have;
            ReadExactly(buffer.AsSpan(have, part));
            have += part;
        }
        return (head[0], length);
    }

    /// <summary>Closes without flushing: what is still buffered goes nowhere (a peer that stopped reading must not hold this up).</summary>
    public void Dispose()
    {
        _tls.Dispose();
        _socket.Dispose();
    }
}
