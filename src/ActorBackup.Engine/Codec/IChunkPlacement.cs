using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Codec;

/// <summary>Where a chunk is in its library: the volume (a tape library: the cartridge) and the offset in it; volume 0: unknown.</summary>
public readonly record struct ChunkPlace(uint Volume, long Offset);

/// <summary>
/// A chunk source that can say where its chunks are, so that a reader can take them in the order of the medium: on
/// tape (<see cref="Sequential"/>) a restore reads cartridge by cartridge, forward, each mounted once, instead of in
/// the order of its files.
/// </summary>
public interface IChunkPlacement
{
    /// <summary>Whether reading out of place order costs mounts and winding (tape), so that readers should sort.</summary>
    bool Sequential { get; }

    /// <summary>The place of each chunk, in the order asked.</summary>
    IReadOnlyList<ChunkPlace> Places(IReadOnlyList<ChunkId> ids);
}
