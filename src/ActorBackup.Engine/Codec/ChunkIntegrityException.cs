using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Codec;

/// <summary>A chunk came back but is not what its id names: damaged, or swapped.</summary>
public sealed class ChunkIntegrityException(ChunkId id, string reason) : IOException($"chunk {id.Short}: {reason}")
{
    public ChunkId Id { get; } = id;
}

/// <summary>One chunk of a <see cref="ChunkDecoder.LoadMany"/> batch: its plaintext, or why it could not be had.</summary>
public delegate void PlainHandler(int index, ReadOnlySpan<byte> plain, Exception? error);
