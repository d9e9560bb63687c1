using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ActorBackup.Engine.Hashing;

/// <summary>A chunk's name: the keyed 256-bit hash of its plaintext. 32 bytes, compared by value.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)] // 4-byte alignment lets an index entry pack into 52 bytes
public readonly struct ChunkId : IEquatable<ChunkId>, IComparable<ChunkId>
{
    public const int Size = 32;
    private readonly ulong _a, _b, _c, _d;

    public ChunkId(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Size) throw new ArgumentException($"a chunk id is {Size} bytes, got {bytes.Length}", nameof(bytes));
        _a = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _b = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        _c = BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]);
        _d = BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]);
    }

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _a);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _b);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _c);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _d);
    }

    public byte[] ToArray()
    {
        var bytes = new byte[Size];
        WriteTo(bytes);
        return bytes;
    }

    public bool IsEmpty => (_a | _b | _c | _d) == 0;

    public bool Equals(ChunkId other) => _a == other._a && _b == other._b && _c == other._c && _d == other._d;
    public override bool Equals(object? obj) => obj is ChunkId other && Equals(other);
    // The id is already a uniformly distributed keyed hash: any 32 bits of it are a good hash code.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override int GetHashCode() => (int)_a;

    /// <summary>The first 8 bytes, big-endian: the order's first key (ChunkIdSort buckets by its top bits).</summary>
    internal ulong High => _a;

    /// <summary>
    /// The second 8 bytes: as uniform as the first, but not the order's first key (a hash table's home slot: ids added
    /// in their order would otherwise all fall at the start of a table too small for them, in one long run).
    /// </summary>
    internal ulong Scatter => _b;

    public int CompareTo(ChunkId other)
    {
        var c = _a.CompareTo(other._a);
        if (c != 0) return c;
        c = _b.CompareTo(other._b);
        if (c != 0) return c;
        c = _c.CompareTo(other._c);
        return c != 0 ? c : _d.CompareTo(other._d);
    }

    public static bool operator ==(ChunkId left, ChunkId right) => left.Equals(right);
    public static bool operator !=(ChunkId left, ChunkId right) => !left.Equals(right);

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[Size];
        WriteTo(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>The first 8 bytes in hex, as operators see it in listings.</summary>
    public string Short => ToString()[..16];

    public static ChunkId Parse(string hex)
    {
        if (hex.Length != Size * 2) throw new FormatException($"a chunk id is {Size * 2} hex digits, got '{hex}'");
        return new ChunkId(Convert.FromHexString(hex));
    }
}
