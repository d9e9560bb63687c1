using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests;

/// <summary>A snapshot is data from a client; a restore must not let it write outside the target.</summary>
public class PathSafetyTests
{
    internal sealed class Fixture : IDisposable
    {
        public TempDir Dir { get; } = new();
        public Repository.Repository Repo { get; }
        private readonly UploadWriter _session;

        private sealed record UploadWriter(Crypto.ChunkCipher.UploadSession Session, ChunkEncoder Encoder, Crypto.ChunkCipher.UploadSession TreeSession, ChunkEncoder Trees);

        public Fixture()
        {
            Repo = TestRepo.Create(Dir.Sub("repo"));
            var session = Repo.Keys.Cipher.BeginUpload();
            var treeSession = Repo.Keys.Trees.Cipher.BeginUpload();
            _session = new UploadWriter(session, new ChunkEncoder(Repo.Keys.Data, session, 3), treeSession, new ChunkEncoder(Repo.Keys.Trees, treeSession, 3));
        }

        public Node File(string name, string content)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(content);
            var id = _session.Encoder.Store(bytes, RecordFlags.None, Repo.Library).Id;
            var node = new Node { Name = name, Type = NodeType.File, Mode = 0b110_100_100, Size = (ulong)bytes.Length, Chunks = ByteString.CopyFrom(id.ToArray()) };
            node.ChunkSizes.Add((uint)bytes.Length);
            return node;
        }

        public Node Folder(string name, params Node[] children) =>
            new() { Name = name, Type = NodeType.Directory, Mode = 0b111_101_101, Subtree = ByteString.CopyFrom(Tree(children).ToArray()) };

        public ChunkId Tree(params Node[] nodes)
        {
            var tree = new Tree();
            tree.Nodes.AddRange(nodes);
            return _session.Trees.Store(tree.ToByteArray(), RecordFlags.Tree, Repo.Library).Id;
        }

        /// <summary>Restores with --force: these tests are about what a restore meets in a target that holds something.</summary>
        public RestoreResult Restore(string target, params Node[] root) => Restore(target, force: true, root);

        public RestoreResult Restore(string target, bool force, params Node[] root) => Restore(target, new RestoreOptions { Force = force }, root);

        public RestoreResult Restore(string target, RestoreOptions options, params Node[] root) =>
            new Restorer(Repo.Keys, Repo.Library).Run(Manifest(root), target, options);

        /// <summary>A snapshot of these entries, its trees committed to the library.</summary>
        public SnapshotManifest Manifest(params Node[] root)
        {
            var manifest = new SnapshotManifest { Id = "crafted", RootTree = ByteString.CopyFrom(Tree(root).ToArray()) };
            Repo.Library.Commit();
            return manifest;
        }

        public void Dispose()
        {
            _session.Encoder.Dispose();
            _session.Session.Dispose();
            _session.Trees.Dispose();
            _session.TreeSession.Dispose();
            Repo.Dispose();
            Dir.Dispose();
        }
    }

    [Theory]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("a/../../escape")]
    [InlineData("/etc/escape")]
    [InlineData("nul\0byte")]
    public void A_name_that_would_escape_the_target_is_refused_and_named(string evil)
    {
        using var f = new Fixture();
        var outside = f.Dir.Sub("outside");
        var target = Path.Combine(f.Dir.Path, "inside", "target");
        var result = f.Restore(target,
            f.File(evil, "pwned"),
            f.Folder(evil, f.File("escape", "pwned")),
            f.Folder("sub", f.File(evil, "pwned")),
            f.File("fine.txt", "fine"));
        Assert.Equal("fine", File.ReadAllText(Path.Combine(target, "fine.txt")));
        Assert.True(result.Errors.Count >= 3, string.Join("; ", result.Errors));
        Assert.All(result.Errors, e => Assert.Contains("refused", e.Reason));
        Assert.Contains(result.Errors, e => e.Path.StartsWith("/sub/", StringComparison.Ordinal));
        // Nothing anywhere under the test folder holds "pwned" outside the target.
        foreach (var file in Directory.EnumerateFiles(f.Dir.Path, "*", SearchOption.AllDirectories))
            if (!file.StartsWith(target + "/", StringComparison.Ordinal) && !file.Contains("/repo/"))
                Assert.NotEqual("pwned", File.ReadAllText(file));
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public void Two_names_the_target_takes_as_one_are_an_error_in_a_new_folder_and_neither_is_lost_silently()
    {
        // A case-insensitive or normalising target (vfat, exFAT, SMB, a casefold folder) makes README and readme one name;
        // the same meets a restore when a snapshot lists a name twice: the second finds the first there.
        using var f = new Fixture();
        var target = Path.Combine(f.Dir.Path, "new");
        var result = f.Restore(target, force: false,
            f.File("same", "first"), f.File("same", "second"), f.Folder("sub", f.File("x", "1"), f.Folder("x")), f.File("fine.txt", "fine"));
        Assert.Equal("fine", File.ReadAllText(Path.Combine(target, "fine.txt")));
        Assert.Equal(2, result.Errors.Count(e => e.Reason.Contains("takes the two names as one")));
        Assert.Contains(File.ReadAllText(Path.Combine(target, "same")), new[] { "first", "second" }); // one of them, and an error for the other
        Assert.True(Directory.Exists(Path.Combine(target, "sub", "x"))); // folders are made first: the file is the one refused
        Assert.Contains(result.Errors, e => e.Path == "/sub/x" && e.Reason.Contains("takes the two names as one"));

        // With --force (a target that held things) what is there is written over, as before.
        var forced = f.Restore(Path.Combine(f.Dir.Path, "forced"), force: true, f.File("same", "first"), f.File("same", "second"));
        Assert.DoesNotContain(forced.Errors, e => e.Reason.Contains("takes the two names as one"));
    }

    [Fact]
    public void A_hard_link_target_outside_the_snapshot_is_refused()
    {
        using var f = new Fixture();
        var target = Path.Combine(f.Dir.Path, "target");
        var link = f.File("link", "x");
        link.Type = NodeType.Hardlink;
        link.HardlinkTarget = "/../../../etc/passwd";
        var result = f.Restore(target, link);
        Assert.Contains(result.Errors, e => e.Path == "/link" && e.Reason.Contains("refused"));
        Assert.False(File.Exists(Path.Combine(target, "link")));
    }

    [Fact]
    public void A_file_whose_size_is_not_what_its_chunks_hold_is_refused_and_nothing_is_reserved_for_it()
    {
        using var f = new Fixture();
        var target = Path.Combine(f.Dir.Path, "target");
        var huge = f.File("huge", "ten bytes!");
        huge.Size = 5UL << 40; // 5 TiB over one chunk of ten bytes: reserved (fallocate) or extended to, it would fill the disk
        var result = f.Restore(target, huge, f.File("fine.txt", "fine"));
        var error = Assert.Single(result.Errors);
        Assert.Equal("/huge", error.Path);
        Assert.Contains("inconsistent", error.Reason);
        Assert.False(File.Exists(Path.Combine(target, "huge")));
        Assert.Equal("fine", File.ReadAllText(Path.Combine(target, "fine.txt")));
        Assert.Equal((1, 1), (result.Files, result.NotRestored)); // what was restored, not what was planned
    }

    [Fact]
    public void Folders_nested_deeper_than_any_backup_makes_are_refused_not_a_crashed_reader()
    {
        using var f = new Fixture();
        var node = f.File("deepest", "x");
        for (var i = 0; i < NodeExtensions.MaxDepth + 100; i++) node = f.Folder("a", node);
        var manifest = f.Manifest(node, f.File("fine.txt", "fine"));
        var target = Path.Combine(f.Dir.Path, "target");
        var result = new Restorer(f.Repo.Keys, f.Repo.Library).Run(manifest, target, new RestoreOptions());
        Assert.Contains(result.Errors, e => e.Reason.Contains($"folders nested deeper than {NodeExtensions.MaxDepth} levels"));
        Assert.Equal("fine", File.ReadAllText(Path.Combine(target, "fine.txt")));
        using var reader = new TreeReader(f.Repo.Keys, f.Repo.Library);
        Assert.Contains("nested deeper than", Assert.Throws<InvalidDataException>(() => TreeListing.Entries(reader, manifest, "").Count()).Message);
    }

    /// <summary>The connection to the library lost (as DataPlaneLostException says it).</summary>
    private sealed class Lost() : IOException("lost the data plane connection (test)"), ISourceFault;

    /// <summary>The library, but its connection lost for the chunks <paramref name="lost"/> picks.</summary>
    private sealed class LosingSource(IChunkSource inner, Func<ChunkId, bool> lost) : IChunkSource
    {
        public ReadOnlySpan<byte> ReadPayload(ChunkId id, ref byte[] buffer, out RecordFlags flags) =>
            lost(id) ? throw new Lost() : inner.ReadPayload(id, ref buffer, out flags);
    }

    [Fact]
    public void A_connection_lost_while_a_restore_reads_fails_the_restore_instead_of_calling_the_snapshot_damaged()
    {
        using var f = new Fixture();
        var folder = f.Folder("sub", f.File("inside.txt", "inside"));
        var subtree = new ChunkId(folder.Subtree.Span);
        var file = f.File("data.txt", "data");
        var chunk = new ChunkId(file.Chunks.Span);
        var manifest = f.Manifest(folder, file);
        // A folder's tree, or a file's chunk, unreachable: the restore stops (the job fails, and is retried), where a
        // damaged one would be an error of that entry and the restore would go on.
        foreach (var unreachable in new[] { subtree, chunk })
            Assert.Throws<Lost>(() => new Restorer(f.Repo.Keys, new LosingSource(f.Repo.Library, id => id == unreachable))
                .Run(manifest, Path.Combine(f.Dir.Path, "target-" + unreachable.Short), new RestoreOptions()));
        var verify = Assert.Throws<Lost>(() => Engine.Verify.SnapshotVerifier.Run(f.Repo.Keys, new LosingSource(f.Repo.Library, id => id == subtree), manifest));
        Assert.NotNull(verify);
    }

    [Fact]
    public void A_restore_into_a_folder_that_holds_something_or_into_root_needs_force()
    {
        using var f = new Fixture();
        var target = f.Dir.Sub("target");
        File.WriteAllText(Path.Combine(target, "passwd"), "live");
        var e = Assert.Throws<IOException>(() => f.Restore(target, force: false, f.File("passwd", "old")));
        Assert.Contains("exists and is not empty", e.Message);
        Assert.Contains("--force", e.Message);
        Assert.Equal("live", File.ReadAllText(Path.Combine(target, "passwd")));
        Assert.Contains("--force", Assert.Throws<IOException>(() => f.Restore("/", force: false, f.File("passwd", "old"))).Message);
        // An empty or new folder needs nothing; --force writes over.
        var fresh = Path.Combine(f.Dir.Path, "fresh");
        f.Restore(fresh, force: false, f.File("passwd", "old"));
        Assert.Equal("old", File.ReadAllText(Path.Combine(fresh, "passwd")));
        f.Restore(target, force: true, f.File("passwd", "old"));
        Assert.Equal("old", File.ReadAllText(Path.Combine(target, "passwd")));
    }

    [Fact]
    public void Setuid_bits_and_device_nodes_come_back_only_into_a_folder_the_restore_makes_or_with_force()
    {
        using var f = new Fixture();
        Node Setuid()
        {
            var n = f.File("su", "binary");
            n.Mode = 0b100_111_101_101; // 04755
            return n;
        }
        var device = new Node { Name = "null", Type = NodeType.CharDevice, Mode = 0b110_110_110, RdevMajor = 1, RdevMinor = 3 };
        const UnixFileMode setuid = UnixFileMode.SetUser;

        // A new folder: made 0700 by the restore, so a setuid file in it reaches no one before it is whole.
        var fresh = Path.Combine(f.Dir.Path, "fresh");
        var made = f.Restore(fresh, force: false, Setuid(), device);
        Assert.True((File.GetUnixFileMode(Path.Combine(fresh, "su")) & setuid) != 0);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(fresh));
        if (Posix.Posix.IsRoot) Assert.Empty(made.Errors);

        // A folder that was there (empty, so no --force needed): the bits are left off and said so; no device node.
        var existing = f.Dir.Sub("existing");
        var into = f.Restore(existing, force: false, Setuid(), device);
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(Path.Combine(existing, "su")));
        Assert.Contains(into.Errors, e => e.Path == "/su" && e.Reason.Contains("setuid"));
        Assert.Contains(into.Errors, e => e.Path == "/null" && e.Reason.Contains("--force"));
        Assert.False(File.Exists(Path.Combine(existing, "null")));

        // With --force they come back there too.
        var forced = f.Dir.Sub("forced");
        f.Restore(forced, force: true, Setuid());
        Assert.True((File.GetUnixFileMode(Path.Combine(forced, "su")) & setuid) != 0);
    }

    [Fact]
    public void A_folder_that_cannot_be_made_is_one_error_and_nothing_below_it_is_tried()
    {
        using var f = new Fixture();
        var target = f.Dir.Sub("target");
        // A folder there already that takes no new entry: immutable (root), or read-only to its owner (not root).
        var locked = Path.Combine(target, "locked");
        Directory.CreateDirectory(locked);
        if (Posix.Posix.IsRoot) TreeCompare.SetFlags(locked, 0x10); // FS_IMMUTABLE_FL
        else File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            // "a" has a second name outside the folder: that one says why it is not there.
            var a = f.File("a", "a");
            a.Nlink = 2;
            var link = new Node { Name = "a-again", Type = NodeType.Hardlink, HardlinkTarget = "/locked/sub/a" };
            var result = f.Restore(target, f.Folder("locked", f.Folder("sub", a, f.Folder("deeper", f.File("b", "b")))), f.File("beside", "kept"), link);
            var below = Assert.Single(result.Errors, e => e.Path.StartsWith("/locked/", StringComparison.Ordinal));
            Assert.Equal("/locked/sub", below.Path);
            Assert.Contains("nothing below it restored", below.Reason);
            Assert.Equal("kept", File.ReadAllText(Path.Combine(target, "beside")));
            Assert.Contains("whose restore failed", Assert.Single(result.Errors, e => e.Path == "/a-again").Reason);
        }
        finally
        {
            TreeCompare.Unlock(target);
            File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public void An_existing_symlink_in_the_target_is_never_written_through()
    {
        using var f = new Fixture();
        var outside = f.Dir.Sub("outside");
        File.WriteAllText(Path.Combine(outside, "victim"), "original");
        var target = f.Dir.Sub("target");
        // Someone planted symlinks where the snapshot has a directory and a file.
        File.CreateSymbolicLink(Path.Combine(target, "dir"), outside);
        File.CreateSymbolicLink(Path.Combine(target, "victim"), Path.Combine(outside, "victim"));
        var result = f.Restore(target, f.Folder("dir", f.File("victim", "pwned"), f.Folder("deeper", f.File("x", "pwned"))), f.File("victim", "restored"));
        Assert.Equal("original", File.ReadAllText(Path.Combine(outside, "victim")));
        Assert.Single(Directory.GetFileSystemEntries(outside));
        Assert.Contains(result.Errors, e => e.Path == "/dir" && e.Reason.Contains("existing symlink"));
        // The planted file symlink was replaced by the restored file, not followed.
        Assert.Null(new FileInfo(Path.Combine(target, "victim")).LinkTarget);
        Assert.Equal("restored", File.ReadAllText(Path.Combine(target, "victim")));
        // The counts are what was made: one file; the two folders and two files below the refused one were not.
        Assert.Equal((1, 0, 4), (result.Files, result.Directories, result.NotRestored));
    }

    [Theory]
    [InlineData("directories")] // before the files are written into it
    [InlineData("contents")]    // before its links, special files, and every mode, owner and time are set
    public void A_folder_swapped_for_a_symlink_between_restore_phases_leaves_the_outside_folder_untouched_modes_included(string after)
    {
        using var f = new Fixture();
        var outside = f.Dir.Sub("outside");
        var secret = Path.Combine(outside, "secret");
        File.WriteAllText(secret, "original");
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.SetUnixFileMode(outside, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var before = Directory.GetLastWriteTimeUtc(outside);
        var target = Path.Combine(f.Dir.Path, "target");

        var open = f.File("secret", "pwned");
        open.Mode = 0b110_110_110; // 0666
        var link = new Node { Name = "link", Type = NodeType.Hardlink, HardlinkTarget = "/d/secret" };
        var symlink = new Node { Name = "sym", Type = NodeType.Symlink, LinkTarget = ByteString.CopyFromUtf8("/etc/passwd") };
        var fifo = new Node { Name = "fifo", Type = NodeType.Fifo, Mode = 0b110_110_110 };
        var folder = f.Folder("d", open, f.File("new", "pwned"), link, symlink, fifo);
        folder.Mode = 0b111_111_111; // 0777: a chmod through the swapped name would open the outside folder to everyone

        var result = f.Restore(target, new RestoreOptions
        {
            Force = true,
            Phase = phase =>
            {
                if (phase != after) return;
                Directory.Move(Path.Combine(target, "d"), Path.Combine(target, "moved-away"));
                File.CreateSymbolicLink(Path.Combine(target, "d"), outside);
            },
        }, folder, f.File("fine", "fine"));

        Assert.Equal(["secret"], Directory.GetFileSystemEntries(outside).Select(Path.GetFileName));
        Assert.Equal("original", File.ReadAllText(secret));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(outside));
        Assert.Equal(before, Directory.GetLastWriteTimeUtc(outside));
        Assert.Contains(result.Errors, e => e.Reason.Contains("symlink is in the way"));
        Assert.Equal("fine", File.ReadAllText(Path.Combine(target, "fine"))); // the rest of the restore went on
    }

    [Fact]
    public void A_symlink_in_the_snapshot_is_created_last_so_nothing_is_written_through_it()
    {
        using var f = new Fixture();
        var outside = f.Dir.Sub("outside");
        var target = Path.Combine(f.Dir.Path, "target");
        // A crafted tree with a symlink "a" -> outside and a directory "a" holding a file: same name twice.
        var symlink = new Node { Name = "a", Type = NodeType.Symlink, LinkTarget = ByteString.CopyFromUtf8(outside) };
        f.Restore(target, f.Folder("a", f.File("planted", "pwned")), symlink);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public void A_chunk_that_does_not_match_its_id_is_reported_not_restored()
    {
        using var f = new Fixture();
        var good = f.File("good", "good content");
        var bad = f.File("bad", "bad content");
        f.Repo.Library.Commit();
        // Flip a payload byte of "bad"'s record on the volume.
        Assert.True(f.Repo.Library.TryGetLocation(new ChunkId(bad.Chunks.Span), out var loc));
        var volume = Directory.GetFiles(Path.Combine(f.Repo.Library.Root, "volumes")).Single();
        using (var s = new FileStream(volume, FileMode.Open))
        {
            s.Position = loc.Offset + VolumeFormat.RecordHeaderSize + 30;
            var b = s.ReadByte();
            s.Position--;
            s.WriteByte((byte)(b ^ 0x40));
        }
        var target = Path.Combine(f.Dir.Path, "target");
        var result = f.Restore(target, good, bad);
        Assert.Equal("good content", File.ReadAllText(Path.Combine(target, "good")));
        var error = Assert.Single(result.Errors);
        Assert.Equal("/bad", error.Path);
        Assert.Contains(volume, error.Reason);
        Assert.Contains($"offset {loc.Offset}", error.Reason);
        // Not left at its name looking restored (a part of it, or none, mode 0600).
        Assert.False(File.Exists(Path.Combine(target, "bad")));
        Assert.Contains("nothing is left at its name", error.Reason);
        var verify = f.Repo.Library.Verify();
        Assert.False(verify.Ok);
        Assert.Contains(verify.Damage, d => d.Volume == volume && d.Offset == loc.Offset);
    }
}
