using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Crypto;

/// <summary>
/// The keys a node holds. The cell key (<see cref="MasterKey"/>) holds them all: every client's keys derive from it.
/// A client host that is given only its own keyring (<c>actorbackup keys issue</c>: the cell's data keys and its
/// client key) can back up, and read and seal its own snapshots, but cannot read another client's trees nor seal a
/// snapshot in another client's name; file chunks stay under the cell's data keys so that dedup spans the cell,
/// unless a backup set asks for a private key domain (<see cref="KeyScheme.ClientPrivate"/>).
/// <code>
/// cell key ─┬─ chunk-id, gear, data keys   (shared: file chunks of CLIENT snapshots; every manifest chunk)
///           ├─ manifest key v1             (CELL snapshots: before per-client keys)
///           └─ client key of C ─┬─ tree-id, tree keys, manifest key v2
///                                └─ private chunk-id, gear, data keys (CLIENT_PRIVATE)
/// </code>
/// Thread-safe.
/// </summary>
public sealed class KeyRing
{
    private readonly MasterKey? _master;
    private readonly string _client = "";
    private readonly byte[] _clientKey = [];
    private readonly ConcurrentDictionary<(string, KeyScheme), CellKeys> _keys = new();
    /// <summary>Other clients' keys granted for a job (WithGrant): a restore of their snapshot onto this host.</summary>
    private readonly IReadOnlyDictionary<string, byte[]> _granted = new Dictionary<string, byte[]>();

    /// <summary>The cell's shared data keys: file chunks of CLIENT snapshots and every stored manifest.</summary>
    public KeyDomain Shared { get; }
    public GearTable SharedGear { get; }

    /// <summary>Holds the cell key: every client's keys.</summary>
    public KeyRing(MasterKey master)
    {
        _master = master;
        Shared = new KeyDomain("the cell's data", master.ChunkIdKey, master.DataKey);
        SharedGear = GearTable.FromSeed(master.GearSeed);
    }

    private KeyRing(ClientKeyFile file)
    {
        _client = file.Client;
        _clientKey = file.ClientKey;
        Shared = new KeyDomain("the cell's data", file.ChunkIdKey, file.DataKey);
        SharedGear = GearTable.FromSeed(file.GearSeed);
    }

    private KeyRing(KeyRing ring, string client, byte[] clientKey)
    {
        _master = ring._master;
        _client = ring._client;
        _clientKey = ring._clientKey;
        Shared = ring.Shared;
        SharedGear = ring.SharedGear;
        _granted = new Dictionary<string, byte[]>(ring._granted) { [client] = clientKey };
    }

    /// <summary>This ring and <paramref name="client"/>'s key, granted for one job (a restore of its snapshot onto this host); not kept.</summary>
    public KeyRing WithGrant(string client, byte[] clientKey)
    {
        if (clientKey.Length != 32) throw new InvalidDataException($"a granted key of client {client} is {clientKey.Length} bytes, not 32");
        return new KeyRing(this, client, clientKey.ToArray());
    }

    /// <summary>The client key of <paramref name="client"/> (to grant it for a job); throws <see cref="MissingKeyException"/> when this ring lacks it.</summary>
    public byte[] ClientKey(string client) =>
        Holds(client, KeyScheme.Client) ? KeyOf(client).ToArray() : throw Missing(client, KeyScheme.Client);

    private byte[] KeyOf(string client) =>
        _master is not null ? ClientKeyOf(_master, client) : client == _client ? _clientKey : _granted[client];

    /// <summary>Whether this ring holds the cell key (every client's keys) rather than one client's.</summary>
    public bool HoldsCellKey => _master is not null;
    /// <summary>The one client whose keys this ring holds; empty when it holds the cell key.</summary>
    public string OnlyClient => _client;

    public bool Holds(string client, KeyScheme scheme) =>
        _master is not null || (scheme != KeyScheme.Cell && (client == _client || _granted.ContainsKey(client)));

    /// <summary>The keys of <paramref name="client"/>'s snapshots under <paramref name="scheme"/>; throws <see cref="MissingKeyException"/> when this ring lacks them.</summary>
    public CellKeys For(string client, KeyScheme scheme = KeyScheme.Client)
    {
        if (!Enum.IsDefined(scheme)) throw new ForgedManifestException($"key scheme {(int)scheme} is unknown to this build: is the snapshot from a newer version?");
        if (!Holds(client, scheme)) throw Missing(client, scheme);
        return _keys.GetOrAdd((client, scheme), k => Derive(k.Item1, k.Item2));
    }

    private MissingKeyException Missing(string client, KeyScheme scheme) => new(scheme == KeyScheme.Cell
        ? $"snapshots made before per-client keys are under the cell key, and this node holds only client {_client}'s keys: read it on a node that holds the cell key (the cell's first node)"
        : $"this node holds only client {_client}'s keys, not client {(client == "" ? "(none)" : client)}'s: read it on {(client == "" ? "that client" : client)} or on a node that holds the cell key");

    /// <summary>The keys a snapshot is under.</summary>
    public CellKeys For(SnapshotManifest manifest) => For(manifest.Client, manifest.Keys);

    /// <summary>Parses a manifest and checks its seal under its client's keys (ManifestSeal).</summary>
    public SnapshotManifest Open(ByteString bytes)
    {
        SnapshotManifest manifest;
        try
        {
            manifest = SnapshotManifest.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ForgedManifestException($"a snapshot manifest of {bytes.Length} bytes does not parse ({e.Message}): not used");
        }
        ManifestSeal.Check(For(manifest), manifest);
        return manifest;
    }

    private CellKeys Derive(string client, KeyScheme scheme)
    {
        if (scheme == KeyScheme.Cell)
        {
            var master = _master!;
            return new CellKeys(client, scheme, Shared, Shared, SharedGear, master.ManifestKey);
        }
        var clientKey = KeyOf(client);
        var trees = new KeyDomain($"client {client}'s trees", Sub(clientKey, "tree-id v1"), Sub(clientKey, "tree v1"));
        var manifestKey = Sub(clientKey, "manifest mac v2");
        return scheme == KeyScheme.Client
            ? new CellKeys(client, scheme, Shared, trees, SharedGear, manifestKey)
            : new CellKeys(client, scheme, new KeyDomain($"client {client}'s private data", Sub(clientKey, "private chunk-id v1"), Sub(clientKey, "private data v1")),
                trees, GearTable.FromSeed(Sub(clientKey, "private gear v1")), manifestKey);
    }

    private static byte[] ClientKeyOf(MasterKey master, string client) => master.Derive("client v1 " + client);

    private static byte[] Sub(byte[] clientKey, string label) =>
        HKDF.Expand(HashAlgorithmName.SHA256, clientKey, 32, Encoding.UTF8.GetBytes("actorbackup client " + label));

    // ---- a client's keyring on disk ----

    /// <summary>Writes <paramref name="client"/>'s keyring (the cell's data keys and its own client key) to <paramref name="path"/>, 0600 in a 0700 folder.</summary>
    public void IssueClientKeyring(string client, string path)
    {
        if (_master is null) throw new MissingKeyException($"only a holder of the cell key can issue a client's keyring; this one holds client {_client}'s keys only");
        if (string.IsNullOrWhiteSpace(client) || client.Length > 128 || client.Any(char.IsControl)) throw new ArgumentException($"'{client}' is not a client id");
        var file = new ClientKeyFile
        {
            Client = client, ChunkIdKey = _master.ChunkIdKey, GearSeed = _master.GearSeed, DataKey = _master.DataKey, ClientKey = ClientKeyOf(_master, client),
            Created = DateTimeOffset.UtcNow,
        };
        KeyStore.WritePrivate(path, JsonSerializer.Serialize(file, ClientKeyFile.Json));
    }

    /// <summary>A client's keyring as <see cref="IssueClientKeyring"/> wrote it; a damaged file is an error that names it.</summary>
    public static KeyRing LoadClientKeyring(string path)
    {
        ClientKeyFile? file;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > 64 * 1024) throw new InvalidDataException($"{path} is {info.Length} bytes: not a client keyring");
            file = JsonSerializer.Deserialize<ClientKeyFile>(File.ReadAllText(path), ClientKeyFile.Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a client keyring: {e.Message}. Issue it again (actorbackup keys issue)", e);
        }
        if (file is null || file.Version != 1 || string.IsNullOrWhiteSpace(file.Client) || file.Client.Length > 128
            || file.ChunkIdKey is not { Length: 32 } || file.GearSeed is not { Length: 32 } || file.DataKey is not { Length: 32 } || file.ClientKey is not { Length: 32 })
            throw new InvalidDataException($"{path} is damaged (version, client or a key missing or of the wrong size): issue it again (actorbackup keys issue)");
        return new KeyRing(file);
    }

    private sealed class ClientKeyFile
    {
        public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
        [JsonPropertyName("version")] public int Version { get; set; } = 1;
        [JsonPropertyName("client")] public string Client { get; set; } = "";
        [JsonPropertyName("chunk_id_key")] public byte[] ChunkIdKey { get; set; } = [];
        [JsonPropertyName("gear_seed")] public byte[] GearSeed { get; set; } = [];
        [JsonPropertyName("data_key")] public byte[] DataKey { get; set; } = [];
        [JsonPropertyName("client_key")] public byte[] ClientKey { get; set; } = [];
        [JsonPropertyName("created")] public DateTimeOffset Created { get; set; }
    }
}

/// <summary>This node lacks the keys a snapshot is under (another client's, with a client's keyring only). An IOException: the job fails, nothing is lost.</summary>
public sealed class MissingKeyException(string message) : IOException(message);
