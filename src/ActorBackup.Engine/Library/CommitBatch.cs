using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;

namespace ActorBackup.Engine.Library;

/// <summary>What a commit made durable: the index entries and the volume table since the last commit.</summary>
public sealed record CommitBatch(IReadOnlyList<KeyValuePair<ChunkId, ChunkLocation>> Entries, IReadOnlyList<VolumeEntry> Volumes);
