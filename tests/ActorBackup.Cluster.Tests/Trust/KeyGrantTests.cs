using ActorBackup.Cluster.Trust;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// A client's key goes to another client node only for the restore of one of that client's snapshots onto it: the
/// manager signed the assignment, its ticket names the asking node, and the snapshot is sealed by that client.
/// </summary>
public sealed class KeyGrantTests : IDisposable
{
    private readonly TestTrust _cell = new();
    private readonly NodeTrust _manager, _hostA, _hostB, _hostC;
    private readonly KeyRing _cellKey = new(MasterKey.Generate());
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    public KeyGrantTests()
    {
        _manager = Node(CellIdentity.Of(CellRole.Node, "mgr", "", ["manager"]));
        _hostA = Node(CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        _hostB = Node(CellIdentity.Of(CellRole.Node, "host-b", "host-b", ["client"]));
        _hostC = Node(CellIdentity.Of(CellRole.Node, "host-c", "host-c", ["client"]));
    }

    public void Dispose()
    {
        foreach (var n in new[] { _manager, _hostA, _hostB, _hostC }) n.Dispose();
        _replyKey.Dispose();
        _cell.Dispose();
    }

    private NodeTrust Node(CellIdentity identity) => _cell.Node(identity);

    private SnapshotManifest Snapshot(string client = "host-a", KeyScheme scheme = KeyScheme.Client, KeyRing? sealedBy = null)
    {
        var m = new SnapshotManifest { Id = "a1b2c3d4e5f60718", Client = client, BackupSet = "/etc", RootTree = ByteString.CopyFrom(new byte[32]), Library = "lib1" };
        ManifestSeal.Seal((sealedBy ?? _cellKey).For(client, scheme), m);
        return m;
    }

    private RestoreAssignment Assignment(SnapshotManifest? snapshot = null, string onto = "host-b", NodeTrust? signedBy = null, JobKind kind = JobKind.Restore)
    {
        var job = new JobInfo { Id = "9", Kind = kind, Client = onto, Library = "lib1", Target = "/srv/restore" };
        var a = new RestoreAssignment
        {
            Job = job, Manifest = (snapshot ?? Snapshot()).ToByteString(),
            Ticket = MessageSignature.Sign(JobTickets.For(job, read: ["lib1"], write: [], Now), _manager),
        };
        return MessageSignature.Sign(a, signedBy ?? _manager);
    }

    private readonly System.Security.Cryptography.ECDiffieHellman _replyKey = KeySealing.NewReplyKey();

    private RequestClientKey Request(RestoreAssignment? assignment = null, string client = "host-a", NodeTrust? by = null, byte[]? replyKey = null) =>
        MessageSignature.Sign(new RequestClientKey
        {
            Client = client, Assignment = (assignment ?? Assignment()).ToByteString(), ReplyKey = ByteString.CopyFrom(replyKey ?? KeySealing.PublicKey(_replyKey)),
        }, by ?? _hostB);

    private string? Check(RequestClientKey request, NodeTrust? trust = null, DateTimeOffset? at = null) =>
        KeyGrants.Refusal(trust ?? _hostA, _cellKey, request, at ?? Now, out _);

    [Fact]
    public void A_key_goes_only_to_the_node_a_manager_signed_restore_names_for_a_snapshot_its_client_sealed()
    {
        Assert.Null(KeyGrants.Refusal(_hostA, _cellKey, Request(), Now, out var job));
        Assert.Equal("9", job);
        // Another client node replaying or making up the request: not the node the assignment and its ticket name.
        Assert.Contains("restores onto client host-b", Check(Request(by: _hostC)));
        Assert.Contains("not signed", Check(new RequestClientKey { Client = "host-a", Assignment = Assignment().ToByteString() }));
        // An assignment the asking node signed itself, or changed after the manager signed it.
        Assert.Contains("not by a manager node", Check(Request(Assignment(signedBy: _hostB))));
        var changed = Assignment();
        changed.Job.Client = "host-c";
        Assert.Contains("does not check", Check(Request(changed, by: _hostC)));
        Assert.Contains("no restore", Check(Request(Assignment(kind: JobKind.Verify))));
        // The ticket expired, or the key of a client whose snapshot the job does not restore.
        Assert.Contains("expired", Check(Request(), at: Now + JobTickets.JobLifetime + TimeSpan.FromMinutes(1)));
        Assert.Contains("not of host-c", Check(Request(client: "host-c")));
        // A snapshot host-a did not seal (another cell's key, or relabelled): no key for it.
        Assert.Contains("seal", Check(Request(Assignment(Snapshot(sealedBy: new KeyRing(MasterKey.Generate()))))));
        // Snapshots from before per-client keys would need the cell key itself: never given.
        Assert.Contains("before per-client keys", Check(Request(Assignment(Snapshot(scheme: KeyScheme.Cell)))));
        // A request that names no key to seal the answer to (or a key that is none): refused.
        Assert.Contains("no key to seal", Check(Request(replyKey: [])));
        Assert.Contains("no P-256 key", Check(Request(replyKey: new byte[91])));
        // Another signature over the request with its reply key swapped: the signature no longer checks.
        var swapped = Request();
        using (var mine = KeySealing.NewReplyKey()) swapped.ReplyKey = ByteString.CopyFrom(KeySealing.PublicKey(mine));
        Assert.Contains("does not check", Check(swapped));
        // Without certificates no key is given at all.
        Assert.NotNull(KeyGrants.Refusal(null, _cellKey, Request(), Now, out _));
    }

    [Fact]
    public void A_granted_key_opens_that_clients_snapshot_for_the_job_and_nothing_is_kept()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "client.json");
        _cellKey.IssueClientKeyring("host-b", path);
        var hostB = KeyRing.LoadClientKeyring(path);
        var snapshot = Snapshot();
        Assert.Throws<MissingKeyException>(() => hostB.Open(snapshot.ToByteString()));
        var granted = hostB.WithGrant("host-a", _cellKey.ClientKey("host-a"));
        Assert.Equal("host-a", granted.Open(snapshot.ToByteString()).Client);
        Assert.Throws<MissingKeyException>(() => hostB.Open(snapshot.ToByteString())); // the node's own ring is unchanged
        Assert.Throws<MissingKeyException>(() => granted.For("host-c"));
        // A keyring gives only its own client's key.
        Assert.Throws<MissingKeyException>(() => hostB.ClientKey("host-a"));
    }

    [Fact]
    public void A_granted_key_opens_only_with_the_reply_key_of_the_request_it_answers()
    {
        var secret = _cellKey.ClientKey("host-a");
        var context = KeySealing.Context("host-a", "9");
        var (sealer, sealedKey) = KeySealing.Seal(KeySealing.PublicKey(_replyKey), secret, context);
        Assert.Equal(secret, KeySealing.Open(_replyKey, sealer, sealedKey, context));
        Assert.DoesNotContain(Convert.ToHexString(secret), Convert.ToHexString(sealedKey)); // not in the clear
        // A node that replayed the request (or sent it on) holds another key pair: the answer does not open for it.
        using (var replayer = KeySealing.NewReplyKey())
            Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => KeySealing.Open(replayer, sealer, sealedKey, context));
        // Nor for another job or client, nor changed on the way.
        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => KeySealing.Open(_replyKey, sealer, sealedKey, KeySealing.Context("host-a", "10")));
        var flipped = (byte[])sealedKey.Clone();
        flipped[20] ^= 1;
        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => KeySealing.Open(_replyKey, sealer, flipped, context));
        Assert.ThrowsAny<System.Security.Cryptography.CryptographicException>(() => KeySealing.Open(_replyKey, new byte[300], sealedKey, context));
    }

    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("abk-grant-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
