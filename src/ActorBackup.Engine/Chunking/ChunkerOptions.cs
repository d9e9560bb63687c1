using System.Numerics;

namespace ActorBackup.Engine.Chunking;

/// <summary>Chunk size bounds from the storage policy. Average must be a power of two between min and max.</summary>
public sealed record ChunkerOptions(int MinSize, int AverageSize, int MaxSize)
{
    public static readonly ChunkerOptions Default = new(256 * 1024, 1024 * 1024, 4 * 1024 * 1024);

    /// <summary>min = avg/4, max = avg*4, the FastCDC paper's proportions.</summary>
    public static ChunkerOptions ForAverage(int averageSize) => new(averageSize / 4, averageSize, averageSize * 4);

    public void Validate()
    {
        if (!BitOperations.IsPow2(AverageSize) || AverageSize < 256 || AverageSize > 64 * 1024 * 1024)
            throw new ArgumentException($"chunk average size must be a power of two between 256 B and 64 MiB, got {AverageSize}");
        if (MinSize < 64 || MinSize >= AverageSize)
            throw new ArgumentException($"chunk min size must be at least 64 B and below the average ({AverageSize}), got {MinSize}");
        if (MaxSize <= AverageSize || MaxSize > 256 * 1024 * 1024)
            throw new ArgumentException($"chunk max size must be above the average ({AverageSize}) and at most 256 MiB, got {MaxSize}");
    }
}
