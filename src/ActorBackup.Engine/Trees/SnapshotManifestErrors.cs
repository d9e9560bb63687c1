namespace ActorBackup.Engine.Trees;

public sealed partial class SnapshotManifest
{
    /// <summary>Every error of the backup: those listed and those only counted (<c>errors_omitted</c>, Archiver.RecordedErrors).</summary>
    public int ErrorCount => (int)Math.Min(int.MaxValue, Errors.Count + (long)ErrorsOmitted);

    /// <summary>
    /// What a backup job's end says of its errors: how many, the first <paramref name="first"/> (each cut to 300 characters:
    /// it is kept in the manager's journal), and where the rest are; empty when there are none.
    /// </summary>
    public string DescribeErrors(int first = 5)
    {
        if (ErrorCount == 0) return "";
        static string Cut(string s) => s.Length <= 300 ? s : s[..300] + "...";
        var shown = Errors.Take(first).Select(e => Cut($"{e.Path}: {e.Reason}"));
        return $"{ErrorCount} file{(ErrorCount == 1 ? "" : "s")} or folder{(ErrorCount == 1 ? "" : "s")} could not be read (the rest is in the snapshot): " +
               string.Join("; ", shown) + (ErrorCount > first ? $"; ... ('abk snapshot show {Id}' lists them)" : "");
    }
}
