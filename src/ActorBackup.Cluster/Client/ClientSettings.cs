using ActorBackup.Engine.Chunking;

namespace ActorBackup.Cluster.Client;

/// <param name="BackupRateLimit">bytes read per second by each backup, averaged over the job; 0: no limit</param>
public sealed record ClientSettings(string ClientId, ChunkerOptions Chunker, int CompressionLevel, long BackupRateLimit = 0);
