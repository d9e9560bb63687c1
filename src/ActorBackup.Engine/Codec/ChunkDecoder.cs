using ActorBackup.Engine.Compression;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Codec;

/// <summary>
/// One worker's way from a stored chunk back to plaintext: read, open (AEAD), decompress, and check the
/// keyed hash against the id. Not thread-safe; the returned span is valid until the next call.
/// </summary>
public sealed class ChunkDecoder : IDisposable
{
    private readonly KeyDomain? _data, _trees;
    private ChunkCipher.ChunkOpener? _dataOpener, _treeOpener;
    private readonly ChunkCompressor _compressor = new(1);
    private byte[] _record = new byte[64 * 1024];
    private byte[] _opened = new byte[64 * 1024];
    private byte[] _plain = new byte[64 * 1024];
    private readonly int _maxChunk;

    /// <summary>Opens file data and trees of one client's snapshots, each under its domain (by the record's flags).</summary>
    public ChunkDecoder(CellKeys keys, int maxChunkSize = VolumeFormat.MaxPayload) : this(keys.Data, keys.Trees, maxChunkSize)
    {
    }

    /// <summary>Opens records of <paramref name="data"/> only (file data, manifests); a tree is refused as damage.</summary>
    public ChunkDecoder(KeyDomain data, int maxChunkSize = VolumeFormat.MaxPayload) : this(data, null, maxChunkSize)
    {
    }

    private ChunkDecoder(KeyDomain? data, KeyDomain? trees, int maxChunkSize)
    {
        _data = data;
        _trees = trees;
        _maxChunk = maxChunkSize;
    }

    /// <summary>Opens trees only: a record that is not flagged a tree is refused as damage (TreeReader).</summary>
    public static ChunkDecoder TreesOnly(CellKeys keys) => new(null, keys.Trees, VolumeFormat.MaxPayload);

    public ReadOnlySpan<byte> Load(ChunkId id, IChunkSource source)
    {
        ReadOnlySpan<byte> payload;
        RecordFlags flags;
        try
        {
            payload = source.ReadPayload(id, ref _record, out flags);
        }
        catch (InvalidDataException e)
        {
            throw new ChunkIntegrityException(id, e.Message);
        }
        return Decode(id, payload, flags);
    }

    /// <summary>
    /// Loads several chunks through <see cref="IChunkSource.ReadPayloads"/> (read-ahead over a network) and
    /// hands each plaintext, or why it could not be had, to <paramref name="handle"/> in order.
    /// </summary>
    public void LoadMany(IReadOnlyList<ChunkId> ids, IChunkSource source, PlainHandler handle)
    {
        source.ReadPayloads(ids, ref _record, (i, payload, flags, error) =>
        {
            if (error is not null)
            {
                handle(i, default, error is InvalidDataException ? new ChunkIntegrityException(ids[i], error.Message) : error);
                return;
            }
            ReadOnlySpan<byte> plain;
            try
            {
                plain = Decode(ids[i], payload, flags);
            }
            catch (ChunkIntegrityException e)
            {
                handle(i, default, e);
                return;
            }
            handle(i, plain, null);
        });
    }

    /// <summary>Opens, decompresses and checks a payload already read (see <see cref="IChunkSource.ReadPayloads"/>).</summary>
    public ReadOnlySpan<byte> Decode(ChunkId id, ReadOnlySpan<byte> payload, RecordFlags flags)
    {
        var tree = (flags & RecordFlags.Tree) != 0;
        var domain = (tree ? _trees : _data)
                     ?? throw new ChunkIntegrityException(id, tree ? "is a tree where file data was expected" : "is not a tree where a tree was expected");
        var opener = tree ? _treeOpener ??= domain.Cipher.CreateOpener() : _dataOpener ??= domain.Cipher.CreateOpener();
        ReadOnlySpan<byte> body;
        try
        {
            var length = ChunkCipher.ChunkOpener.PlaintextLength(payload);
            if (_opened.Length < length) _opened = new byte[Math.Max(length, _opened.Length * 2)];
            opener.Open(id, (byte)flags, payload, _opened);
            body = _opened.AsSpan(0, length);
            if ((flags & RecordFlags.Compressed) != 0)
            {
                var size = ChunkCompressor.DecompressedSize(body, _maxChunk);
                if (_plain.Length < size) _plain = new byte[Math.Max(size, _plain.Length * 2)];
                var n = _compressor.Decompress(body, _plain.AsSpan(0, size));
                body = _plain.AsSpan(0, n);
            }
        }
        catch (InvalidDataException e)
        {
            throw new ChunkIntegrityException(id, e.Message);
        }
        if (domain.Hasher.Hash(body) != id) throw new ChunkIntegrityException(id, "content does not match its id (damaged or swapped)");
        return body;
    }

    public void Dispose()
    {
        _dataOpener?.Dispose();
        _treeOpener?.Dispose();
        _compressor.Dispose();
    }
}
