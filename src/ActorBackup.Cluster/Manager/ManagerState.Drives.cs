using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

/// <summary>A job being started: the library and drive chosen at dispatch (and a copy's drive of the tape library it reads), taken before its JobStarted is applied.</summary>
public readonly record struct StartingJob(string Library, int Drive = 0, int SourceDrive = 0, string SourceLibrary = "");

// Drives: every library has some (a disk library's write streams, a tape library's tape drives). The queue starts a
// job when its library has a free one, and the job holds that drive (JobInfo.drive) until it ends or is queued again.
public sealed partial record ManagerState
{
    /// <summary>The drives <paramref name="library"/> declared (the default when it declared none).</summary>
    public int DrivesOf(string library) => Libraries.TryGetValue(library, out var lib) && lib.Drives > 0 ? lib.Drives : Media.LibraryDeclaration.DefaultDrives;

    /// <summary>The jobs holding a drive: running or committing.</summary>
    private IEnumerable<JobInfo> HoldingDrives => Jobs.Values.Where(j => j.State is JobState.Running or JobState.Committing);

    /// <summary>The drives a job holds: one of its library; a copy from a tape library, one of that library too (it reads there).</summary>
    private static IEnumerable<(string Library, int Drive, bool Reads)> DrivesHeld(JobInfo j) =>
        j.SourceDrive > 0 && j.SourceLibrary != "" ? [(j.Library, j.Drive, false), (j.SourceLibrary, j.SourceDrive, true)] : [(j.Library, j.Drive, false)];

    /// <summary>Whether a copy of <paramref name="kind"/> from <paramref name="source"/> holds a drive of it: a tape library's (a disk's streams are not counted for reads).</summary>
    public bool ReadsOnDrive(JobKind kind, string source) => kind == JobKind.Copy && source != "" && Libraries.TryGetValue(source, out var l) && l.Kind == "tape";

    private static string NoSuchLibrary(string library) => $"no library {library}: list them with 'abk library list'";

    /// <summary>The lowest drive number of a library that no job in <paramref name="taken"/> holds.</summary>
    public static int FreeDrive(IReadOnlySet<int> taken)
    {
        var n = 1;
        while (taken.Contains(n)) n++;
        return n;
    }

    /// <summary>
    /// abk library disable / enable: a disabled library takes no new job of any kind (the queue passes it over:
    /// <see cref="Disabled"/>), while those running on it go on to their end: the way to empty it for maintenance of
    /// its disk, drives or robot. Disabled again, the reason is replaced.
    /// </summary>
    public Decision DecideSetLibraryEnabled(SetLibraryEnabled m, DateTimeOffset now)
    {
        if (!Libraries.ContainsKey(m.Library)) return Reject(NoSuchLibrary(m.Library));
        if (m.Enabled && !DisabledLibraries.ContainsKey(m.Library)) return Reject($"library {m.Library} is not disabled");
        if (m.Reason.Length > 200) return Reject("give a reason of 200 characters at most");
        return new Decision([new LibraryEnabled
        {
            Library = m.Library, Enabled = m.Enabled, Reason = m.Enabled ? "" : m.Reason.Trim() is { Length: > 0 } why ? why : "maintenance",
            UnixMs = now.ToUnixTimeMilliseconds(),
        }], null);
    }

    /// <summary>Why <paramref name="library"/> takes no new job (an operator disabled it), or null.</summary>
    public string? Disabled(string library) => DisabledLibraries.TryGetValue(library, out var why)
        ? $"library {library} is disabled ({why}): 'abk library enable {library}' when its maintenance is done"
        : null;

    /// <summary>
    /// Why an operator's changer command is refused here, or null (the media agent checks the rest against its
    /// changer): the library must be a registered tape library, and a mount, unmount or cleaning waits until no job
    /// runs on it (a drive is not cleaned or emptied in the middle of a job).
    /// </summary>
    public string? DecideChangeTape(ChangeTape m)
    {
        if (!Libraries.TryGetValue(m.Library, out var library)) return NoSuchLibrary(m.Library);
        if (library.Kind != "tape") return $"library {m.Library} is a {(library.Kind == "" ? "disk" : library.Kind)} library: it has no cartridges or changer";
        if (m.Verb is not (TapeVerb.Mount or TapeVerb.Unmount or TapeVerb.Clean)) return null;
        var running = HoldingDrives.Where(j => DrivesHeld(j).Any(d => d.Library == m.Library)).Select(j => j.Id).ToList();
        return running.Count == 0 ? null
            : $"library {m.Library} has {running.Count} job{(running.Count == 1 ? "" : "s")} running ({string.Join(", ", running.Take(5))}): " +
              "mount, unmount and clean when it is idle (abk drive list; 'abk library disable' lets its jobs finish and starts none), " +
              "or cancel a backup, restore or verify among them (a prune, copy or library check runs to its end)";
    }

    /// <summary>
    /// The tape libraries whose media agents last said some drive is due for cleaning and on which no job runs or is
    /// being started: cleaned now, at an idle moment, never in the middle of a job (a job the queue starts meanwhile
    /// waits for the cleaning: its session opens after it).
    /// </summary>
    public IReadOnlyList<string> DecideCleaning(IEnumerable<IndexReport> reports, IEnumerable<string> starting)
    {
        var busy = HoldingDrives.SelectMany(j => DrivesHeld(j).Select(d => d.Library)).Concat(starting).ToHashSet();
        // Not in a library an operator disabled: someone may be at its robot.
        return reports.Where(r => r.DrivesDueCleaning.Count > 0 && r.Unavailable == "" && !busy.Contains(r.Library) && Libraries.ContainsKey(r.Library) && !DisabledLibraries.ContainsKey(r.Library))
            .Select(r => r.Library).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Whether a job of this kind writes its library (else it reads it).</summary>
    public static bool Writes(JobKind kind) => kind is JobKind.Backup or JobKind.Copy or JobKind.Prune;

    /// <summary>
    /// The drives of <paramref name="library"/> (every library when empty) as the queue holds them: each with the job
    /// holding it, writing or reading; or why there is no such library.
    /// </summary>
    public (DriveList? Drives, string? Rejection) DecideDriveList(string library)
    {
        if (library != "" && !Libraries.ContainsKey(library)) return (null, NoSuchLibrary(library));
        var list = new DriveList();
        var held = HoldingDrives.SelectMany(j => DrivesHeld(j).Select(d => (d.Library, d.Drive, d.Reads, Job: j))).ToLookup(h => h.Library);
        foreach (var id in Libraries.Keys.Where(id => library == "" || id == library))
        {
            var jobs = held[id].ToList();
            var byDrive = new Dictionary<int, (JobInfo Job, bool Reads)>();
            foreach (var h in jobs.Where(h => h.Drive > 0)) byDrive.TryAdd(h.Drive, (h.Job, h.Reads));
            // A job started before drives were recorded (or one sharing a number) is shown on a drive no other holds.
            foreach (var h in jobs.Where(h => !byDrive.ContainsValue((h.Job, h.Reads)))) byDrive[FreeDrive(byDrive.Keys.ToHashSet())] = (h.Job, h.Reads);
            var count = Math.Max(DrivesOf(id), byDrive.Count == 0 ? 0 : byDrive.Keys.Max());
            for (var n = 1; n <= count; n++)
            {
                var drive = new LibraryDrive { Library = id, Number = n, State = "idle", Kind = Libraries[id].Kind };
                if (byDrive.TryGetValue(n, out var holder))
                {
                    var job = holder.Job;
                    drive.State = Writes(job.Kind) && !holder.Reads ? "writing" : "reading";
                    drive.Job = job.Id;
                    drive.JobKind = job.Kind;
                    drive.Client = job.Client;
                    drive.SinceUnixMs = job.StartedUnixMs;
                }
                list.Drives.Add(drive);
            }
        }
        return (list, null);
    }
}
