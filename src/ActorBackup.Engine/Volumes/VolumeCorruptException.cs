namespace ActorBackup.Engine.Volumes;

/// <summary>A volume's bytes are not what was written. Names the file and the byte offset.</summary>
public sealed class VolumeCorruptException(string volume, long offset, string reason)
    : IOException($"volume {volume} is damaged at offset {offset}: {reason}")
{
    public string Volume { get; } = volume;
    public long Offset { get; } = offset;
    public string Reason { get; } = reason;
}
