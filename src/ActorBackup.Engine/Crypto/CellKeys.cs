using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Crypto;

/// <summary>One way of naming and sealing chunks: the keyed hash that names them and the cipher that seals them.</summary>
public sealed class KeyDomain(string name, ReadOnlySpan<byte> idKey, ReadOnlySpan<byte> dataKey)
{
    /// <summary>Whose domain it is, for messages ("the cell's data", "client web1's trees").</summary>
    public string Name { get; } = name;
    public ChunkHasher Hasher { get; } = new(idKey);
    public ChunkCipher Cipher { get; } = new(dataKey);
}

/// <summary>
/// The keys one client's snapshots are under (KeyRing.For): its file chunks (<see cref="Data"/>, with the gear table
/// that cuts them), its trees (<see cref="Trees"/>) and the key that seals its manifests. Thread-safe.
/// </summary>
public sealed class CellKeys
{
    public string Client { get; }
    public KeyScheme Scheme { get; }
    public KeyDomain Data { get; }
    public KeyDomain Trees { get; }
    public GearTable Gear { get; }
    /// <summary>The key that seals this client's snapshot manifests (Catalog/ManifestSeal).</summary>
    public byte[] ManifestKey { get; }

    public ChunkHasher Hasher => Data.Hasher;
    public ChunkCipher Cipher => Data.Cipher;

    internal CellKeys(string client, KeyScheme scheme, KeyDomain data, KeyDomain trees, GearTable gear, byte[] manifestKey)
    {
        Client = client;
        Scheme = scheme;
        Data = data;
        Trees = trees;
        Gear = gear;
        ManifestKey = manifestKey;
    }
}
