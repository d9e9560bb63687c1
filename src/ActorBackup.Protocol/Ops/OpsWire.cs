using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;

namespace ActorBackup.Protocol.Ops;

/// <summary>
/// The operator endpoint's framing, shared by the shell and the node. Byte layout of one frame:
/// <code>
///   u32 big-endian length (1 .. MaxFrame) | OpsFrame (protobuf): type name, message bytes, more
/// </code>
/// The connection is mutual TLS (the cell's certificates); each call is one frame from the shell and
/// one or more frames back, the last with more = false. A length over the bound or a type that is not a
/// protocol message ends the connection with an InvalidDataException, before anything is allocated for it.
/// </summary>
public static class OpsWire
{
    public const int MaxFrame = 4 * 1024 * 1024;

    public static async Task Write(Stream stream, IMessage message, bool more, CancellationToken cancel = default)
    {
        var frame = new OpsFrame
        {
            Type = ProtocolTypes.NameOf(message.GetType()) ?? throw new ArgumentException($"{message.GetType()} is not a protocol message"),
            Body = message.ToByteString(), More = more,
        };
        var size = frame.CalculateSize();
        if (size > MaxFrame) throw new InvalidDataException($"a {frame.Type} of {size} bytes is over the {MaxFrame}-byte frame limit");
        var buffer = ArrayPool<byte>.Shared.Rent(size + 4);
        try
        {
            BinaryPrimitives.WriteUInt32BigEndian(buffer, (uint)size);
            frame.WriteTo(buffer.AsSpan(4, size));
            await stream.WriteAsync(buffer.AsMemory(0, size + 4), cancel);
            await stream.FlushAsync(cancel);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The next message and whether more answer the same call; null at a clean end of the stream.</summary>
    public static async Task<(IMessage Message, bool More)?> Read(Stream stream, CancellationToken cancel = default)
    {
        var header = new byte[4];
        var got = await stream.ReadAtLeastAsync(header, 4, throwOnEndOfStream: false, cancel);
        if (got == 0) return null;
        if (got < 4) throw new InvalidDataException("the connection ended inside a frame header");
        var size = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (size is 0 or > MaxFrame) throw new InvalidDataException($"frame of {size} bytes: not an ActorBackup operator connection, or over the {MaxFrame}-byte limit");
        var buffer = ArrayPool<byte>.Shared.Rent((int)size);
        try
        {
            await stream.ReadExactlyAsync(buffer.AsMemory(0, (int)size), cancel);
            OpsFrame frame;
            try
            {
                frame = OpsFrame.Parser.ParseFrom(buffer, 0, (int)size);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new InvalidDataException($"a frame that does not parse: {e.Message}");
            }
            IMessage message;
            try
            {
                message = ProtocolTypes.Parse(frame.Type, frame.Body.Span) ?? throw new InvalidDataException($"unknown message type '{frame.Type}': a newer shell or node?");
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new InvalidDataException($"a {frame.Type} that does not parse: {e.Message}");
            }
            return (message, frame.More);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
