using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using Google.Protobuf;

namespace ActorBackup.Engine.Trees;

/// <summary>Loads trees (directory listings) by id, under their client's tree keys, checked like any chunk. Thread-safe (one decoder under a lock).</summary>
public sealed class TreeReader(CellKeys keys, IChunkSource source) : IDisposable
{
    private readonly ChunkDecoder _decoder = ChunkDecoder.TreesOnly(keys);
    private readonly object _lock = new();

    /// <summary>
    /// The most further records a folder's tree has (Tree.parts): with its own record, about 2 GB of entries (12 million
    /// small files in one folder), what one array holds when a backup reads it as a parent (<see cref="LoadParent"/>).
    /// </summary>
    public const int MaxParts = 7;

    /// <summary>A folder's tree, its further records' entries (Tree.parts) appended in order.</summary>
    public Tree Load(ChunkId id)
    {
        lock (_lock)
        {
            var tree = Parse(id, _decoder.Load(id, source));
            if (tree.Parts.Count == 0) return Folders(tree);
            CheckParts(id, tree.Parts.Count);
            foreach (var partId in tree.Parts)
            {
                var partChunk = PartId(id, partId);
                var part = Parse(partChunk, _decoder.Load(partChunk, source));
                if (part.Parts.Count > 0) throw new ChunkIntegrityException(id, "is a part of a folder's tree that has parts of its own");
                tree.Nodes.AddRange(part.Nodes);
            }
            return Folders(tree);
        }
    }

    /// <summary>
    /// A folder on the way to a set's path that was a symlink (/home -> /data/home) was recorded, before 2026-12-06, as
    /// a symlink node without a target holding the folder's tree: read as the folder it is, so that a restore, an ls
    /// and a find reach what such a snapshot holds below it (a restore made an empty link and nothing below it). Its
    /// metadata are the link's: mode 0777 (every symlink's), which a restore must not give a folder (anyone could
    /// rename what is in it), so 0755, and no xattrs (the link's label is no folder's).
    /// </summary>
    private static Tree Folders(Tree tree)
    {
        foreach (var node in tree.Nodes)
            if (node is { Type: NodeType.Symlink, LinkTarget.IsEmpty: true, Subtree.Length: ChunkId.Size })
            {
                node.Type = NodeType.Directory;
                node.Mode = 0x1ED; // 0755
                node.Xattrs.Clear();
            }
        return tree;
    }

    private static Tree Parse(ChunkId id, ReadOnlySpan<byte> bytes)
    {
        try
        {
            return Tree.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ChunkIntegrityException(id, $"is not a tree: {e.Message}");
        }
    }

    /// <summary>A part's id, checked to be one (32 bytes).</summary>
    internal static ChunkId PartId(ChunkId tree, ByteString part) =>
        part.Length == ChunkId.Size ? new ChunkId(part.Span) : throw new ChunkIntegrityException(tree, $"is not a tree: a part's id of {part.Length} bytes");

    internal static void CheckParts(ChunkId tree, int count)
    {
        if (count > MaxParts) throw new ChunkIntegrityException(tree, $"is not a tree: {count} parts, more than the {MaxParts} a folder's tree has");
    }

    public Tree Load(ByteString id) => Load(new ChunkId(id.Span));

    /// <summary>
    /// A parent snapshot's tree as a backup walks against it: scanned, its nodes made only where needed. A tree of
    /// several records (Tree.parts) is scanned as their bytes one after the other (the whole folder, in name order).
    /// </summary>
    public ParentTree LoadParent(ChunkId id)
    {
        byte[] bytes;
        int length;
        lock (_lock)
        {
            var plaintext = _decoder.Load(id, source); // the decoder's buffer: copied under the lock, scanned after it
            bytes = System.Buffers.ArrayPool<byte>.Shared.Rent(length = plaintext.Length);
            plaintext.CopyTo(bytes);
        }
        var tree = Scan(id, bytes, length);
        if (tree.PartsDamaged)
        {
            tree.Return();
            throw new ChunkIntegrityException(id, "is not a tree: a part's id is not 32 bytes");
        }
        if (tree.Parts.Count == 0) return tree;
        var parts = tree.Parts;
        byte[] whole;
        try
        {
            CheckParts(id, parts.Count);
            lock (_lock)
            {
                var records = new List<byte[]>(parts.Count);
                long total = length;
                foreach (var part in parts)
                {
                    var plaintext = _decoder.Load(part, source);
                    total += plaintext.Length;
                    if (total > Array.MaxLength) throw new ChunkIntegrityException(id, $"is not a tree: its parts hold more than the {Array.MaxLength} bytes a folder's tree may");
                    records.Add(plaintext.ToArray());
                }
                whole = System.Buffers.ArrayPool<byte>.Shared.Rent((int)total);
                bytes.AsSpan(0, length).CopyTo(whole);
                foreach (var r in records)
                {
                    r.CopyTo(whole, length);
                    length += r.Length;
                }
            }
        }
        finally
        {
            tree.Return(); // its first record's bytes copied (or not needed): the arrays go back to the pool
        }
        tree = Scan(id, whole, length);
        if (tree.Parts.Count != parts.Count || tree.PartsDamaged)
        {
            tree.Return();
            throw new ChunkIntegrityException(id, "is a part of a folder's tree that has parts of its own");
        }
        return tree;
    }

    private static ParentTree Scan(ChunkId id, byte[] rented, int length)
    {
        try
        {
            return ParentTree.ScanRented(id, rented, length);
        }
        catch (InvalidDataException e)
        {
            throw new ChunkIntegrityException(id, $"is not a tree: {e.Message}");
        }
    }

    /// <summary>
    /// Puts a big file's entries back into its node from its chunk-list records (NodeExtensions.ExpandChunkLists): what
    /// a restore or a backup reusing the node reads.
    /// </summary>
    public void ExpandChunkLists(Node node) => node.ExpandChunkLists(LoadList);

    /// <summary>One chunk-list record, checked to hold as many sizes as ids.</summary>
    public ChunkList LoadList(ChunkId id)
    {
        lock (_lock) return NodeExtensions.ParseChunkList(id, _decoder.Load(id, source));
    }

    public void Dispose() => _decoder.Dispose();
}
