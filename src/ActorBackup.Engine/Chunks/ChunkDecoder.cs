using ActorBackup.Engine.Compression;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Chunks;

/// <summary>A chunk came back but is not what its id names: damaged, or swapped.</summary>
public sealed class ChunkIntegrityException(ChunkId id, string reason) : IOException($"chunk {id.Short}: {reason}")
{
    public ChunkId Id { get; } = id;
}

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
