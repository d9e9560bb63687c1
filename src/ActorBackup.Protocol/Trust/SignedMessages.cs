using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ActorBackup.Protocol.Trust;

/// <summary>
/// A protocol message that proves who sent it: two fields, <c>signer</c> (the DER certificate of the sender) and
/// <c>signature</c> (ECDSA P-256, SHA-256, by that certificate's key over the message's full type name, a newline, and
/// the message with <c>signature</c> empty).
/// The receiver takes it only when the certificate is one of its cell's CA (<see cref="Signer"/>). Akka.Remote
/// does not say which certificate a message came in on, and a command may pass through a node on its way (a shell's
/// through the node it is connected to): the proof travels in the message.
/// </summary>
public static class SignedMessages
{
    private const string SignerField = "signer", SignatureField = "signature";

    /// <summary>Certificates already checked against a CA (keyed by the CA's and the certificate's thumbprints).</summary>
    private static readonly ConcurrentDictionary<string, CellIdentity> Checked = new();

    /// <summary>Signs <paramref name="m"/> in place with <paramref name="certificate"/>'s key.</summary>
    public static T Sign<T>(T m, X509Certificate2 certificate) where T : IMessage
    {
        var (signer, signature) = Fields(m.Descriptor);
        signer.Accessor.SetValue(m, ByteString.CopyFrom(certificate.RawData));
        signature.Accessor.SetValue(m, ByteString.Empty);
        using var key = certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the certificate has no ECDSA private key");
        signature.Accessor.SetValue(m, ByteString.CopyFrom(key.SignData(Signed(m), HashAlgorithmName.SHA256)));
        return m;
    }

    /// <summary>What is signed: the message's type name, then its bytes (with <c>signature</c> empty), so that the bytes of one type are never taken for another's.</summary>
    private static byte[] Signed(IMessage m)
    {
        var name = System.Text.Encoding.UTF8.GetBytes(m.Descriptor.FullName + "\n");
        var body = m.ToByteArray();
        var all = new byte[name.Length + body.Length];
        name.CopyTo(all, 0);
        body.CopyTo(all, name.Length);
        return all;
    }

    /// <summary>
    /// Who signed <paramref name="m"/>: a certificate of <paramref name="ca"/>, not expired, whose key made the
    /// signature; null with <paramref name="refusal"/> saying why when nobody of the cell did.
    /// </summary>
    public static CellIdentity? Signer(X509Certificate2 ca, IMessage m, out string refusal)
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
            // The certificates themselves (by SHA-256 of their bytes), not their SHA-1 thumbprints: a hit skips the chain check.
            var known = Convert.ToHexString(ca.GetCertHash(HashAlgorithmName.SHA256)) + ":" + Convert.ToHexString(SHA256.HashData(cert.RawData));
            if (!Checked.TryGetValue(known, out var id))
            {
                if (CellCertificates.Check(cert, ca) is { } reason)
                {
                    refusal = reason;
                    return null;
                }
                id = CellIdentity.From(cert)!;
                if (Checked.Count < 10_000) Checked[known] = id;
            }
            else if (RevokedCertificates.IsRevoked(ca, cert)) // revoked since it was checked
            {
                refusal = $"its signer's certificate '{cert.Subject}' (serial {RevokedCertificates.SerialOf(cert)}) was revoked by an operator of this cell";
                return null;
            }
            var content = m.Descriptor.Parser.ParseFrom(m.ToByteString()); // a copy: the message may be shared in place
            signatureField.Accessor.SetValue(content, ByteString.Empty);
            using var key = cert.GetECDsaPublicKey();
            if (key is null || !key.VerifyData(Signed(content), signature.Span, HashAlgorithmName.SHA256))
            {
                refusal = "its signature does not check";
                return null;
            }
            return id;
        }
    }

    private static (FieldDescriptor Signer, FieldDescriptor Signature) Fields(MessageDescriptor d) =>
        (d.FindFieldByName(SignerField) ?? throw new ArgumentException($"{d.Name} has no {SignerField} field"),
         d.FindFieldByName(SignatureField) ?? throw new ArgumentException($"{d.Name} has no {SignatureField} field"));
}
