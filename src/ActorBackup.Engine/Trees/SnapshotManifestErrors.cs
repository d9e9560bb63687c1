namespace ActorBackup.Engine.Trees;

public sealed partial class SnapshotManifest
{
    /// <summary>Every error of the backup: those listed and those only counted (<c>errors_omitted</c>, Archiver.RecordedErrors).</summary>
    public int ErrorCount => (int)Math.Min(int.MaxValue, Errors.Count + (long)ErrorsOmitted);
}
