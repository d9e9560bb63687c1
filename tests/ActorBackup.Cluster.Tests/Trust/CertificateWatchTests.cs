using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

public sealed class CertificateWatchTests
{
    [Fact]
    public void A_nodes_certificate_and_the_ca_are_warned_of_30_days_before_their_end_and_said_expired_after()
    {
        using var cell = new TestTrust();
        using var node = cell.Node();
        var end = node.Certificate.NotAfter.ToUniversalTime();
        Assert.True(end < cell.Ca.NotAfter.ToUniversalTime().AddDays(-31), "a node certificate ends well before its CA");

        Assert.Empty(CertificateWatch.Warnings(node.Certificate, node.Ca, end.AddDays(-31)));
        var soon = Assert.Single(CertificateWatch.Warnings(node.Certificate, node.Ca, end.AddDays(-29)));
        Assert.False(soon.Expired);
        Assert.Contains("this node's certificate", soon.Text);
        Assert.Contains($"expires at {end:u}", soon.Text);
        Assert.Contains("actorbackup ca issue --role node", soon.Text);
        var past = Assert.Single(CertificateWatch.Warnings(node.Certificate, node.Ca, end.AddMinutes(1)));
        Assert.True(past.Expired);
        Assert.Contains("expired at", past.Text);

        var caEnd = cell.Ca.NotAfter.ToUniversalTime();
        var ca = Assert.Single(CertificateWatch.Warnings(node.Certificate, node.Ca, caEnd.AddDays(-10)));
        Assert.Contains("the cell's CA expires", ca.Text);
        Assert.Contains("actorbackup ca init", ca.Text);
    }
}
