using ActorBackup.Engine.Crypto;

namespace ActorBackup.Cluster.Client;

/// <summary>
/// The cell master key on a client node: keys/master.json wrapped by a key file (keys/cell.key) or by the
/// passphrase in $ABK_PASSPHRASE. Every client of a cell must use the same master key (copy the key folder,
/// or point actorbackup.key-dir at it); the first node of a new cell creates it.
/// </summary>
public static class CellKeyring
{
    public static CellKeys LoadOrCreate(string keyDir)
    {
        var wrappedPath = Path.Combine(keyDir, "master.json");
        var keyFile = Path.Combine(keyDir, "cell.key");
        var passphrase = Environment.GetEnvironmentVariable("ABK_PASSPHRASE");
        if (!File.Exists(wrappedPath))
        {
            Directory.CreateDirectory(keyDir);
            var master = MasterKey.Generate();
            KeyStore.WrappedKey wrapped;
            if (!string.IsNullOrEmpty(passphrase)) wrapped = KeyStore.WrapWithPassphrase(master, passphrase);
            else
            {
                var random = System.Security.Cryptography.RandomNumberGenerator.GetBytes(64);
                File.WriteAllBytes(keyFile, random);
                File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                wrapped = KeyStore.WrapWithKeyFile(master, random);
            }
            KeyStore.Save(wrapped, wrappedPath);
            return new CellKeys(master);
        }
        var stored = KeyStore.Load(wrappedPath);
        if (stored.Kind == "keyfile")
        {
            if (!File.Exists(keyFile)) throw new FileNotFoundException($"the cell master key in {wrappedPath} is wrapped by a key file, and {keyFile} is missing: copy it from the node that created the cell");
            return new CellKeys(KeyStore.UnwrapWithKeyFile(stored, File.ReadAllBytes(keyFile)));
        }
        if (string.IsNullOrEmpty(passphrase)) throw new WrongKeyException($"the cell master key in {wrappedPath} is wrapped by a passphrase: set ABK_PASSPHRASE");
        return new CellKeys(KeyStore.UnwrapWithPassphrase(stored, passphrase));
    }
}
