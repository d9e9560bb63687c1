using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Volumes;
using CsCheck;

namespace ActorBackup.Engine.Tests;

public class CryptoTests
{
    [Fact]
    public void A_wrong_passphrase_fails_cleanly_and_the_right_one_unlocks()
    {
        using var dir = new TempDir();
        var root = Path.Combine(dir.Path, "repo");
        using (TestRepo.Create(root)) { }
        var e = Assert.Throws<WrongKeyException>(() => Repository.Repository.Open(root, new KeySource.Passphrase("Correct horse")));
        Assert.Contains("passphrase is wrong", e.Message);
        var keyFile = Path.Combine(dir.Path, "key");
        File.WriteAllBytes(keyFile, TestRepo.RandomBytes(64, 1));
        Assert.Throws<WrongKeyException>(() => Repository.Repository.Open(root, new KeySource.KeyFile(keyFile)));
        using var ok = TestRepo.Open(root);
        Assert.NotNull(ok.Keys);
    }

    [Fact]
    public void A_key_file_wraps_the_master_key_and_another_file_does_not_unlock_it()
    {
        var master = MasterKey.Generate();
        var file = TestRepo.RandomBytes(32, 1);
        var wrapped = KeyStore.WrapWithKeyFile(master, file);
        Assert.Equal(master.DataKey, KeyStore.UnwrapWithKeyFile(wrapped, file).DataKey);
        Assert.Throws<WrongKeyException>(() => KeyStore.UnwrapWithKeyFile(wrapped, TestRepo.RandomBytes(32, 2)));
        Assert.Throws<WrongKeyException>(() => KeyStore.UnwrapWithPassphrase(wrapped, "anything"));
    }

    [Fact]
    public void Sealed_chunks_open_only_with_their_id_and_flags_and_detect_any_flip()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        using var session = keys.Cipher.BeginUpload();
        Gen.Byte.Array[0, 3000].Sample(plain =>
        {
            using var opener = keys.Cipher.CreateOpener(); // one per thread: CsCheck samples in parallel
            var id = keys.Hasher.Hash(plain);
            var sealedBytes = new byte[plain.Length + ChunkCipher.Overhead];
            session.Seal(id, 2, plain, sealedBytes);
            var back = new byte[plain.Length];
            opener.Open(id, 2, sealedBytes, back);
            Assert.Equal(plain, back);
            Assert.Throws<InvalidDataException>(() => opener.Open(id, 3, sealedBytes, back));
            var otherId = keys.Hasher.Hash([.. plain, 0]);
            Assert.Throws<InvalidDataException>(() => opener.Open(otherId, 2, sealedBytes, back));
            var flipped = (byte[])sealedBytes.Clone();
            flipped[Random.Shared.Next(1, flipped.Length)] ^= 0x10;
            Assert.ThrowsAny<InvalidDataException>(() => opener.Open(id, 2, flipped, back));
        }, iter: 50);
    }

    [Fact]
    public void Nonces_never_repeat_within_a_session_and_sessions_use_distinct_keys()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var plain = new byte[16];
        var id = keys.Hasher.Hash(plain);
        var seen = new HashSet<string>();
        for (var s = 0; s < 3; s++)
        {
            using var session = keys.Cipher.BeginUpload();
            var outputs = new System.Collections.Concurrent.ConcurrentBag<string>();
            Parallel.For(0, 2000, _ =>
            {
                var sealedBytes = new byte[plain.Length + ChunkCipher.Overhead];
                session.Seal(id, 0, plain, sealedBytes);
                outputs.Add(Convert.ToHexString(sealedBytes, 1, 24)); // session id + counter
            });
            foreach (var o in outputs) Assert.True(seen.Add(o), "a (session, nonce) pair repeated");
        }
    }

    [Fact]
    public void Chunk_ids_are_keyed_so_two_cells_name_the_same_content_differently()
    {
        var a = new KeyRing(MasterKey.Generate()).For("test");
        var b = new KeyRing(MasterKey.Generate()).For("test");
        var data = TestRepo.RandomBytes(1000, 1);
        Assert.Equal(a.Hasher.Hash(data), a.Hasher.Hash(data));
        Assert.NotEqual(a.Hasher.Hash(data), b.Hasher.Hash(data));
    }

    [Fact]
    public void Index_round_trips_and_rejects_damage()
    {
        var index = new ChunkIndex();
        for (var i = 0; i < 10_000; i++)
            index.Set(new ChunkId(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i))), new ChunkLocation((uint)(i % 7), i * 1000L, i));
        var bytes = index.ToBytes();
        Assert.Equal(16 + 10_000 * ChunkIndex.EntrySize + 4, bytes.Length);
        var back = ChunkIndex.FromBytes(bytes);
        Assert.Equal(index.Count, back.Count);
        foreach (var (id, loc) in index.Entries)
        {
            Assert.True(back.TryGet(id, out var l));
            Assert.Equal(loc, l);
        }
        Assert.Equal(bytes, back.ToBytes()); // deterministic
        using (var stream = new MemoryStream())
        {
            index.WriteTo(stream); // the file form (index.abi): the same bytes, sorted by id
            Assert.Equal(stream.ToArray(), bytes);
        }
        bytes[5000] ^= 1;
        Assert.Throws<InvalidDataException>(() => ChunkIndex.FromBytes(bytes));
        var lying = back.ToBytes();
        BitConverter.GetBytes(long.MaxValue / 4).CopyTo(lying, 8);
        Assert.Throws<InvalidDataException>(() => ChunkIndex.FromBytes(lying));
    }

    [Fact]
    public void Index_holds_a_chunk_in_about_64_bytes_of_memory()
    {
        const int n = 500_000;
        var ids = new ChunkId[n];
        for (var i = 0; i < n; i++) ids[i] = new ChunkId(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));
        // Bytes this thread allocated, so that tests running in parallel do not disturb the figure.
        var before = GC.GetAllocatedBytesForCurrentThread();
        var index = new ChunkIndex(n);
        for (var i = 0; i < n; i++) index.Set(ids[i], new ChunkLocation(1, i, i));
        var after = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(n, index.Count);
        var perChunk = (after - before) / (double)n;
        Assert.InRange(perChunk, 40, 64);
    }

    [Fact]
    public void Locations_pack_into_12_bytes_and_keep_40_bit_offsets()
    {
        Assert.Equal(12, System.Runtime.CompilerServices.Unsafe.SizeOf<ChunkLocation>());
        var far = new ChunkLocation(ChunkLocation.MaxVolume, ChunkLocation.MaxOffset, int.MaxValue);
        Assert.Equal(ChunkLocation.MaxVolume, far.Volume);
        Assert.Equal(ChunkLocation.MaxOffset, far.Offset);
        Assert.Equal(int.MaxValue, far.Length);
        Assert.Equal(5_000_000_000L, new ChunkLocation(3, 5_000_000_000L, 1).Offset);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkLocation(1, ChunkLocation.MaxOffset + 1, 1));
    }

    [Fact]
    public void Encoder_and_decoder_round_trip_and_skip_what_the_sink_has()
    {
        using var dir = new TempDir();
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        using var lib = Library.DiskLibrary.Create(Path.Combine(dir.Path, "lib"), "l");
        using var session = keys.Cipher.BeginUpload();
        using var encoder = new ChunkEncoder(keys.Data, session, 3);
        using var decoder = new ChunkDecoder(keys);
        var compressible = new byte[100_000];
        var random = TestRepo.RandomBytes(100_000, 5);
        var a = encoder.Store(compressible, RecordFlags.None, lib);
        var b = encoder.Store(random, RecordFlags.None, lib);
        Assert.True(a.IsNew && b.IsNew);
        Assert.True(a.StoredLength < 1000, "zeroes must compress");
        Assert.True(b.StoredLength > 100_000, "random data is stored raw");
        Assert.False(encoder.Store(random, RecordFlags.None, lib).IsNew);
        Assert.Equal(compressible, decoder.Load(a.Id, lib).ToArray());
        Assert.Equal(random, decoder.Load(b.Id, lib).ToArray());
        Assert.True(lib.TryGetLocation(a.Id, out var loc) && loc.Length < 1000);
    }
}
