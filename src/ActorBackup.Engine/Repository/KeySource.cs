using ActorBackup.Engine.Crypto;

namespace ActorBackup.Engine.Repository;

/// <summary>How the master key is unlocked: a passphrase, or a key file.</summary>
public abstract record KeySource
{
    public sealed record Passphrase(string Value) : KeySource;
    public sealed record KeyFile(string Path) : KeySource;

    internal KeyStore.WrappedKey Wrap(MasterKey key, KeyStore.Argon2Parameters? argon) => this switch
    {
        Passphrase p => KeyStore.WrapWithPassphrase(key, p.Value, argon),
        KeyFile f => KeyStore.WrapWithKeyFile(key, ReadKeyFile(f.Path)),
        _ => throw new ArgumentOutOfRangeException(),
    };

    internal MasterKey Unwrap(KeyStore.WrappedKey wrapped) => this switch
    {
        Passphrase p => KeyStore.UnwrapWithPassphrase(wrapped, p.Value),
        KeyFile f => KeyStore.UnwrapWithKeyFile(wrapped, ReadKeyFile(f.Path)),
        _ => throw new ArgumentOutOfRangeException(),
    };

    private static byte[] ReadKeyFile(string path) =>
        File.Exists(path) ? File.ReadAllBytes(path) : throw new FileNotFoundException($"key file {path} does not exist", path);
}
