namespace ActorBackup.Engine.Volumes;

/// <summary>
/// A file of a format newer than this build reads (a volume, library.json, a wrapped key): written by a newer
/// ActorBackup, not damaged. Never taken as damage: no cartridge is marked in error or retired, no rebuild or heal is
/// asked for; the operator is told to use that build (README, "Upgrading a cell").
/// </summary>
public sealed class NewerFormatException(string what, int found, int reads)
    : IOException($"{what} was written by a newer ActorBackup (format {found}; this build reads up to {reads}): use that build or a newer one " +
                  "(README, \"Upgrading a cell\"); it is not damaged")
{
    public int Found { get; } = found;
}
