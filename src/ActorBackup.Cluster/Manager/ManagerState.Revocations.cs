using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Manager;

public sealed partial record ManagerState
{
    /// <summary>The most certificates a cell revokes (a bound on the list every node keeps and is sent).</summary>
    public const int MaxRevoked = 100_000;

    /// <summary>The most bytes the list may take: it goes whole in one message (frames are 4 MiB at most).</summary>
    public const int MaxRevokedBytes = 2 * 1024 * 1024;

    /// <summary>
    /// `abk cert revoke SERIAL`: the certificate of that serial number is refused by every node from when it hears of it
    /// (a lost operator key, a decommissioned host). Once revoked it stays so (a new certificate is issued instead).
    /// </summary>
    /// <param name="manager">the serial of the manager node's own certificate: revoked, every node would refuse the manager</param>
    /// <param name="signer">the serial of the certificate that signed the command (revoked only with force: a lock-out)</param>
    public Decision DecideRevoke(RevokeCertificate cmd, DateTimeOffset now, string manager = "", string signer = "")
    {
        if (RevokedCertificates.Normalize(cmd.Serial) is not { } serial)
            return Reject($"'{cmd.Serial}' is not a certificate serial number (hex, at most 40 digits, as 'actorbackup ca show CERT' prints it): " +
                          "give the serial, or the certificate file (abk cert revoke FILE)");
        if (Revoked.TryGetValue(serial, out var was))
            return Reject($"certificate {serial}{(was.Subject == "" ? "" : $" ({was.Subject})")} was revoked already, at {DateTimeOffset.FromUnixTimeMilliseconds(was.UnixMs):u}");
        if (serial == manager)
            return Reject($"certificate {serial} is the manager node's own: revoked, every node would refuse the manager. Stop that node (the manager moves " +
                          "to another manager node, or issue that node a new certificate and start it again), then revoke this one");
        if (serial == signer && !cmd.Force)
            return Reject($"certificate {serial} is the one this command is signed with: revoked, it locks you out of the cell. Use another operator's " +
                          "certificate (actorbackup ca issue --role operator), or give --force");
        if (cmd.Subject.Length > 512 || cmd.Reason.Length > 1024) return Reject("the subject or the reason is too long (512 and 1,024 characters at most)");
        var revoked = new CertificateRevoked { Serial = serial, Subject = cmd.Subject, Reason = cmd.Reason, UnixMs = now.ToUnixTimeMilliseconds() };
        if (Revoked.Count >= MaxRevoked || RevocationList().CalculateSize() + revoked.CalculateSize() + 8 > MaxRevokedBytes)
            return Reject($"the cell's list of revoked certificates is full ({Revoked.Count}): make a new CA and issue every certificate again (actorbackup ca init)");
        return new Decision([revoked], null);
    }

    /// <summary>The cell's revoked certificates (unsigned: the manager signs what it sends).</summary>
    public Revocations RevocationList() => new() { Revoked = { Revoked.Values } };
}
