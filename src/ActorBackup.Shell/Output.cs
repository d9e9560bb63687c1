using System.Text;
using ActorBackup.Protocol.Commands;
using ActorBackup.Protocol;
using Google.Protobuf;
using Spectre.Console;

namespace ActorBackup.Shell;

/// <summary>
/// How answers are printed. On a terminal: Spectre.Console tables and a live progress bar with rate and ETA.
/// Piped: plain lines, one table row per line, columns separated by two or more spaces, so scripts keep
/// working. --json: the protobuf JSON form of the answer, field names as in the .proto files.
/// </summary>
public sealed class Output(bool json)
{
    public bool Json { get; } = json;
    public bool Terminal { get; } = !json && !Console.IsOutputRedirected;

    public static string ToJson(IMessage m) => OperatorJson.Format(m);

    public void Write(IMessage m) => Console.WriteLine(ToJson(m));

    public void Line(string text) => Console.WriteLine(text);

    public void Table(string[] headers, IEnumerable<string[]> rows)
    {
        if (!Terminal)
        {
            Console.WriteLine(PlainTable(headers, rows));
            return;
        }
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var h in headers) table.AddColumn(new TableColumn(Markup.Escape(h)));
        foreach (var r in rows) table.AddRow(r.Select(c => new Text(c)).ToArray<Spectre.Console.Rendering.IRenderable>());
        AnsiConsole.Write(table);
    }

    public static string PlainTable(string[] headers, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { headers };
        all.AddRange(rows);
        var widths = Enumerable.Range(0, headers.Length).Select(i => all.Max(r => i < r.Length ? r[i].Length : 0)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in all)
            sb.AppendLine(string.Join("  ", row.Select((c, i) => i == row.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd());
        return sb.ToString().TrimEnd('\n');
    }

    /// <summary>A file's mtime as listings show it (<see cref="LocalTimes.Of"/>); 0: "-".</summary>
    public static string FileTime(long unixSec) => unixSec == 0 ? "-" : LocalTimes.Of(unixSec);

    public static string Time(long unixMs) => unixMs == 0 ? "-" : LocalTimes.Of(Math.DivRem(unixMs, 1000, out var ms) - (ms < 0 ? 1 : 0));

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

    /// <summary>How a job started: "operator", "integrator", or "schedule" with the set's name.</summary>
    public static string Origin(JobInfo j) => j.Origin switch
    {
        JobOrigin.Schedule => $"schedule:{j.BackupSet}",
        JobOrigin.Unspecified => "request",
        _ => j.Origin.ToString().ToLowerInvariant(),
    };

    public static bool IsFinal(JobState s) => s is JobState.Succeeded or JobState.Failed or JobState.Cancelled or JobState.Interrupted or JobState.Missed;

    public static string Progress(JobProgress p)
    {
        var percent = p.BytesTotal > 0 ? 100.0 * p.BytesDone / p.BytesTotal : 0;
        var rate = p.Seconds > 0 ? p.BytesDone / p.Seconds : 0;
        var eta = rate > 0 && p.BytesTotal > p.BytesDone ? Eta(TimeSpan.FromSeconds(Math.Min((p.BytesTotal - p.BytesDone) / rate, TimeSpan.MaxValue.TotalSeconds / 2))) : "--:--";
        return $"job {p.Job}: {percent,5:F1}%  {Files(p)}{Size((ulong)p.BytesDone)}/{Size((ulong)p.BytesTotal)}  {rate / 1e6:F0} MB/s  ETA {eta}";
    }

    /// <summary>How long a job ran (from its start to its end, or so far), "-" when it never started.</summary>
    public static string Took(JobInfo j)
    {
        if (j.StartedUnixMs <= 0) return "-";
        var end = j.FinishedUnixMs > 0 ? j.FinishedUnixMs : DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var t = TimeSpan.FromMilliseconds(Math.Max(0, end - j.StartedUnixMs));
        return t.TotalHours >= 1 ? $"{(long)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{(long)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:F1}s";
    }

    /// <summary>An ended job's last figures: what it did, in how long.</summary>
    public static string Done(JobProgress p) =>
        $"did      {(p.FilesTotal > 0 || p.FilesDone > 0 ? $"{p.FilesDone} files, " : "")}{Size((ulong)p.BytesDone)}" +
        (p.Seconds > 0 ? $" in {p.Seconds:F1} s ({p.BytesDone / p.Seconds / 1e6:F0} MB/s)" : "");

    /// <summary>mm:ss, or h:mm:ss from an hour on (2 h 30 min was shown as 30:00).</summary>
    public static string Eta(TimeSpan t) => t.TotalHours >= 1 ? $"{(long)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : t.ToString(@"mm\:ss");

    /// <summary>"done/total files" and two spaces, or nothing for a job that counts no files (a verify reads chunks).</summary>
    private static string Files(JobProgress p) => p.FilesTotal > 0 ? $"{p.FilesDone}/{p.FilesTotal} files  " : "";

    public static string Job(JobInfo j)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"job {j.Id}: {j.Kind.ToString().ToLowerInvariant()} {State(j.State)}");
        sb.AppendLine($"  client   {j.Client}");
        sb.AppendLine($"  origin   {Origin(j)}{(j.SlotUnixMs != 0 ? $" (slot {Time(j.SlotUnixMs)})" : "")}{(j.RequestedBy == "" ? "" : $", by {j.RequestedBy}")}   priority {(j.Priority == 0 ? 5 : j.Priority)}");
        sb.AppendLine($"  library  {(j.Library != "" ? j.Library : "chosen when it starts")}{(j.Drive > 0 ? $", drive {j.Drive}" : "")}{(j.SourceDrive > 0 ? $" (reads {j.SourceLibrary} in its drive {j.SourceDrive})" : "")}{(j.Policy is not ("" or "default") ? $" (policy {j.Policy})" : "")}");
        if (j.Attempt > 0) sb.AppendLine($"  attempt  {j.Attempt + 1}");
        if (j.Kind == JobKind.Backup) sb.AppendLine($"  level    {Level(j.Level)}");
        if (j.Paths.Count > 0) sb.AppendLine($"  paths    {string.Join(" ", j.Paths)}");
        if (j.Target != "") sb.AppendLine($"  target   {j.Target}{(j.Kind == JobKind.Restore && j.Overwrite != RestoreOverwrite.OverwriteAlways ? $" (--overwrite {SharedOptions.OverwriteName(j.Overwrite)})" : "")}");
        if (j.Excludes.Count > 0) sb.AppendLine($"  excludes {string.Join(" ", j.Excludes)}");
        if (j.Snapshot != "") sb.AppendLine($"  snapshot {j.Snapshot}");
        sb.AppendLine($"  queued   {Time(j.QueuedUnixMs)}   started {Time(j.StartedUnixMs)}   finished {Time(j.FinishedUnixMs)}");
        if (j.Errors > 0) sb.AppendLine($"  errors   {j.Errors}");
        if (j.Reason != "") sb.AppendLine($"  reason   {j.Reason}");
        if (j.Verify is { } v)
        {
            sb.AppendLine($"  verified {v.Chunks} chunks ({Size((ulong)v.Bytes)}){(v.SharePercent is > 0 and < 100 ? $", a {v.SharePercent}% sample of the file chunks," : "")} and {v.Trees} trees in {v.Seconds:F1} s: " +
                          (v.BadChunks == 0 ? "all good" : $"{v.BadChunks} damaged, {v.DamagedFiles} files would not restore whole"));
            foreach (var d in v.Damaged) sb.AppendLine($"    {d}");
            if (v.SnapshotsAffected.Count > 0) sb.AppendLine($"  snapshots that need a damaged chunk: {string.Join(" ", v.SnapshotsAffected)}");
            if (v.DamagedFiles > v.Damaged.Count) sb.AppendLine($"    ... and {v.DamagedFiles - v.Damaged.Count} more");
            if (v.DamagedListsTotal > 0)
                sb.AppendLine($"  reference lists damaged: {v.DamagedListsTotal} (a prune of the library stops at them until their snapshots are deleted: abk snapshot delete SNAPSHOT)");
            foreach (var d in v.DamagedLists) sb.AppendLine($"    snapshot {d.Snapshot}: {d.Reason}");
            if (v.DamagedListsTotal > v.DamagedLists.Count) sb.AppendLine($"    ... and {v.DamagedListsTotal - v.DamagedLists.Count} more");
        }
        if (j.Copy is { } cp)
            sb.AppendLine(j.Heal.Count > 0
                ? $"  healed   {cp.ChunksSent} damaged chunks of {j.Library} with their copies from {j.SourceLibrary} in {cp.Seconds:F1} s"
                : $"  copied   {cp.ChunksSent} of {cp.Chunks} chunks ({Size((ulong)cp.BytesSent)}) from {j.SourceLibrary} in {cp.Seconds:F1} s; the rest were there already");
        if (j.Prune is { } pr)
        {
            sb.AppendLine($"  {(pr.DryRun ? "would remove" : "removed")}  {pr.ChunksDead} chunks ({Size((ulong)pr.BytesDead)}) that no kept snapshot references");
            sb.AppendLine($"  {(pr.DryRun ? "would compact" : "compacted")} {pr.VolumesCompacted.Count} volumes ({Size((ulong)pr.BytesMoved)} of live data {(pr.DryRun ? "to copy" : "copied")}); " +
                          $"{Size((ulong)Math.Max(0, pr.BytesFreed))} {(pr.DryRun ? "would be" : "was")} given back to the disk");
            if (pr.VolumesRetired.Count > 0) sb.AppendLine($"  retired  volume {string.Join(", ", pr.VolumesRetired)} (out of service; their live chunks copied to other volumes)");
            sb.AppendLine($"  took     {pr.Seconds:F1} s{(pr.SecondsWaiting >= 0.5 ? $", {pr.SecondsWaiting:F1} s of it waiting for backups that were running" : "")}");
            foreach (var problem in pr.Problems) sb.AppendLine($"  problem  {problem}");
        }
        if (j.Kind == JobKind.Restore && j.DryRun && j.State == JobState.Succeeded)
        {
            // A dry run: what the restore would do, nothing written (its progress is what it planned).
            var planned = j.Progress ?? new JobProgress();
            sb.AppendLine($"  would    restore {planned.FilesDone} files, {Size((ulong)planned.BytesDone)}" +
                          (planned.FilesKept > 0 ? $"; leave {planned.FilesKept} entries there as they are (--overwrite {SharedOptions.OverwriteName(j.Overwrite)})" : "") +
                          " (a dry run: nothing was written)");
        }
        else if (j.Progress is { } p)
        {
            sb.AppendLine(IsFinal(j.State) ? "  " + Done(p) : "  " + Progress(p));
            if (p.FilesKept > 0) sb.AppendLine($"  kept     {p.FilesKept} entries already there as they were (--overwrite {SharedOptions.OverwriteName(j.Overwrite)})");
        }
        return sb.ToString().TrimEnd('\n');
    }

    /// <summary>A job not ended yet, as its watch says when it changes: queued and why it waits, which attempt.</summary>
    public static string Status(JobInfo j) =>
        $"{State(j.State)}{(j.Attempt > 0 ? $" (attempt {j.Attempt + 1})" : "")}{(j.Reason != "" ? ": " + j.Reason : "")}";

    /// <summary>How many of a snapshot's unread files `snapshot show` prints (--json: all its manifest lists).</summary>
    public const int ProblemsShown = 20;

    public static string Snapshot(SnapshotInfo s)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"snapshot {s.Id}: {Level(s.Level)} of {s.Client}{(s.BackupSet != "" ? $", set {s.BackupSet}" : "")}");
        sb.AppendLine($"  time       {Time(s.FinishedUnixMs)}");
        sb.AppendLine($"  paths      {string.Join(" ", s.Paths)}");
        sb.AppendLine($"  files      {s.Files} ({Size(s.Bytes)}; {Size(s.BytesStored)} stored new){(s.Errors > 0 ? $"; {s.Errors} could not be read" : "")}");
        sb.AppendLine($"  libraries  {s.Library} (its own){(s.Spans.Count > 0 ? ", spanning on into " + string.Join(", ", s.Spans) : "")}" +
                      $"{(s.Copies.Count > 0 ? ", copies on " + string.Join(", ", s.Copies) : ", no copy")}");
        sb.AppendLine($"  verified   {(s.Verified ? "yes" : "no")}{(s.LastVerifyUnixMs == 0 ? "" : $" (last verify {Time(s.LastVerifyUnixMs)}, job {s.LastVerifyJob}: {(s.LastVerifyOk ? "all good" : "DAMAGED")})")}");
        if (s.Suspect != "") sb.AppendLine($"  SUSPECT    {s.Suspect}");
        if (s.HeldUntilUnixMs != 0)
            sb.AppendLine($"  {(s.HeldUntilUnixMs > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() ? "HELD until" : "was held until")} {Time(s.HeldUntilUnixMs)}: {s.HoldReason}");
        if (s.Parent != "") sb.AppendLine($"  parent     {s.Parent}");
        if (s.Job != "") sb.AppendLine($"  job        {s.Job}");
        // What could not be read: the first few here, every one its manifest lists with --json.
        foreach (var p in s.Problems.Take(ProblemsShown)) sb.AppendLine($"  not read   {p.Path}: {p.Reason}");
        if (s.Errors > Math.Min(s.Problems.Count, ProblemsShown))
            sb.AppendLine($"  ...        {s.Errors - Math.Min(s.Problems.Count, ProblemsShown)} more" +
                          (s.Problems.Count > ProblemsShown ? $" (--json lists the first {s.Problems.Count})" : ""));
        return sb.ToString().TrimEnd('\n');
    }

    /// <summary>A scheduled run's level: no level given means incremental (full when there is nothing to compare with).</summary>
    public static string RunLevel(BackupLevel l) => l == BackupLevel.LevelDefault ? "incremental" : Level(l);

    public static string Rule(ScheduleRule r) => r.Level == BackupLevel.LevelDefault ? r.Cron : $"{r.Cron}={Level(r.Level)}";

    public static string Set(BackupSetInfo i)
    {
        var s = i.Set;
        var sb = new StringBuilder();
        sb.AppendLine($"backup set {s.Name}{(s.Disabled ? " (disabled)" : "")}");
        sb.AppendLine($"  client    {s.Client}");
        sb.AppendLine($"  paths     {string.Join(" ", s.Paths)}");
        if (s.Excludes.Count > 0) sb.AppendLine($"  excludes  {string.Join(" ", s.Excludes)}");
        if (s.ExcludeIfPresent.Count > 0) sb.AppendLine($"  excludes  what folders holding {string.Join(" or ", s.ExcludeIfPresent)} hold");
        if (s.OneFileSystem) sb.AppendLine("  one file system");
        if (s.Atime) sb.AppendLine("  access times recorded");
        if (s.PrivateKeys) sb.AppendLine("  private keys (file chunks under the client's own keys: no dedup with other clients)");
        sb.AppendLine($"  policy    {s.Policy}   priority {s.Priority}{(s.WindowSeconds > 0 ? $"   window {TimeSpan.FromSeconds(s.WindowSeconds)}" : "")}" +
                      $"{(s.MaxRunSeconds > 0 ? $"   max run time {TimeSpan.FromSeconds(s.MaxRunSeconds)}" : "")}");
        sb.AppendLine($"  schedule  {(s.Schedules.Count == 0 ? "none (runs by hand: abk set run)" : string.Join("; ", s.Schedules.Select(Rule)))}{(s.TimeZone != "" ? " in " + s.TimeZone : s.Schedules.Count > 0 ? " (UTC)" : "")}");
        foreach (var (what, command) in new[] { ("pre", s.PreCommand), ("post", s.PostCommand), ("success", s.OnSuccess), ("failure", s.OnFailure) })
            if (command != "") sb.AppendLine($"  {what,-9} {command}");
        if (i.NextRunUnixMs != 0)
            sb.AppendLine($"  next run  {Time(i.NextRunUnixMs)} ({RunLevel(i.NextLevel)}){(i.DeferredSlotUnixMs != 0 ? $", deferred from {Time(i.DeferredSlotUnixMs)}" : "")}");
        if (i.LastSnapshot != "") sb.AppendLine($"  last      snapshot {i.LastSnapshot} at {Time(i.LastSnapshotUnixMs)}");
        if (i.LastMissed != "") sb.AppendLine($"  missed    the slot at {Time(i.LastSlotUnixMs)}: {i.LastMissed}");
        return sb.ToString().TrimEnd('\n');
    }

    public static string Pool(StoragePolicy p) => p.Libraries.Count == 0 ? "every library" : string.Join(" ", p.Libraries);

    public static string Choice(LibraryChoice c) => c == LibraryChoice.FillFirst ? "fill-first" : "balance";

    public static string Retries(StoragePolicy p) => (p.HasRetries ? p.Retries : 2).ToString();

    public static string Policy(PolicyInfo i)
    {
        var p = i.Policy;
        var sb = new StringBuilder();
        sb.AppendLine($"storage policy {p.Name}{(i.Implicit ? " (built in: define one named default to change it)" : "")}");
        sb.AppendLine($"  libraries    {Pool(p)} ({Choice(p.Choice)})");
        sb.AppendLine($"  chunks       {(p.ChunkKib == 0 ? "the client's size (1024 KiB unless its node says otherwise)" : $"{p.ChunkKib} KiB on average")}");
        sb.AppendLine($"  compression  {(p.Compression == 0 ? "the client's (zstd 3 unless its node says otherwise)" : $"zstd {p.Compression}")}");
        sb.AppendLine($"  retries      {Retries(p)}");
        sb.AppendLine($"  retention    {(i.Retention == "" ? "keep everything" : i.Retention)}");
        // Retention lets nothing go older than a set's newest snapshot that passed a whole verify: without a schedule that
        // makes one, everything is kept until someone runs abk verify, and the library fills.
        if (i.Retention != "" && p.Verify is not { Schedule: not "" }) // a sampling schedule reads the newest whole when a week ahead of the last verified
            sb.AppendLine("               (nothing older than a set's newest snapshot that passed a whole verify goes: add --verify-schedule, or run abk verify)");
        for (var n = 0; n < p.Copies.Count; n++)
            sb.AppendLine($"  copy         to {string.Join(" or ", p.Copies[n].Libraries)}{(p.Copies[n].FullsOnly ? ", fulls only" : "")}" +
                          (p.Copies[n].Schedule != "" ? $", at {p.Copies[n].Schedule} (UTC)" : ", after each backup") +
                          (n < i.CopyRetention.Count && i.CopyRetention[n] != "" ? $"; its copies kept: {i.CopyRetention[n]}" : ""));
        if (p.Tier is { Libraries.Count: > 0 } t) sb.AppendLine($"  tier         to {string.Join(" or ", t.Libraries)} after {TimeSpan.FromSeconds(t.AfterSeconds):g}");
        if (p.Verify is { Schedule: not "" } v)
            sb.AppendLine(v.SharePercent is > 0 and < 100
                ? $"  verify       {v.Schedule} (UTC): {v.SharePercent}% of the chunks of the newest snapshot of each client and set, at random"
                : $"  verify       {v.Schedule} (UTC): the newest unverified snapshot of each client and set");
        sb.AppendLine($"  sets         {(i.Sets.Count == 0 ? "none" : string.Join(" ", i.Sets))}");
        return sb.ToString().TrimEnd('\n');
    }

    /// <summary>
    /// Runs <paramref name="watch"/>, which reports progress through the actions it is given (the figures, and the job's
    /// state while it waits): a live bar on a terminal, nothing with --json; piped, plain lines on stderr (stdout keeps
    /// the result alone): every half second when stderr is a terminal, once a minute when it is not either (a cron job's
    /// mail: a sign of life, not 57,000 lines for an 8-hour backup).
    /// </summary>
    public async Task<T> WithProgress<T>(string job, Func<Action<JobProgress>, Action<JobInfo>, Task<T>> watch)
    {
        if (Json) return await watch(_ => { }, _ => { });
        if (!Terminal)
        {
            var every = Console.IsErrorRedirected ? TimeSpan.FromMinutes(1) : TimeSpan.FromMilliseconds(500);
            var last = DateTime.MinValue;
            return await watch(p =>
            {
                if (DateTime.UtcNow - last < every) return;
                last = DateTime.UtcNow;
                Console.Error.WriteLine(Progress(p));
            }, j => Console.Error.WriteLine($"job {job}: {Status(j)}"));
        }
        return await AnsiConsole.Progress().AutoClear(true).HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask($"job {job}", maxValue: 1);
                return await watch(p =>
                {
                    task.MaxValue = Math.Max(1, p.BytesTotal);
                    task.Value = p.BytesDone;
                    task.Description = $"job {job}: {Files(p)}".TrimEnd();
                }, j => task.Description = Markup.Escape($"job {job}: {Status(j)}"));
            });
    }
}
