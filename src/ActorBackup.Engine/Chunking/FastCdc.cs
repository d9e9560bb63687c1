using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ActorBackup.Engine.Chunking;

/// <summary>
/// FastCDC content-defined chunking with normalized chunking (level 2): before the average size a cut needs
/// two more zero bits than the average implies, after it two fewer, which pulls chunk sizes towards the
/// average. Two bytes are consumed per step (the "rolling two bytes" of FastCDC 2020). Pure and thread-safe.
/// </summary>
public sealed class FastCdc
{
    private readonly ulong[] _gear;
    private readonly ulong[] _gearShifted;
    private readonly ulong _maskS, _maskL, _maskSShifted, _maskLShifted;
    private readonly int _normalSize;

    public ChunkerOptions Options { get; }

    public FastCdc(GearTable gear, ChunkerOptions options)
    {
        options.Validate();
        Options = options;
        _gear = gear.Values;
        _gearShifted = new ulong[256];
        for (var i = 0; i < 256; i++) _gearShifted[i] = _gear[i] << 1;
        var bits = BitOperations.Log2((uint)options.AverageSize);
        _maskS = TopBits(bits + 2);
        _maskL = TopBits(bits - 2);
        // Where the strict mask gives way to the loose one. At the average itself (the paper's choice) the
        // realised mean is about 1.15x the configured average, since most chunks run past it and then wait
        // avg/4 more on average for a cut; switching at 3/4 of the average brings the mean to about the
        // average (docs/benchmarks.md), which is what a policy's "average" should mean.
        _normalSize = Math.Max(options.MinSize + 64, options.AverageSize - options.AverageSize / 4);
        _maskSShifted = _maskS << 1;
        _maskLShifted = _maskL << 1;
    }

    // The top bits of a gear hash depend on the most recent 64 bytes: the widest window it has.
    // Leave the lowest bit free so that the shifted masks of the two-byte step keep the same width.
    private static ulong TopBits(int count) => ((1UL << count) - 1) << (63 - count);

    /// <summary>
    /// The length of the chunk that starts at data[0]. <paramref name="data"/> must hold at least MaxSize
    /// bytes unless it ends at the end of the stream.
    /// </summary>
    public int FindBoundary(ReadOnlySpan<byte> data)
    {
        var n = data.Length;
        var min = Options.MinSize;
        if (n <= min) return n;
        if (n > Options.MaxSize) n = Options.MaxSize;
        var normal = Math.Min(_normalSize, n);

        ref var src = ref MemoryMarshal.GetReference(data);
        ref var gear = ref MemoryMarshal.GetArrayDataReference(_gear);
        ref var gearS = ref MemoryMarshal.GetArrayDataReference(_gearShifted);
        ulong hash = 0;
        var i = min;
        // Round both phases to even lengths; a possible odd last byte is handled by the tail loops.
        var normalEven = min + ((normal - min) & ~1);
        for (; i < normalEven; i += 2)
        {
            hash = (hash << 2) + Unsafe.Add(ref gearS, Unsafe.Add(ref src, i));
            if ((hash & _maskSShifted) == 0) return i + 1;
            hash += Unsafe.Add(ref gear, Unsafe.Add(ref src, i + 1));
            if ((hash & _maskS) == 0) return i + 2;
        }
        for (; i < normal; i++)
        {
            hash = (hash << 1) + Unsafe.Add(ref gear, Unsafe.Add(ref src, i));
            if ((hash & _maskS) == 0) return i + 1;
        }
        var nEven = i + ((n - i) & ~1);
        for (; i < nEven; i += 2)
        {
            hash = (hash << 2) + Unsafe.Add(ref gearS, Unsafe.Add(ref src, i));
            if ((hash & _maskLShifted) == 0) return i + 1;
            hash += Unsafe.Add(ref gear, Unsafe.Add(ref src, i + 1));
            if ((hash & _maskL) == 0) return i + 2;
        }
        for (; i < n; i++)
        {
            hash = (hash << 1) + Unsafe.Add(ref gear, Unsafe.Add(ref src, i));
            if ((hash & _maskL) == 0) return i + 1;
        }
        return n;
    }
}
