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
    /// <summary>
    /// The command inside <paramref name="signed"/> and who signed it; null with <paramref name="refusal"/> saying why
    /// when it is not to be taken: an operator-only command signed by anyone but an operator, a job command or a look
    /// signed by a node, a signature of another cell, stale or seen before.
    /// </summary>
    /// <param name="types">the commands it may hold (default: OperatorCommands.Signed)</param>
    /// <param name="window">how old it may be (default OperatorCommands.Window)</param>
    public static IMessage? Open(NodeTrust trust, CallerSigned signed, DateTimeOffset now, CallerNonces nonces, out string refusal, IReadOnlySet<string>? types = null,
        TimeSpan? window = null) => Open(trust, signed, now, nonces, out refusal, out _, types, window);

    /// <inheritdoc cref="Open(NodeTrust, CallerSigned, DateTimeOffset, CallerNonces, out string, IReadOnlySet{string}?, TimeSpan?)"/>
    public static IMessage? Open(NodeTrust trust, CallerSigned signed, DateTimeOffset now, CallerNonces nonces, out string refusal, out CellIdentity? signer,
        IReadOnlySet<string>? types = null, TimeSpan? window = null)
    {
        signer = null;
        var within = window ?? OperatorCommands.Window;
        if (!(types ?? OperatorCommands.Signed).Contains(signed.Type))
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
        if (caller.Role != CellRole.Operator && !(OperatorCommands.NotOnlyOperators.Contains(signed.Type) && caller.Role is CellRole.Integrator or CellRole.Client)
            && !(caller.Role == CellRole.Auditor && OperatorCommands.AuditorReads.Contains(signed.Type)))
        {
            refusal = OperatorCommands.NotOnlyOperators.Contains(signed.Type)
                ? $"the {signed.Type} is refused: it is signed by {caller}, and only an operator, integrator or client certificate may give it"
                : $"the {signed.Type} is refused: it is signed by {caller}, and only an operator certificate may give it";
            return null;
        }
        var signedAt = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(signed.UnixMs, 0, 253402300799999));
        if (signedAt - now > OperatorCommands.Window || now - signedAt > within)
        {
            refusal = $"the {signed.Type} was signed at {signedAt:u}, more than {within.TotalMinutes:F0} minutes from this manager's clock ({now:u}): " +
                      "set the clocks of the signer's host (the shell's or the program's) and the manager's right (NTP), and send it again";
            return null;
        }
        // A look at the catalog changes nothing: given again, it shows the same caller what it may see anyway, so it
        // spends no nonce (a program polling GetJob would otherwise use up its signer's budget for commands).
        if (!OperatorCommands.CatalogLooks.Contains(signed.Type)
            && (signed.Nonce.Length != OperatorCommands.NonceSize || !nonces.FirstSight(signed.Nonce.ToBase64(), now + within + OperatorCommands.Window, now, caller.ToString())))
        {
            refusal = $"the {signed.Type} was given before (the same signed command again), or its signer ({caller}) has sent {CallerNonces.PerSigner} " +
                      $"signed commands within {(within + OperatorCommands.Window).TotalMinutes:F0} minutes (a limit per certificate), or all signers {CallerNonces.Capacity}: " +
                      "sign it anew, and send it later if that was the limit";
            return null;
        }
        try
        {
            var command = ProtocolTypes.Parse(signed.Type, signed.Body.Span);
            signer = caller;
            return command;
        }
        catch (InvalidProtocolBufferException e)
        {
            refusal = $"the signed {signed.Type} does not parse: {e.Message}";
            return null;
        }
    }
}

/// <summary>The manager's check of a catalog rebuild's findings: they answer an operator's signed RebuildCatalog of that library, used once.</summary>
public static class RebuildProof
{
    private static readonly IReadOnlySet<string> Rebuild = new HashSet<string> { RebuildCatalog.Descriptor.Name };

    /// <summary>How long a rebuild may take, from the operator's request to its findings (every manifest of a library is read).</summary>
    public static readonly TimeSpan Window = TimeSpan.FromHours(6);

    /// <summary>Why the manager must not record <paramref name="m"/>; null when an operator asked for it.</summary>
    public static string? Refusal(NodeTrust trust, RecordSnapshots m, DateTimeOffset now, CallerNonces nonces) =>
        Refusal(trust, m.Caller, m.Library, "snapshots found in a library are recorded", now, nonces);

    /// <summary>Why a media agent must not scan its library for manifests (every volume read whole); null when an operator asked for it.</summary>
    public static string? Refusal(NodeTrust trust, ListManifests m, DateTimeOffset now, CallerNonces nonces) =>
        Refusal(trust, m.Caller, m.Library, "a library is scanned for its manifests", now, nonces);

    private static string? Refusal(NodeTrust trust, CallerSigned? caller, string library, string what, DateTimeOffset now, CallerNonces nonces)
    {
        if (caller is null) return $"{what} only for an operator's 'abk catalog rebuild' (signed by its shell)";
        var signed = CallerSignatures.Open(trust, caller, now, nonces, out var refusal, Rebuild, Window);
        if (signed is null) return refusal;
        return ((RebuildCatalog)signed).Library == library ? null : $"the rebuild was signed for library {((RebuildCatalog)signed).Library}, not {library}";
    }
}

/// <summary>
/// A client node's side of <see cref="OperatorCommands.Looks"/>: it lists a snapshot, searches its file indexes or
/// rebuilds the catalog only for a request its shell signed (relayed by the node the shell is connected to, which
/// cannot make one up): an operator, an integrator (not the rebuild), or the client host whose data it is.
/// </summary>
public static class LookSignatures
{
    /// <summary>Who asked, and what they signed; null with <paramref name="refusal"/> when nobody of the cell did, or not lately.</summary>
    public static CellIdentity? Caller(NodeTrust trust, CallerSigned? proof, string type, DateTimeOffset now, out IMessage? signed, out string refusal)
    {
        signed = null;
        if (proof is null || proof.Type != type)
        {
            refusal = $"the {type} comes without its shell's signature: ask with abk (and a certificate of the cell)";
            return null;
        }
        var caller = Shell(trust, proof, type, now, OperatorCommands.Window, out refusal);
        if (caller is null) return null;
        try
        {
            signed = ProtocolTypes.Parse(type, proof.Body.Span);
        }
        catch (InvalidProtocolBufferException e)
        {
            refusal = $"the signed {type} does not parse: {e.Message}";
            return null;
        }
        // What the signer's role may ask at all (an auditor no file names): the node that relayed it holds the signed
        // command for minutes, and must not get from here what the operator endpoint refused its signer.
        if (signed is not null && Ops.OpsPermissions.Refusal(caller, signed) is { } notAllowed)
        {
            refusal = notAllowed;
            signed = null;
            return null;
        }
        return caller;
    }

    /// <summary>
    /// The operator, integrator or client host whose certificate signed <paramref name="proof"/> within
    /// <paramref name="window"/> of this clock (any command: what it asked for is the caller's to check); null with
    /// <paramref name="refusal"/> saying why (<paramref name="what"/> names the request in it).
    /// </summary>
    public static CellIdentity? Shell(NodeTrust trust, CallerSigned proof, string what, DateTimeOffset now, TimeSpan window, out string refusal)
    {
        var caller = SignedMessages.Signer(trust.Ca, proof, out refusal);
        if (caller is null)
        {
            refusal = $"the {what} is refused: {refusal}";
            return null;
        }
        if (caller.Role is not (CellRole.Operator or CellRole.Integrator or CellRole.Client or CellRole.Auditor))
        {
            refusal = $"the {what} is refused: it is signed by {caller}, which is no shell's certificate";
            return null;
        }
        var signedAt = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(proof.UnixMs, 0, 253402300799999));
        if (signedAt - now > OperatorCommands.Window || now - signedAt > window)
        {
            refusal = signedAt > now
                ? $"the {what} was signed at {signedAt:u}, more than {OperatorCommands.Window.TotalMinutes:F0} minutes ahead of the clock that checks it ({now:u}): set the clocks right (NTP), and ask again"
                : $"the {what} rests on a command signed at {signedAt:u}, more than {window.TotalMinutes:F0} minutes before the clock that checks it ({now:u}): " +
                  "the command ran longer than that, or the clocks differ (NTP); ask again";
            return null;
        }
        return caller;
    }

    /// <summary>Why <paramref name="caller"/>'s signed ls does not cover listing <paramref name="path"/> of <paramref name="snapshot"/> (of client <paramref name="client"/>); null when it does.</summary>
    public static string? ListRefusal(CellIdentity caller, ListSnapshotTree signed, string snapshot, string client, string path)
    {
        if (signed.Path != path) return $"the ls was signed for path '{signed.Path}', not '{path}'";
        if (signed.Snapshot != "latest" && !snapshot.StartsWith(signed.Snapshot, StringComparison.Ordinal))
            return $"the ls was signed for snapshot {signed.Snapshot}, not {snapshot}";
        return caller.Role == CellRole.Client && caller.Client != client ? $"{caller} may list its own snapshots only, not one of {client}" : null;
    }

    /// <summary>Why <paramref name="caller"/>'s signed find does not cover <paramref name="request"/>; null when it does.</summary>
    public static string? FindRefusal(CellIdentity caller, FindFiles signed, SearchFileIndex request)
    {
        if (request.Query is null) return "a search without a query";
        // What was signed is what is searched; a client host's is narrowed to its own client (by the node it asked).
        var expected = signed.Clone();
        if (caller.Role == CellRole.Client) expected.Client = caller.Client;
        if (!expected.Equals(request.Query)) return $"the find was signed for {signed}, not {request.Query}";
        if (caller.Role != CellRole.Client) return null;
        return request.Snapshots.All(s => s.Client == caller.Client) ? null : $"{caller} may search its own snapshots only";
    }
}

/// <summary>The nonces of signed commands, each kept until the command would be refused as stale anyway (bounded).</summary>
public sealed class CallerNonces
{
    public const int Capacity = 100_000;
    /// <summary>At most this many remembered nonces per signer: one certificate signing in a loop (a compromised client
    /// host or program) is refused once it has this many in the window, and never pushes out anyone else's nonce.</summary>
    public const int PerSigner = 2_000;
    private readonly HashSet<string> _seen = [];
    private readonly Queue<(string Nonce, string Signer, DateTimeOffset KeepUntil)> _order = new();
    private readonly Dictionary<string, int> _bySigner = [];

    /// <summary>
    /// Whether <paramref name="nonce"/> of <paramref name="signer"/> is new and may be taken (then it is remembered until
    /// <paramref name="keepUntil"/>): false when it was seen, when that signer has <see cref="PerSigner"/> in the window, or
    /// when <see cref="Capacity"/> nonces are in their window (all signers together).
    /// </summary>
    public bool FirstSight(string nonce, DateTimeOffset keepUntil, DateTimeOffset now, string signer = "")
    {
        while (_order.Count > 0 && _order.Peek().KeepUntil < now)
        {
            var (old, by, _) = _order.Dequeue();
            _seen.Remove(old);
            if (--_bySigner[by] == 0) _bySigner.Remove(by);
        }
        // Full of nonces still in their window: refused, not one of them forgotten (a command captured could be
        // replayed once enough signers had pushed its nonce out).
        if (_order.Count >= Capacity || _seen.Contains(nonce) || _bySigner.GetValueOrDefault(signer) >= PerSigner) return false;
        _seen.Add(nonce);
        _bySigner[signer] = _bySigner.GetValueOrDefault(signer) + 1;
        _order.Enqueue((nonce, signer, keepUntil));
        return true;
    }
}
