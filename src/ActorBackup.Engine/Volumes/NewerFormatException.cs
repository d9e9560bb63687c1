namespace ActorBackup.Engine.Volumes;

/// <summary>
/// A file of a format newer than this build reads (a volume, library.json, a wrapped key): written by a newer
/// ActorBackup, not damaged. Never taken as damage: no cartridge is marked in error or retired, no rebuild or heal is
/// asked for; the operator is told to use that build (README, "Upgrading a cell"). A reader (a restore, a verify) stops on
/// it as on a fault of the way to the chunks (<see cref="Codec.ISourceFault"/>): the job fails saying so, never a chunk
/// reported damaged, healed from a copy or left out.
/// </summary>
public sealed class NewerFormatException(string what, int found, int reads)
    : IOException($"{what} was written by a newer ActorBackup (format {found}; this build reads up to {reads}): use that build or a newer one " +
                  "(README, \"Upgrading a cell\"); it is not damaged"), Codec.ISourceFault
{
    public int Found { get; } = found;
}
