using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol.Trust;
using Akka.Configuration;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// A node's certificates written at its first start, or issued again, and cut short (a kill, a power cut between two
/// files): the next start finishes the work instead of refusing to start with a wrong reason.
/// </summary>
public sealed class FirstStartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-first-").FullName;
    private string Certs => Path.Combine(_dir, "certs");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private NodeTrust Start() => NodeTrust.ForNode(Hocon(Certs), NodeSettings.From(Hocon(Certs)));

    private static Config Hocon(string certs) => ConfigurationFactory.ParseString($$"""
            actorbackup.certs-dir = "{{certs}}"
            actorbackup.client-id = "n1"
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = 4053
            akka.cluster.seed-nodes = ["akka.tcp://actorbackup@127.0.0.1:4053"]
            """).WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon")));

    private string Node(string ext) => Path.Combine(Certs, CellCertificates.PairName(CellRole.Node) + ext);

    [Fact]
    public void Only_the_start_that_makes_the_CA_makes_the_cell()
    {
        Assert.True(NodeTrust.MakesCell(Hocon(Certs), NodeSettings.From(Hocon(Certs)))); // its start makes the cell key, then the CA
        Start().Dispose();
        Assert.False(NodeTrust.MakesCell(Hocon(Certs), NodeSettings.From(Hocon(Certs)))); // a key missing now was lost: not made anew
    }

    [Fact]
    public void A_first_start_cut_short_after_the_CA_was_made_issues_what_is_missing_with_that_CA()
    {
        using var ca = CellCertificates.CreateCa(Certs, "n1");
        Assert.True(NodeTrust.MakesCell(Hocon(Certs), NodeSettings.From(Hocon(Certs)))); // the CA alone, nothing issued: the cell key is made too
        using var trust = Start();
        Assert.Equal(ca.Thumbprint, trust.Ca.Thumbprint); // the same CA, not a new one
        Assert.Equal("n1", trust.Identity.Name);
        Assert.True(File.Exists(Path.Combine(Certs, CellCertificates.PairName(CellRole.Operator) + ".crt")));
    }

    [Fact]
    public void A_CA_key_whose_certificate_was_lost_is_put_aside_and_a_CA_made()
    {
        CellCertificates.CreateCa(Certs, "n1").Dispose();
        File.Delete(Path.Combine(Certs, CellCertificates.CaCert));
        using var trust = Start();
        Assert.True(File.Exists(Path.Combine(Certs, CellCertificates.CaKey + ".unused")));
        Assert.Equal("n1", trust.Identity.Name);
    }

    [Fact]
    public void A_pair_whose_key_was_moved_in_and_its_certificate_not_is_finished()
    {
        Start().Dispose();
        var other = Path.Combine(_dir, "other");
        using var issued = CellCertificates.Issue(Certs, CellIdentity.Of(CellRole.Node, "n1", "n1", ["manager", "media", "client"], ["lib1"]), other);
        File.Copy(Path.Combine(other, "node.key"), Node(".key"), overwrite: true); // moved in
        File.Copy(Path.Combine(other, "node.crt"), Node(".crt.tmp")); // not yet
        using var trust = Start();
        Assert.Equal(issued.Thumbprint, trust.Certificate.Thumbprint);
        Assert.False(File.Exists(Node(".crt.tmp")));
    }

    [Fact]
    public void A_new_key_beside_the_old_certificate_is_issued_again_where_the_CA_is_at_hand()
    {
        string before;
        using (var first = Start()) before = first.Certificate.Thumbprint;
        var other = Path.Combine(_dir, "other");
        CellCertificates.Issue(Certs, CellIdentity.Of(CellRole.Node, "n1", "n1", ["manager", "media", "client"], ["lib1"]), other).Dispose();
        File.Copy(Path.Combine(other, "node.key"), Node(".key"), overwrite: true); // its certificate lost
        using var trust = Start();
        Assert.NotEqual(before, trust.Certificate.Thumbprint);
        Assert.Equal("n1", trust.Identity.Name);
    }

    [Fact]
    public void A_node_refuses_the_certificates_its_certs_folder_lists_as_revoked_from_its_start()
    {
        Start().Dispose();
        var other = Path.Combine(_dir, "other");
        using var bob = CellCertificates.Issue(Certs, CellIdentity.Of(CellRole.Operator, "bob"), other);
        File.WriteAllText(Path.Combine(Certs, NodeTrust.RevokedFile), "\n" + bob.SerialNumber.ToLowerInvariant() + "\n");
        using var trust = Start();
        Assert.Contains("was revoked", CellCertificates.Check(bob, trust.Ca));
    }

    [Fact]
    public void A_pair_neither_of_whose_files_moved_leaves_the_old_pair()
    {
        string before;
        using (var first = Start()) before = first.Certificate.Thumbprint;
        File.WriteAllText(Node(".key.tmp"), "half a key");
        File.WriteAllText(Node(".crt.tmp"), "");
        using var trust = Start();
        Assert.Equal(before, trust.Certificate.Thumbprint);
        Assert.False(File.Exists(Node(".key.tmp")));
        Assert.False(File.Exists(Node(".crt.tmp")));
    }
}
