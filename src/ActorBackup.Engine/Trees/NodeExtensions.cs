using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Trees;

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
