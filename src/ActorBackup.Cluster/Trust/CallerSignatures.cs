using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// The manager's side of <see cref="OperatorCommands"/>: an operator-only command is taken only from a
/// <see cref="CallerSigned"/> signed by an operator certificate of the cell, within <see cref="OperatorCommands.Window"/>
/// of this clock, whose nonce it has not seen (a signed command replayed by a node that relayed it is refused).
/// </summary>
public static class CallerSignatures
{
    /// <summary>The command inside <paramref name="signed"/>; null with <paramref name="refusal"/> saying why when it is not an operator's.</summary>
    public static IMessage? Open(NodeTrust trust, CallerSigned signed, DateTimeOffset now, CallerNonces nonces, out string refusal)
    {
        if (!OperatorCommands.Signed.Contains(signed.Type))
        {
            refusal = $"a {signed.Type} is not a command that goes signed";
            return null;
        }
        var caller = SignedMessages.Signer(trust.Ca, signed, out refusal);
        if (caller is null)
        {
            refusal = $"the {signed.Type} is refused: {refusal}";
            return null;
        }
        if (caller.Role != CellRole.Operator)
        {
            refusal = $"the {signed.Type} is refused: it is signed by {caller}, and only an operator certificate may give it";
            return null;
        }
        var signedAt = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(signed.UnixMs, 0, 253402300799999));
        if ((now - signedAt).Duration() > OperatorCommands.Window)
        {
            refusal = $"the {signed.Type} was signed at {signedAt:u}, more than {OperatorCommands.Window.TotalMinutes:F0} minutes from this manager's clock ({now:u}): " +
                      "set the clocks of the shell's host and the manager's right (NTP), and send it again";
            return null;
        }
        if (signed.Nonce.Length != OperatorCommands.NonceSize || !nonces.FirstSight(signed.Nonce.ToBase64(), signedAt, now))
        {
            refusal = $"the {signed.Type} was given before (the same signed command again): send it anew with abk";
            return null;
        }
        try
        {
            return ProtocolTypes.Parse(signed.Type, signed.Body.Span);
        }
        catch (InvalidProtocolBufferException e)
        {
            refusal = $"the signed {signed.Type} does not parse: {e.Message}";
            return null;
        }
    }
}

/// <summary>The nonces of signed commands seen within the last two windows (bounded); an older command is refused as stale anyway.</summary>
public sealed class CallerNonces
{
    public const int Capacity = 100_000;
    private readonly Dictionary<string, DateTimeOffset> _seen = [];
    private readonly Queue<(string Nonce, DateTimeOffset SignedAt)> _order = new();

    /// <summary>Whether <paramref name="nonce"/> is new (then it is remembered).</summary>
    public bool FirstSight(string nonce, DateTimeOffset signedAt, DateTimeOffset now)
    {
        while (_order.Count > 0 && (_order.Count >= Capacity || now - _order.Peek().SignedAt > 2 * OperatorCommands.Window))
            _seen.Remove(_order.Dequeue().Nonce);
        if (!_seen.TryAdd(nonce, signedAt)) return false;
        _order.Enqueue((nonce, signedAt));
        return true;
    }
}
