using ActorBackup.Engine.Chunks;
using ActorBackup.Engine.Hashing;
using Google.Protobuf;

namespace ActorBackup.Engine.Trees;

/// <summary>Loads trees (directory listings) by id, checked like any chunk. Thread-safe (one decoder under a lock).</summary>
public sealed class TreeReader(CellKeys keys, IChunkSource source) : IDisposable
{
    private readonly ChunkDecoder _decoder = new(keys);
    private readonly object _lock = new();

    public Tree Load(ChunkId id)
    {
        lock (_lock)
        {
            var bytes = _decoder.Load(id, source);
            try
            {
                return Tree.Parser.ParseFrom(bytes);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new ChunkIntegrityException(id, $"is not a tree: {e.Message}");
            }
        }
    }

    public Tree Load(ByteString id) => Load(new ChunkId(id.Span));

    public void Dispose() => _decoder.Dispose();
}

public static class NodeExtensions
{
    public static ChunkId SubtreeId(this Node node) => new(node.Subtree.Span);

    public static int ChunkCount(this Node node) => node.Chunks.Length / ChunkId.Size;

    public static ChunkId ChunkAt(this Node node, int index) => new(node.Chunks.Span.Slice(index * ChunkId.Size, ChunkId.Size));

    /// <summary>Why a tree entry's name must not be used as a path component, or null when it is safe.</summary>
    public static string? UnsafeNameReason(string name)
    {
        if (name.Length == 0) return "empty name";
        if (name is "." or "..") return $"name '{name}' would leave its directory";
        if (name.Contains('/')) return $"name '{name}' holds a path separator";
        if (name.Contains('\0')) return "name holds a NUL byte";
        return null;
    }
}
