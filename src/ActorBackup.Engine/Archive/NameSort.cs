using System.Buffers;
using System.Runtime.InteropServices;

namespace ActorBackup.Engine.Archive;

/// <summary>
/// A folder's names in ordinal order (the order its tree keeps them in), sorted by their first eight UTF-16 units
/// packed into two numbers, and by the whole name only where those tie. A walk sorts every name it lists (a million
/// for a million files), and comparing strings through a comparer was most of what its listing cost beside the kernel's.
/// </summary>
internal static class NameSort
{
    /// <summary>A name's first eight units, big-endian (the first unit the top 16 bits of the first number), and its place.</summary>
    private readonly record struct Keyed(ulong First, ulong Second, int Index);

    private readonly struct Order(List<string> names) : IComparer<Keyed>
    {
        public int Compare(Keyed x, Keyed y)
        {
            if (x.First != y.First) return x.First < y.First ? -1 : 1;
            if (x.Second != y.Second) return x.Second < y.Second ? -1 : 1;
            return string.CompareOrdinal(names[x.Index], names[y.Index]); // the same first eight units (a shorter name: zeros)
        }
    }

    /// <summary>Sorts <paramref name="names"/> as <c>names.Sort(StringComparer.Ordinal)</c> does.</summary>
    public static void Sort(List<string> names)
    {
        var count = names.Count;
        if (count < 2) return;
        var keyed = ArrayPool<Keyed>.Shared.Rent(count);
        var sorted = ArrayPool<string>.Shared.Rent(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var name = names[i].AsSpan();
                keyed[i] = new Keyed(Pack(name), name.Length > 4 ? Pack(name[4..]) : 0, i);
            }
            keyed.AsSpan(0, count).Sort(new Order(names));
            for (var i = 0; i < count; i++) sorted[i] = names[keyed[i].Index];
            sorted.AsSpan(0, count).CopyTo(CollectionsMarshal.AsSpan(names));
        }
        finally
        {
            ArrayPool<Keyed>.Shared.Return(keyed);
            ArrayPool<string>.Shared.Return(sorted, clearArray: true);
        }
    }

    /// <summary>Up to four units, the first in the top 16 bits; missing ones are 0 (before any unit a name can hold).</summary>
    private static ulong Pack(ReadOnlySpan<char> units)
    {
        ulong packed = 0;
        for (var i = 0; i < 4; i++) packed = packed << 16 | (i < units.Length ? units[i] : 0u);
        return packed;
    }
}
