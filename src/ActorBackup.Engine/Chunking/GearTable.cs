using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ActorBackup.Engine.Chunking;

/// <summary>
/// The 256 random 64-bit values of the gear hash. Derived from a per-cell secret so that chunk boundaries,
/// and with them file sizes, cannot be fingerprinted by someone who sees only stored chunk lengths.
/// </summary>
public sealed class GearTable
{
    internal readonly ulong[] Values;

    private GearTable(ulong[] values) => Values = values;

    public static GearTable FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length < 16) throw new ArgumentException("a gear seed must be at least 16 bytes", nameof(seed));
        Span<byte> bytes = stackalloc byte[256 * 8];
        HKDF.Expand(HashAlgorithmName.SHA256, seed, bytes, "actorbackup gear table v1"u8);
        var values = new ulong[256];
        for (var i = 0; i < 256; i++) values[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * 8)..]);
        return new GearTable(values);
    }
}
