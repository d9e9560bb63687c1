using ActorBackup.Cluster.Client;
using ActorBackup.Engine.Crypto;

namespace ActorBackup.Cluster.Tests;

/// <summary>A node's key folder: the cell key, or one client's keyring, never both unnoticed.</summary>
public sealed class CellKeyringTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-keys-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_key_folder_with_the_cell_key_and_a_keyring_is_refused_and_a_keyring_for_another_client_too()
    {
        var cell = Path.Combine(_dir, "cell");
        var ring = CellKeyring.Load(cell, "host-a"); // the first client node creates the cell key
        Assert.True(ring.HoldsCellKey);
        var host = Path.Combine(_dir, "host-b");
        ring.IssueClientKeyring("host-b", Path.Combine(host, CellKeyring.ClientKeyringFile));
        Assert.Equal("host-b", CellKeyring.Load(host, "host-b").OnlyClient);
        Assert.Contains("keyring of client host-b", Assert.Throws<InvalidDataException>(() => CellKeyring.Load(host, "host-c")).Message);
        // An upgraded host that still has the cell key beside its new keyring: refused, saying which to remove.
        File.Copy(Path.Combine(cell, "master.json"), Path.Combine(host, "master.json"));
        Assert.Contains("remove master.json and cell.key", Assert.Throws<InvalidDataException>(() => CellKeyring.Load(host, "host-b")).Message);
    }

    [Fact]
    public void A_new_cell_key_and_its_key_file_are_private_from_their_creation()
    {
        var cell = Path.Combine(_dir, "new", "keys");
        Assert.True(CellKeyring.Load(cell, "host-a").HoldsCellKey);
        const UnixFileMode owner = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        Assert.Equal(owner | UnixFileMode.UserExecute, File.GetUnixFileMode(cell)); // made 0700, not the umask's 0755
        Assert.Equal(owner, File.GetUnixFileMode(Path.Combine(cell, "cell.key")));
        Assert.Equal(owner, File.GetUnixFileMode(Path.Combine(cell, "master.json")));
        Assert.Equal(["cell.key", "master.json"], Directory.GetFiles(cell).Select(Path.GetFileName).Order(StringComparer.Ordinal)); // no temporary left
        Assert.True(CellKeyring.Load(cell, "host-a").HoldsCellKey); // and it opens again
    }

    [Fact]
    public void Only_the_cells_first_node_makes_a_cell_key_whatever_its_roles()
    {
        // A client host started before its keyring was copied: it says what to run, and makes no key of its own.
        var host = Path.Combine(_dir, "web1");
        var refused = Assert.Throws<FileNotFoundException>(() => CellKeyring.Load(host, "web1", create: false)).Message;
        Assert.Contains("actorbackup keys issue --keys DATA/keys --client web1", refused);
        Assert.False(File.Exists(Path.Combine(host, "master.json")));
        // The first node past its first start, its key gone: not made again (nothing made before would open), said.
        var lost = Path.Combine(_dir, "lost");
        Assert.Contains("though this cell's CA is there", Assert.Throws<FileNotFoundException>(() => CellKeyring.Load(lost, "n1", create: false, firstSeed: true)).Message);
        Assert.False(File.Exists(Path.Combine(lost, "master.json")));
        // The first node with the manager role alone: its key folder gets the cell key, to issue keyrings from.
        var first = Path.Combine(_dir, "manager");
        CellKeyring.EnsureCellKey(first);
        var master = File.ReadAllBytes(Path.Combine(first, "master.json"));
        CellKeyring.EnsureCellKey(first); // kept, not made again
        Assert.Equal(master, File.ReadAllBytes(Path.Combine(first, "master.json")));
        var ring = CellKeyring.Load(first, "manager");
        ring.IssueClientKeyring("web1", Path.Combine(host, CellKeyring.ClientKeyringFile));
        Assert.Equal("web1", CellKeyring.Load(host, "web1", create: false).OnlyClient);
    }
}
