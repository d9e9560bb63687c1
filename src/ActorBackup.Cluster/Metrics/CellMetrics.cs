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
        "Free space on the file system of a library, as its media agent last saw it", "library");
    public static readonly Gauge LibraryStored = Prometheus.Metrics.CreateGauge("actorbackup_library_stored_bytes", "Bytes stored in a library's volumes", "library");
    public static readonly Counter DataPlaneBytes = Prometheus.Metrics.CreateCounter("actorbackup_dataplane_bytes_total",
        "Chunk payload bytes through this node's media agents: in (appended) or out (read)", "direction");

    public static readonly Counter.Child DataPlaneIn = DataPlaneBytes.WithLabels("in");
    public static readonly Counter.Child DataPlaneOut = DataPlaneBytes.WithLabels("out");

    /// <summary>Serves /metrics on host:port until disposed; null when port is 0 (off).</summary>
    public static IDisposable? Serve(string host, int port)
    {
        if (port <= 0) return null;
        var server = new MetricServer(host, port);
        try
        {
            server.Start();
        }
        catch (System.Net.HttpListenerException e)
        {
            throw new IOException($"cannot serve metrics on {host}:{port}: {e.Message} (actorbackup.metrics.port)", e);
        }
        return server;
    }
}
