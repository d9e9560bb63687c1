using ActorBackup.Engine.Compression;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Codec;

public readonly record struct StoreResult(ChunkId Id, bool IsNew, int StoredLength);
