using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using ActorBackup.Engine.Hashing;

namespace ActorBackup.Engine.Crypto;

/// <summary>
/// AES-256-GCM per chunk. Every upload session draws a random 128-bit session id and derives its own key
/// (HKDF of the data key and the session id); within a session the nonce is a 64-bit counter. A key therefore
/// never sees a repeated nonce and never more than 2^64 messages, however many chunks the cell stores, which
/// keeps GCM far inside its bounds beyond 2^32 chunks. The chunk id and the flags are authenticated as
/// associated data, so a record cannot be moved to another id or have its compression flag flipped.
///
/// Sealed payload: version (1) | session id (16) | counter (8) | ciphertext | tag (16).
/// </summary>
public sealed class ChunkCipher
{
    public const int Overhead = 1 + 16 + 8 + 16;
    private const byte Version = 1;
    private readonly byte[] _dataKey;
    private readonly ConcurrentDictionary<UInt128, byte[]> _sessionKeys = new();

    public ChunkCipher(ReadOnlySpan<byte> dataKey)
    {
        if (dataKey.Length != 32) throw new ArgumentException("the data key is 32 bytes", nameof(dataKey));
        _dataKey = dataKey.ToArray();
    }

    public UploadSession BeginUpload() => new(this, RandomNumberGenerator.GetBytes(16));

    /// <summary>One per thread: AesGcm contexts are cached per session and are not shared across threads.</summary>
    public ChunkOpener CreateOpener() => new(this);

    internal byte[] SessionKey(ReadOnlySpan<byte> sessionId)
    {
        var id = BinaryPrimitives.ReadUInt128LittleEndian(sessionId);
        if (_sessionKeys.TryGetValue(id, out var key)) return key;
        var info = new byte[16 + 20];
        "actorbackup session"u8.CopyTo(info);
        sessionId.CopyTo(info.AsSpan(20));
        key = HKDF.Expand(HashAlgorithmName.SHA256, _dataKey, 32, info);
        if (_sessionKeys.Count > 4096) _sessionKeys.Clear();
        _sessionKeys[id] = key;
        return key;
    }

    internal static void Aad(ChunkId id, byte flags, Span<byte> aad)
    {
        id.WriteTo(aad);
        aad[32] = flags;
    }

    public sealed class UploadSession : IDisposable
    {
        private readonly byte[] _sessionId;
        private readonly ThreadLocal<AesGcm> _gcm;
        private long _counter;

        internal UploadSession(ChunkCipher cipher, byte[] sessionId)
        {
            _sessionId = sessionId;
            var key = cipher.SessionKey(sessionId);
            _gcm = new ThreadLocal<AesGcm>(() => new AesGcm(key, 16), trackAllValues: true);
        }

        /// <summary>Encrypts into <paramref name="destination"/> (at least plaintext + Overhead bytes) and returns the sealed length.</summary>
        public int Seal(ChunkId id, byte flags, ReadOnlySpan<byte> plaintext, Span<byte> destination)
        {
            var total = plaintext.Length + Overhead;
            if (destination.Length < total) throw new ArgumentException("destination too small for the sealed chunk", nameof(destination));
            var counter = (ulong)Interlocked.Increment(ref _counter);
            destination[0] = Version;
            _sessionId.CopyTo(destination[1..]);
            BinaryPrimitives.WriteUInt64LittleEndian(destination[17..], counter);
            Span<byte> nonce = stackalloc byte[12];
            BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
            Span<byte> aad = stackalloc byte[33];
            Aad(id, flags, aad);
            _gcm.Value!.Encrypt(nonce, plaintext, destination.Slice(25, plaintext.Length), destination.Slice(25 + plaintext.Length, 16), aad);
            return total;
        }

        public void Dispose()
        {
            foreach (var gcm in _gcm.Values) gcm.Dispose();
            _gcm.Dispose();
        }
    }

    public sealed class ChunkOpener : IDisposable
    {
        private readonly ChunkCipher _cipher;
        private UInt128 _lastSession;
        private AesGcm? _lastGcm;

        internal ChunkOpener(ChunkCipher cipher) => _cipher = cipher;

        /// <summary>Plaintext length of a sealed payload, or InvalidDataException when it cannot be one.</summary>
        public static int PlaintextLength(ReadOnlySpan<byte> sealedPayload)
        {
            if (sealedPayload.Length < Overhead || sealedPayload[0] != Version)
                throw new InvalidDataException("not a sealed chunk (too short or unknown version)");
            return sealedPayload.Length - Overhead;
        }

        /// <summary>Decrypts and authenticates; a tampered or misfiled payload throws InvalidDataException.</summary>
        public int Open(ChunkId id, byte flags, ReadOnlySpan<byte> sealedPayload, Span<byte> destination)
        {
            var length = PlaintextLength(sealedPayload);
            var session = BinaryPrimitives.ReadUInt128LittleEndian(sealedPayload[1..]);
            if (_lastGcm is null || session != _lastSession)
            {
                _lastGcm?.Dispose();
                _lastGcm = new AesGcm(_cipher.SessionKey(sealedPayload.Slice(1, 16)), 16);
                _lastSession = session;
            }
            Span<byte> nonce = stackalloc byte[12];
            nonce[..4].Clear();
            sealedPayload.Slice(17, 8).CopyTo(nonce[4..]);
            Span<byte> aad = stackalloc byte[33];
            Aad(id, flags, aad);
            try
            {
                _lastGcm.Decrypt(nonce, sealedPayload.Slice(25, length), sealedPayload.Slice(25 + length, 16), destination[..length], aad);
            }
            catch (AuthenticationTagMismatchException)
            {
                throw new InvalidDataException($"chunk {id.Short} fails authentication: the record is damaged, or was written under another key");
            }
            return length;
        }

        public void Dispose() => _lastGcm?.Dispose();
    }
}
