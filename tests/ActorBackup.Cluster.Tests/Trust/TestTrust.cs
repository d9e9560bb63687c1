using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

/// <summary>A cell CA of a test's own, in a temporary folder, and the certificates it issues.</summary>
public sealed class TestTrust : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("abk-ca-").FullName;
    public X509Certificate2 Ca { get; }

    public TestTrust(string cell = "test") => Ca = CellCertificates.CreateCa(Dir, cell);

    /// <summary>A certificate of this CA for <paramref name="identity"/>, in a folder of its own (with ca.crt).</summary>
    public (X509Certificate2 Certificate, string Dir) Issue(CellIdentity identity)
    {
        var dir = Path.Combine(Dir, identity.Role + "-" + identity.Name + "-" + Guid.NewGuid().ToString("n")[..6]);
        return (CellCertificates.Issue(Dir, identity, dir), dir);
    }

    public NodeTrust Node(string name = "node1") => Node(CellIdentity.Of(CellRole.Node, name, name, ["manager", "media", "client"], ["lib1"]));

    /// <summary>A node's trust with a certificate of this CA for <paramref name="identity"/>.</summary>
    public NodeTrust Node(CellIdentity identity) => new(Dir, X509CertificateLoader.LoadCertificate(Ca.RawData), Issue(identity).Certificate, identity);

    public void Dispose()
    {
        Ca.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}
