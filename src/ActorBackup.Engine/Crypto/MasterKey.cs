using System.Security.Cryptography;

namespace ActorBackup.Engine.Crypto;

/// <summary>
/// The cell master key: 64 random bytes from which every other key is derived (HKDF-SHA-256 with a distinct
/// label each), so that the chunk-id key, the gear seed and the data key are independent of one another.
/// </summary>
public sealed class MasterKey
{
    public const int Size = 64;
    private readonly byte[] _bytes;

    public MasterKey(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"a master key is {Size} bytes", nameof(bytes));
        _bytes = bytes.ToArray();
    }

    public static MasterKey Generate() => new(RandomNumberGenerator.GetBytes(Size));

    internal ReadOnlySpan<byte> Bytes => _bytes;

    public byte[] Derive(string label, int length = 32) =>
        HKDF.Expand(HashAlgorithmName.SHA256, HKDF.Extract(HashAlgorithmName.SHA256, _bytes), length, System.Text.Encoding.UTF8.GetBytes("actorbackup " + label));

    public byte[] ChunkIdKey => Derive("chunk-id v1");
    public byte[] GearSeed => Derive("gear v1");
    public byte[] DataKey => Derive("data v1");
    public byte[] ManifestKey => Derive("manifest mac v1");
}
