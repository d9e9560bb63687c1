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
    /// <summary>
    /// Whether the backup commits what it stored; false: its caller commits it with the snapshot's manifest
    /// (StoredManifests.Store), one commit for both, so the manifest is durable exactly when its data is (and the
    /// snapshot's reference list, a million ids for a million files, is written once, not again for the manifest's).
    /// </summary>
    public bool Commit { get; init; } = true;
}
