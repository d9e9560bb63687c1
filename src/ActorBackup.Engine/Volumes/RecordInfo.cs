using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Volumes;

/// <summary>A record as found in a volume: where it starts and what it holds.</summary>
public readonly record struct RecordInfo(ChunkId Id, RecordFlags Flags, long Offset, int PayloadLength)
{
    public long End => Offset + VolumeFormat.RecordOverhead + PayloadLength;
}
