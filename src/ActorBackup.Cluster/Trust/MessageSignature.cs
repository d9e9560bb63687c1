using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// Who sent a protocol message, proven by the message itself. Akka.Remote does not say which certificate a message
/// came in on, so a message that only a certain node may send (an assignment from the manager, a job's result from
/// its client, a client's or a library's registration) carries two fields, <c>signer</c> (the DER certificate of the
/// node that sent it) and <c>signature</c> (ECDSA P-256, SHA-256, by that certificate's key over the message with
/// <c>signature</c> empty), and the receiver takes it only when the certificate is one of its cell's CA and its
/// identity is the one that may send it.
/// </summary>
public static class MessageSignature
{
    private const string SignerField = "signer", SignatureField = "signature";

    /// <summary>Certificates already checked against a CA (keyed by the CA's and the certificate's thumbprints).</summary>
    private static readonly ConcurrentDictionary<string, CellIdentity> Checked = new();

    /// <summary>Signs <paramref name="m"/> in place with this node's key; unchanged in an ActorSystem without trust (tests of one actor).</summary>
    public static T Sign<T>(T m, NodeTrust? trust) where T : IMessage
    {
        if (trust is null) return m;
        var (signer, signature) = Fields(m.Descriptor);
        signer.Accessor.SetValue(m, ByteString.CopyFrom(trust.Certificate.RawData));
        signature.Accessor.SetValue(m, ByteString.Empty);
        using var key = trust.Certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("this node's certificate has no ECDSA key");
        signature.Accessor.SetValue(m, ByteString.CopyFrom(key.SignData(m.ToByteArray(), HashAlgorithmName.SHA256)));
        return m;
    }

    /// <summary>
    /// Who signed <paramref name="m"/>, a certificate of <paramref name="trust"/>'s CA whose key made the signature;
    /// null with <paramref name="refusal"/> saying why when nobody of the cell did.
    /// </summary>
    public static CellIdentity? Signer(NodeTrust trust, IMessage m, out string refusal)
    {
        var (signerField, signatureField) = Fields(m.Descriptor);
        var signer = (ByteString)signerField.Accessor.GetValue(m);
        var signature = (ByteString)signatureField.Accessor.GetValue(m);
        refusal = "";
        if (signer.IsEmpty || signature.IsEmpty)
        {
            refusal = "it is not signed";
            return null;
        }
        X509Certificate2 cert;
        try
        {
            cert = X509CertificateLoader.LoadCertificate(signer.Span);
        }
        catch (CryptographicException)
        {
            refusal = "its signer is not a certificate";
            return null;
        }
        using (cert)
        {
            if (DateTime.UtcNow > cert.NotAfter.ToUniversalTime())
            {
                refusal = $"its signer's certificate expired on {cert.NotAfter:yyyy-MM-dd}";
                return null;
            }
            var known = trust.Ca.Thumbprint + ":" + cert.Thumbprint;
            if (!Checked.TryGetValue(known, out var id))
            {
                if (CellCertificates.Check(cert, trust.Ca) is { } reason)
                {
                    refusal = reason;
                    return null;
                }
                id = CellIdentity.From(cert)!;
                if (Checked.Count < 10_000) Checked[known] = id;
            }
            var content = m.Descriptor.Parser.ParseFrom(m.ToByteString()); // a copy: the message may be shared in place
            signatureField.Accessor.SetValue(content, ByteString.Empty);
            using var key = cert.GetECDsaPublicKey();
            if (key is null || !key.VerifyData(content.ToByteArray(), signature.Span, HashAlgorithmName.SHA256))
            {
                refusal = "its signature does not check";
                return null;
            }
            return id;
        }
    }

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

    private static (FieldDescriptor Signer, FieldDescriptor Signature) Fields(MessageDescriptor d) =>
        (d.FindFieldByName(SignerField) ?? throw new ArgumentException($"{d.Name} has no {SignerField} field"),
         d.FindFieldByName(SignatureField) ?? throw new ArgumentException($"{d.Name} has no {SignatureField} field"));
}
