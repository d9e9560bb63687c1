using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Event;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// This node's certificate and the cell's CA, watched for their end: their expiry times as metrics, and a warning in
/// the node's log every 12 hours from <see cref="WarnBefore"/> ahead (an error once past), saying how to renew. A node
/// up for months would otherwise say it once, at its start, and on the day every message it signs is refused.
/// </summary>
public static class CertificateWatch
{
    public static readonly TimeSpan WarnBefore = TimeSpan.FromDays(30);
    private static readonly TimeSpan Every = TimeSpan.FromHours(12);

    public static void Start(ActorSystem system, NodeTrust trust)
    {
        Metrics.CellMetrics.CertificateExpiry.WithLabels("node").Set(new DateTimeOffset(trust.Certificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds());
        Metrics.CellMetrics.CertificateExpiry.WithLabels("ca").Set(new DateTimeOffset(trust.Ca.NotAfter.ToUniversalTime()).ToUnixTimeSeconds());
        var log = Logging.GetLogger(system, typeof(CertificateWatch));
        system.Scheduler.Advanced.ScheduleRepeatedly(TimeSpan.FromSeconds(10), Every, () =>
        {
            foreach (var line in Warnings(trust.Certificate, trust.Ca, DateTime.UtcNow))
                if (line.Expired) log.Error(line.Text);
                else log.Warning(line.Text);
        });
    }

    /// <summary>What to say of <paramref name="node"/>'s and <paramref name="ca"/>'s ends at <paramref name="now"/> (UTC): nothing until 30 days before.</summary>
    public static IEnumerable<(bool Expired, string Text)> Warnings(X509Certificate2 node, X509Certificate2 ca, DateTime now)
    {
        var caEnd = ca.NotAfter.ToUniversalTime();
        var nodeEnd = node.NotAfter.ToUniversalTime();
        if (caEnd - now < WarnBefore)
            yield return (now > caEnd, $"the cell's CA {(now > caEnd ? "expired" : "expires")} at {caEnd:u}: no certificate it issued is taken after that; " +
                                      "make a new CA (actorbackup ca init) and issue every node's and operator's certificate with it (README, \"Certificates\")");
        else if (nodeEnd - now < WarnBefore)
            yield return (now > nodeEnd, $"this node's certificate ('{node.Subject}') {(now > nodeEnd ? "expired" : "expires")} at {nodeEnd:u}: " +
                                         "the other nodes refuse what it signs and its connections from then on; issue a new one on the CA's host " +
                                         "(actorbackup ca issue --role node ..., README \"Certificates\") and restart this node with it");
    }
}
