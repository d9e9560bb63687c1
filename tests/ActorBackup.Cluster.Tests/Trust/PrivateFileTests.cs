using ActorBackup.Cluster.Client;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

/// <summary>Secret files others than their owner may read or write are refused, with what to do, as ssh and PostgreSQL refuse theirs.</summary>
public sealed class PrivateFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-private-").FullName;
    private readonly TestTrust _cell = new();

    public void Dispose()
    {
        _cell.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private const UnixFileMode Owner = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public void A_certificates_key_or_the_CAs_key_that_others_may_read_is_refused()
    {
        var (_, dir) = _cell.Issue(CellIdentity.Of(CellRole.Operator, "ops"));
        var name = CellCertificates.PairName(CellRole.Operator);
        var key = Path.Combine(dir, name + ".key");
        Assert.NotNull(CellCertificates.LoadPair(dir, name, _cell.Ca).Certificate); // 0600 as issued
        File.SetUnixFileMode(key, Owner | UnixFileMode.OtherRead);
        var refused = Assert.Throws<InvalidDataException>(() => CellCertificates.LoadPair(dir, name, _cell.Ca)).Message;
        Assert.Contains("may be read by any user of this host", refused);
        Assert.Contains($"chmod 600 {key}", refused);
        // The CA's key: a certificate it issues is refused while it is group-writable.
        File.SetUnixFileMode(Path.Combine(_cell.Dir, CellCertificates.CaKey), Owner | UnixFileMode.GroupWrite);
        Assert.Contains("may be written by its group", Assert.Throws<InvalidDataException>(() => _cell.Issue(CellIdentity.Of(CellRole.Operator, "ops2"))).Message);
    }

    [Fact]
    public void The_cell_key_file_or_a_client_keyring_that_others_may_read_is_refused()
    {
        var cell = Path.Combine(_dir, "cell");
        var ring = CellKeyring.Load(cell, "host-a");
        File.SetUnixFileMode(Path.Combine(cell, "cell.key"), Owner | UnixFileMode.GroupRead);
        Assert.Contains("may be read by its group", Assert.Throws<InvalidDataException>(() => CellKeyring.Load(cell, "host-a")).Message);
        File.SetUnixFileMode(Path.Combine(cell, "cell.key"), Owner);
        Assert.True(CellKeyring.Load(cell, "host-a").HoldsCellKey);

        var host = Path.Combine(_dir, "host-b");
        var keyring = Path.Combine(host, CellKeyring.ClientKeyringFile);
        ring.IssueClientKeyring("host-b", keyring);
        File.SetUnixFileMode(keyring, Owner | UnixFileMode.OtherRead);
        Assert.Contains($"chmod 600 {keyring}", Assert.Throws<InvalidDataException>(() => CellKeyring.Load(host, "host-b")).Message);
    }
}
