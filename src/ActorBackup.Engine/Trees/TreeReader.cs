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

    /// <summary>A parent snapshot's tree as a backup walks against it: scanned, its nodes made only where needed.</summary>
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
        try
        {
            return ParentTree.ScanRented(id, bytes, length);
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
