using System.Security.Cryptography;
using System.Text;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// A client's key sealed to the node that asked for it (RequestClientKey.reply_key): ECDH on P-256 between a key pair
/// the asking node made for that request alone and one the granting node makes for its answer, HKDF-SHA256 of the
/// shared secret (salted with both public keys, bound to the client and job), AES-256-GCM. The request is signed with
/// its reply key, so a node that obtains and replays it (or sends it on) gets an answer only the asker can open.
/// </summary>
public static class KeySealing
{
    /// <summary>The most bytes a reply key or sealer may have (a P-256 SubjectPublicKeyInfo is 91).</summary>
    public const int MaxPublicKey = 256;
    private const int NonceSize = 12, TagSize = 16;
    private const string P256Oid = "1.2.840.10045.3.1.7";

    /// <summary>A key pair for one request: the private half stays with the asker, the public half goes in the request.</summary>
    public static ECDiffieHellman NewReplyKey() => ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    public static byte[] PublicKey(ECDiffieHellman key) => key.PublicKey.ExportSubjectPublicKeyInfo();

    /// <summary>Why <paramref name="publicKey"/> is no P-256 public key to seal to; null when it is one.</summary>
    public static string? Refusal(ReadOnlySpan<byte> publicKey)
    {
        if (publicKey.IsEmpty) return "it names no key to seal the answer to (a node of an older version asked)";
        if (publicKey.Length > MaxPublicKey) return $"its reply key of {publicKey.Length} bytes is no P-256 key";
        try
        {
            using var key = Import(publicKey);
            return null;
        }
        catch (CryptographicException e)
        {
            return $"its reply key is no P-256 key ({e.Message})";
        }
    }

    private static ECDiffieHellman Import(ReadOnlySpan<byte> publicKey)
    {
        var key = ECDiffieHellman.Create();
        try
        {
            key.ImportSubjectPublicKeyInfo(publicKey, out var read);
            // P-256 itself, not any 256-bit curve (another would fail only later, in the key agreement).
            if (read != publicKey.Length || key.ExportParameters(false).Curve.Oid.Value != P256Oid) throw new CryptographicException("not a P-256 public key alone");
            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary><paramref name="secret"/> sealed to <paramref name="replyKey"/> for <paramref name="context"/>: the sealer's public key and the sealed bytes.</summary>
    public static (byte[] Sealer, byte[] Sealed) Seal(ReadOnlySpan<byte> replyKey, ReadOnlySpan<byte> secret, string context)
    {
        using var peer = Import(replyKey);
        using var own = NewReplyKey();
        var sealer = PublicKey(own);
        var key = Key(own, peer, sealer, replyKey, context);
        var sealedBytes = new byte[NonceSize + secret.Length + TagSize];
        RandomNumberGenerator.Fill(sealedBytes.AsSpan(0, NonceSize));
        using var aead = new AesGcm(key, TagSize);
        aead.Encrypt(sealedBytes.AsSpan(0, NonceSize), secret, sealedBytes.AsSpan(NonceSize, secret.Length), sealedBytes.AsSpan(NonceSize + secret.Length), Encoding.UTF8.GetBytes(context));
        CryptographicOperations.ZeroMemory(key);
        return (sealer, sealedBytes);
    }

    /// <summary>What <see cref="Seal"/> sealed to <paramref name="replyKey"/>'s public half; throws CryptographicException when it does not open.</summary>
    public static byte[] Open(ECDiffieHellman replyKey, ReadOnlySpan<byte> sealer, ReadOnlySpan<byte> sealedBytes, string context)
    {
        if (sealer.Length > MaxPublicKey || sealedBytes.Length < NonceSize + TagSize || sealedBytes.Length > NonceSize + TagSize + 4096)
            throw new CryptographicException("the sealed key is not one this node asked for");
        using var peer = Import(sealer);
        var key = Key(replyKey, peer, sealer, PublicKey(replyKey), context);
        var secret = new byte[sealedBytes.Length - NonceSize - TagSize];
        using var aead = new AesGcm(key, TagSize);
        aead.Decrypt(sealedBytes[..NonceSize], sealedBytes[NonceSize..^TagSize], sealedBytes[^TagSize..], secret, Encoding.UTF8.GetBytes(context));
        CryptographicOperations.ZeroMemory(key);
        return secret;
    }

    /// <summary>The AES key: HKDF-SHA256 of the ECDH secret, salted with the sealer's and the reply key's public halves.</summary>
    private static byte[] Key(ECDiffieHellman own, ECDiffieHellman peer, ReadOnlySpan<byte> sealer, ReadOnlySpan<byte> replyKey, string context)
    {
        var shared = own.DeriveRawSecretAgreement(peer.PublicKey);
        try
        {
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, [.. sealer, .. replyKey], Encoding.UTF8.GetBytes("actorbackup key grant\n" + context));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    /// <summary>What a sealed key is bound to: the client whose key it is and the job it is for.</summary>
    public static string Context(string client, string job) => client + "\n" + job;
}
