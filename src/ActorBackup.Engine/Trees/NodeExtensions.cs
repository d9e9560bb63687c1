using Google.Protobuf;
using Google.Protobuf.Collections;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Trees;

public static class NodeExtensions
{
    public static ChunkId SubtreeId(this Node node) => new(node.Subtree.Span);

    /// <summary>
    /// The deepest a snapshot's folders are read (restore, listing): a backup's walk stops where a path passes PATH_MAX
    /// (4,096 bytes: 2,047 levels of one-letter names), so deeper is a damaged or crafted tree, refused before it
    /// exhausts a reader's stack.
    /// </summary>
    public const int MaxDepth = 2048;

    /// <summary>
    /// The name an ACL entry's user or group id had where the node was backed up (Node.acl_users / acl_groups), null
    /// when none was recorded; of two entries for one id the last counts, as in the map they are on the wire.
    /// </summary>
    public static string? AclName(this RepeatedField<IdName> names, uint id)
    {
        for (var i = names.Count - 1; i >= 0; i--)
            if (names[i].Id == id) return names[i].Name;
        return null;
    }

    /// <summary>Records an id's name, in place of the one recorded before (as a map's indexer: the entry keeps its place).</summary>
    public static void SetAclName(this RepeatedField<IdName> names, uint id, string name)
    {
        for (var i = 0; i < names.Count; i++)
            if (names[i].Id == id)
            {
                names[i] = new IdName { Id = id, Name = name };
                return;
            }
        names.Add(new IdName { Id = id, Name = name });
    }

    /// <summary>
    /// The entry's name as the engine works with it (Posix/PosixNames: a name that is not valid UTF-8 holds its
    /// other bytes escaped, and goes back to exactly those bytes); show it with PosixNames.Display.
    /// </summary>
    public static string FileName(this Node node) => node.RawName.IsEmpty ? node.Name : Posix.PosixNames.Decode(node.RawName.Span);

    /// <summary>Sets the entry's name: raw_name too when its bytes are not valid UTF-8.</summary>
    public static Node Named(this Node node, string name)
    {
        if (Posix.PosixNames.HasEscapes(name))
        {
            node.RawName = Google.Protobuf.ByteString.CopyFrom(Posix.PosixNames.Encode(name));
            node.Name = Posix.PosixNames.Display(name);
        }
        else
        {
            node.Name = name;
            node.RawName = Google.Protobuf.ByteString.Empty;
        }
        return node;
    }

    /// <summary>A hard link's first name (its snapshot path), as the engine works with it (see <see cref="FileName"/>).</summary>
    public static string LinkedPath(this Node node) =>
        node.RawHardlinkTarget.IsEmpty ? node.HardlinkTarget : Posix.PosixNames.Decode(node.RawHardlinkTarget.Span);

    /// <summary>
    /// Makes the node a hard link to <paramref name="path"/> (raw_hardlink_target too when it is not valid UTF-8). A file's
    /// further name becomes a HARDLINK node; a symlink's, FIFO's, socket's or device's (<paramref name="keepType"/>) keeps
    /// its own type and whole entry, the target only saying which name it is one inode with.
    /// </summary>
    public static void LinksTo(this Node node, string path, bool keepType = false)
    {
        if (!keepType) node.Type = NodeType.Hardlink;
        if (Posix.PosixNames.HasEscapes(path))
        {
            node.RawHardlinkTarget = Google.Protobuf.ByteString.CopyFrom(Posix.PosixNames.Encode(path));
            node.HardlinkTarget = Posix.PosixNames.Display(path);
        }
        else node.HardlinkTarget = path;
    }

    /// <summary>
    /// A file's chunk list holds its holes too (a sparse file's unallocated ranges): an entry with the empty id
    /// (<see cref="IsHole"/>) and the hole's length, at most this much per entry. A hole is no chunk: nothing stores,
    /// references, verifies or reads it, and a restore leaves it a hole.
    /// </summary>
    public const long MaxHoleEntry = 1L << 30;

    /// <summary>
    /// The most entries a stored node lists itself (about 36 MB of node): a file of more keeps them in records of this
    /// many each (Node.chunk_lists).
    /// </summary>
    public const int EntriesPerList = 1024 * 1024;

    /// <summary>
    /// The most entries a folder's tree lists in its nodes (about 72 MB of its record, VolumeFormat.MaxPayload being
    /// 256 MiB): past it the folder's biggest files keep theirs in lists too (Archiver.Listed).
    /// </summary>
    public const long TreeEntryBudget = 2L * 1024 * 1024;

    /// <summary>
    /// The most entries (chunks and holes) one file has: 512 MiB of ids while it is read or restored. At the policy's
    /// 1 MiB chunks a file of 16 TiB (ext4's largest), or 16 PiB of holes; a file beyond it is reported, not backed up,
    /// and the backup goes on.
    /// </summary>
    public const int MaxChunkEntries = 16 * 1024 * 1024;

    /// <summary>Chunk lists that are torn (not whole ids) or beside entries of the node's own, which <see cref="ExpandChunkLists"/> refuses.</summary>
    public static bool HasTornLists(this Node node) =>
        !node.ChunkLists.IsEmpty && (node.ChunkLists.Length % ChunkId.Size != 0 || !node.Chunks.IsEmpty || node.ChunkSizes.Count != 0);

    /// <summary>Drops a file node's entries and lists: the file is read again (a node without entries is never unchanged).</summary>
    public static void ForgetEntries(this Node node)
    {
        node.Chunks = ByteString.Empty;
        node.ChunkSizes.Clear();
        node.ChunkLists = ByteString.Empty;
    }

    /// <summary>
    /// Puts a big file's entries back into its node from its chunk-list records (Node.chunk_lists, whose ids it keeps),
    /// each loaded by <paramref name="load"/>. A node without lists is left as it is.
    /// </summary>
    /// <exception cref="ChunkIntegrityException">a list is missing, damaged, or the lists do not add up</exception>
    public static void ExpandChunkLists(this Node node, Func<ChunkId, ChunkList> load)
    {
        if (node.ChunkLists.IsEmpty) return;
        if (node.HasTornLists())
            throw new InvalidDataException($"entry {Posix.PosixNames.Display(node.FileName())}: its chunk lists are torn, or beside entries of its own");
        var parts = new List<ByteString>();
        var sizes = new List<uint>();
        long count = 0;
        foreach (var id in node.ChunkListIds())
        {
            var list = load(id);
            count += list.ChunkSizes.Count;
            if (count > MaxChunkEntries) throw new Codec.ChunkIntegrityException(id, $"makes more than {MaxChunkEntries:N0} entries of one file");
            parts.Add(list.Chunks);
            sizes.AddRange(list.ChunkSizes);
        }
        var ids = new byte[count * ChunkId.Size];
        var at = 0;
        foreach (var part in parts)
        {
            part.Span.CopyTo(ids.AsSpan(at));
            at += part.Length;
        }
        node.Chunks = UnsafeByteOperations.UnsafeWrap(ids);
        node.ChunkSizes.AddRange(sizes);
    }

    /// <summary>A chunk-list record's plaintext, checked to hold as many sizes as ids.</summary>
    /// <exception cref="Codec.ChunkIntegrityException">it is not one</exception>
    public static ChunkList ParseChunkList(ChunkId id, ReadOnlySpan<byte> plain)
    {
        ChunkList list;
        try
        {
            list = ChunkList.Parser.ParseFrom(plain);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new Codec.ChunkIntegrityException(id, $"is not a chunk list: {e.Message}");
        }
        if (list.Chunks.Length % ChunkId.Size != 0 || list.ChunkSizes.Count != list.Chunks.Length / ChunkId.Size)
            throw new Codec.ChunkIntegrityException(id, "is a torn chunk list (ids and sizes do not pair)");
        return list;
    }

    /// <summary>
    /// The ids of a node's chunk-list records (Node.chunk_lists): none, without an allocation, for all but the biggest
    /// files (asked of every reused file of an unchanged backup).
    /// </summary>
    public static ChunkId[] ChunkListIds(this Node node)
    {
        if (node.ChunkLists.IsEmpty) return [];
        var ids = new ChunkId[node.ChunkLists.Length / ChunkId.Size];
        for (var i = 0; i < ids.Length; i++) ids[i] = new ChunkId(node.ChunkLists.Span.Slice(i * ChunkId.Size, ChunkId.Size));
        return ids;
    }

    /// <summary>Whether a chunk-list entry is a hole (the empty id) rather than a chunk.</summary>
    public static bool IsHole(ChunkId id) => id.IsEmpty;

    /// <summary>The chunk ids among a file's entries as they lie in bytes (Node.chunks), its holes left out: a hole is no chunk.</summary>
    public static ChunkIds ChunksIn(ReadOnlySpan<byte> entries) => new(entries);

    /// <summary>An allocation-free enumeration of <see cref="ChunksIn"/> (asked of every file of an unchanged backup).</summary>
    public ref struct ChunkIds(ReadOnlySpan<byte> entries)
    {
        private readonly ReadOnlySpan<byte> _entries = entries;
        private int _at = -ChunkId.Size;

        public readonly ChunkIds GetEnumerator() => this;

        public ChunkId Current { get; private set; }

        public bool MoveNext()
        {
            while ((_at += ChunkId.Size) + ChunkId.Size <= _entries.Length)
                if (new ChunkId(_entries.Slice(_at, ChunkId.Size)) is var id && !IsHole(id))
                {
                    Current = id;
                    return true;
                }
            return false;
        }
    }

    /// <summary>Whether the file has holes (restored sparse: its size set, its holes left unwritten).</summary>
    public static bool HasHoles(this Node node)
    {
        for (var i = 0; i < node.ChunkCount(); i++)
            if (node.ChunkAt(i).IsEmpty) return true;
        return false;
    }

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
