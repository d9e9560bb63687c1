using System.Collections.Concurrent;
using ActorBackup.Engine.Chunks;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// One job's bulk-data path between a client and a media agent. Whatever the transport, the engine sees a
/// chunk sink (backup) and a chunk source (restore); Commit asks the media agent to make the appended chunks
/// durable and to journal their index entries.
/// </summary>
public interface IDataPlaneChannel : IChunkSink, IChunkSource, IDisposable
{
    string Ticket { get; }
}

/// <summary>
/// The data plane when client and media agent share a process (the embedded cell): the media agent registers
/// its open library under a one-time ticket, the client looks the ticket up. No serialization, no copy.
/// </summary>
public static class InProcessDataPlane
{
    public const string Scheme = "inproc";
    internal sealed record Session(DiskLibrary Library, IActorRef Media, string LibraryId, bool Write);
    private static readonly ConcurrentDictionary<string, Session> Sessions = new();

    public static string Open(DiskLibrary library, IActorRef media, string libraryId, bool write)
    {
        var ticket = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        Sessions[ticket] = new Session(library, media, libraryId, write);
        return ticket;
    }

    public static void Close(string ticket) => Sessions.TryRemove(ticket, out _);

    internal static bool TryGetSession(string ticket, out Session session) => Sessions.TryGetValue(ticket, out session!);

    /// <summary>
    /// The channel for a granted session: in-process when the media agent runs in this process (its ticket is
    /// registered here), else the socket of the endpoint the media agent gave.
    /// </summary>
    public static IDataPlaneChannel Connect(SessionOpened granted, TimeSpan commitTimeout)
    {
        if (Sessions.TryGetValue(granted.Ticket, out var s)) return new Channel(granted.Ticket, s, commitTimeout);
        var socket = granted.Endpoint.Split(' ').FirstOrDefault(e => e.StartsWith("tcp:", StringComparison.Ordinal))
                     ?? throw new IOException($"library {granted.Library} is on another node and offers no socket data plane ({granted.Endpoint})");
        return new SocketChannel(socket, granted.Ticket);
    }

    private sealed class Channel(string ticket, Session session, TimeSpan commitTimeout) : IDataPlaneChannel
    {
        public string Ticket => ticket;

        public bool TryReserve(ChunkId id) => session.Write ? session.Library.TryReserve(id) : throw new InvalidOperationException("a read session cannot store chunks");
        public void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload) => session.Library.Append(id, flags, payload);
        public void Release(ChunkId id) => session.Library.Release(id);
        public bool Contains(ChunkId id) => session.Library.Contains(id);
        public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids) => session.Library.Missing(ids);
        public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags) => session.Library.ReadPayload(id, ref buffer, out flags);

        public void Commit()
        {
            // Called from the engine's own thread, never from an actor: blocking here blocks nobody.
            var reply = session.Media.Ask<object>(new CommitSession { Library = session.LibraryId, Ticket = ticket }, commitTimeout).GetAwaiter().GetResult();
            if (reply is CommandRejected r) throw new IOException($"library {session.LibraryId} could not commit: {r.Reason}");
        }

        public void Dispose() { }
    }
}
