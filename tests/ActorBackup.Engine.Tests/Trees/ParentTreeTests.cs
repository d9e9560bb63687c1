using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Trees;
using CsCheck;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests.Trees;

/// <summary>
/// A parent's tree as a backup reads it (ParentTree: fields read from the record's bytes, no node made): what it reads
/// must be what the generated parser reads, or a changed file would be taken for unchanged.
/// </summary>
public sealed class ParentTreeTests
{
    private static readonly Gen<string> Names = Gen.OneOf(Gen.String[Gen.Char.AlphaNumeric, 1, 40], Gen.String[Gen.Char, 0, 20], Gen.Const("root"), Gen.Const(""));
    private static readonly Gen<ByteString> Bytes = Gen.OneOf(Gen.Const(ByteString.Empty), Gen.Byte.Array[0, 70].Select(ByteString.CopyFrom));

    private static readonly Gen<Node> Nodes =
        Gen.Select(Gen.Select(Names, Gen.Int[0, 9], Gen.UInt, Gen.UInt, Gen.UInt, Gen.Long, Gen.UInt, Gen.Long),
                Gen.Select(Gen.UInt, Gen.ULong, Gen.ULong, Gen.ULong, Gen.Int[0, 5], Gen.Bool, Gen.UInt[0, 3], Gen.UInt),
                Gen.Select(Bytes, Bytes, Names, Gen.UInt.Array[0, 6], Names, Names, Gen.Long, Gen.UInt),
                Gen.Select(Gen.Bool, Bytes, Bytes, Gen.UInt, Gen.UInt))
            .Select((a, b, c, d) =>
            {
                var node = new Node
                {
                    Name = a.Item1, Type = (NodeType)a.Item2, Mode = a.Item3, Uid = a.Item4, Gid = a.Item5, MtimeSec = a.Item6, MtimeNsec = a.Item7,
                    CtimeSec = a.Item8, CtimeNsec = b.Item1, Inode = b.Item2, Device = b.Item3, Size = b.Item4,
                    Chunks = ByteString.CopyFrom(new byte[b.Item5 * ChunkId.Size].Select((_, i) => (byte)(i * 7 + b.Item5)).ToArray()),
                    Subtree = b.Item6 ? ByteString.CopyFrom(Enumerable.Range(0, ChunkId.Size).Select(i => (byte)i).ToArray()) : ByteString.Empty,
                    Nlink = b.Item7, Flags = b.Item8,
                    LinkTarget = c.Item1, RawHardlinkTarget = c.Item2, HardlinkTarget = c.Item3, User = c.Item5, Group = c.Item6,
                    AtimeSec = c.Item7, AtimeNsec = c.Item8, RdevMajor = d.Item4 % 3, RdevMinor = d.Item5 % 2,
                };
                node.ChunkSizes.AddRange(c.Item4);
                if (d.Item1) node.Xattrs.Add(new Xattr { Name = ByteString.CopyFromUtf8("user.x"), Value = d.Item2 });
                node.RawName = d.Item3.Length > 0 && d.Item4 % 4 == 0 ? d.Item3 : ByteString.Empty;
                node.ChunkLists = d.Item5 % 5 == 0 ? ByteString.CopyFrom(new byte[ChunkId.Size]) : ByteString.Empty;
                if (d.Item4 % 7 == 0) node.AclUsers.Add(new IdName { Id = d.Item5, Name = "bob" });
                return node;
            });

    /// <summary>A tree scanned as the tree reader scans one: its bytes copied into an array from the pool.</summary>
    private static ParentTree Pooled(byte[] bytes)
    {
        var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(bytes.Length);
        bytes.CopyTo(rented, 0);
        return ParentTree.ScanRented(default, rented, bytes.Length);
    }

    [Fact]
    public void A_tree_whose_names_are_not_all_plain_names_says_so()
    {
        static ParentTree Of(params object[] names)
        {
            var tree = new Tree();
            foreach (var name in names)
                tree.Nodes.Add(name is byte[] raw ? new Node { Name = "x", RawName = ByteString.CopyFrom(raw) } : new Node { Name = (string)name });
            return ParentTree.Scan(default, tree.ToByteArray());
        }
        Assert.True(Of("a", "b.c", "...", "é", new byte[] { 0xFF, 0x41 }).NamesArePlain);
        Assert.True(Of().NamesArePlain);
        foreach (var bad in new object[] { "", ".", "..", "a/b", "/", "a\0b", new byte[] { 0x41, 0x2F, 0x42 }, new byte[] { 0x41, 0x00 }, "..".Select(c => (byte)c).ToArray() })
            Assert.False(Of("a", bad).NamesArePlain);
    }

    /// <summary>What the scan says of an entry equals what the parsed node says, field for field.</summary>
    private static void ScansAsParsed(ParentTree tree, int i, Node node)
    {
        ref readonly var e = ref tree[i];
        Assert.Equal(node.FileName(), tree.Name(i));
        Assert.Equal((node.Type, node.Mode, node.Uid, node.Gid), (e.Type, e.Mode, e.Uid, e.Gid));
        Assert.Equal((node.MtimeSec, node.MtimeNsec, node.CtimeSec, node.CtimeNsec, node.AtimeSec, node.AtimeNsec),
            (e.MtimeSec, e.MtimeNsec, e.CtimeSec, e.CtimeNsec, e.AtimeSec, e.AtimeNsec));
        Assert.Equal((node.Inode, node.Device, node.Size, node.Nlink, node.RdevMajor, node.RdevMinor),
            (e.Inode, e.Device, e.Size, e.Nlink, e.RdevMajor, e.RdevMinor));
        Assert.Equal((node.User, node.Group), (tree.User(i), tree.Group(i)));
        Assert.Equal(node.Chunks.ToByteArray(), tree.Chunks(i).ToArray());
        Assert.Equal(node.ChunkSizes.Count, e.ChunkSizes);
        Assert.Equal(node.Subtree.Length == ChunkId.Size, e.HasSubtree);
        if (e.HasSubtree) Assert.Equal(node.SubtreeId(), tree.SubtreeId(i));
        var plain = node.RawName.IsEmpty && node.LinkTarget.IsEmpty && node.HardlinkTarget.Length == 0 && node.RawHardlinkTarget.IsEmpty
                    && node.ChunkLists.IsEmpty;
        Assert.Equal(plain, e.Plain);
        var made = tree.NodeAt(i);
        if (!node.HasTornLists()) Assert.Equal(node, made);
        Assert.Same(made, tree.Made(i));
    }

    [Fact]
    public void Every_field_a_backup_compares_reads_as_the_generated_parser_reads_it()
    {
        Nodes.Array[0, 12].Sample(nodes =>
        {
            var tree = new Tree();
            tree.Nodes.AddRange(nodes);
            var scanned = ParentTree.Scan(default, tree.ToByteArray());
            Assert.Equal(nodes.Length, scanned.Count);
            for (var i = 0; i < nodes.Length; i++) ScansAsParsed(scanned, i, nodes[i]);
            // From the pool, into arrays another tree had (each given back after): the same.
            var pooled = Pooled(tree.ToByteArray());
            Assert.Equal(nodes.Length, pooled.Count);
            for (var i = 0; i < nodes.Length; i++) ScansAsParsed(pooled, i, nodes[i]);
            pooled.Return();
        }, iter: 2000, threads: 1);
    }

    [Fact]
    public void Names_compare_as_their_strings_compare_ordinally_without_being_made()
    {
        // ASCII names that are each other's starts, characters of 2, 3 and 4 bytes (U+E000 sorts above a surrogate pair
        // as UTF-16, below it as UTF-8), and raw names (not UTF-8: escaped bytes, lone low surrogates).
        var part = Gen.OneOf(Gen.Const("a"), Gen.Const("ab"), Gen.Const("B"), Gen.Const("~"), Gen.Const("\u00e9"), Gen.Const("\ue000"),
            Gen.Const("\U0001F600"), Gen.Const("\u4e2d"), Gen.String[Gen.Char['0', 'z'], 0, 3]);
        var name = part.Array[1, 4].Select(p => string.Concat(p));
        var raw = Gen.Byte.Array[1, 5].Select(b => b.Append((byte)0xFF).ToArray());
        var entry = Gen.OneOf(name.Select(n => new Node { Name = n }), raw.Select(r => new Node { Name = "x", RawName = ByteString.CopyFrom(r) }));
        Gen.Select(entry.Array[1, 8], Gen.OneOf(name, raw.Select(r => Posix.PosixNames.Decode(r))).Array[0, 8]).Sample((nodes, others) =>
        {
            var tree = new Tree();
            tree.Nodes.AddRange(nodes);
            var bytes = tree.ToByteArray();
            var names = Tree.Parser.ParseFrom(bytes).Nodes.Select(n => n.FileName()).ToArray();
            var asked = names.Concat(others).ToArray();
            var scanned = ParentTree.Scan(default, bytes);
            void ComparesAsStrings()
            {
                for (var i = 0; i < names.Length; i++)
                    foreach (var other in asked)
                    {
                        Assert.Equal(Math.Sign(string.CompareOrdinal(names[i], other)), Math.Sign(scanned.CompareName(i, other)));
                        Assert.Equal(names[i] == other, scanned.NameIs(i, other));
                    }
            }
            ComparesAsStrings(); // no name made yet: compared as bytes where they are ASCII
            Assert.Equal(names.Zip(names.Skip(1)).All(p => string.CompareOrdinal(p.First, p.Second) < 0), ParentTree.Scan(default, bytes).NamesAscending);
            var ascending = new Tree();
            ascending.Nodes.AddRange(Tree.Parser.ParseFrom(bytes).Nodes.DistinctBy(n => n.FileName()).OrderBy(n => n.FileName(), StringComparer.Ordinal));
            Assert.True(ParentTree.Scan(default, ascending.ToByteArray()).NamesAscending);
            // The same once the names are made.
            for (var i = 0; i < names.Length; i++) Assert.Equal(names[i], scanned.Name(i));
            ComparesAsStrings();
        }, iter: 3000);
    }

    [Fact]
    public void A_tree_given_back_to_the_pool_has_no_entries_left_to_read()
    {
        var tree = new Tree();
        tree.Nodes.Add(new Node { Name = "a", Type = NodeType.File, Chunks = ByteString.CopyFrom(new byte[ChunkId.Size]) });
        var pooled = Pooled(tree.ToByteArray());
        Assert.Equal("a", pooled.Name(0));
        pooled.Return();
        pooled.Return(); // once: a second is nothing
        // Read after: it throws, never counts none (a folder compared with none would take the parent's tree as it was).
        Assert.Throws<InvalidOperationException>(() => pooled.Count);
        Assert.Throws<InvalidOperationException>(() => pooled.Name(0));
        Assert.Throws<InvalidOperationException>(() => pooled.Chunks(0).Length);
        Assert.Throws<InvalidOperationException>(() => pooled[0].Size);
        Assert.Throws<InvalidOperationException>(() => pooled.Find("a"));
        Assert.Throws<InvalidOperationException>(() => pooled.Made(0));
        Assert.Throws<InvalidOperationException>(() => pooled.NodeAt(0));
    }

    [Fact]
    public void A_node_written_twice_over_reads_as_the_generated_parser_merges_it()
    {
        // The wire format's merge: the last of a scalar counts, repeated fields add up, a bytes field is the last one.
        Gen.Select(Nodes, Nodes).Sample((first, second) =>
        {
            byte[] merged = [.. first.ToByteArray(), .. second.ToByteArray()];
            var parsed = Node.Parser.ParseFrom(merged);
            var treeBytes = new Tree { Nodes = { parsed } }.ToByteArray(); // how it would be stored: written once
            byte[] raw = [0x0A, .. Varint((ulong)merged.Length), .. merged]; // how it might lie: written twice over
            ScansAsParsed(ParentTree.Scan(default, raw), 0, parsed);
            ScansAsParsed(ParentTree.Scan(default, treeBytes), 0, parsed);
        }, iter: 1000);
    }

    [Fact]
    public void Chunk_sizes_written_unpacked_and_fields_it_does_not_know_are_read_as_the_parser_reads_them()
    {
        var node = new Node { Name = "f", Type = NodeType.File, Size = 5, Chunks = ByteString.CopyFrom(new byte[ChunkId.Size]) };
        // chunk_sizes (20) unpacked, twice: 0xA0 0x01 is field 20 as a varint
        byte[] unpacked = [.. node.ToByteArray(), 0xA0, 0x01, 0x05, 0xA0, 0x01, 0x07];
        var scan = ParentTree.Scan(default, [0x0A, .. Varint((ulong)unpacked.Length), .. unpacked]);
        Assert.Equal(2, scan[0].ChunkSizes);
        Assert.True(scan[0].Plain);
        Assert.Equal(Node.Parser.ParseFrom(unpacked), scan.NodeAt(0));

        // a field numbered 99 (a later format's): kept by the parser as it is, and so by a backup that keeps the entry
        byte[] later = [.. node.ToByteArray(), 0x98, 0x06, 0x01];
        scan = ParentTree.Scan(default, [0x0A, .. Varint((ulong)later.Length), .. later]);
        ScansAsParsed(scan, 0, Node.Parser.ParseFrom(later));
        Assert.True(scan[0].Plain);
    }

    /// <summary>A node's bytes as a tree of that one node (written by hand: whatever the bytes hold).</summary>
    private static byte[] TreeOf(byte[] node) => [0x0A, .. Varint((ulong)node.Length), .. node];

    /// <summary>The scan takes what the parser takes, and reads the same from it; what the parser refuses, it refuses.</summary>
    private static void ReadsAsTheParser(byte[] tree)
    {
        Tree parsed;
        try
        {
            parsed = Tree.Parser.ParseFrom(tree);
        }
        catch (InvalidProtocolBufferException refused)
        {
            try
            {
                ParentTree.Scan(default, tree);
            }
            catch (InvalidDataException)
            {
                return;
            }
            Assert.Fail($"the parser refuses {Convert.ToHexString(tree)} ({refused.Message}), the scan takes it");
            return;
        }
        ParentTree scan;
        try
        {
            scan = ParentTree.Scan(default, tree);
        }
        catch (InvalidDataException e)
        {
            if (e.Message.Contains("wire type 3")) return; // a group: the parser skips it, the scan refuses it (never written: the folder is read in full)
            Assert.Fail($"the parser takes {Convert.ToHexString(tree)}, the scan refuses it ({e.Message})");
            return;
        }
        Assert.Equal(parsed.Nodes.Count, scan.Count);
        for (var i = 0; i < scan.Count; i++) ScansAsParsed(scan, i, parsed.Nodes[i]);
    }

    [Fact]
    public void Odd_but_valid_wire_forms_read_as_the_parser_reads_them()
    {
        var node = new Node { Name = "f", Type = NodeType.File, Size = 5, User = "root", Chunks = ByteString.CopyFrom(new byte[ChunkId.Size]) };
        byte[] plain = node.ToByteArray();
        ReadsAsTheParser(TreeOf([.. plain, 0x18, .. Varint((1UL << 40) + 0x1ED)])); // mode (3) above 32 bits: cut, as the parser cuts it
        ReadsAsTheParser(TreeOf([.. plain, 0x10, .. Varint(ulong.MaxValue)])); // type -1 in ten bytes
        ReadsAsTheParser(TreeOf([.. plain, 0x8A, 0x80, 0x80, 0x80, 0x10, 0x01, (byte)'g'])); // name's tag (1, bytes) in five bytes, the top ones cut
        ReadsAsTheParser(TreeOf([.. plain, 0x62, 0x01, 0x07])); // size (12) as bytes: another wire type, an unknown field to the parser
        ReadsAsTheParser(TreeOf([.. plain, 0x6A, 0x00])); // chunks written again, empty: the last counts
        ReadsAsTheParser(TreeOf([.. plain, 0xA2, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x58, 0x01])); // packed sizes of length -1: an empty run to the parser
        ReadsAsTheParser(TreeOf([.. plain, 0xA2, 0x01, 0x81, 0x80, 0x80, 0x80, 0x10, 0x07])); // packed sizes of length 2^32 + 1, cut to 1
        ReadsAsTheParser(TreeOf([.. plain, 0x0A, 0x81, 0x80, 0x80, 0x80, 0x10, (byte)'g'])); // a name of length 2^32 + 1, cut to 1
        ReadsAsTheParser(TreeOf([.. plain, 0xBA, 0x01, 0x04, 0x0A, 0x02, 0x75, 0x2E])); // an xattr (23) as it is written
        ReadsAsTheParser([0x8A, 0x80, 0x80, 0x80, 0x10, .. TreeOf(plain)[1..]]); // the tree's node tag in five bytes: still a node
        ReadsAsTheParser([.. TreeOf(plain), 0x15, 1, 2, 3, 4]); // a fixed32 field of the tree the parser keeps
        ReadsAsTheParser(TreeOf([.. plain, 0x7A, 0x01, 0x41, 0x7A, 0x00])); // a link target (15), then an empty one: the last counts
        ReadsAsTheParser(TreeOf([.. plain, 0xFA, 0x01, 0x20, .. new byte[32], 0xFA, 0x01, 0x00])); // chunk lists (31), then none
        ReadsAsTheParser(TreeOf([.. plain, 0xB8, 0x01, 0x05])); // xattrs (23) as a number: another wire type, unknown to the parser
    }

    [Fact]
    public void What_the_parser_refuses_the_scan_refuses()
    {
        var node = new Node { Name = "f", Type = NodeType.File, User = "root" };
        byte[] plain = node.ToByteArray();
        ReadsAsTheParser(TreeOf([.. plain, 0x00, 0x01])); // field 0
        ReadsAsTheParser(TreeOf([.. plain, 0xC2, 0x01, 0x02, 0xFF, 0xFE])); // user (24) of bytes that are not UTF-8
        ReadsAsTheParser(TreeOf([0x0A, 0x01, 0xFF, .. plain])); // a name that is not UTF-8, then a good one
        ReadsAsTheParser(TreeOf([.. plain, 0x82, 0x01, 0x01, 0xC0])); // hardlink_target (16) that is not UTF-8
        ReadsAsTheParser(TreeOf([.. plain, 0xEA, 0x01, 0x03, 0x12, 0x01, 0xFF])); // an ACL entry's name that is not UTF-8
        ReadsAsTheParser(TreeOf([.. plain, 0xF2, 0x01, 0x03, 0x12, 0x01, 0xFF])); // an ACL group's name that is not UTF-8
        ReadsAsTheParser(TreeOf([.. plain, 0xC2, 0x01, 0x01, 0xFF, 0xC2, 0x01, 0x01, 0x61])); // a user not UTF-8, then a good one
        ReadsAsTheParser(TreeOf([.. plain, 0xCA, 0x01, 0x01, 0xFF, 0xCA, 0x01, 0x01, 0x61])); // a group not UTF-8, then a good one
        ReadsAsTheParser(TreeOf([.. plain, 0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x61])); // a name of length -1
        ReadsAsTheParser([.. TreeOf(plain), 0x00, 0x01]); // field 0 in the tree itself
        ReadsAsTheParser(TreeOf([.. plain, 0xBA, 0x01, 0x02, 0x00, 0x01])); // an xattr holding field 0
        ReadsAsTheParser(TreeOf([.. plain, 0xBA, 0x01, 0x02, 0x0A, 0x05])); // an xattr whose name runs past its end
        ReadsAsTheParser(TreeOf([.. plain, 0xEA, 0x01, 0x01, 0x08])); // an ACL name whose id is torn
        ReadsAsTheParser(TreeOf([.. plain, 0xA2, 0x01, 0x0B, .. Enumerable.Repeat((byte)0xFF, 10), 0x01])); // a packed size of eleven bytes
        ReadsAsTheParser(TreeOf([.. plain, 0x1C])); // an end-group tag (3, wire type 4) out of place
        ReadsAsTheParser(TreeOf([.. plain, 0x1F])); // wire type 7
    }

    [Fact]
    public void Trees_damaged_at_random_are_read_as_the_parser_reads_them_or_refused_as_it_refuses_them()
    {
        // Serialized random trees with bytes changed, cut or put in: the scan and the parser must agree on each.
        Gen.Select(Nodes.Array[1, 4], Gen.Int[0, 2], Gen.Int[0, int.MaxValue], Gen.Byte.Array[1, 6], Gen.Int[1, 3]).Sample((nodes, how, where, values, times) =>
        {
            var tree = new Tree();
            tree.Nodes.AddRange(nodes);
            var bytes = tree.ToByteArray().ToList();
            for (var t = 0; t < times && bytes.Count > 0; t++)
            {
                var at = where % bytes.Count;
                where = where / 3 + 7 * t;
                switch (how)
                {
                    case 0: bytes[at] = values[t % values.Length]; break;
                    case 1: bytes.RemoveRange(at, bytes.Count - at); break;
                    default: bytes.InsertRange(at, values); break; // a few bytes put in: a new tag, a length, a bad string
                }
            }
            ReadsAsTheParser([.. bytes]);
        }, iter: 50000);
    }


    [Fact]
    public void Bytes_that_are_not_a_tree_are_refused_with_a_clear_error_never_read_past_their_end()
    {
        var tree = new Tree { Nodes = { new Node { Name = "a", Type = NodeType.File, User = "root", Chunks = ByteString.CopyFrom(new byte[64]) } } };
        var whole = tree.ToByteArray();
        for (var cut = 1; cut < whole.Length; cut++)
            Assert.Throws<InvalidDataException>(() => ParentTree.Scan(default, whole[..cut]));
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            try
            {
                var scan = ParentTree.Scan(default, bytes);
                for (var i = 0; i < scan.Count; i++) _ = scan.Chunks(i).Length;
            }
            catch (InvalidDataException)
            {
                // refused: the only way it may fail
            }
        }, iter: 20000);
    }

    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        for (; value >= 0x80; value >>= 7) bytes.Add((byte)(value | 0x80));
        bytes.Add((byte)value);
        return [.. bytes];
    }
}
