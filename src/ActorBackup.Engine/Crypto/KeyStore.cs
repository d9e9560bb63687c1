using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ActorBackup.Engine.Crypto;

/// <summary>
/// Wraps the cell master key for storage: AES-256-GCM under a key-encryption key derived from a passphrase
/// (Argon2id) or from a key file (HKDF). A wrong passphrase fails the GCM tag check and is reported as such.
/// </summary>
public static class KeyStore
{
    private static readonly byte[] Aad = "actorbackup master key v1"u8.ToArray();

    public sealed record Argon2Parameters(int Iterations, int MemoryBytes)
    {
        /// <summary>t=3, 64 MiB: about 110 ms on this machine kind.</summary>
        public static readonly Argon2Parameters Default = new(3, 64 * 1024 * 1024);
    }

    public sealed class WrappedKey
    {
        [JsonPropertyName("version")] public int Version { get; set; } = 1;
        [JsonPropertyName("kind")] public string Kind { get; set; } = "";
        [JsonPropertyName("iterations")] public int Iterations { get; set; }
        [JsonPropertyName("memory_bytes")] public int MemoryBytes { get; set; }
        [JsonPropertyName("salt")] public string Salt { get; set; } = "";
        [JsonPropertyName("nonce")] public string Nonce { get; set; } = "";
        [JsonPropertyName("wrapped")] public string Wrapped { get; set; } = "";
        [JsonPropertyName("created")] public DateTimeOffset Created { get; set; }
    }

    public static WrappedKey WrapWithPassphrase(MasterKey key, string passphrase, Argon2Parameters? parameters = null)
    {
        if (string.IsNullOrEmpty(passphrase)) throw new ArgumentException("the passphrase must not be empty", nameof(passphrase));
        var p = parameters ?? Argon2Parameters.Default;
        var salt = RandomNumberGenerator.GetBytes(Geralt.Argon2id.SaltSize);
        var kek = PassphraseKek(passphrase, salt, p.Iterations, p.MemoryBytes);
        return Seal(key, kek, salt, "passphrase", p.Iterations, p.MemoryBytes);
    }

    public static WrappedKey WrapWithKeyFile(MasterKey key, ReadOnlySpan<byte> keyFile)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        return Seal(key, KeyFileKek(keyFile, salt), salt, "keyfile", 0, 0);
    }

    public static MasterKey UnwrapWithPassphrase(WrappedKey wrapped, string passphrase)
    {
        if (wrapped.Kind != "passphrase")
            throw new WrongKeyException($"this master key is wrapped by a {wrapped.Kind}, not a passphrase: pass the key file instead");
        var kek = PassphraseKek(passphrase, Convert.FromBase64String(wrapped.Salt), wrapped.Iterations, wrapped.MemoryBytes);
        return Open(wrapped, kek, "the passphrase is wrong: it does not unlock this cell's master key");
    }

    public static MasterKey UnwrapWithKeyFile(WrappedKey wrapped, ReadOnlySpan<byte> keyFile)
    {
        if (wrapped.Kind != "keyfile")
            throw new WrongKeyException($"this master key is wrapped by a {wrapped.Kind}, not a key file: give the passphrase instead");
        return Open(wrapped, KeyFileKek(keyFile, Convert.FromBase64String(wrapped.Salt)),
            "the key file is wrong: it does not unlock this cell's master key");
    }

    /// <summary>Written 0600 from its creation (never readable by others, not even for a moment) in a 0700 folder.</summary>
    public static void Save(WrappedKey wrapped, string path) => WritePrivate(path, JsonSerializer.Serialize(wrapped, new JsonSerializerOptions { WriteIndented = true }));

    /// <summary>A secret file: 0600 from its creation (never readable by others, not even for a moment) in a 0700 folder, replaced whole.</summary>
    public static void WritePrivate(string path, string text) => WritePrivate(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <inheritdoc cref="WritePrivate(string, string)"/>
    public static void WritePrivate(string path, byte[] content)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir)) Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // Durably: a key lost in a power cut would make every chunk sealed with it unreadable.
        Posix.Posix.WriteFileDurably(path, content, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>Argon2 costs a master.json may ask for: a damaged or hostile file can neither hang an unlock nor exhaust memory.</summary>
    public const int MaxIterations = 16, MinMemoryBytes = 8 * 1024 * 1024, MaxMemoryBytes = 1024 * 1024 * 1024;

    public static WrappedKey Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"no master key at {path}: initialise the library first", path);
        WrappedKey wrapped;
        try
        {
            wrapped = JsonSerializer.Deserialize<WrappedKey>(File.ReadAllText(path))
                      ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a wrapped master key: {e.Message}", e);
        }
        if (wrapped.Version > 1) throw new Volumes.NewerFormatException(path, wrapped.Version, 1);
        if (Problem(wrapped) is { } problem)
            throw new InvalidDataException($"{path} is damaged: {problem}. Restore it from your copy of the keys folder");
        return wrapped;
    }

    /// <summary>What is wrong with a wrapped key as read from disk; null when every field is in bounds.</summary>
    private static string? Problem(WrappedKey w)
    {
        if (w.Version != 1) return $"version {w.Version} (this build reads 1)";
        if (w.Kind == "passphrase" && (w.Iterations is < 1 or > MaxIterations || w.MemoryBytes is < MinMemoryBytes or > MaxMemoryBytes))
            return $"Argon2 parameters out of bounds ({w.Iterations} iterations, {w.MemoryBytes} bytes; at most {MaxIterations} and {MaxMemoryBytes})";
        if (w.Kind is not ("passphrase" or "keyfile")) return $"unknown kind '{w.Kind}'";
        int Decoded(string? text)
        {
            try
            {
                return Convert.FromBase64String(text ?? "").Length;
            }
            catch (FormatException)
            {
                return -1;
            }
        }
        if (Decoded(w.Salt) is < 16 or > 64) return "the salt is missing or not base64";
        if (Decoded(w.Nonce) != 12) return "the nonce is not 12 bytes of base64";
        if (Decoded(w.Wrapped) != MasterKey.Size + 16) return $"the wrapped key is not {MasterKey.Size + 16} bytes of base64";
        return null;
    }

    private static byte[] PassphraseKek(string passphrase, byte[] salt, int iterations, int memoryBytes)
    {
        var kek = new byte[32];
        Geralt.Argon2id.DeriveKey(kek, Encoding.UTF8.GetBytes(passphrase), salt, iterations, memoryBytes);
        return kek;
    }

    private static byte[] KeyFileKek(ReadOnlySpan<byte> keyFile, byte[] salt)
    {
        if (keyFile.Length < 32) throw new WrongKeyException("a key file must hold at least 32 random bytes");
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, keyFile.ToArray(), 32, salt, "actorbackup key file v1"u8.ToArray());
    }

    private static WrappedKey Seal(MasterKey key, byte[] kek, byte[] salt, string kind, int iterations, int memoryBytes)
    {
        var nonce = RandomNumberGenerator.GetBytes(12);
        var sealedKey = new byte[MasterKey.Size + 16];
        using (var gcm = new AesGcm(kek, 16))
            gcm.Encrypt(nonce, key.Bytes, sealedKey.AsSpan(0, MasterKey.Size), sealedKey.AsSpan(MasterKey.Size), Aad);
        return new WrappedKey
        {
            Kind = kind, Iterations = iterations, MemoryBytes = memoryBytes, Salt = Convert.ToBase64String(salt),
            Nonce = Convert.ToBase64String(nonce), Wrapped = Convert.ToBase64String(sealedKey), Created = DateTimeOffset.UtcNow,
        };
    }

    private static MasterKey Open(WrappedKey wrapped, byte[] kek, string wrongMessage)
    {
        var sealedKey = Convert.FromBase64String(wrapped.Wrapped);
        if (sealedKey.Length != MasterKey.Size + 16) throw new InvalidDataException("the wrapped master key has the wrong length: the key file is damaged");
        var plain = new byte[MasterKey.Size];
        try
        {
            using var gcm = new AesGcm(kek, 16);
            gcm.Decrypt(Convert.FromBase64String(wrapped.Nonce), sealedKey.AsSpan(0, MasterKey.Size), sealedKey.AsSpan(MasterKey.Size), plain, Aad);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new WrongKeyException(wrongMessage);
        }
        return new MasterKey(plain);
    }
}
