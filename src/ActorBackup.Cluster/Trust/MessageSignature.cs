using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// Who sent a protocol message, proven by the message itself (<see cref="SignedMessages"/>): a message that only a
/// certain node may send (an assignment or a ticket from the manager, a job's result from its client, a client's or
/// a library's registration, a library's report) is signed with the sender's node key, and the receiver takes it
/// only when the certificate is one of its cell's CA and its identity is the one that may send it.
/// </summary>
public static class MessageSignature
{
    /// <summary>Signs <paramref name="m"/> in place with this node's key; unchanged in an ActorSystem without trust (tests of one actor).</summary>
    public static T Sign<T>(T m, NodeTrust? trust) where T : IMessage => trust is null ? m : SignedMessages.Sign(m, trust.Certificate);

    /// <summary>Who signed <paramref name="m"/> (a certificate of this node's cell); null with <paramref name="refusal"/> saying why when nobody of the cell did.</summary>
    public static CellIdentity? Signer(NodeTrust trust, IMessage m, out string refusal) => SignedMessages.Signer(trust.Ca, m, out refusal);

    /// <summary>
    /// Why <paramref name="m"/> is not to be taken: not signed by a certificate of the cell, or by one that
    /// <paramref name="allowed"/> refuses (<paramref name="expected"/> says who should have signed it); null when it
    /// may be taken, and always in an ActorSystem without trust (tests of one actor).
    /// </summary>
    public static string? Refusal(NodeTrust? trust, IMessage m, Func<CellIdentity, bool> allowed, string expected)
    {
        if (trust is null) return null;
        var id = Signer(trust, m, out var refusal);
        if (id is null) return $"{m.Descriptor.Name} refused: {refusal}";
        return allowed(id) ? null : $"{m.Descriptor.Name} refused: it is signed by {id}, not by {expected}";
    }

    /// <summary>Why a message only the manager may send (an assignment, a cancel, a ticket) is not to be taken; null when a manager node signed it.</summary>
    public static string? NotFromManager(NodeTrust? trust, IMessage m) => Refusal(trust, m, IsManagerNode, "a manager node");

    public static bool IsManagerNode(CellIdentity id) => id.Role == CellRole.Node && id.NodeRoles.Contains("manager");

    /// <summary>The node of <paramref name="client"/>: a node certificate with the client role and that client id.</summary>
    public static bool IsClientNode(CellIdentity id, string client) => id.Role == CellRole.Node && id.NodeRoles.Contains("client") && id.Client == client;

    /// <summary>A media node serving <paramref name="library"/>.</summary>
    public static bool IsMediaNode(CellIdentity id, string library) => id.Role == CellRole.Node && id.NodeRoles.Contains("media") && id.Libraries.Contains(library);
}
