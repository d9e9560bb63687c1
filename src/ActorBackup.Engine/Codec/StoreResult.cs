using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Codec;

public readonly record struct StoreResult(ChunkId Id, bool IsNew, int StoredLength);
