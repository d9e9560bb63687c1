using ActorBackup.Cluster.Manager;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

/// <summary>`abk cert revoke`: a certificate the cell revoked is refused in TLS and as a signer, on every node that heard of it, for good.</summary>
public sealed class RevocationTests : IDisposable
{
    private readonly TestTrust _cell = new();
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 7, 0, 0, TimeSpan.Zero);

    public void Dispose() => _cell.Dispose();

    [Fact]
    public void The_manager_keeps_each_revoked_serial_once_written_one_way_and_through_its_snapshot()
    {
        var s = new ManagerState();
        Assert.Contains("is not a certificate serial number", s.DecideRevoke(new RevokeCertificate { Serial = "not-hex" }, Now).Rejection);
        Assert.Contains("is not a certificate serial number", s.DecideRevoke(new RevokeCertificate { Serial = new string('A', 41) }, Now).Rejection);
        var revoked = s.DecideRevoke(new RevokeCertificate { Serial = "00:1a:2B:3c", Subject = "CN=bob", Reason = "lost laptop" }, Now);
        Assert.Null(revoked.Rejection);
        var e = Assert.IsType<CertificateRevoked>(Assert.Single(revoked.Events));
        Assert.Equal("1A2B3C", e.Serial); // as the certificate's serial reads, whatever way it was written
        s = s.Apply(e);
        Assert.Contains("was revoked already", s.DecideRevoke(new RevokeCertificate { Serial = "1a2b3c" }, Now).Rejection);
        // Not the manager node's own (every node would refuse the manager), nor the signer's own without --force.
        Assert.Contains("the manager node's own", s.DecideRevoke(new RevokeCertificate { Serial = "aa" }, Now, manager: "AA", signer: "BB").Rejection);
        Assert.Contains("locks you out", s.DecideRevoke(new RevokeCertificate { Serial = "bb" }, Now, manager: "AA", signer: "BB").Rejection);
        Assert.Null(s.DecideRevoke(new RevokeCertificate { Serial = "bb", Force = true }, Now, manager: "AA", signer: "BB").Rejection);
        // The list goes whole in one message: bounded in bytes.
        var big = Enumerable.Range(1, 1600).Aggregate(s, (st, i) => st.Apply(new CertificateRevoked { Serial = i.ToString("X8"), Reason = new string('r', 1024), Subject = new string('s', 300) }));
        Assert.Contains("list of revoked certificates is full", big.DecideRevoke(new RevokeCertificate { Serial = "CC", Reason = new string('r', 1024) }, Now).Rejection);
        var again = new ManagerState().Apply(s.ToSnapshot());
        Assert.Equal("lost laptop", again.Revoked["1A2B3C"].Reason);
        Assert.Equal(["1A2B3C"], again.RevocationList().Revoked.Select(r => r.Serial));
    }

    [Fact]
    public void A_revoked_certificate_is_refused_in_TLS_and_as_a_signer_even_one_checked_before()
    {
        var (bob, _) = _cell.Issue(CellIdentity.Of(CellRole.Operator, "bob-" + Guid.NewGuid().ToString("n")[..6]));
        var (alice, _) = _cell.Issue(CellIdentity.Of(CellRole.Operator, "alice"));
        var signed = OperatorCommands.Sign(new ListClients(), bob, DateTimeOffset.UtcNow);
        Assert.NotNull(SignedMessages.Signer(_cell.Ca, signed, out _)); // checked, and remembered as checked
        Assert.Null(CellCertificates.Check(bob, _cell.Ca));

        Assert.True(RevokedCertificates.Add(_cell.Ca, [RevokedCertificates.SerialOf(bob)]));
        Assert.Contains("was revoked", CellCertificates.Check(bob, _cell.Ca));
        Assert.Null(SignedMessages.Signer(_cell.Ca, signed, out var refusal));
        Assert.Contains("was revoked", refusal);
        Assert.Null(CellCertificates.Check(alice, _cell.Ca)); // the others stay
        using var other = new TestTrust("other");
        Assert.DoesNotContain(RevokedCertificates.SerialOf(bob), RevokedCertificates.Of(other.Ca)); // per cell
    }

    [Fact]
    public void A_node_keeps_what_it_learned_in_its_certs_folder_and_takes_the_list_only_from_a_manager_node()
    {
        using var node = _cell.Node("n-" + Guid.NewGuid().ToString("n")[..6]);
        var (carol, _) = _cell.Issue(CellIdentity.Of(CellRole.Operator, "carol-" + Guid.NewGuid().ToString("n")[..6]));
        var serial = RevokedCertificates.SerialOf(carol);
        Assert.True(node.Learn([serial]));
        Assert.Contains(serial, File.ReadAllLines(Path.Combine(node.Dir, NodeTrust.RevokedFile)));
        Assert.False(node.Learn([serial])); // nothing new: not written again

        var list = new Revocations { Revoked = { new CertificateRevoked { Serial = "ABCDEF" } } };
        using var client = _cell.Node(CellIdentity.Of(CellRole.Node, "c1", "c1", ["client"], []));
        Assert.Contains("not by a manager node", MessageSignature.NotFromManager(client, MessageSignature.Sign(list.Clone(), client)));
        Assert.Null(MessageSignature.NotFromManager(client, MessageSignature.Sign(list.Clone(), node)));
    }
}
