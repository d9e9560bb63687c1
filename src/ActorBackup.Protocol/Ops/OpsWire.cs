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
/// protocol message ends the connection with an InvalidDataException, before anything is allocated for it; a frame's
/// buffer grows with the bytes that arrive, not with the length it claims.
/// </summary>
public static class OpsWire
{
    public const int MaxFrame = 4 * 1024 * 1024;

    /// <param name="signWith">a shell's certificate (with its key): an operator-only or job command, or a look into a client's data (OperatorCommands.ShellSigns), goes signed</param>
    public static async Task Write(Stream stream, IMessage message, bool more, CancellationToken cancel = default, System.Security.Cryptography.X509Certificates.X509Certificate2? signWith = null)
    {
        var frame = new OpsFrame
        {
            Type = ProtocolTypes.NameOf(message.GetType()) ?? throw new ArgumentException($"{message.GetType()} is not a protocol message"),
            Body = message.ToByteString(), More = more,
        };
        if (signWith is not null && Trust.OperatorCommands.ShellSigns(frame.Type))
        {
            var signed = Trust.OperatorCommands.Sign(message, signWith, DateTimeOffset.UtcNow);
            frame.SignedUnixMs = signed.UnixMs;
            frame.Nonce = signed.Nonce;
            frame.Signature = signed.Signature; // the node knows the certificate: it is the connection's
        }
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

    /// <summary>
    /// The next message, whether more answer the same call, and the shell's signature of it (a CallerSigned without its
    /// signer, which is the connection's certificate) when it came signed; null at a clean end of the stream.
    /// </summary>
    public static async Task<(IMessage Message, bool More, CallerSigned? Proof)?> Read(Stream stream, CancellationToken cancel = default)
    {
        var header = new byte[4];
        var got = await stream.ReadAtLeastAsync(header, 4, throwOnEndOfStream: false, cancel);
        if (got == 0) return null;
        if (got < 4) throw new InvalidDataException("the connection ended inside a frame header");
        var size = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (size is 0 or > MaxFrame) throw new InvalidDataException($"frame of {size} bytes: not an ActorBackup operator connection, or over the {MaxFrame}-byte limit");
        // Grown as the bytes arrive, never to the claimed length before they do: a peer that claims 4 MiB and sends
        // nothing holds 64 KiB.
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(size, 64 * 1024));
        try
        {
            for (var read = 0; read < size;)
            {
                if (read == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(size, 2L * buffer.Length));
                    buffer.AsSpan(0, read).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var n = await stream.ReadAsync(buffer.AsMemory(read, (int)Math.Min(size, buffer.Length) - read), cancel);
                if (n == 0) throw new EndOfStreamException("the connection ended inside a frame");
                read += n;
            }
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
                message = ProtocolTypes.Parse(frame.Type, frame.Body.Span)
                          ?? throw new InvalidDataException($"unknown message type '{Shown(frame.Type)}': a newer shell or node?");
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new InvalidDataException($"a {frame.Type} that does not parse: {e.Message}");
            }
            var proof = frame.Signature.IsEmpty ? null
                : new CallerSigned { Type = frame.Type, Body = frame.Body, UnixMs = frame.SignedUnixMs, Nonce = frame.Nonce, Signature = frame.Signature };
            return (message, frame.More, proof);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A name the peer sent, as a message shows it: at most 100 characters, control characters as '?'.</summary>
    private static string Shown(string name) =>
        new string([.. name.Take(100).Select(c => char.IsControl(c) ? '?' : c)]) + (name.Length > 100 ? "..." : "");
}
