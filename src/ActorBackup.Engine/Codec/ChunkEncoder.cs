using ActorBackup.Engine.Compression;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Codec;

/// <summary>
/// One worker's way from plaintext to a stored chunk: hash, ask the sink whether it is new, and only then
/// compress (kept only if it shrinks), seal and append (a sink behind a network gets the question first and
/// answers while the chunk is sealed). Not thread-safe; buffers are reused chunk after chunk.
/// </summary>
public sealed class ChunkEncoder : IDisposable
{
    private readonly KeyDomain _domain;
    private readonly ChunkCipher.UploadSession _session;
    private readonly ChunkCompressor _compressor;
    private byte[] _compressed = [];
    private byte[] _sealed = [];

    /// <summary>An encoder for chunks of one key domain; <paramref name="session"/> comes from that domain's cipher.</summary>
    public ChunkEncoder(KeyDomain domain, ChunkCipher.UploadSession session, int compressionLevel)
    {
        _domain = domain;
        _session = session;
        _compressor = new ChunkCompressor(compressionLevel);
    }

    public StoreResult Store(ReadOnlySpan<byte> plaintext, RecordFlags kind, IChunkSink sink)
    {
        var id = _domain.Hasher.Hash(plaintext);
        RecordFlags flags;
        int sealedLength;
        if (!sink.DefersReserve)
        {
            if (!sink.TryReserve(id)) return new StoreResult(id, false, 0);
            try
            {
                (flags, sealedLength) = Seal(id, plaintext, kind);
            }
            catch
            {
                sink.Release(id);
                throw;
            }
        }
        else
        {
            // A sink behind a network: the question travels while this thread compresses and seals, and the
            // work is thrown away when the answer is "have it" (rare in new data; unchanged files never get here).
            sink.StartReserve(id);
            try
            {
                (flags, sealedLength) = Seal(id, plaintext, kind);
            }
            catch
            {
                if (sink.FinishReserve(id)) sink.Release(id);
                throw;
            }
            if (!sink.FinishReserve(id)) return new StoreResult(id, false, 0);
        }
        try
        {
            sink.Append(id, flags, _sealed.AsSpan(0, sealedLength));
        }
        catch
        {
            sink.Release(id);
            throw;
        }
        return new StoreResult(id, true, sealedLength + VolumeFormat.RecordOverhead);
    }

    /// <summary>Compresses (kept only if it shrinks) and seals into the reused buffer.</summary>
    private (RecordFlags Flags, int SealedLength) Seal(ChunkId id, ReadOnlySpan<byte> plaintext, RecordFlags kind)
    {
        var bound = ChunkCompressor.MaxCompressedLength(plaintext.Length);
        if (_compressed.Length < bound) _compressed = new byte[Math.Max(bound, 64 * 1024)];
        var flags = kind | RecordFlags.Encrypted;
        var body = plaintext;
        var compressedLength = _compressor.TryCompress(plaintext, _compressed);
        if (compressedLength >= 0)
        {
            flags |= RecordFlags.Compressed;
            body = _compressed.AsSpan(0, compressedLength);
        }
        var need = body.Length + ChunkCipher.Overhead;
        if (_sealed.Length < need) _sealed = new byte[Math.Max(need, _compressed.Length + ChunkCipher.Overhead)];
        return (flags, _session.Seal(id, (byte)flags, body, _sealed));
    }

    public void Dispose() => _compressor.Dispose();
}
