using System.Runtime.InteropServices;

namespace ActorBackup.Engine.Index;

/// <summary>
/// Where a chunk's record is: volume number, byte offset of the record, payload length, packed into 12 bytes
/// (24-bit volume number, 40-bit offset, 32-bit length) so that a dictionary entry is 52 bytes and the
/// index stays under about 64 bytes a chunk even just after it grows. Limits: 16 million volumes per
/// library, 1 TiB per volume.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public readonly struct ChunkLocation : IEquatable<ChunkLocation>
{
    public const uint MaxVolume = (1u << 24) - 1;
    public const long MaxOffset = (1L << 40) - 1;
    private readonly uint _volumeAndHigh, _offsetLow;

    public ChunkLocation(uint volume, long offset, int length)
    {
        if (volume > MaxVolume) throw new ArgumentOutOfRangeException(nameof(volume), volume, $"a library holds at most {MaxVolume} volumes");
        if (offset < 0 || offset > MaxOffset) throw new ArgumentOutOfRangeException(nameof(offset), offset, "a volume is at most 1 TiB");
        _volumeAndHigh = volume | (uint)(offset >> 32) << 24;
        _offsetLow = (uint)offset;
        Length = length;
    }

    public uint Volume => _volumeAndHigh & MaxVolume;
    public long Offset => ((long)(_volumeAndHigh >> 24) << 32) | _offsetLow;
    public int Length { get; }

    public bool Equals(ChunkLocation other) => _volumeAndHigh == other._volumeAndHigh && _offsetLow == other._offsetLow && Length == other.Length;
    public override bool Equals(object? obj) => obj is ChunkLocation other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_volumeAndHigh, _offsetLow, Length);
    public static bool operator ==(ChunkLocation a, ChunkLocation b) => a.Equals(b);
    public static bool operator !=(ChunkLocation a, ChunkLocation b) => !a.Equals(b);
    public override string ToString() => $"volume {Volume} offset {Offset} length {Length}";
}
