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
    private readonly CellKeys _keys;
    private readonly ChunkCipher.ChunkOpener _opener;
    private readonly ChunkCompressor _compressor = new(1);
    private byte[] _record = new byte[64 * 1024];
    private byte[] _opened = new byte[64 * 1024];
    private byte[] _plain = new byte[64 * 1024];
    private readonly int _maxChunk;

    public ChunkDecoder(CellKeys keys, int maxChunkSize = VolumeFormat.MaxPayload)
    {
        _keys = keys;
        _opener = keys.Cipher.CreateOpener();
        _maxChunk = maxChunkSize;
    }

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
        ReadOnlySpan<byte> body;
        try
        {
            var length = ChunkCipher.ChunkOpener.PlaintextLength(payload);
            if (_opened.Length < length) _opened = new byte[Math.Max(length, _opened.Length * 2)];
            _opener.Open(id, (byte)flags, payload, _opened);
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
        if (_keys.Hasher.Hash(body) != id) throw new ChunkIntegrityException(id, "content does not match its id (damaged or swapped)");
        return body;
    }

    public void Dispose()
    {
        _opener.Dispose();
        _compressor.Dispose();
    }
}
