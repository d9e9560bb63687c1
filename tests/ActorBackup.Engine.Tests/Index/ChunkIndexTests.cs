using System.Runtime.CompilerServices;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using CsCheck;

namespace ActorBackup.Engine.Tests.Index;

/// <summary>
/// The chunk index (an open-addressing table of its own, not a dictionary): whatever is added, replaced and removed in
/// whatever order, it answers as a dictionary would, and its serialized form is the same.
/// </summary>
public sealed class ChunkIndexTests
{
    /// <summary>
    /// Ids from a small pool (so that they are added again, replaced and removed), their first 8 bytes drawn from few
    /// values near 0 and near the top (homes that collide, runs that wrap past the table's end to its start) or at random.
    /// </summary>
    private static readonly Gen<ChunkId[]> Pools = Gen.Select(
            Gen.OneOf(Gen.ULong[0, 3], Gen.ULong[ulong.MaxValue - 3, ulong.MaxValue], Gen.ULong), Gen.ULong[0, 5])
        .Select((high, low) => Id(high, low)).Array[1, 60];

    private static ChunkId Id(ulong high, ulong low)
    {
        var bytes = new byte[ChunkId.Size];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, high);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(24), low);
        return new ChunkId(bytes);
    }

    private enum Op { Set, Remove, Trim, MakeRoom }

    [Fact]
    public void Any_sequence_of_changes_leaves_what_a_dictionary_would_hold()
    {
        var ops = Gen.Select(Gen.Enum<Op>(), Gen.Int[0, 1000], Gen.UInt[0, ChunkLocation.MaxVolume], Gen.Long[0, ChunkLocation.MaxOffset], Gen.Int[0, 1 << 20]);
        Gen.Select(Pools, ops.Array[0, 300], Gen.Int[0, 100]).Sample((pool, steps, capacity) =>
        {
            var index = new ChunkIndex(capacity);
            var model = new Dictionary<ChunkId, ChunkLocation>();
            foreach (var (op, which, volume, offset, length) in steps)
            {
                var id = pool[which % pool.Length];
                switch (op)
                {
                    case Op.Set:
                        index.Set(id, new ChunkLocation(volume, offset, length));
                        model[id] = new ChunkLocation(volume, offset, length);
                        break;
                    case Op.Remove:
                        Assert.Equal(model.Remove(id), index.Remove(id));
                        break;
                    case Op.Trim:
                        index.TrimExcess();
                        break;
                    case Op.MakeRoom:
                        index.MakeRoomFor(which);
                        break;
                }
                Assert.Equal(model.Count, index.Count);
                AnswersAs(model, index, pool);
            }
            Assert.Equal(model.OrderBy(e => e.Key).ToList(), index.Entries.OrderBy(e => e.Key).ToList());
            var bytes = index.ToBytes();
            Assert.Equal(model.OrderBy(e => e.Key).Select(e => (e.Key, e.Value)).ToList(), Serialized(bytes));
            var read = ChunkIndex.FromBytes(bytes);
            AnswersAs(model, read, pool);
            Assert.Equal(model.Count, read.Count);
        }, iter: 3000);
    }

    /// <summary>The entries of a serialized index, in the order they are written.</summary>
    private static List<(ChunkId, ChunkLocation)> Serialized(byte[] bytes) =>
        Enumerable.Range(0, (bytes.Length - 20) / ChunkIndex.EntrySize)
            .Select(i => ChunkIndex.ReadEntry(bytes.AsSpan(16 + i * ChunkIndex.EntrySize, ChunkIndex.EntrySize))).ToList();

    [Fact]
    public void A_large_index_is_written_in_id_order_whichever_bytes_its_ids_share()
    {
        // Enough entries for the sort's buckets, and ids that differ only past their first 8 bytes (one bucket deep down).
        var rnd = new Random(5);
        var model = new Dictionary<ChunkId, ChunkLocation>();
        for (var i = 0; i < 60_000; i++)
        {
            var b = new byte[ChunkId.Size];
            rnd.NextBytes(b);
            if (i % 3 == 0) b.AsSpan(0, 8).Fill(0x5A);
            model[new ChunkId(b)] = new ChunkLocation((uint)(i % 7), i * 64L, i % 1000);
        }
        var index = new ChunkIndex();
        foreach (var (id, at) in model) index.Set(id, at);
        var bytes = index.ToBytes();
        Assert.Equal(model.OrderBy(e => e.Key).Select(e => (e.Key, e.Value)).ToList(), Serialized(bytes));
        using var stream = new MemoryStream();
        index.WriteTo(stream);
        Assert.Equal(bytes, stream.ToArray());
    }

    [Fact]
    public void Serialized_under_its_guard_it_waits_for_the_guard_and_comes_out_the_same()
    {
        var rnd = new Random(9);
        var index = new ChunkIndex();
        for (var i = 0; i < 5_000; i++)
        {
            var b = new byte[ChunkId.Size];
            rnd.NextBytes(b);
            index.Set(new ChunkId(b), new ChunkLocation(1, i * 10L, 10));
        }
        var guard = new object();
        byte[]? made = null;
        Exception? failed = null;
        var thread = new Thread(() =>
        {
            try { made = index.ToBytes(guard); }
            catch (Exception e) { failed = e; } // a failure fails the test, not the test host
        });
        lock (guard)
        {
            thread.Start();
            Assert.False(thread.Join(300)); // the copy waits while the guard is held elsewhere
        }
        thread.Join();
        Assert.Null(failed);
        Assert.Equal(index.ToBytes(), made);
    }

    private static void AnswersAs(Dictionary<ChunkId, ChunkLocation> model, ChunkIndex index, ChunkId[] pool)
    {
        var held = new bool[pool.Length];
        index.Holds(pool, held);
        for (var i = 0; i < pool.Length; i++)
        {
            var id = pool[i];
            Assert.Equal(model.ContainsKey(id), index.Contains(id));
            Assert.Equal(model.ContainsKey(id), held[i]);
            Assert.Equal(model.TryGetValue(id, out var want), index.TryGet(id, out var got));
            Assert.Equal(want, got);
        }
    }

    [Fact]
    public void A_hundred_thousand_random_ids_are_all_found_and_others_are_not()
    {
        var rnd = new Random(7);
        var ids = new ChunkId[100_000];
        var bytes = new byte[ChunkId.Size];
        for (var i = 0; i < ids.Length; i++)
        {
            rnd.NextBytes(bytes);
            ids[i] = new ChunkId(bytes);
        }
        var index = new ChunkIndex();
        for (var i = 0; i < ids.Length; i++) index.Set(ids[i], new ChunkLocation((uint)(i % 7), i, i % 1000));
        Assert.Equal(ids.Length, index.Count);
        var held = new bool[ids.Length];
        index.Holds(ids, held);
        Assert.All(held, Assert.True);
        for (var i = 0; i < ids.Length; i += 2) Assert.True(index.Remove(ids[i]));
        index.TrimExcess();
        index.Holds(ids, held);
        for (var i = 0; i < ids.Length; i++)
        {
            Assert.Equal(i % 2 == 1, held[i]);
            Assert.Equal(i % 2 == 1, index.TryGet(ids[i], out var at));
            if (i % 2 == 1) Assert.Equal(new ChunkLocation((uint)(i % 7), i, i % 1000), at);
        }
    }

    [Fact]
    public void Ids_added_in_their_order_keep_every_probe_short()
    {
        // The serialized form and the journal's batches come sorted by id: homes taken from the ids' first bytes put
        // them all at the start of a table still growing to them, one run as long as the table (quadratic).
        var rnd = new Random(11);
        var bytes = new byte[ChunkId.Size];
        var ids = new ChunkId[30_000];
        for (var i = 0; i < ids.Length; i++)
        {
            rnd.NextBytes(bytes);
            ids[i] = new ChunkId(bytes);
        }
        Array.Sort(ids);
        var index = new ChunkIndex();
        for (var i = 0; i < ids.Length; i++)
        {
            index.Set(ids[i], new ChunkLocation(0, 0, 1));
            if (i % 1000 == 999) Assert.InRange(index.LongestProbe, 1, 64); // while it grows, not only once grown
        }
        // Read back from a stream that cannot vouch for its count (the table grows to the entries): the same.
        var read = ChunkIndex.ReadFrom(new NonSeekable(index.ToBytes()));
        Assert.Equal(ids.Length, read.Count);
        Assert.InRange(read.LongestProbe, 1, 64);
    }

    /// <summary>A stream whose length is not known (the index read from a pipe or the journal).</summary>
    private sealed class NonSeekable(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }

    [Fact]
    public void An_index_changed_while_it_is_read_says_so()
    {
        var index = new ChunkIndex();
        index.Set(Id(1, 1), new ChunkLocation(0, 0, 1));
        index.Set(Id(2, 2), new ChunkLocation(0, 1, 1));
        Assert.Throws<InvalidOperationException>(() =>
        {
            foreach (var (id, _) in index.Entries) index.Remove(id);
        });
    }

    [Fact]
    public void A_slot_is_48_bytes()
    {
        Assert.Equal(48, Unsafe.SizeOf<ChunkIndex.Slot>());
    }
}
