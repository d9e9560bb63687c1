using System.Buffers.Binary;
using System.Net.Sockets;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The data plane between nodes: a plain TCP socket of its own (never Akka.Remote's connection, so bulk data
/// cannot delay heartbeats), admitted by the media agent's one-time ticket. Request and reply frames:
/// <code>
/// request: u8 op | u32 length | payload        reply: u8 status (0 ok, 1 error, 2 library full) | u32 length | payload
/// HELLO ticket · RESERVE id → u8 · APPEND id flags bytes (no reply) · RELEASE id · CONTAINS id → u8 · READ id → flags bytes · COMMIT
/// MISSING id... → one byte per id (1: missing) · REFERENCES u8 n, snapshot id (n bytes), id... (written at the next COMMIT)
/// READREFS snapshot id → the snapshot's reference list, id...
/// </code>
/// APPEND streams without waiting for a reply (TCP's own flow control holds the sender back when the media
/// side falls behind); a failed append is reported on the reply to the next request, COMMIT at the latest,
/// so nothing is committed past it. Each engine thread gets a connection of its own, so that both cores
/// stream at once.
/// </summary>
internal static class SocketFrames
{
    public const byte Hello = 1, Reserve = 2, Append = 3, Release = 4, Contains = 5, Read = 6, Commit = 7, Missing = 8, References = 9, ReadReferences = 10;
    /// <summary>Reply status of a RESERVE the library refused because it is down to its reserve (the backup spans on).</summary>
    public const byte Full = 2;
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
