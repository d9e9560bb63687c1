using ActorBackup.Engine.Posix;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Repository;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Tests;

/// <summary>A file's flags restored onto a file system that refuses some of them: only those are left off, and named.</summary>
public class RefusedFlagsTests
{
    private const uint NoCow = 0x00800000; // btrfs's chattr +C: ext4 refuses it

    [RootFact("immutable needs CAP_LINUX_IMMUTABLE")]
    public void A_flag_the_target_refuses_leaves_off_only_itself_and_an_immutable_file_stays_immutable()
    {
        using var dir = new TempDir();
        var file = Path.Combine(dir.Path, "journal.log");
        File.WriteAllText(file, "x");
        using var root = new RootedDirectory(dir.Path);
        Assert.NotNull(root.SetFlags("journal.log", directory: false, NoCow)); // this test's file system (ext4) refuses +C
        try
        {
            var why = root.SetFlags("journal.log", directory: false, FileFlags.Immutable | FileFlags.NoDump | NoCow);
            Assert.Equal(FileFlags.Immutable | FileFlags.NoDump, TreeCompare.Flags(file) & (FileFlags.Immutable | FileFlags.NoDump | NoCow));
            Assert.NotNull(why);
            Assert.Contains("file flags C:", why);
        }
        finally
        {
            TreeCompare.SetFlags(file, 0);
        }
    }

    [RootFact("immutable needs CAP_LINUX_IMMUTABLE")]
    public void A_forced_restore_replaces_a_file_left_immutable_and_says_what_to_do_where_it_cannot()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        File.WriteAllText(Path.Combine(src, "resolv.conf"), "nameserver 192.0.2.1\n");
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("etc", [src]), Level.Full);
        var target = Path.Combine(dir.Path, "live");
        var live = Path.Combine(target + src, "resolv.conf");
        Assert.Empty(repo.Restore(snap.Id, target).Errors);
        File.WriteAllText(live, "changed since\n");
        TreeCompare.SetFlags(live, FileFlags.Immutable); // chattr +i, as a live system's may be
        try
        {
            var forced = repo.Restore(snap.Id, target, force: true);
            Assert.Empty(forced.Errors);
            Assert.Equal("nameserver 192.0.2.1\n", File.ReadAllText(live));
            Assert.Equal(0u, TreeCompare.Flags(live) & FileFlags.Immutable); // the snapshot's flags: none

            // Inside an immutable folder nothing can be made: the error says why and what to do, and a file there that was
            // immutable stays so (its flags set back when its name could not be removed).
            File.WriteAllText(live, "changed again\n");
            TreeCompare.SetFlags(live, FileFlags.Immutable);
            TreeCompare.SetFlags(target + src, FileFlags.Immutable);
            File.WriteAllText(Path.Combine(src, "new.conf"), "x");
            var blocked = repo.Restore(repo.Backup(new BackupSet("etc", [src]), Level.Full).Id, target, force: true);
            Assert.Contains(blocked.Errors, e => e.Reason.Contains("chattr -i"));
            Assert.Equal(FileFlags.Immutable, TreeCompare.Flags(live) & FileFlags.Immutable);
            Assert.Equal("changed again\n", File.ReadAllText(live));
        }
        finally
        {
            TreeCompare.SetFlags(live, 0);
            TreeCompare.SetFlags(target + src, 0);
        }
    }

    [BtrfsFact]
    public void A_target_without_ACLs_gets_one_error_for_all_its_entries_not_one_each()
    {
        using var dir = new TempDir();
        var src = dir.Sub("src");
        const uint Unset = uint.MaxValue;
        var acl = TreeCompare.Acl((0x01, 6, Unset), (0x02, 4, 0), (0x04, 4, Unset), (0x10, 4, Unset), (0x20, 0, Unset));
        for (var i = 0; i < 30; i++)
        {
            var file = Path.Combine(src, $"f{i}");
            File.WriteAllText(file, "x");
            TreeCompare.SetXattr(file, "system.posix_acl_access", acl);
            TreeCompare.SetXattr(file, "user.kept", "yes"u8);
        }
        // Readable by a named user only (group::---, user:0:rw-, mask rw-: mode 0660): without its ACL, the owning group must
        // not get the mask's rw.
        var privateFile = Path.Combine(src, "private");
        File.WriteAllText(privateFile, "bob's");
        TreeCompare.SetXattr(privateFile, "system.posix_acl_access", TreeCompare.Acl((0x01, 6, Unset), (0x02, 6, 0), (0x04, 0, Unset), (0x10, 6, Unset), (0x20, 0, Unset)));
        Assert.Equal(0x1B0u, Posix.Posix.LStat(privateFile)!.Value.Mode & 0x1FF); // 0660
        using var repo = TestRepo.Create(dir.Sub("repo"));
        var snap = repo.Backup(new BackupSet("acls", [src]), Level.Full);
        using var btrfs = new LoopBtrfs("noacl"); // a file system that has no ACLs (as vfat, SMB, many FUSE ones)
        var target = Path.Combine(btrfs.Path, "r");
        var errors = repo.Restore(snap.Id, target).Errors;
        var error = Assert.Single(errors);
        Assert.Contains("31 entries restored without their POSIX ACLs: the target's file system has none", error.Reason);
        Assert.Equal(0x180u, Posix.Posix.LStat(target + privateFile)!.Value.Mode & 0x1FF); // 0600: the owning group's --- within the mask
        Assert.Equal("yes"u8.ToArray(), Posix.Posix.ReadXattrs(target + src + "/f7").Single(x => System.Text.Encoding.UTF8.GetString(x.Name) == "user.kept").Value);
        Assert.DoesNotContain(Directory.GetFileSystemEntries(target), e => Path.GetFileName(e).StartsWith(".actorbackup-probe", StringComparison.Ordinal));

        // The same file system mounted below the target (not probed: each entry's ACL fails on its own): the mode still
        // does not give the owning group the mask's rw.
        var above = Path.Combine(dir.Path, "above");
        using var below = new LoopBtrfs("noacl", at: Directory.CreateDirectory(above + src).FullName);
        var each = repo.Restore(snap.Id, above, force: true).Errors;
        Assert.True(each.Count >= 31, string.Join("; ", each.Select(e => e.Reason)));
        Assert.Equal(0x180u, Posix.Posix.LStat(above + privateFile)!.Value.Mode & 0x1FF);
    }
}
