using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// A job's result is signed by the node that ran it (ECDSA with its node certificate's key, the certificate
/// alongside), and the manager takes it only from the node the job belongs to: a client job (backup, restore,
/// verify of a snapshot) from a node with the client role and that job's client id; a media job (prune, copy,
/// library check) from a media node that serves the job's library. A node holding another host's valid
/// certificate cannot end, or forge the snapshot of, a job that is not its own. (Akka.Remote does not say which
/// certificate a message came in on, so the proof travels in the message.)
/// </summary>
public static class JobSignature
{
    private static readonly ConcurrentDictionary<string, CellIdentity> Checked = new();

    /// <summary>Signs <paramref name="f"/> in place with this node's key; unchanged in an ActorSystem without trust (tests of one actor).</summary>
    public static JobFinished Sign(JobFinished f, NodeTrust? trust)
    {
        if (trust is null) return f;
        f.Signer = ByteString.CopyFrom(trust.Certificate.RawData);
        f.Signature = ByteString.Empty;
        using var key = trust.Certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("this node's certificate has no ECDSA key");
        f.Signature = ByteString.CopyFrom(key.SignData(f.ToByteArray(), HashAlgorithmName.SHA256));
        return f;
    }

    /// <summary>Why the manager must not take <paramref name="f"/> as the end of <paramref name="job"/>; null when it may.</summary>
    public static string? Refusal(NodeTrust trust, JobInfo job, JobFinished f)
    {
        if (f.Signer.IsEmpty || f.Signature.IsEmpty) return "it is not signed by the node that ran it";
        X509Certificate2 cert;
        try
        {
            cert = X509CertificateLoader.LoadCertificate(f.Signer.Span);
        }
        catch (CryptographicException)
        {
            return "its signer is not a certificate";
        }
        using (cert)
        {
            if (DateTime.UtcNow > cert.NotAfter.ToUniversalTime()) return $"its signer's certificate expired on {cert.NotAfter:yyyy-MM-dd}";
            var known = trust.Ca.Thumbprint + ":" + cert.Thumbprint; // checked against this CA
            if (!Checked.TryGetValue(known, out var id))
            {
                if (CellCertificates.Check(cert, trust.Ca) is { } reason) return reason;
                id = CellIdentity.From(cert)!;
                if (Checked.Count < 10_000) Checked[known] = id;
            }
            var mediaJob = job.Kind is JobKind.Prune or JobKind.Copy || job is { Kind: JobKind.Verify, Snapshot: "" };
            var allowed = id.Role == CellRole.Node && (mediaJob
                ? id.NodeRoles.Contains("media") && id.Libraries.Contains(job.Library)
                : id.NodeRoles.Contains("client") && id.Client == job.Client);
            if (!allowed)
                return $"it is signed by {id}, not by " + (mediaJob ? $"the media node of library {job.Library}" : $"client {job.Client}, whose job it is");
            var content = f.Clone();
            content.Signature = ByteString.Empty;
            using var key = cert.GetECDsaPublicKey();
            if (key is null || !key.VerifyData(content.ToByteArray(), f.Signature.Span, HashAlgorithmName.SHA256)) return "its signature does not check";
            return null;
        }
    }
}
