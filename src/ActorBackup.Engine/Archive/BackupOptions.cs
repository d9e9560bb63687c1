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
    /// <summary>
    /// How long before the parent snapshot began an entry must have last changed (its ctime) for this backup to trust
    /// the parent's record of it when its size, times and inode match. A change made right after the parent read an
    /// entry, within the same tick of the file system's clock (or of a file server's clock running behind this
    /// host's), leaves its times as recorded: without the margin it would be missed until the file changed again (git's
    /// "racy clean"). Entries changed that late are read again, once. 0: changed before the parent began.
    /// </summary>
    public TimeSpan RereadChangedWithin { get; init; } = DefaultRereadChangedWithin;
    public static readonly TimeSpan DefaultRereadChangedWithin = TimeSpan.FromSeconds(2);
}
