using System.Security.Cryptography;

namespace ActorBackup.Engine.Hashing;

/// <summary>
/// Names chunks by a keyed hash of their plaintext, so that storage never learns which well-known content it
/// holds. Keyed BLAKE3 is the faster of the two on this machine kind (docs/benchmarks.md, `actorbackup engine
/// micro`), so it names chunks; HMAC-SHA-256 stays for comparison.
/// Thread-safe: every call uses its own hasher state.
/// </summary>
public sealed class ChunkHasher
{
    private readonly byte[] _key;

    public ChunkHasher(ReadOnlySpan<byte> key)
    {
        if (key.Length < 32) throw new ArgumentException("the chunk id key must be at least 32 bytes", nameof(key));
        _key = key.ToArray();
    }

    public ChunkId Hash(ReadOnlySpan<byte> plaintext)
    {
        Span<byte> mac = stackalloc byte[ChunkId.Size];
        using var hasher = Blake3.Hasher.NewKeyed(_key.AsSpan(0, 32));
        hasher.Update(plaintext);
        hasher.Finalize(mac);
        return new ChunkId(mac);
    }

    /// <summary>The alternative measured against keyed BLAKE3; kept for the micro benchmark.</summary>
    public ChunkId HashHmacSha256(ReadOnlySpan<byte> plaintext)
    {
        Span<byte> mac = stackalloc byte[ChunkId.Size];
        HMACSHA256.HashData(_key, plaintext, mac);
        return new ChunkId(mac);
    }
}
