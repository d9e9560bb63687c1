using ZstdNet;

namespace ActorBackup.Engine.Compression;

/// <summary>
/// zstd for chunk payloads, through ZstdNet and the native libzstd 1.5.7 it ships (faster than the managed
/// ZstdSharp port at the same ratio: docs/benchmarks.md has the figures). One instance per worker
/// thread (zstd contexts are not thread-safe); the contexts are reused across chunks. A chunk that does not
/// shrink is left raw and flagged so.
/// </summary>
public sealed class ChunkCompressor : IDisposable
{
    private readonly Compressor _compressor;
    private readonly Decompressor _decompressor = new();

    public int Level { get; }

    public ChunkCompressor(int level)
    {
        if (level < -7 || level > 22) throw new ArgumentOutOfRangeException(nameof(level), level, "zstd level must be between -7 and 22");
        Level = level;
        _compressor = new Compressor(new CompressionOptions(level));
    }

    public static int MaxCompressedLength(int length) => Compressor.GetCompressBound(length);

    /// <summary>
    /// Compresses into <paramref name="destination"/> (at least MaxCompressedLength bytes) and returns the
    /// compressed length, or -1 when compression saves less than 1/64 of the input (the caller stores it raw).
    /// </summary>
    public int TryCompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (source.Length < 64) return -1;
        var written = _compressor.Wrap(source, destination);
        return written < source.Length - source.Length / 64 ? written : -1;
    }

    /// <summary>Decompresses exactly <paramref name="destination"/>.Length bytes or throws InvalidDataException.</summary>
    public int Decompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        try
        {
            return _decompressor.Unwrap(source, destination, bufferSizePrecheck: false);
        }
        catch (ZstdException e)
        {
            throw new InvalidDataException($"zstd payload is corrupt: {e.Message}", e);
        }
    }

    /// <summary>The decompressed size recorded in a zstd frame header, checked against a bound.</summary>
    public static int DecompressedSize(ReadOnlySpan<byte> source, int maxSize)
    {
        ulong size;
        try
        {
            size = Decompressor.GetDecompressedSize(source);
        }
        catch (ZstdException e)
        {
            throw new InvalidDataException($"zstd frame header is corrupt: {e.Message}", e);
        }
        if (size == 0 || size > (ulong)maxSize) throw new InvalidDataException($"zstd frame claims {size} bytes, more than the {maxSize} allowed");
        return (int)size;
    }

    public void Dispose()
    {
        _compressor.Dispose();
        _decompressor.Dispose();
    }
}
