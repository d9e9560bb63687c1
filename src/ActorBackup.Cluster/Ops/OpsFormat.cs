using System.Text;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>Tables and JSON for the shell. JSON is the protobuf JSON form of the same messages.</summary>
public static class OpsFormat
{
    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    public static string ToJson(IMessage m) => Json.Format(m);

    public static string Time(long unixMs) => unixMs == 0 ? "-" : DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss");

    public static string Size(ulong bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:F1} KiB",
        < 1024L * 1024 * 1024 => $"{bytes / 1048576.0:F1} MiB",
        _ => $"{bytes / 1073741824.0:F2} GiB",
    };

    public static string Level(BackupLevel l) => l switch
    {
        BackupLevel.LevelFull => "full",
        BackupLevel.LevelDifferential => "differential",
        BackupLevel.LevelIncremental => "incremental",
        _ => "-",
    };

    public static string State(JobState s) => s.ToString().ToLowerInvariant();

    public static string Table(IEnumerable<string> headers, IEnumerable<IEnumerable<string>> rows)
    {
        var all = new List<string[]> { headers.ToArray() };
        all.AddRange(rows.Select(r => r.ToArray()));
        var widths = Enumerable.Range(0, all[0].Length).Select(i => all.Max(r => i < r.Length ? r[i].Length : 0)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in all)
            sb.AppendLine(string.Join("  ", row.Select((c, i) => i == row.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd());
        return sb.ToString().TrimEnd('\n');
    }

    public static string Progress(JobProgress p)
    {
        var percent = p.BytesTotal > 0 ? 100.0 * p.BytesDone / p.BytesTotal : 0;
        var rate = p.Seconds > 0 ? p.BytesDone / p.Seconds : 0;
        var eta = rate > 0 && p.BytesTotal > p.BytesDone ? TimeSpan.FromSeconds((p.BytesTotal - p.BytesDone) / rate).ToString(@"mm\:ss") : "--:--";
        return $"job {p.Job}: {percent,5:F1}%  {p.FilesDone}/{p.FilesTotal} files  {Size((ulong)p.BytesDone)}/{Size((ulong)p.BytesTotal)}  {rate / 1e6:F0} MB/s  ETA {eta}";
    }

    public static string Job(JobInfo j)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"job {j.Id}: {j.Kind.ToString().ToLowerInvariant()} {State(j.State)}");
        sb.AppendLine($"  client   {j.Client}");
        sb.AppendLine($"  library  {j.Library}");
        if (j.Kind == JobKind.Backup) sb.AppendLine($"  level    {Level(j.Level)}");
        if (j.Paths.Count > 0) sb.AppendLine($"  paths    {string.Join(" ", j.Paths)}");
        if (j.Target != "") sb.AppendLine($"  target   {j.Target}");
        if (j.Snapshot != "") sb.AppendLine($"  snapshot {j.Snapshot}");
        sb.AppendLine($"  queued   {Time(j.QueuedUnixMs)}   started {Time(j.StartedUnixMs)}   finished {Time(j.FinishedUnixMs)}");
        if (j.Errors > 0) sb.AppendLine($"  errors   {j.Errors}");
        if (j.Reason != "") sb.AppendLine($"  reason   {j.Reason}");
        if (j.Progress is { } p && !Manager.ManagerState.IsFinal(j.State)) sb.AppendLine("  " + Progress(p));
        return sb.ToString().TrimEnd('\n');
    }
}
