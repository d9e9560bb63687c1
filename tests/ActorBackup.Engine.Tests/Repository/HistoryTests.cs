using System.Text;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;
using ActorBackup.TestSupport;
using CsCheck;

namespace ActorBackup.Engine.Tests;

/// <summary>
/// Histories of changes to a tree, each round backed up at a level drawn at random (full, differential, incremental):
/// every snapshot restores as the tree was when it was taken, by the kernel's own account (TreeCompare). What an
/// incremental backup takes from its parent without reading (a file's content and xattrs when its size, times and inode
/// say it is unchanged, a folder's listing, hard-link groups) must never hide a change: one byte rewritten with the
/// mtime put back, two files swapped, an xattr removed, a file become a folder, a hard link's other name written.
/// </summary>
public class HistoryTests
{
    private static readonly RepositoryConfig SmallChunks = new() { ChunkMin = 4 * 1024, ChunkAvg = 16 * 1024, ChunkMax = 64 * 1024, VolumeCapacity = 4 * 1024 * 1024 };
    private static readonly string[] Names = ["a", "b", "c", "d"];
    private static readonly int[] Sizes = [0, 1, 17, 4096, 70_000, 200_000];
    private static readonly UnixFileMode[] FileModes =
    [
        (UnixFileMode)0b110_100_100, (UnixFileMode)0b110_000_000, (UnixFileMode)0b111_101_101, (UnixFileMode)0b110_100_000,
    ];

    public enum Op { Write, WriteNewInode, OverwriteKeepingTimes, Append, Resize, Delete, Mkdir, Move, Swap, Symlink, HardLink, Chmod, SetXattr, RemoveXattr, Touch, FileToFolder, AddKeepingFolderTimes }

    [Fact]
    public void Any_history_of_changes_backed_up_at_any_levels_restores_every_snapshot_as_its_tree_was()
    {
        var step = Gen.Select(Gen.Enum<Op>(), Gen.Int[0, 999], Gen.Int[0, 999], Gen.Int[0, 999]);
        var round = Gen.Select(step.Array[1, 8], Gen.Int[0, 5]);
        round.Array[1, 5].Sample(Run, iter: 60, threads: 1);
    }

    private static void Run(((Op Op, int A, int B, int C)[] Steps, int Level)[] rounds)
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        using var repo = TestRepo.Create(dir.Sub("repo"), SmallChunks);
        var set = new BackupSet("history", [src]);
        var taken = new List<(SnapshotManifest Snapshot, Dictionary<string, string> Tree, string History)>();
        var history = new StringBuilder();
        var n = 0;
        foreach (var (steps, level) in rounds)
        {
            foreach (var step in steps) history.AppendLine(Apply(src, step, n++));
            var snapshot = repo.Backup(set, level switch { 0 => Level.Full, 1 => Level.Differential, _ => Level.Incremental });
            Assert.Empty(snapshot.Errors);
            history.AppendLine($"-- backup {taken.Count + 1} ({snapshot.Level})");
            taken.Add((snapshot, TreeCompare.Describe(src), history.ToString()));
            AfterTheClockMoves(dir.Path, snapshot);
        }
        for (var i = 0; i < taken.Count; i++)
        {
            var target = Path.Combine(dir.Path, $"restored-{i + 1}");
            var result = repo.Restore(taken[i].Snapshot.Id, target);
            try
            {
                Assert.Empty(result.Errors);
                TreeCompare.AssertSame(taken[i].Tree, target + src);
            }
            catch (Xunit.Sdk.XunitException e)
            {
                throw new Xunit.Sdk.XunitException($"snapshot {i + 1} of {taken.Count} does not restore as its tree was, after:\n{taken[i].History}\n{e.Message}");
            }
        }
    }

    /// <summary>
    /// Until a change made now gets a later ctime than the backup's end: the changes of the next round are then later than
    /// anything the backup read, as they would be on a host (the tests' margin for changes within a clock tick is 0).
    /// </summary>
    private static void AfterTheClockMoves(string dir, SnapshotManifest snapshot)
    {
        var probe = Path.Combine(dir, "probe");
        var giveUp = DateTime.UtcNow.AddSeconds(30);
        do
        {
            File.WriteAllText(probe, DateTime.UtcNow.Ticks.ToString());
            if (DateTime.UtcNow > giveUp)
                throw new InvalidOperationException($"the file system of {dir} stamps changes more than 30 s behind the clock: run the tests on a local one");
        }
        while (TreeCompare.CtimeNs(probe) / 1_000_000 <= snapshot.FinishedUnixMs);
    }

    private static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    /// <summary>Regular files below <paramref name="src"/>, in order.</summary>
    private static List<string> Files(string src) =>
        [.. Directory.EnumerateFileSystemEntries(src, "*", SearchOption.AllDirectories).Where(p => File.Exists(p) && !IsLink(p)).Order(StringComparer.Ordinal)];

    /// <summary><paramref name="src"/> and the folders right below it: where a new entry goes.</summary>
    private static List<string> Folders(string src) =>
        [src, .. Directory.EnumerateDirectories(src).Where(p => !IsLink(p)).Order(StringComparer.Ordinal)];

    /// <summary>Every entry below <paramref name="src"/>, in order.</summary>
    private static List<string> Entries(string src) =>
        [.. Directory.EnumerateFileSystemEntries(src, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)];

    private static bool Exists(string path) => File.Exists(path) || Directory.Exists(path) || IsLink(path);

    private static string Apply(string src, (Op Op, int A, int B, int C) step, int n)
    {
        var (op, a, b, c) = step;
        string Rel(string p) => p == src ? "." : Path.GetRelativePath(src, p);
        var files = Files(src);
        var folders = Folders(src);
        var entries = Entries(src);
        var fresh = Path.Combine(folders[a % folders.Count], Names[b % Names.Length]);
        var file = files.Count > 0 ? files[a % files.Count] : null;
        var content = TestRepo.RandomBytes(Sizes[c % Sizes.Length], n * 1000 + c);
        switch (op)
        {
            case Op.Write when !Directory.Exists(fresh) || IsLink(fresh):
                if (IsLink(fresh)) File.Delete(fresh);
                File.WriteAllBytes(fresh, content); // in place: every hard link of it sees the new content
                return $"write {Rel(fresh)} ({content.Length} bytes)";
            case Op.WriteNewInode when !Directory.Exists(fresh) || IsLink(fresh):
                var temporary = fresh + ".new";
                File.WriteAllBytes(temporary, content);
                File.Move(temporary, fresh, overwrite: true);
                return $"write {Rel(fresh)} as a new file renamed over it ({content.Length} bytes)";
            case Op.OverwriteKeepingTimes when file is not null && new FileInfo(file).Length > 0:
                var (sec, nsec) = TreeCompare.Mtime(file);
                using (var f = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
                {
                    f.Position = b % f.Length;
                    var old = f.ReadByte();
                    f.Position--;
                    f.WriteByte((byte)(old ^ 0x5a));
                }
                TreeCompare.SetMtime(file, sec, nsec);
                return $"rewrite one byte of {Rel(file)} at {b} and put its mtime back";
            case Op.Append when file is not null:
                using (var f = new FileStream(file, FileMode.Append)) f.Write(content);
                return $"append {content.Length} bytes to {Rel(file)}";
            case Op.Resize when file is not null:
                var length = new FileInfo(file).Length;
                var to = c % 2 == 0 ? length / 2 : length + c * 1000;
                using (var f = new FileStream(file, FileMode.Open)) f.SetLength(to);
                return $"resize {Rel(file)} from {length} to {to}";
            case Op.Delete when entries.Count > 0:
                var gone = entries[a % entries.Count];
                if (Directory.Exists(gone) && !IsLink(gone)) Directory.Delete(gone, recursive: true);
                else File.Delete(gone);
                return $"delete {Rel(gone)}";
            case Op.Mkdir when !Exists(fresh):
                Directory.CreateDirectory(fresh);
                return $"mkdir {Rel(fresh)}";
            case Op.Move when entries.Count > 0:
                var from = entries[a % entries.Count];
                var into = Path.Combine(folders[b % folders.Count], Names[c % Names.Length]);
                if (into == from || into.StartsWith(from + "/", StringComparison.Ordinal) || (Directory.Exists(into) && !IsLink(into))) break;
                if (Directory.Exists(from) && !IsLink(from))
                {
                    if (Exists(into)) break;
                    Directory.Move(from, into);
                }
                else File.Move(from, into, overwrite: true);
                return $"move {Rel(from)} to {Rel(into)}";
            case Op.Swap when files.Count > 1 && files[a % files.Count] != files[b % files.Count]:
                var (x, y) = (files[a % files.Count], files[b % files.Count]);
                File.Move(x, x + ".swap");
                File.Move(y, x);
                File.Move(x + ".swap", y);
                return $"swap {Rel(x)} and {Rel(y)}";
            case Op.Symlink when !Exists(fresh):
                File.CreateSymbolicLink(fresh, $"target-{c}");
                return $"symlink {Rel(fresh)} -> target-{c}";
            case Op.HardLink when file is not null:
                var name = Path.Combine(folders[b % folders.Count], Names[c % Names.Length]);
                if (Exists(name)) break;
                TreeCompare.HardLink(src, Encoding.UTF8.GetBytes(Rel(file)), Encoding.UTF8.GetBytes(Rel(name)));
                return $"hard link {Rel(name)} to {Rel(file)}";
            case Op.Chmod when file is not null:
                var mode = FileModes[c % FileModes.Length];
                File.SetUnixFileMode(file, mode);
                return $"chmod {Rel(file)} {Convert.ToString((int)mode, 8)}";
            case Op.SetXattr when entries.Count > 0 && !IsLink(entries[a % entries.Count]):
                var on = entries[a % entries.Count];
                var value = TestRepo.RandomBytes(1 + c % 40, c);
                TreeCompare.SetXattr(on, $"user.k{b % 2}", value);
                return $"set xattr user.k{b % 2} of {Rel(on)} ({value.Length} bytes)";
            case Op.RemoveXattr when entries.Count > 0 && !IsLink(entries[a % entries.Count]):
                var of = entries[a % entries.Count];
                try
                {
                    TreeCompare.RemoveXattr(of, $"user.k{b % 2}");
                }
                catch (IOException)
                {
                    break; // it had none of that name
                }
                return $"remove xattr user.k{b % 2} of {Rel(of)}";
            case Op.Touch when file is not null:
                TreeCompare.SetMtime(file, 1_600_000_000L + c * 1000L, (uint)b * 1000);
                return $"set the mtime of {Rel(file)}";
            case Op.FileToFolder when file is not null:
                File.Delete(file);
                Directory.CreateDirectory(file);
                File.WriteAllBytes(Path.Combine(file, "inside"), content);
                return $"replace file {Rel(file)} by a folder holding 'inside'";
            case Op.AddKeepingFolderTimes when !Exists(fresh):
                // As tar and rsync leave a folder: what it holds changed, its mtime put back (its ctime is what says so).
                var folder = Path.GetDirectoryName(fresh)!;
                var (folderSec, folderNsec) = TreeCompare.Mtime(folder);
                File.WriteAllBytes(fresh, content);
                TreeCompare.SetMtime(folder, folderSec, folderNsec);
                return $"add {Rel(fresh)} ({content.Length} bytes) and put the mtime of {Rel(folder)} back";
        }
        return $"({op} {a} {b} {c}: nothing to do)";
    }
}
