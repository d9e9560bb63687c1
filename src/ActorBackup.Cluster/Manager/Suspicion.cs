using ActorBackup.Engine.Trees;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// Whether a backup changed far more of its set's data than the set's recent backups did: ransomware encrypting the
/// host (every file rewritten, nothing left to deduplicate, and what compressed before no longer does), or a host
/// rebuilt. Judged on the share of a snapshot's bytes that were new (not found stored: deduplication makes an unchanged
/// full backup's share about 0, an encrypted host's about 1), against the median share of the set's last backups.
/// A client host that lies in its manifest's figures hides it: this finds the encryption, not a compromised agent.
/// </summary>
/// <param name="Share">the share of new bytes (0..1) from which a backup is suspect; 0: none ever is</param>
public sealed record Suspicion(double Share = Suspicion.DefaultShare)
{
    public const double DefaultShare = 0.5;
    /// <summary>Backups of the set before it needed for a baseline, and the most taken.</summary>
    public const int MinHistory = 3, MaxHistory = 10;
    /// <summary>Below these a share means little (a handful of files rewritten).</summary>
    public const ulong MinFiles = 100, MinBytes = 16L << 20;

    /// <summary>Why <paramref name="snapshot"/> is suspect given the set's earlier snapshots (oldest first), or null.</summary>
    public string? Of(SnapshotManifest snapshot, IReadOnlyList<SnapshotManifest> earlier)
    {
        if (Share <= 0 || snapshot.Stats is not { } stats || stats.Files < MinFiles || stats.Bytes < MinBytes) return null;
        var history = earlier.Where(e => e.Stats is { Bytes: > 0 }).TakeLast(MaxHistory).ToList();
        if (history.Count < MinHistory) return null;
        var share = NewShare(stats);
        var baseline = Median(history.Select(h => NewShare(h.Stats)));
        if (share < Share || baseline > Share / 2) return null;
        var reason = $"{share:P0} of its {Size(stats.Bytes)} were new, against {baseline:P0} in the median of the set's last {history.Count} backups";
        // What compressed before and does not now: encrypted data (a note, not a condition: media files do not either).
        var compressed = Median(history.Where(h => h.Stats.BytesNew > 0).Select(h => (double)h.Stats.BytesStored / h.Stats.BytesNew).DefaultIfEmpty(1));
        if (stats.BytesNew > 0 && (double)stats.BytesStored / stats.BytesNew > 0.95 && compressed < 0.8)
            reason += $", and it did not compress ({(double)stats.BytesStored / stats.BytesNew:P0} stored, {compressed:P0} before)";
        return reason + ": ransomware encrypting the host, or a host rebuilt? Retention keeps the set's snapshots until an operator checks it " +
               "and clears it ('abk snapshot clear-suspect')";
    }

    private static double NewShare(SnapshotStats s) => s.Bytes == 0 ? 0 : Math.Min(1, (double)s.BytesNew / s.Bytes);

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Size(ulong bytes) => bytes >= 1UL << 30 ? $"{bytes / (double)(1UL << 30):0.#} GiB" : $"{bytes >> 20} MiB";
}
