namespace ActorBackup.Engine.Volumes;

/// <summary>A volume's bytes are not what was written. Names the file and the byte offset.</summary>
/// <param name="medium">the bytes themselves are bad (a checksum, a magic, the end of the data); false: they read well but
/// are not what the index says is there (another chunk, another length, past the end): a cartridge is not worn for it</param>
public sealed class VolumeCorruptException(string volume, long offset, string reason, bool medium = true)
    : IOException($"volume {volume} is damaged at offset {offset}: {reason}")
{
    public bool Medium { get; } = medium;
    public string Volume { get; } = volume;
    public long Offset { get; } = offset;
    public string Reason { get; } = reason;
}
