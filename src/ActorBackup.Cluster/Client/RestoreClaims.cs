using System.Security.Cryptography;
using System.Text;
using ActorBackup.Engine.Posix;

namespace ActorBackup.Cluster.Client;

/// <summary>
/// The restores that claimed their target on this host: a restore into a folder that is not empty is refused unless the
/// operator forced it, but a retry of a restore whose earlier attempt passed that check (and wrote there) must go on over
/// that attempt's files. The claim is kept on disk (0600, in a 0700 folder, durably) from the moment the target is
/// claimed until the attempt returns, so that it outlives a node that died mid-restore; a retry that finds none (its
/// earlier attempt never claimed the target: the client was not connected, the data plane failed first) is checked
/// like a first attempt. Claims older than <see cref="Kept"/> are let go.
/// </summary>
public sealed class RestoreClaims(string folder)
{
    /// <summary>How long a claim is kept without its restore coming back (retries come within hours).</summary>
    public static readonly TimeSpan Kept = TimeSpan.FromDays(7);

    private const string Made = "made\n", Existing = "existing\n";

    private string PathOf(string job, string target) =>
        Path.Combine(folder, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(job + "\n" + target)))[..32]);

    /// <summary>
    /// The claim of this job's restore into <paramref name="target"/>: null when none (not claimed by an earlier
    /// attempt), otherwise whether that attempt made the folder. An unreadable claim counts as none.
    /// </summary>
    public bool? Find(string job, string target)
    {
        try
        {
            var path = PathOf(job, target);
            if (!File.Exists(path)) return null;
            return File.ReadAllText(path) switch { Made => true, Existing => false, _ => null };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Records that this job's restore claimed <paramref name="target"/> (and whether it made the folder), before it writes there.</summary>
    public void Claim(string job, string target, bool made)
    {
        Posix.CreateDirectories(folder, 0x1C0);
        Posix.WriteFileDurably(PathOf(job, target), Encoding.ASCII.GetBytes(made ? Made : Existing), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>
    /// Records, durably, that this job's restore into <paramref name="target"/> found <paramref name="relative"/> (a folder on
    /// the way to a path asked for) there before it: a retry leaves that folder's own metadata too, where one the earlier
    /// attempt made gets the snapshot's. One line each, the path's UTF-16 in base64 (any name, newlines too).
    /// </summary>
    public void AddFound(string job, string target, string relative) => AddFound(job, target, [relative]);

    /// <summary>Several at once, with one sync (a level of folders an --overwrite never restore found there).</summary>
    public void AddFound(string job, string target, IReadOnlyCollection<string> relatives)
    {
        if (relatives.Count == 0) return;
        lock (_foundLock)
        {
            Posix.CreateDirectories(folder, 0x1C0);
            using var f = new FileStream(PathOf(job, target) + ".found", new FileStreamOptions
            {
                Mode = FileMode.Append, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            foreach (var relative in relatives)
                f.Write(Encoding.ASCII.GetBytes(Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(relative.AsSpan())) + "\n"));
            f.Flush(flushToDisk: true);
        }
    }

    private readonly object _foundLock = new();

    /// <summary>The folders an earlier attempt of this job's restore found there before it (<see cref="AddFound"/>); empty when none or unreadable.</summary>
    public IReadOnlySet<string> FoundOf(string job, string target)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            var path = PathOf(job, target) + ".found";
            if (!File.Exists(path)) return found;
            foreach (var line in File.ReadLines(path))
                try
                {
                    var bytes = Convert.FromBase64String(line);
                    if (bytes.Length % 2 == 0) found.Add(new string(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, char>(bytes)));
                }
                catch (FormatException)
                {
                    // A line torn by a crash: the folder it named gets the snapshot's metadata, as before this record.
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return found;
    }

    /// <summary>
    /// Every error a restore listed, one a line ("PATH: REASON"), in <c>errors-JOB.txt</c> of this folder (0600; kept as long
    /// as a claim, <see cref="Kept"/>): the job's reason holds the first few. Its path, or null when it could not be written.
    /// </summary>
    public string? WriteErrors(string job, IEnumerable<Engine.Trees.SnapshotError> errors, long omitted)
    {
        if (!long.TryParse(job, out _)) return null; // a job id is a number: nothing else names a file here
        try
        {
            Posix.CreateDirectories(folder, 0x1C0);
            var path = Path.Combine(folder, $"errors-{job}.txt");
            Posix.WriteFileDurably(path, f =>
            {
                using var w = new StreamWriter(f, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
                foreach (var e in errors) w.Write($"{e.Path}: {e.Reason.ReplaceLineEndings(" ")}\n");
                if (omitted > 0) w.Write($"... and {omitted} more errors, not listed\n");
            }, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            return path;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The restore returned (done, or failed for good): its claim goes, with any older than <see cref="Kept"/>.</summary>
    public void Release(string job, string target)
    {
        try
        {
            File.Delete(PathOf(job, target));
            File.Delete(PathOf(job, target) + ".found");
            if (!Directory.Exists(folder)) return;
            foreach (var stale in Directory.EnumerateFiles(folder))
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(stale) > Kept) File.Delete(stale);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A claim left behind only lets a later attempt of that same job go on over its own files.
        }
    }
}
