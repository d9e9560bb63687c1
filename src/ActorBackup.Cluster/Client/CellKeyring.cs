using ActorBackup.Engine.Crypto;

namespace ActorBackup.Cluster.Client;

/// <summary>
/// The keys of a client node, from its key folder (actorbackup.key-dir, default DATA/keys): the cell key
/// (master.json, wrapped by the key file cell.key or by the passphrase in $ABK_PASSPHRASE), which holds every client's
/// keys, or one client's keyring (client.json, from 'actorbackup keys issue' on a holder of the cell key), which holds
/// the cell's data keys and that client's own. The cell's first node creates the cell key when it finds neither,
/// whatever its roles; another client node that finds neither refuses to start (a cell key of its own would make its
/// snapshots readable only with a key on that host, and dedup nothing with the cell's).
/// </summary>
public static class CellKeyring
{
    public const string ClientKeyringFile = "client.json";

    /// <param name="create">whether the cell key is created when the folder holds no key (the cell's first start)</param>
    /// <param name="firstSeed">whether this node is its cell's first (for the message when there is no key and none is made)</param>
    public static KeyRing Load(string keyDir, string clientId, bool create = true, bool firstSeed = false)
    {
        var wrappedPath = Path.Combine(keyDir, "master.json");
        var clientPath = Path.Combine(keyDir, ClientKeyringFile);
        if (File.Exists(wrappedPath) && File.Exists(clientPath))
            throw new InvalidDataException($"{keyDir} holds both the cell key (master.json) and a client keyring ({ClientKeyringFile}): to keep this host to its " +
                                           $"keyring, remove master.json and cell.key there (keep them on the cell's first node); to keep the cell key, remove {ClientKeyringFile}");
        if (File.Exists(clientPath))
        {
            Protocol.Trust.CellCertificates.CheckPrivate(clientPath);
            var ring = KeyRing.LoadClientKeyring(clientPath);
            if (ring.OnlyClient != clientId)
                throw new InvalidDataException($"{clientPath} is the keyring of client {ring.OnlyClient}, but this node is client {clientId}: " +
                                               $"issue its own on the host holding the cell key (actorbackup keys issue --client {clientId} --out DIR)");
            return ring;
        }
        if (!create && !File.Exists(wrappedPath) && firstSeed)
            throw new FileNotFoundException($"no cell key (master.json) in {keyDir}, though this cell's CA is there: put back master.json and cell.key from " +
                                            "where you kept them (every backup of the cell is encrypted under it). For a new cell whose CA was made apart " +
                                            $"(actorbackup ca init), make its key once: actorbackup keys init --keys {keyDir}");
        if (!create && !File.Exists(wrappedPath))
            throw new FileNotFoundException($"no cell key (master.json) and no keyring ({ClientKeyringFile}) in {keyDir}: this node is not its cell's first seed, so it " +
                                            "makes no cell key of its own (its snapshots would be readable only with a key on this host). On the host holding the " +
                                            $"cell key (DATA/keys of the cell's first node) run 'actorbackup keys issue --keys DATA/keys --client {clientId} --out DIR' " +
                                            $"and copy DIR/{ClientKeyringFile} into {keyDir} here (mode 600), then start the node again");
        return new KeyRing(LoadOrCreateMaster(keyDir));
    }

    /// <summary>
    /// The cell's first node without the client role: its key folder gets the cell key when it holds none, so that
    /// 'actorbackup keys issue' gives the cell's client hosts their keyrings from it.
    /// </summary>
    public static void EnsureCellKey(string keyDir)
    {
        if (!File.Exists(Path.Combine(keyDir, "master.json")) && !File.Exists(Path.Combine(keyDir, ClientKeyringFile))) LoadOrCreateMaster(keyDir);
    }

    /// <summary>The cell key from <paramref name="keyDir"/>, created there when it holds none.</summary>
    public static MasterKey LoadOrCreateMaster(string keyDir, bool create = true)
    {
        var wrappedPath = Path.Combine(keyDir, "master.json");
        var keyFile = Path.Combine(keyDir, "cell.key");
        var passphrase = Environment.GetEnvironmentVariable("ABK_PASSPHRASE");
        if (!File.Exists(wrappedPath))
        {
            if (!create) throw new FileNotFoundException($"no cell key in {keyDir} (master.json): give the key folder of the cell's first node (for a new cell " +
                                                         $"whose first node made none, its CA made apart: actorbackup keys init --keys {keyDir})");
            var master = MasterKey.Generate();
            KeyStore.WrappedKey wrapped;
            if (!string.IsNullOrEmpty(passphrase)) wrapped = KeyStore.WrapWithPassphrase(master, passphrase);
            else
            {
                var random = System.Security.Cryptography.RandomNumberGenerator.GetBytes(64);
                // 0600 from its creation in a 0700 folder, and durable before master.json names it.
                KeyStore.WritePrivate(keyFile, random);
                wrapped = KeyStore.WrapWithKeyFile(master, random);
            }
            KeyStore.Save(wrapped, wrappedPath);
            // Said once, where the operator looks at the first start: the one thing without which nothing comes back.
            Console.Error.WriteLine($"actorbackup: made the cell key in {keyDir} (master.json{(string.IsNullOrEmpty(passphrase) ? " and cell.key" : ", wrapped by $ABK_PASSPHRASE")}): " +
                                    "every backup of this cell is encrypted under it, and nothing can be restored without it. Copy it off this host now, " +
                                    "and keep it apart from the backups (README.md: what to keep)");
            return master;
        }
        var stored = KeyStore.Load(wrappedPath);
        if (stored.Kind == "keyfile")
        {
            if (!File.Exists(keyFile)) throw new FileNotFoundException($"the cell master key in {wrappedPath} is wrapped by a key file, and {keyFile} is missing: copy it from the node that created the cell");
            Protocol.Trust.CellCertificates.CheckPrivate(keyFile);
            return KeyStore.UnwrapWithKeyFile(stored, File.ReadAllBytes(keyFile));
        }
        if (string.IsNullOrEmpty(passphrase)) throw new WrongKeyException($"the cell master key in {wrappedPath} is wrapped by a passphrase: set ABK_PASSPHRASE");
        return KeyStore.UnwrapWithPassphrase(stored, passphrase);
    }
}
