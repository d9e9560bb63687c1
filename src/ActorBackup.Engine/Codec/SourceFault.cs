namespace ActorBackup.Engine.Codec;

/// <summary>
/// A fault of the way to the chunks (the connection to the media agent lost, the library refused or failed the job),
/// not of the chunk asked for: a reader that goes on past damaged chunks and trees (a restore, a verify) stops on it, so
/// that the job fails, and may be retried, instead of reporting sound data as damaged.
/// </summary>
public interface ISourceFault;

public static class SourceFault
{
    /// <summary>Whether <paramref name="e"/> says that what was read is damaged or missing (not that it could not be reached: <see cref="ISourceFault"/>).</summary>
    public static bool IsDamage(Exception e) => e is not ISourceFault && e is IOException or KeyNotFoundException or InvalidDataException;
}
