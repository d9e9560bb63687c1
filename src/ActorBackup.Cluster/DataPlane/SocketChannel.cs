using System.Buffers.Binary;
using System.Net.Sockets;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The client's side: one connection per engine thread, opened on first use. A thread that ended leaves its
/// connection to the next thread that needs one (a restore starts new threads for each wave of files: each
/// wave's threads opened connections of their own until the media node refused the session's 129th).
/// </summary>
public sealed class SocketChannel : IDataPlaneChannel
{
    private readonly string _host;
    private readonly int _port;
    private readonly System.Net.Security.SslClientAuthenticationOptions _tls;
    private readonly ThreadLocal<Connection> _connections;
    private readonly List<Connection> _all = [];

    public string Ticket { get; }

    private sealed class Connection(FrameStream stream) : IDisposable
    {
        public readonly FrameStream Stream = stream;
        public byte[] Buffer = new byte[64 * 1024];

        /// <summary>The thread it belongs to; another takes it over once that one has ended, if it is idle.</summary>
        public Thread Owner = Thread.CurrentThread;

        /// <summary>No request of it waits for its reply and no frame was cut off: a thread that ended on a failure in the
        /// middle of an exchange leaves a connection another thread must not take (it would read the old reply).</summary>
        public volatile bool Idle = true;

        public void Dispose() => Stream.Dispose();
    }

    /// <param name="tls">this node's certificate and the cell's CA (NodeTrust.ClientOptions): the media node must be a node of the cell</param>
    /// <param name="replyTimeout">how long a reply may take (SocketFrames.ReplyTimeout; tests make it short)</param>
    public SocketChannel(string host, int port, string ticket, System.Net.Security.SslClientAuthenticationOptions tls, TimeSpan? replyTimeout = null)
    {
        ReplyTimeout = replyTimeout ?? SocketFrames.ReplyTimeout;
        _host = host;
        _port = port;
        _tls = tls;
        Ticket = ticket;
        _connections = new ThreadLocal<Connection>(Take);
        _ = _connections.Value; // fail now, not in the middle of a backup, when the media node is unreachable
    }

    /// <summary>
    /// A connection for a thread that has none: one an ended thread left idle, or a new one.
    /// </summary>
    private Connection Take()
    {
        lock (_all)
            foreach (var left in _all)
                if (left.Idle && !left.Owner.IsAlive)
                {
                    left.Owner = Thread.CurrentThread;
                    return left;
                }
        var c = Open();
        lock (_all) _all.Add(c);
        return c;
    }

    /// <summary>The connections opened (tests).</summary>
    internal int Connections
    {
        get
        {
            lock (_all) return _all.Count;
        }
    }

    private Connection[] All()
    {
        lock (_all) return [.. _all];
    }

    /// <summary>How long a reply of the media node may take before the connection is taken for lost.</summary>
    private TimeSpan ReplyTimeout { get; }

    /// <summary>
    /// This thread's connection. One the media node closed before or in its TLS handshake (too many handshakes at once
    /// from this address: many threads connect together, DataPlaneServer's Handshakes) is tried again a little later,
    /// five times; one it refused (a certificate) or could not be reached is not.
    /// </summary>
    private Connection Open()
    {
        for (var attempt = 0; ; attempt++)
            try
            {
                return OpenOnce();
            }
            catch (DataPlaneLostException e) when (attempt < 5 && e.InnerException is IOException)
            {
                Thread.Sleep(50 << attempt);
            }
    }

    /// <summary>How long a connection to the data plane may take to be accepted.</summary>
    internal static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);

    private Connection OpenOnce()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            // Bounded: a firewall that drops the port's packets would hold the job for the kernel's two minutes of retries.
            using var timeout = new CancellationTokenSource(ConnectTimeout);
            socket.ConnectAsync(_host, _port, timeout.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new DataPlaneLostException($"cannot reach it at {_host}:{_port}: {e.Message}", e);
        }
        catch (OperationCanceledException e)
        {
            socket.Dispose();
            throw new DataPlaneLostException($"cannot reach it at {_host}:{_port}: no answer in {ConnectTimeout.TotalSeconds:0} s " +
                                             "(a firewall between the hosts dropping the data plane port? actorbackup.data-plane-port on the media node)", e);
        }
        Connection c;
        try
        {
            c = new Connection(FrameStream.Connect(socket, _tls));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        try
        {
            Call(c, SocketFrames.Hello, System.Text.Encoding.UTF8.GetBytes(Ticket));
            c.Stream.AwaitReplies(ReplyTimeout);
        }
        catch
        {
            c.Dispose();
            throw;
        }
        return c;
    }

    private static ReadOnlySpan<byte> Call(Connection c, byte op, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        c.Idle = false;
        c.Stream.Write(op, a, b);
        return Reply(c);
    }

    private static ReadOnlySpan<byte> Reply(Connection c)
    {
        var (status, length) = c.Stream.ReadFrame(ref c.Buffer);
        c.Idle = true; // the reply read whole: whatever it says, the connection can go on
        if (status == SocketFrames.Full) throw new Engine.Library.LibraryFullException(System.Text.Encoding.UTF8.GetString(c.Buffer, 0, length));
        if (status == SocketFrames.Damaged) throw Damaged(c.Buffer, length);
        if (status == SocketFrames.Busy) throw new Engine.Library.LibraryBusyException("media agent: " + System.Text.Encoding.UTF8.GetString(c.Buffer, 0, length));
        if (status != 0) throw new LibraryFaultException("media agent: " + System.Text.Encoding.UTF8.GetString(c.Buffer, 0, length));
        return c.Buffer.AsSpan(0, length);
    }

    /// <summary>A chunk the media agent's library does not have or cannot read: damage of that chunk (not ISourceFault).</summary>
    private static IOException Damaged(byte[] buffer, int length) => new("media agent: " + System.Text.Encoding.UTF8.GetString(buffer, 0, length));

    /// <summary>A one-byte yes or no answer; anything else is the media node's fault, said so (not an index out of range).</summary>
    private static bool Flag(ReadOnlySpan<byte> reply, string what) =>
        reply.Length == 1 ? reply[0] == 1 : throw new LibraryFaultException($"media agent: a {what} answered with {reply.Length} bytes, not 1");

    private static ReadOnlySpan<byte> Id(ChunkId id, Span<byte> buffer)
    {
        id.WriteTo(buffer);
        return buffer;
    }

    public bool TryReserve(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        return Flag(Call(_connections.Value!, SocketFrames.Reserve, Id(id, b)), "RESERVE");
    }

    public bool DefersReserve => true;

    public void StartReserve(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        var c = _connections.Value!;
        c.Idle = false; // until FinishReserve reads the answer
        c.Stream.Write(SocketFrames.Reserve, Id(id, b));
        c.Stream.Flush(); // on its way now: the answer travels while the chunk is sealed (FinishReserve reads it)
    }

    public bool FinishReserve(ChunkId id) => Flag(Reply(_connections.Value!), "RESERVE");

    public void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        Span<byte> head = stackalloc byte[ChunkId.Size + 1];
        id.WriteTo(head);
        head[ChunkId.Size] = (byte)flags;
        var c = _connections.Value!;
        var idle = c.Idle;
        c.Idle = false; // a frame cut off by a failure leaves the connection to no other thread
        c.Stream.Write(SocketFrames.Append, head, payload); // no reply: see the frame notes
        c.Idle = idle;
    }

    public void Release(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        Call(_connections.Value!, SocketFrames.Release, Id(id, b));
    }

    public bool Contains(ChunkId id)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        return Flag(Call(_connections.Value!, SocketFrames.Contains, Id(id, b)), "CONTAINS");
    }

    public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        var missing = new HashSet<ChunkId>();
        const int batch = SocketFrames.MaxMissing; // 3.2 MB a frame
        for (var start = 0; start < ids.Count; start += batch)
        {
            var part = ids.Skip(start).Take(batch).ToList();
            var request = new byte[part.Count * ChunkId.Size];
            for (var i = 0; i < part.Count; i++) part[i].WriteTo(request.AsSpan(i * ChunkId.Size));
            var reply = Call(_connections.Value!, SocketFrames.Missing, request);
            if (reply.Length != part.Count) throw new LibraryFaultException($"media agent: a MISSING of {part.Count} ids answered with {reply.Length} bytes");
            for (var i = 0; i < part.Count; i++) if (reply[i] == 1) missing.Add(part[i]);
        }
        return missing;
    }

    private bool? _sequential;

    /// <summary>Asked of the media agent once (an empty LOCATE); a media node that does not know LOCATE (an older one) is not sequential.</summary>
    public bool Sequential
    {
        get
        {
            if (_sequential is { } known) return known;
            try
            {
                var reply = Call(_connections.Value!, SocketFrames.Locate, []);
                return (_sequential = reply.Length >= 1 && reply[0] == 1).Value;
            }
            catch (LibraryFaultException)
            {
                return (_sequential = false).Value;
            }
        }
    }

    public IReadOnlyList<ChunkPlace> Places(IReadOnlyList<ChunkId> ids)
    {
        var places = new ChunkPlace[ids.Count];
        for (var start = 0; start < ids.Count; start += SocketFrames.MaxLocate)
        {
            var n = Math.Min(SocketFrames.MaxLocate, ids.Count - start);
            var request = new byte[n * ChunkId.Size];
            for (var i = 0; i < n; i++) ids[start + i].WriteTo(request.AsSpan(i * ChunkId.Size));
            var reply = Call(_connections.Value!, SocketFrames.Locate, request);
            if (reply.Length != 1 + n * 12) throw new LibraryFaultException($"media agent: a LOCATE of {n} ids answered with {reply.Length} bytes");
            _sequential = reply[0] == 1;
            for (var i = 0; i < n; i++)
                places[start + i] = new ChunkPlace(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(reply[(1 + i * 12)..]),
                    System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(reply[(5 + i * 12)..]));
        }
        return places;
    }

    public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags)
    {
        Span<byte> b = stackalloc byte[ChunkId.Size];
        var reply = Call(_connections.Value!, SocketFrames.Read, Id(id, b));
        if (reply.IsEmpty) throw new LibraryFaultException("media agent: a READ answered with no bytes");
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
        c.Idle = false;
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
            if (batch > 0) c.Stream.Send(requests[..(batch * ReadRequestSize)]);
            if (received == sent) break; // the handler failed: every reply asked for has been drained
            var (status, length) = c.Stream.ReadFrame(ref c.Buffer);
            var i = received++;
            if (abort is not null) continue;
            try
            {
                if (status == SocketFrames.Damaged) handle(i, default, default, Damaged(c.Buffer, length));
                else if (status != 0) abort = new LibraryFaultException("media agent: " + System.Text.Encoding.UTF8.GetString(c.Buffer, 0, length)); // the session's, not the chunk's
                else if (length < 1) abort = new LibraryFaultException("media agent: a READ answered with no bytes");
                else handle(i, c.Buffer.AsSpan(1, length - 1), (RecordFlags)c.Buffer[0], null);
            }
            catch (Exception e)
            {
                abort = e; // drain what is still in flight, so the connection stays usable, then rethrow
            }
        }
        c.Idle = true; // every reply asked for was read
        if (abort is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(abort).Throw();
    }

    private const int ReadWindow = 16, ReadRequestSize = 5 + ChunkId.Size;

    /// <summary>The snapshot's references, in frames of up to 64 Ki ids, each confirmed: they are written at the commit.</summary>
    public void AddReferences(string snapshot, IReadOnlyList<ChunkId> ids)
    {
        var name = System.Text.Encoding.ASCII.GetBytes(snapshot);
        if (name.Length is 0 or > 64) throw new ArgumentException($"'{snapshot}' is not a snapshot id");
        const int batch = 64 * 1024; // 2 MiB a frame
        for (var start = 0; start < ids.Count || start == 0; start += batch)
        {
            var count = Math.Min(batch, ids.Count - start);
            var request = new byte[1 + name.Length + count * ChunkId.Size];
            request[0] = (byte)name.Length;
            name.CopyTo(request, 1);
            for (var i = 0; i < count; i++) ids[start + i].WriteTo(request.AsSpan(1 + name.Length + i * ChunkId.Size));
            Call(_connections.Value!, SocketFrames.References, request);
        }
    }

    /// <summary>A snapshot's reference list, in pages (one frame could not hold the list of a snapshot of a 16 TiB file).</summary>
    public ChunkId[] ReadReferences(string snapshot)
    {
        var name = System.Text.Encoding.ASCII.GetBytes(snapshot);
        if (name.Length is 0 or > 64) throw new ArgumentException($"'{snapshot}' is not a snapshot id");
        var request = new byte[1 + name.Length + 8];
        request[0] = (byte)name.Length;
        name.CopyTo(request, 1);
        ChunkId[]? ids = null;
        long at = 0, listLength = -1;
        do
        {
            BinaryPrimitives.WriteInt64LittleEndian(request.AsSpan(1 + name.Length), at);
            var reply = Call(_connections.Value!, SocketFrames.ReadReferencesFrom, request);
            if (reply.Length < 8 || (reply.Length - 8) % ChunkId.Size != 0) throw new LibraryFaultException($"media agent: a reference list page of {reply.Length} bytes");
            var total = BinaryPrimitives.ReadInt64LittleEndian(reply);
            var count = (reply.Length - 8) / ChunkId.Size;
            // The list's length as the first page said it, each page within it and not empty before its end.
            if (total < 0 || total > Engine.Library.ReferenceList.MaxIds || (listLength >= 0 && total != listLength) || at + count > total || (count == 0 && at < total))
                throw new LibraryFaultException($"media agent: a reference list page of {count} ids from {at} of {total}");
            listLength = total;
            // Grown as the pages come (a length the node only claims allocates nothing), to the list's length at most.
            if (ids is null || at + count > ids.Length) Array.Resize(ref ids, (int)Math.Min(total, Math.Max(at + count, 2L * (ids?.Length ?? 0))));
            for (var i = 0; i < count; i++) ids[at + i] = new ChunkId(reply.Slice(8 + i * ChunkId.Size, ChunkId.Size));
            at += count;
        } while (at < listLength);
        return ids ?? [];
    }

    /// <summary>
    /// Every connection first confirms that all its appends were taken (a request's reply comes after the
    /// appends sent before it), then one of them asks the media agent to commit.
    /// </summary>
    public void Commit()
    {
        Span<byte> none = stackalloc byte[ChunkId.Size];
        foreach (var c in All()) Call(c, SocketFrames.Contains, none);
        Call(_connections.Value!, SocketFrames.Commit, []);
    }

    public void Dispose()
    {
        foreach (var c in All()) c.Dispose();
        _connections.Dispose();
    }
}
