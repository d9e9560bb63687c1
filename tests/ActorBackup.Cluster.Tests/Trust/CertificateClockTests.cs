using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

/// <summary>A certificate refused for its dates says so: a clock to set right, or one to issue again.</summary>
public class CertificateClockTests
{
    private static X509Certificate2 Signed(TestTrust trust, DateTimeOffset from, DateTimeOffset to)
    {
        var ca = trust.Ca; // with its key, as CreateCa made it
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=web1, OU=node", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        request.CertificateExtensions.Add(CellIdentity.Of(CellRole.Node, "web1", "web1", ["client"], []).ToExtension());
        // Signed with the CA's key by name: the CA's own dates do not bound these (one issued before the CA's, expired).
        using var caKey = ca.GetECDsaPrivateKey()!;
        using var cert = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), from, to, RandomNumberGenerator.GetBytes(16));
        return X509CertificateLoader.LoadCertificate(cert.RawData);
    }

    [Fact]
    public void A_certificate_from_a_host_whose_clock_runs_ahead_says_to_set_the_clock_and_one_past_its_years_to_issue_it_again()
    {
        using var trust = new TestTrust();
        var now = DateTimeOffset.UtcNow;
        using var ahead = Signed(trust, now.AddHours(1), now.AddDays(10));
        Assert.Contains("set this host's clock", CellCertificates.Check(ahead, trust.Ca));
        using var expired = Signed(trust, now.AddDays(-10), now.AddDays(-1));
        Assert.Contains("expired at", CellCertificates.Check(expired, trust.Ca));
        using var fine = Signed(trust, now.AddMinutes(-5), now.AddDays(10));
        Assert.Null(CellCertificates.Check(fine, trust.Ca));
        // Another cell's, expired too: another cell's first.
        using var other = new TestTrust("other");
        using var foreign = Signed(other, now.AddDays(-10), now.AddDays(-1));
        Assert.Contains("is not from this cell's CA", CellCertificates.Check(foreign, trust.Ca));
    }
}
