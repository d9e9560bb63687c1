using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// A client's key given to another client node for one job: the restore of that client's snapshot onto another host
/// that holds only its own keyring. The node holding the key (the snapshot's own client node, or one with the cell
/// key) gives it only to the node a manager-signed RestoreAssignment names, for a snapshot that client sealed, and
/// sealed to the one-time key that node put in its signed request (KeySealing): a replayed request gains nothing.
/// </summary>
public static class KeyGrants
{
    /// <summary>
    /// Why <paramref name="request"/> gets no key from a node holding <paramref name="ring"/>; null when it may (and then
    /// <paramref name="job"/> is the job it is for). Never in an ActorSystem without trust.
    /// </summary>
    public static string? Refusal(NodeTrust? trust, KeyRing ring, RequestClientKey request, DateTimeOffset now, out string job)
    {
        job = "";
        if (trust is null) return "keys are given only in a cell with certificates";
        var asker = MessageSignature.Signer(trust, request, out var unsigned);
        if (asker is null) return $"a key request refused: {unsigned}";
        if (asker.Role != CellRole.Node || !asker.NodeRoles.Contains("client")) return $"a key request refused: it is signed by {asker}, not by a client node";
        if (KeySealing.Refusal(request.ReplyKey.Span) is { } noReplyKey) return $"a key request refused: {noReplyKey}";
        RestoreAssignment assignment;
        try
        {
            assignment = RestoreAssignment.Parser.ParseFrom(request.Assignment);
        }
        catch (InvalidProtocolBufferException e)
        {
            return $"a key request refused: its assignment does not parse ({e.Message})";
        }
        if (MessageSignature.NotFromManager(trust, assignment) is { } forged) return $"a key request refused: {forged}";
        var info = assignment.Job;
        if (info is null || info.Kind != JobKind.Restore) return "a key request refused: it shows no restore";
        job = info.Id;
        if (info.Client != asker.Client) return $"a key request refused: job {info.Id} restores onto client {info.Client}, and {asker} asked";
        var ticket = assignment.Ticket;
        if (ticket is null || MessageSignature.NotFromManager(trust, ticket) is not null || ticket.Job != info.Id || !JobTickets.Admits(ticket, asker))
            return $"a key request refused: job {info.Id}'s ticket is missing, not the manager's, or not {asker}'s";
        if (now.ToUnixTimeMilliseconds() > ticket.ExpiresUnixMs) return $"a key request refused: job {info.Id}'s ticket has expired";
        SnapshotManifest manifest;
        try
        {
            manifest = ring.Open(assignment.Manifest); // sealed by that client: a snapshot of its own, not one claimed
        }
        catch (IOException e)
        {
            return $"a key request refused: {e.Message}";
        }
        if (manifest.Client != request.Client) return $"a key request refused: job {info.Id} restores a snapshot of {manifest.Client}, not of {request.Client}";
        if (manifest.Keys == KeyScheme.Cell)
            return $"snapshot {manifest.Id} was made before per-client keys: only the cell key reads it, and that is not given; restore it onto a node that holds the cell key";
        return null;
    }
}
