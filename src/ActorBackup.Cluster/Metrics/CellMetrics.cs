using Prometheus;

namespace ActorBackup.Cluster.Metrics;

/// <summary>
/// What a node serves to Prometheus (prometheus-net) at http://HOST:PORT/metrics when actorbackup.metrics.port
/// is set: the manager's jobs and queue (on the node that runs the manager), its media agents' libraries and
/// data plane, and .NET's own process metrics. Bound to 127.0.0.1 unless actorbackup.metrics.host says otherwise.
/// </summary>
public static class CellMetrics
{
    public static readonly Gauge Jobs = Prometheus.Metrics.CreateGauge("actorbackup_jobs",
        "Jobs in the manager's history by state (queued and running ones included)", "state");
    public static readonly Counter ManagerBusy = Prometheus.Metrics.CreateCounter("actorbackup_manager_busy_seconds_total",
        "Time the manager spent handling messages (its CPU, near enough): its rate is how busy the cell's single manager is");
    public static readonly Gauge QueueLength = Prometheus.Metrics.CreateGauge("actorbackup_queue_length", "Jobs waiting in the manager's queue");
    public static readonly Histogram QueueWait = Prometheus.Metrics.CreateHistogram("actorbackup_queue_wait_seconds",
        "From a job's queueing to its start", new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.1, 4, 10) });
    public static readonly Counter JobsEnded = Prometheus.Metrics.CreateCounter("actorbackup_jobs_ended_total", "Jobs that ended, by kind and final state", "kind", "state");
    public static readonly Counter BytesRead = Prometheus.Metrics.CreateCounter("actorbackup_backup_bytes_read_total",
        "Bytes backups read from files, by client (a file taken unchanged from the parent snapshot is not read)", "client");
    public static readonly Counter BytesStored = Prometheus.Metrics.CreateCounter("actorbackup_backup_bytes_stored_total",
        "Bytes backups added to libraries (new chunks, after dedup and compression), by client and library", "client", "library");
    public static readonly Gauge LibraryFree = Prometheus.Metrics.CreateGauge("actorbackup_library_free_bytes",
        "Free space for a library: on its disk's file system, or, for a tape library, left on its cartridges (scratch ones included); refreshed every 5 s", "library");
    public static readonly Gauge LibraryStored = Prometheus.Metrics.CreateGauge("actorbackup_library_stored_bytes",
        "Bytes stored in a library's volumes (while the library cannot be opened: the last figure known)", "library");
    public static readonly Gauge LibraryAvailable = Prometheus.Metrics.CreateGauge("actorbackup_library_available",
        "1 while a library's media agent has it open for backups, 0 while it is unavailable (abk library list says why); refreshed every 5 s", "library");
    public static readonly Gauge LibraryFull = Prometheus.Metrics.CreateGauge("actorbackup_library_full",
        "1 while a library is down to its reserve of free space (it takes no backups, restores go on)", "library");
    public static readonly Gauge LibraryVolumesInError = Prometheus.Metrics.CreateGauge("actorbackup_library_volumes_in_error",
        "Volumes of a library found damaged (on tape: cartridges with errors, which the manager retires)", "library");
    public static readonly Gauge LibraryDrivesDueCleaning = Prometheus.Metrics.CreateGauge("actorbackup_library_drives_due_cleaning",
        "Drives of a tape library that asked for cleaning and were not cleaned yet", "library");

    /// <summary>Takes away the series of a client the cell removed (its errors, bytes read and stored).</summary>
    public static void ForgetClient(string client)
    {
        static void Forget(Counter counter, int label, string client)
        {
            foreach (var labels in counter.GetAllLabelValues().Where(l => l[label] == client).ToList()) counter.RemoveLabelled(labels);
        }
        Forget(JobErrors, 1, client);
        Forget(BytesRead, 0, client);
        Forget(BytesStored, 0, client);
    }

    /// <summary>The media agent's series of <paramref name="library"/>, which a media agent that stops takes away.</summary>
    public static readonly Gauge[] LibrarySeries = [LibraryFree, LibraryStored, LibraryAvailable, LibraryFull, LibraryVolumesInError, LibraryDrivesDueCleaning];
    public static readonly Gauge ManagerActive = Prometheus.Metrics.CreateGauge("actorbackup_manager_active",
        "1 on the node the cell's manager runs on, 0 on the others (the manager's own series, jobs and queue, are 0 there): alert when the cell's sum is not 1");
    public static readonly Gauge SetLastSnapshot = Prometheus.Metrics.CreateGauge("actorbackup_set_last_snapshot_timestamp_seconds",
        "Unix time of the end of a backup set's newest snapshot in the catalog, 0 before its first: alert when time() minus this passes the set's allowed age", "set");
    public static readonly Counter JournalFailures = Prometheus.Metrics.CreateCounter("actorbackup_journal_failures_total",
        "Writes (persist) and recoveries of the journal's database that failed, by actor (manager, or a library's media agent): each stops that actor, which starts again by itself", "actor", "what");
    public static readonly Counter SlotsMissed = Prometheus.Metrics.CreateCounter("actorbackup_slots_missed_total",
        "Scheduled slots of a backup set that could not queue a backup (its client unknown, no library reachable, ...): the reason is in abk set show and the manager's log", "set");
    public static readonly Counter JobErrors = Prometheus.Metrics.CreateCounter("actorbackup_job_errors_total",
        "Entries a job that ended could not handle (a backup's unreadable files, a restore's files or metadata it could not write), by kind and client: such a job still ends SUCCEEDED", "kind", "client");
    public static readonly Gauge SetBackupOpen = Prometheus.Metrics.CreateGauge("actorbackup_set_backup_open_seconds",
        "How long a backup set's oldest backup not ended yet (queued or running) has been so, 0 when none: while one is open, the set's next slots wait for it", "set");
    public static readonly Gauge SetSuspect = Prometheus.Metrics.CreateGauge("actorbackup_set_suspect_snapshots",
        "A backup set's suspect snapshots not cleared (a mass change: ransomware?): alert above 0; its retention waits until 'abk snapshot clear-suspect'", "set");
    public static readonly Counter VerifyDamage = Prometheus.Metrics.CreateCounter("actorbackup_verify_damaged_chunks_total",
        "Damaged or missing chunks that verifies and library checks found, by library (a verify that could not run counts none: it ends failed without findings)", "library");
    public static readonly Gauge LibraryDisabled = Prometheus.Metrics.CreateGauge("actorbackup_library_disabled",
        "1 for a library an operator disabled (abk library disable), 0 for the other registered ones, as the manager sees them", "library");
    public static readonly Gauge CertificateExpiry = Prometheus.Metrics.CreateGauge("actorbackup_certificate_expiry_timestamp_seconds",
        "Unix time at which this node's certificate (certificate=\"node\") or the cell's CA (\"ca\") expires: alert 30 days ahead", "certificate");
    public static readonly Counter DataPlaneBytes = Prometheus.Metrics.CreateCounter("actorbackup_dataplane_bytes_total",
        "Chunk payload bytes through this node's media agents: in (appended) or out (read)", "direction");

    public static readonly Counter.Child DataPlaneIn = DataPlaneBytes.WithLabels("in");
    public static readonly Counter.Child DataPlaneOut = DataPlaneBytes.WithLabels("out");

    /// <summary>Serves /metrics on host:port until disposed; null when port is 0 (off).</summary>
    public static IDisposable? Serve(string host, int port, MetricsAccess? access = null)
    {
        if (port <= 0) return null;
        try
        {
            return new MetricsEndpoint(MetricsEndpoint.AddressOf(host), port, access);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new IOException($"cannot serve metrics on {host}:{port}: {e.Message} (actorbackup.metrics.host and .port)", e);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot serve metrics on {host}:{port}: {e.Message} (actorbackup.metrics.token-file, .tls-certificate, .tls-key)", e);
        }
    }
}
