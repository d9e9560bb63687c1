using ActorBackup.Engine.Chunking;

namespace ActorBackup.Cluster.Client;

/// <param name="BackupRateLimit">bytes read per second by each backup, averaged over the job; 0: no limit</param>
/// <param name="FileIndexDir">where the node keeps the snapshots' file indexes (`abk find`); empty: a folder of this process under the temp folder</param>
/// <param name="RestoreClaimsDir">where the node keeps the restores that claimed their target (RestoreClaims); empty: a folder of this process under the temp folder</param>
public sealed record ClientSettings(string ClientId, ChunkerOptions Chunker, int CompressionLevel, long BackupRateLimit = 0, string FileIndexDir = "",
    string RestoreClaimsDir = "")
{
    /// <summary>actorbackup.reread-changed-within: BackupOptions.RereadChangedWithin of this client's backups.</summary>
    public TimeSpan RereadChangedWithin { get; init; } = Engine.Archive.BackupOptions.DefaultRereadChangedWithin;
}
