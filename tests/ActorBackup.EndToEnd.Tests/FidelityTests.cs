namespace ActorBackup.EndToEnd.Tests;

/// <summary>Everything a Linux file system holds comes back through the cell: names as bytes, holes, xattrs, ACLs (default ones too), capabilities, file flags, access times, links, FIFOs, sockets, devices.</summary>
public class FidelityTests
{
    private const int MiB = 1024 * 1024;

    /// <summary>A tree with every kind of entry and the odd things real hosts have.</summary>
    private static void MakeEverything(string src)
    {
        Directory.CreateDirectory(src);
        var root = Environment.UserName == "root";
        TreeCompare.WriteFile(src, [0xff, 0xfe], "not UTF-8"u8);
        TreeCompare.WriteFile(src, "new\nline"u8, "a newline in the name"u8);
        TreeCompare.WriteFile(src, [.. Enumerable.Repeat((byte)'n', 254), 0xe9], "255 bytes, the last Latin-1"u8);
        TreeCompare.MakeDirectory(src, [(byte)'d', 0x80]);
        TreeCompare.WriteFile(src, [(byte)'d', 0x80, .. "/inside"u8], "in a folder whose name is not UTF-8"u8);
        TreeCompare.HardLink(src, [0xff, 0xfe], "second-name"u8);
        TreeCompare.Symlink(src, "link"u8, [(byte)'t', 0xff]);
        using (var f = new FileStream(Path.Combine(src, "sparse.img"), FileMode.Create))
        {
            f.SetLength(64L * MiB); // holes at the start, in the middle and at the end
            f.Position = 8L * MiB;
            var data = new byte[MiB];
            new Random(1).NextBytes(data);
            f.Write(data);
            f.Position = 32L * MiB;
            f.Write("the middle"u8);
        }
        var tool = Path.Combine(src, "tool");
        File.WriteAllText(tool, "#!/bin/sh\n");
        TreeCompare.SetXattr(tool, "user.origin", "packaged"u8);
        TreeCompare.SetXattr(tool, "system.posix_acl_access", TreeCompare.Acl((0x01, 7, uint.MaxValue), (0x02, 5, 1234), (0x04, 5, uint.MaxValue), (0x10, 5, uint.MaxValue), (0x20, 5, uint.MaxValue)));
        TreeCompare.MakeNode(Path.Combine(src, "fifo"), 0x1000 | 0x1a4);
        TreeCompare.MakeNode(Path.Combine(src, "socket"), 0xC000 | 0x1ed); // the inode a bound socket leaves
        // Symlinks and FIFOs of several names (as package managers and some mail systems leave): one inode each.
        TreeCompare.HardLink(src, "fifo"u8, "fifo-too"u8);
        TreeCompare.HardLink(src, "link"u8, "link-too"u8);
        // A folder with a default ACL, and a file that inherited it.
        var shared = Path.Combine(src, "shared");
        Directory.CreateDirectory(shared);
        TreeCompare.SetXattr(shared, "system.posix_acl_default", TreeCompare.Acl((0x01, 7, uint.MaxValue), (0x02, 6, 1234), (0x04, 5, uint.MaxValue), (0x10, 7, uint.MaxValue), (0x20, 0, uint.MaxValue)));
        File.WriteAllText(Path.Combine(shared, "inherited"), "its ACL came from its folder");
        if (root)
        {
            TreeCompare.MakeNode(Path.Combine(src, "loop0"), 0x6000 | 0x1b0, 7, 0); // a block device
            File.WriteAllText(Path.Combine(src, "append.log"), "only appended to\n");
            TreeCompare.SetFlags(Path.Combine(src, "append.log"), 0x20); // chattr +a
            var capability = new byte[20];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(capability, 0x02000001);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(capability.AsSpan(4), 1u << 10); // cap_net_bind_service
            TreeCompare.Chown(tool, 1234, 1234);
            TreeCompare.SetXattr(tool, "security.capability", capability);
            TreeCompare.MakeNode(Path.Combine(src, "null"), 0x2000 | 0x1b6, 1, 3);
            TreeCompare.SetXattr(Path.Combine(src, "link"), "trusted.label", "the link's own"u8);
            TreeCompare.SetXattr(Path.Combine(src, "fifo"), "trusted.label", "the fifo's own"u8);
            var locked = Path.Combine(src, "locked");
            Directory.CreateDirectory(locked);
            File.WriteAllText(Path.Combine(locked, "immutable"), "cannot change");
            TreeCompare.SetFlags(Path.Combine(locked, "immutable"), 0x10); // chattr +i
            TreeCompare.SetFlags(locked, 0x10 | 0x40); // +i +d: set after what is inside is restored
        }
        File.WriteAllBytes(Path.Combine(src, "zeros.raw"), [.. new byte[3 * MiB], .. "tail"u8]); // written out, no hole
        File.SetLastAccessTimeUtc(Path.Combine(src, "zeros.raw"), new DateTime(2021, 6, 1, 0, 0, 0, DateTimeKind.Utc));
    }

    [Fact]
    public void A_tree_with_every_kind_of_entry_comes_back_through_abk_with_no_difference()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        MakeEverything(src);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node")).Start();

        var backup = cell.AbkJson("backup", "--atime", src);
        var expected = TreeCompare.Describe(src, atimes: true); // the backup changed no access time
        Assert.True(backup.GetProperty("state").GetString() == "SUCCEEDED", backup.ToString());
        var snapshot = backup.GetProperty("snapshot").GetString()!;
        var listed = cell.Abk("ls", snapshot, src).Stdout;
        Assert.Contains(src + @"/\xff\xfe", listed);
        Assert.Contains(src + @"/new\x0aline", listed);

        var target = Path.Combine(dir.Path, "restored");
        // Without --sparse: the holes the backup found come back as holes, the written zeros as written zeros.
        var restore = cell.Abk("restore", snapshot, "--to", target);
        Assert.True(restore.ExitCode == 0, restore.Stderr + restore.Stdout);
        TreeCompare.AssertSame(expected, target + src, atimes: true);
        TreeCompare.AssertAllocatedNoLarger(src, target + src); // sparse.img's holes stay holes, every file no larger on disk
        Assert.True(TreeCompare.AllocatedBytes(Path.Combine(target + src, "zeros.raw")) >= 3 * MiB, "zeros.raw came back sparse without --sparse");

        // Into a folder whose own name is not UTF-8, written as listings show names: made by its bytes, the same tree in it;
        // with --sparse, a file's long runs of zeros are left unwritten too.
        var odd = cell.Abk("restore", snapshot, "--to", target + @"-\xff", "--sparse");
        Assert.True(odd.ExitCode == 0, odd.Stderr + odd.Stdout);
        byte[] oddSrc = [.. System.Text.Encoding.UTF8.GetBytes(target + "-"), 0xff, .. System.Text.Encoding.UTF8.GetBytes(src)];
        TreeCompare.AssertSame(expected, oddSrc, atimes: true);
        Assert.True(TreeCompare.AllocatedBytes([.. oddSrc, .. "/zeros.raw"u8]) <= 8192, "--sparse: 3 MiB of zeros were written");
    }
}
