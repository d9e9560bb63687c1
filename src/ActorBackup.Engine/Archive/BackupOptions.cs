using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Archive;

public sealed record BackupOptions
{
    public Level Level { get; init; } = Level.Full;
    public ChunkerOptions Chunker { get; init; } = ChunkerOptions.Default;
    public int CompressionLevel { get; init; } = 3;
    public int Parallelism { get; init; } = Math.Max(2, Environment.ProcessorCount);
    public string Client { get; init; } = Environment.MachineName;
    public string Library { get; init; } = "";
    public string Job { get; init; } = "";
    /// <summary>Bytes read per second, averaged over the job, across all its threads; 0: no limit.</summary>
    public long MaxBytesPerSecond { get; init; }
}
