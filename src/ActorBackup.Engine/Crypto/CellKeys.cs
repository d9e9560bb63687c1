using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Crypto;

/// <summary>Everything derived from the cell master key that the client side needs. Thread-safe.</summary>
public sealed class CellKeys
{
    public ChunkHasher Hasher { get; }
    public GearTable Gear { get; }
    public ChunkCipher Cipher { get; }
    /// <summary>The key that seals snapshot manifests (Catalog/ManifestSeal).</summary>
    public byte[] ManifestKey { get; }

    public CellKeys(MasterKey master)
    {
        ManifestKey = master.ManifestKey;
        Hasher = new ChunkHasher(master.ChunkIdKey);
        Gear = GearTable.FromSeed(master.GearSeed);
        Cipher = new ChunkCipher(master.DataKey);
    }
}
