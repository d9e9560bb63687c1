using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// Whether a running attempt has stopped moving: its client keeps reporting progress (the engine's own timer reports
/// four times a second while it walks, reads, restores or verifies) but no figure has changed for <see cref="After"/>
/// — a file system or device that hangs a read, a data plane that takes bytes no more. Before its first report, and
/// while no reports come (a pre- or post-command runs, the snapshot is committed), an attempt is not watched: those
/// have timeouts of their own. Immutable; the job's actor keeps one per attempt.
/// </summary>
/// <param name="After">how long the figures may stay as they are; zero or less: never stalled</param>
public sealed record StallWatch(TimeSpan After)
{
    /// <summary>How long after the last report the figures still count as reported: reports stopped (a command runs,
    /// a commit) is no stall.</summary>
    public static readonly TimeSpan Reporting = TimeSpan.FromMinutes(1);

    private Figures? Last { get; init; }
    private DateTime MovedAt { get; init; }
    private DateTime HeardAt { get; init; }

    private readonly record struct Figures(long FilesDone, long FilesTotal, long BytesDone, long BytesTotal, long ChunksNew, long BytesStored, long Entries);

    /// <summary>A report of the attempt taken at <paramref name="now"/>.</summary>
    public StallWatch Heard(JobProgress p, DateTime now)
    {
        var figures = new Figures(p.FilesDone, p.FilesTotal, p.BytesDone, p.BytesTotal, p.ChunksNew, p.BytesStored, p.Entries);
        return this with { Last = figures, MovedAt = figures == Last ? MovedAt : now, HeardAt = now };
    }

    /// <summary>Why the attempt counts as stalled at <paramref name="now"/> (what the job's end says), or null.</summary>
    public string? Stalled(DateTime now, string client)
    {
        if (After <= TimeSpan.Zero || Last is not { } last || now - HeardAt > Reporting || now - MovedAt < After) return null;
        var at = last.Entries > 0 && last.FilesDone == 0 && last.BytesDone == 0 ? $"{last.Entries:N0} entries handled"
            : $"{last.FilesDone:N0} files and {last.BytesDone:N0} bytes done";
        return $"no progress on client {client} in {Describe(now - MovedAt)} (still at {at}): a file system, device or " +
               "network share that hangs its reads or writes? The attempt was told to stop (actorbackup.manager.stall-timeout)";
    }

    /// <summary>A duration as an operator reads it: 1.5 h, 12 min, 40 s.</summary>
    internal static string Describe(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{t.TotalHours:0.#} h" : t.TotalMinutes >= 1 ? $"{t.TotalMinutes:0} min" : $"{t.TotalSeconds:0} s";
}
