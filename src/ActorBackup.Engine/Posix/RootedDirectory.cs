namespace ActorBackup.Engine.Posix;

/// <summary>
/// A folder that everything below it is reached through by handle, never by path: each relative path is resolved
/// with openat2 under RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (no symlink followed, its last name included, and
/// nothing outside the folder), entries are made with the *at calls in the handle of their folder, and owner, mode
/// and times are set on the handle of the entry itself (a symlink's or a special file's on its name, not followed).
/// A restore works through one: a folder swapped for a symlink while it runs makes the entries below it fail, and
/// never turns a write, a chmod, a chown or a link toward something outside the target. Relative paths are made of
/// names a restore has checked (no "..", no "/" inside a name, no NUL).
/// </summary>
public sealed class RootedDirectory : IDisposable
{
    private readonly int _root;
    /// <summary>New files get their blocks at once (fewer extents), but not on btrfs: see <see cref="Posix.IsBtrfs"/>.</summary>
    private readonly bool _preallocates;
    /// <summary>A btrfs is mounted below the root (which is not one): each new file's own file system is asked.</summary>
    private readonly bool _btrfsBelow;
    public string Path { get; }

    /// <summary>
    /// Nothing was below the root when the restore began (a new or empty folder, neither forced nor resumed): whatever a
    /// name finds there was made by this restore under another of the snapshot's names, which the target's file system
    /// takes as the same (case-insensitive or normalising: vfat, exFAT, SMB, casefold folders). It is then an error
    /// (<see cref="Taken"/>), never removed: else one of the two would be lost and the restore still say done.
    /// </summary>
    public bool Fresh { get; init; }

    private IOException Taken(string relative) =>
        new($"{Full(relative)} is there already, made by this restore under another name of the snapshot: the " +
            "target's file system takes the two names as one (case-insensitive or normalising: vfat, exFAT, SMB, a casefold folder); " +
            "restore onto a file system that keeps names apart (ext4, XFS, btrfs), or restore the other name elsewhere");

    /// <summary>
    /// Whether this folder has file flags (chattr): ext4, XFS, btrfs and tmpfs give some (nodump, noatime, sync,
    /// journal-data, nocow, compress) to every entry made in it, and on down.
    /// </summary>
    public bool HasFlags
    {
        get
        {
            var fd = Posix.Reopen(_root, Posix.ORdOnlyFlag | Posix.ONonblockFlag);
            if (fd < 0) return false;
            try
            {
                return FileFlags.Get(fd) != 0;
            }
            finally
            {
                Posix.Close(fd);
            }
        }
    }

    /// <summary>The folder opened to read, from the start: its file system's write-back errors since then reach <see cref="Sync"/>; -1 when it cannot be.</summary>
    private readonly int _readable;

    public RootedDirectory(string path)
    {
        Path = path;
        _root = Posix.OpenRoot(path);
        var readable = Posix.Reopen(_root, Posix.ORdOnlyFlag | Posix.ONonblockFlag);
        _readable = readable < 0 ? -1 : readable;
        try
        {
            _preallocates = !Posix.IsBtrfs(_root);
            _btrfsBelow = _preallocates && Posix.BtrfsMountedBelow(_root);
        }
        catch
        {
            Posix.Close(_root);
            if (_readable >= 0) Posix.Close(_readable);
            throw;
        }
    }

    public void Dispose()
    {
        Posix.Close(_root);
        if (_readable >= 0) Posix.Close(_readable);
    }

    /// <summary>
    /// Makes everything written below this folder durable: its file system's and those mounted below it (syncfs
    /// each). PosixException when one did not take what was written.
    /// </summary>
    public void Sync() => Posix.SyncFileSystems(_readable, _root, Path);

    /// <summary>Writes back what is written so far (<see cref="Posix.WriteBehind"/>), while more is written.</summary>
    public void WriteBehind() => Posix.WriteBehind(_root);

    /// <summary>The path of <paramref name="relative"/> below this folder, as people see it (PosixNames.Display).</summary>
    private string Full(string relative) => PosixNames.Display(Path.TrimEnd('/') + "/" + relative);

    /// <param name="locks">a remove or a create, which a file or folder left immutable or append-only refuses: EPERM says so</param>
    private IOException Failure(string what, string relative, int errno, bool locks = false) => errno switch
    {
        Posix.ELOOP_ => new PosixException(errno, $"{what} {Full(relative)}: a symlink is in the way (it was not there when the restore began, or was not made by it); nothing is written through it"),
        Posix.EXDEV => new PosixException(errno, $"{what} {Full(relative)}: the path leads outside the restore target; refused"),
        Posix.EACCES => new PosixException(errno, $"{what} {Full(relative)}: {Posix.Describe(errno)}"),
        Posix.EPERM when locks => new PosixException(errno, $"{what} {Full(relative)}: {Posix.Describe(errno)} (is it or its folder " +
                                                 "immutable or append-only? lsattr shows it, chattr -i / -a takes it away; or restore elsewhere)"),
        _ => new PosixException(errno, $"{what} {Full(relative)}: {Posix.Describe(errno)}"),
    };

    private static (string Parent, string Name) Split(string relative)
    {
        var slash = relative.LastIndexOf('/');
        return slash < 0 ? (".", relative) : (relative[..slash], relative[(slash + 1)..]);
    }

    /// <summary>A handle (O_PATH) of the folder that holds <paramref name="relative"/>: closed by the caller.</summary>
    private int ParentOf(string relative, out string name)
    {
        var (parent, n) = Split(relative);
        name = n;
        var fd = Posix.OpenBeneath(_root, parent, Posix.OPath | Posix.ODirectory, 0);
        if (fd < 0) throw Failure("open folder of", relative, -fd);
        return fd;
    }

    private T InParent<T>(string relative, Func<int, string, T> act)
    {
        var dir = ParentOf(relative, out var name);
        try
        {
            return act(dir, name);
        }
        finally
        {
            Posix.Close(dir);
        }
    }

    /// <summary>Makes the folder (0700); null when made, else the kind of what was there already (left as it is).</summary>
    public FileKind? MakeDirectory(string relative) => InParent(relative, (dir, name) =>
    {
        var errno = Posix.MkdirAt(dir, name, 0x1C0);
        if (errno == 0) return (FileKind?)null;
        if (errno == Posix.EEXIST && Posix.KindAt(dir, name, Full(relative)) is { } there) return there;
        throw Failure("mkdir", relative, errno, locks: true);
    });

    /// <summary>What is at <paramref name="relative"/> (a symlink not followed); null when nothing is.</summary>
    public FileKind? KindOf(string relative) => InParent(relative, (dir, name) => Posix.KindAt(dir, name, Full(relative)));

    /// <summary>What is at <paramref name="relative"/> (a symlink not followed): its kind, size and mtime; null when nothing is, or its folder is not there.</summary>
    public Existing? Existing(string relative)
    {
        try
        {
            return InParent(relative, (dir, name) => Posix.ExistingAt(dir, name, Full(relative)));
        }
        catch (PosixException e) when (e.Errno is Posix.ENOENT or Posix.ENOTDIR)
        {
            return null; // a folder on its way is not there (yet)
        }
    }

    /// <summary>
    /// Removes what is at <paramref name="relative"/> unless it is a folder (then an IOException says so); nothing there
    /// is fine. Into a <see cref="Fresh"/> root, anything there is an IOException (two names taken as one).
    /// </summary>
    public void RemoveNonDirectory(string relative) => InParent(relative, (dir, name) =>
    {
        var kind = Posix.KindAt(dir, name, Full(relative));
        if (kind is null) return 0;
        if (Fresh) throw Taken(relative);
        if (kind == FileKind.Directory) throw new IOException($"{Full(relative)} is an existing directory where the snapshot has a file: remove it or restore elsewhere");
        var errno = Posix.UnlinkAt(dir, name);
        // A file left immutable or append-only (an earlier attempt of this restore set its flags, or --force over a live
        // tree: chattr +i /etc/resolv.conf): root takes them away and removes it; the restore sets the snapshot's again.
        if (errno == Posix.EPERM && kind == FileKind.Regular && Posix.IsRoot) errno = UnlockAndUnlink(dir, name, relative) ?? errno;
        if (errno != 0 && errno != Posix.ENOENT) throw Failure("remove", relative, errno, locks: true);
        return 0;
    });

    /// <summary>A new file (0600) open for writing, <paramref name="size"/> bytes allocated; what was at the name (not a folder) is removed first.</summary>
    /// <param name="sparse">the file has holes: its size is set at once and nothing is preallocated (the holes stay unallocated)</param>
    /// <param name="flagsBeforeData">file flags to set while it is empty (FileFlags.BeforeData); one not taken is not
    /// an error here: the file's flags are all set again once it is whole, and that says what was not</param>
    /// <param name="setFlags">set them even when none: the file may have taken some from its folder (nocow on btrfs)</param>
    public Microsoft.Win32.SafeHandles.SafeFileHandle CreateFile(string relative, long size, bool sparse = false, uint flagsBeforeData = 0, bool setFlags = false) =>
        CreateFile(relative, size, out _, out _, sparse, flagsBeforeData, setFlags, stage: false);

    /// <summary>
    /// As <see cref="CreateFile(string,long,bool,uint,bool)"/>, but a file already at the name (a forced restore over a
    /// live tree: <paramref name="stage"/>) stays there, whole, until the new one is: that is made beside it, with no name
    /// (O_TMPFILE, when <paramref name="unnamed"/> and the file system has it: a crash leaves nothing) or under a hidden
    /// staging name (<see cref="StagingName"/>), and <see cref="Replace"/> puts it in its place once it is whole
    /// (<see cref="Discard"/> removes it). <paramref name="staged"/>: the staging name (an unnamed file gets it from
    /// <see cref="NameStaged"/>); <paramref name="stagedUnnamed"/>: it has none yet. A restore that fails on the file (a
    /// chunk it cannot read, no room for the copy, a kill) leaves the file that was there as it was. <paramref name="stageNew"/>:
    /// staged even when nothing is at its name yet (so that no name ever holds a file not yet whole: a restore that keeps
    /// what it finds, --overwrite never, must not keep its own earlier attempt's half-written file).
    /// </summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle CreateFile(string relative, long size, out string? staged, out bool stagedUnnamed, bool sparse = false,
        uint flagsBeforeData = 0, bool setFlags = false, bool stage = true, bool unnamed = true, bool stageNew = false)
    {
        staged = null;
        stagedUnnamed = false;
        var fd = stage && stageNew && !Fresh ? -Posix.EEXIST : Posix.OpenBeneath(_root, relative, Posix.OWrOnly | Posix.OCreat | Posix.OExcl, 0x180);
        if (fd == -Posix.EEXIST)
        {
            if (!stage || Fresh || KindOf(relative) is FileKind.Directory) RemoveNonDirectory(relative); // a Fresh root's Taken, a folder's error
            else
            {
                var slash = relative.LastIndexOf('/');
                staged = relative[..(slash + 1)] + StagingName();
                fd = unnamed ? Posix.OpenBeneath(_root, slash < 0 ? "." : relative[..slash], Posix.OTmpFile | Posix.OWrOnly, 0x180) : -1;
                stagedUnnamed = fd >= 0;
                if (fd < 0) fd = Posix.OpenBeneath(_root, staged, Posix.OWrOnly | Posix.OCreat | Posix.OExcl, 0x180);
                if (fd < 0) throw Failure("create", staged, -fd, locks: true);
                try
                {
                    return Opened(fd, staged, size, sparse, flagsBeforeData, setFlags);
                }
                catch (Exception e)
                {
                    if (!stagedUnnamed) Discard(staged);
                    // No room for the new copy beside the old one: this file's error, not the target's being full (the
                    // rest of the restore may well fit: a file's old copy stays).
                    if (Posix.IsNoSpace(e))
                        throw new IOException($"no room for its new copy ({size} bytes) beside the file there: free space and restore it again");
                    throw;
                }
            }
            fd = Posix.OpenBeneath(_root, relative, Posix.OWrOnly | Posix.OCreat | Posix.OExcl, 0x180);
        }
        if (fd < 0) throw Failure("create", relative, -fd, locks: true);
        return Opened(fd, relative, size, sparse, flagsBeforeData, setFlags);
    }

    /// <summary>The name a file is written under until it replaces the one at its name: hidden, short, never taken.</summary>
    public static string StagingName() => ".abk-restore-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    /// <summary>An unnamed staged file (<paramref name="handle"/>, O_TMPFILE) gets its staging name, once whole and before it is closed.</summary>
    public void NameStaged(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string staged) => InParent(staged, (dir, name) =>
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            var errno = Posix.LinkHandle((int)handle.DangerousGetHandle(), dir, name);
            if (errno != 0) throw Failure("name", staged, errno, locks: true);
            return 0;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    });

    /// <summary>
    /// Puts the whole file at <paramref name="staged"/> in the place of what is at <paramref name="relative"/> (one rename:
    /// never neither). Over a file left immutable or append-only, root takes it away first; if the rename still fails
    /// then, a <see cref="StagedKeptException"/> says so (the new copy is kept under its staging name: the only one left).
    /// </summary>
    /// <param name="noReplace">only when nothing is at <paramref name="relative"/> (renameat2 RENAME_NOREPLACE): false, and the
    /// staged copy removed, when something is (made there since the restore looked: --overwrite never keeps it)</param>
    public bool Replace(string staged, string relative, bool noReplace = false) => InParent(relative, (dir, name) =>
    {
        var from = staged[(staged.LastIndexOf('/') + 1)..];
        if (noReplace)
        {
            var taken = Posix.RenameAt(dir, from, name, Posix.RenameNoReplace);
            if (taken == Posix.EEXIST)
            {
                Discard(staged);
                return false;
            }
            if (taken is not (Posix.EINVAL or Posix.ENOSYS)) // a file system without it: looked at, then the plain rename below
            {
                if (taken != 0) throw Failure("place", relative, taken, locks: true);
                return true;
            }
            if (Posix.KindAt(dir, name, Full(relative)) is not null)
            {
                Discard(staged);
                return false;
            }
        }
        var errno = Posix.RenameAt(dir, from, name);
        // Over a file left immutable or append-only (chattr +i /etc/resolv.conf): root takes its flags away and removes
        // it (RemoveNonDirectory), then the rename goes through; the snapshot's flags are set on the new one after.
        if (errno == Posix.EPERM && Posix.IsRoot && Posix.KindAt(dir, name, Full(relative)) == FileKind.Regular)
        {
            RemoveNonDirectory(relative);
            errno = Posix.RenameAt(dir, from, name);
            if (errno != 0)
                throw new StagedKeptException($"{Failure("replace", relative, errno).Message}: the file that was there was removed, and its restored copy is " +
                                              $"kept as {Full(staged)}: rename it into place");
        }
        if (errno != 0) throw Failure("replace", relative, errno, locks: true);
        return true;
    });

    /// <summary>A restored file left under its staging name, the file it was to replace gone: it is not to be removed.</summary>
    public sealed class StagedKeptException(string message) : IOException(message);

    /// <summary>A staged copy's data on the disk before it replaces the file there (a power cut after the rename must not leave an empty file where a good one was).</summary>
    public void SyncStaged(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string staged)
    {
        // EINVAL: a file system that does not sync (nothing to wait for).
        if (Posix.DataSync(handle) is var errno and not 0 && errno != Posix.EINVAL) throw Failure("sync", staged, errno);
    }

    /// <summary>Removes a staged file that is not to replace anything (its restore failed); nothing there is fine.</summary>
    public void Discard(string staged) => InParent(staged, (dir, name) =>
    {
        var errno = Posix.UnlinkAt(dir, name);
        if (errno != 0 && errno != Posix.ENOENT) throw Failure("remove", staged, errno);
        return 0;
    });

    private Microsoft.Win32.SafeHandles.SafeFileHandle Opened(int fd, string relative, long size, bool sparse, uint flagsBeforeData, bool setFlags)
    {
        var handle = Posix.Handle(fd);
        if (flagsBeforeData != 0 || setFlags) FileFlags.Set(fd, flagsBeforeData);
        if (sparse)
        {
            RandomAccess.SetLength(handle, size);
            return handle;
        }
        // Not on btrfs, nor for a file to compress: btrfs writes a preallocated file in place, uncompressed (whether the
        // file's flag, a property or the mount asks for compression). A btrfs mounted below a target that is not one too.
        if (size > 0 && _preallocates && (flagsBeforeData & FileFlags.Compress) == 0 && !(_btrfsBelow && Posix.IsBtrfs(fd))
            && Posix.Preallocate(fd, size) is Posix.ENOSPC)
        {
            handle.Dispose();
            throw new PosixException(Posix.ENOSPC, $"create {Full(relative)}: {Posix.Describe(Posix.ENOSPC)}");
        }
        return handle;
    }

    /// <summary>Which file <paramref name="handle"/> holds (to open the same one again by its name: <see cref="ReopenFile"/>).</summary>
    public static (uint, uint, ulong) Identity(Microsoft.Win32.SafeHandles.SafeFileHandle handle) => Posix.IdentityOfHandle(handle);

    /// <summary>
    /// Removes the file this restore made at <paramref name="relative"/> when it is still that file (<paramref name="identity"/>):
    /// one it could not finish. False when another is there by now (left alone) or none is.
    /// </summary>
    public bool DiscardMade(string relative, (uint, uint, ulong) identity)
    {
        var fd = Posix.OpenBeneath(_root, relative, Posix.OPath, 0); // no symlink followed, nothing opened for reading
        if (fd < 0) return false;
        using (var handle = Posix.Handle(fd))
            if (Posix.KindOfHandle(fd) != FileKind.Regular || Posix.IdentityOfHandle(handle) != identity) return false;
        Discard(relative);
        return true;
    }

    /// <summary>
    /// Opens for writing again the file this restore made at <paramref name="relative"/> and closed meanwhile: beneath
    /// the root, no symlink followed, and only when it is still that file (<paramref name="identity"/>), else an
    /// IOException says it was replaced.
    /// </summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle ReopenFile(string relative, (uint, uint, ulong) identity)
    {
        // Non-blocking: a FIFO put there meanwhile does not hang the restore (it is then not the same file).
        var fd = Posix.OpenBeneath(_root, relative, Posix.OWrOnly | Posix.ONonblockFlag | Posix.ONoctty, 0);
        if (fd < 0) throw Failure("open again", relative, -fd);
        var handle = Posix.Handle(fd);
        if (Posix.KindOfHandle(fd) != FileKind.Regular || Posix.IdentityOfHandle(handle) != identity)
        {
            handle.Dispose();
            throw new IOException($"{Full(relative)} was replaced by another file while it was being restored: restore it again");
        }
        return handle;
    }

    /// <summary>Owner (when given), mode, extended attributes and mtime of a file through its open handle; what could not be set of its extended attributes (null: all).</summary>
    public string? SetMetadata(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string relative, uint? uid, uint? gid, uint mode, EntryTimes times,
        IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs = null, XattrCleanup cleanup = XattrCleanup.None)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            if (Posix.SetMetadata((int)handle.DangerousGetHandle(), uid, gid, mode, times, xattrs, out var notSet, out var step, cleanup) is var errno and not 0)
                throw Failure(step, relative, errno);
            return XattrsNotSet(notSet);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>Owner (when given), mode, extended attributes and mtime of a folder, through a handle of it; what could not be set of its extended attributes (null: all).</summary>
    public string? SetDirectoryMetadata(string relative, uint? uid, uint? gid, uint mode, EntryTimes times,
        IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs = null, XattrCleanup cleanup = XattrCleanup.None)
    {
        var fd = Posix.OpenBeneath(_root, relative, Posix.ORdOnlyFlag | Posix.ODirectory, 0);
        if (fd < 0) throw Failure("open", relative, -fd);
        try
        {
            if (Posix.SetMetadata(fd, uid, gid, mode, times, xattrs, out var notSet, out var step, cleanup) is var errno and not 0) throw Failure(step, relative, errno);
            return XattrsNotSet(notSet);
        }
        finally
        {
            Posix.Close(fd);
        }
    }

    /// <summary>
    /// File flags (chattr) on a file or folder below this folder, reached without following a symlink and checked to
    /// be of the kind expected before it is opened (a device swapped in is never opened); why they could not be set,
    /// or null.
    /// </summary>
    public string? SetFlags(string relative, bool directory, uint flags) => OnNode(relative, Posix.OPath | Posix.ONofollow, node =>
    {
        var kind = Posix.KindOfHandle(node);
        if (kind != (directory ? FileKind.Directory : FileKind.Regular))
            return $"restored without its file flags {FileFlags.Show(flags)}: {Full(relative)} is no longer what the restore made";
        var fd = Posix.Reopen(node, Posix.ORdOnlyFlag | Posix.ONonblockFlag);
        if (fd < 0) return $"restored without its file flags {FileFlags.Show(flags)}: {Posix.Describe(-fd)}";
        try
        {
            if (FileFlags.Set(fd, flags) is 0) return null;
            // Some refused (immutable and append-only need root; ext4 takes no btrfs nocow, tmpfs few): each flag is tried
            // on top of those taken, the locking ones last, and only those refused are left off and named.
            uint taken = 0, refused = 0;
            var why = 0;
            // The two locking ones in one step: ext4 refuses any change of flags while immutable stays set.
            foreach (var bit in Bits(flags & ~FileFlags.Locking).Append(flags & FileFlags.Locking).Where(b => b != 0))
                if (FileFlags.Set(fd, taken | bit) is var errno and not 0) (refused, why) = (refused | bit, errno);
                else taken |= bit;
            // Set again as the flags taken (a bit refused left them as the last one that was; none taken: those the entry
            // had or inherited are cleared here).
            var reset = FileFlags.Set(fd, taken);
            if (why == 0) why = reset;
            // What it has now against what it should: flags left off, and flags it had that could not be taken away (a
            // folder's append-only under --force, as another user; one the file system keeps).
            var now = FileFlags.Get(fd);
            var missing = flags & ~now & FileFlags.Kept;
            var extra = now & ~flags & FileFlags.Kept;
            if (missing == 0 && extra == 0) return null; // taken one by one (a combination refused at once)
            return string.Join("; ", new[]
            {
                missing != 0 ? $"restored without its file flags {FileFlags.Show(missing)}" : null,
                extra != 0 ? $"its file flags {FileFlags.Show(extra)} could not be taken away" : null,
            }.OfType<string>()) + $": {Posix.Describe(why)}";
        }
        finally
        {
            Posix.Close(fd);
        }
    });

    /// <summary>
    /// The extended attribute namespaces this folder's file system has none of (EOPNOTSUPP: vfat, exFAT, many FUSE and
    /// network file systems), each with why, found by setting one of each on a file made for it and removed: a restore
    /// then leaves them off and says so once, not once an entry. Empty when it takes them all, and when another file
    /// system is mounted below the folder (or the mounts cannot be read): its entries are then tried one by one.
    /// </summary>
    public IReadOnlyDictionary<string, string> XattrNamespacesRefused()
    {
        var refused = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Posix.OthersMountedBelow(_root)) return refused;
        // A file with no name first (O_TMPFILE: ext4, XFS, btrfs, tmpfs), so that nothing is left if the restore dies here;
        // else a named one, removed at once.
        string? probe = null;
        var fd = Posix.OpenBeneath(_root, ".", Posix.OTmpFile | Posix.OWrOnly, 0x180);
        if (fd < 0)
        {
            probe = $".actorbackup-probe-{Environment.ProcessId}-{Random.Shared.Next():x8}";
            fd = Posix.OpenBeneath(_root, probe, Posix.OWrOnly | Posix.OCreat | Posix.OExcl, 0x180);
            if (fd < 0) return refused;
        }
        try
        {
            // A minimal access ACL (owner rw, group r, others r: the 0644 it is made with, rw- for the file's 0600 is no matter).
            byte[] acl = [2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff];
            var probes = new List<(string Namespace, byte[] Name, byte[] Value)>
            {
                // Not security.*: a file system may take only its LSM's own name there (labelled NFS), so a probe's name refused
                // would not say the labels are.
                ("user.*", "user.actorbackup.probe\0"u8.ToArray(), [1]), ("POSIX ACLs", "system.posix_acl_access\0"u8.ToArray(), acl),
            };
            if (Posix.IsRoot) probes.Add(("trusted.*", "trusted.actorbackup.probe\0"u8.ToArray(), [1]));
            foreach (var (ns, name, value) in probes)
                if (Posix.SetXattr(fd, name, value) is Posix.NotSupported) refused[ns] = Posix.Describe(Posix.NotSupported);
        }
        finally
        {
            Posix.Close(fd);
            if (probe is not null) InParent(probe, (dir, name) => Posix.UnlinkAt(dir, name));
        }
        return refused;
    }

    /// <summary>
    /// Takes immutable and append-only off the regular file at <paramref name="relative"/> and removes that name (in
    /// <paramref name="dir"/>); its flags are set back when the name stays (its folder is locked too) or the file has other
    /// names (they keep it as it was). The unlink's errno; null when the file had neither flag (nothing was tried).
    /// </summary>
    private int? UnlockAndUnlink(int dir, string name, string relative) => OnNode(relative, Posix.OPath | Posix.ONofollow, node =>
    {
        if (Posix.KindOfHandle(node) != FileKind.Regular) return (int?)null;
        var fd = Posix.Reopen(node, Posix.ORdOnlyFlag | Posix.ONonblockFlag);
        if (fd < 0) return null;
        try
        {
            var flags = FileFlags.Get(fd);
            if ((flags & FileFlags.Locking) == 0 || FileFlags.Set(fd, flags & ~FileFlags.Locking) != 0) return null;
            var errno = Posix.UnlinkAt(dir, name);
            if (errno != 0 || Posix.LinksOfHandle(fd) > 0) FileFlags.Set(fd, flags);
            return errno;
        }
        finally
        {
            Posix.Close(fd);
        }
    });

    private static IEnumerable<uint> Bits(uint flags)
    {
        for (var bit = 1u; bit != 0; bit <<= 1)
            if ((flags & bit) != 0) yield return bit;
    }

    private static string OwnerNotSet(uint uid, uint gid, int errno) =>
        $"restored without its owner {uid}:{gid} (mode without setuid/setgid, attributes and times set): {Posix.Describe(errno)}";

    private static string? Both(string? a, string? b) => a is null ? b : b is null ? a : $"{a}; {b}";

    private static string? XattrsNotSet(List<string>? notSet) =>
        notSet is null ? null : $"restored without {(notSet.Count == 1 ? "its extended attribute" : "these extended attributes")} {string.Join("; ", notSet)}";

    /// <summary>A hard link at <paramref name="relative"/> to the entry at <paramref name="existing"/>, both below this folder.</summary>
    public void Link(string existing, string relative)
    {
        var from = ParentOf(existing, out var fromName);
        try
        {
            InParent(relative, (dir, name) =>
            {
                var errno = Posix.LinkAt(from, fromName, dir, name);
                if (errno != 0) throw Failure($"hard link to {Full(existing)} at", relative, errno);
                return 0;
            });
        }
        finally
        {
            Posix.Close(from);
        }
    }

    /// <summary>A symlink (its target as recorded, never followed by the restore), its owner (when given), extended attributes and mtime; what could not be set of its extended attributes (null: all).</summary>
    public string? Symlink(ReadOnlySpan<byte> target, string relative, uint? uid, uint? gid, EntryTimes times,
        IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs = null)
    {
        var dir = ParentOf(relative, out var name);
        try
        {
            if (Posix.SymlinkAt(target, dir, name) is var errno and not 0) throw Failure("symlink", relative, errno);
            // An owner that cannot be given (root squashed on NFS, an id not mapped here) does not stop the rest.
            var ownerNotSet = uid is not null && Posix.LChownAt(dir, name, uid.Value, gid!.Value) is var e2 and not 0 ? OwnerNotSet(uid.Value, gid!.Value, e2) : null;
            var notSet = xattrs is { Count: > 0 } ? OnNode(relative, Posix.OPath | Posix.ONofollow, node => Posix.SetXattrsOnPathHandle(node, xattrs)) : null;
            if (Posix.SetTimesAt(dir, name, times) is var e3 and not 0) throw Failure("set times of", relative, e3);
            return Both(ownerNotSet, XattrsNotSet(notSet is { Count: > 0 } ? notSet : null));
        }
        finally
        {
            Posix.Close(dir);
        }
    }

    /// <summary>Runs <paramref name="act"/> on a handle of the entry itself (opened with <paramref name="flags"/>, below this folder, no symlink followed).</summary>
    private T OnNode<T>(string relative, int flags, Func<int, T> act)
    {
        var node = Posix.OpenBeneath(_root, relative, flags, 0);
        if (node < 0) throw Failure("open", relative, -node);
        try
        {
            return act(node);
        }
        finally
        {
            Posix.Close(node);
        }
    }

    /// <summary>
    /// A FIFO, a socket or a device node with its owner (when given), extended attributes, mode and mtime: made 0600, owned and
    /// timed by name (not followed), its attributes and mode set through a handle of it (O_PATH, which opens no device
    /// and waits on no FIFO); what could not be set of its extended attributes (null: all).
    /// </summary>
    /// <param name="cleanup">an ACL the node inherited from its folder (a default ACL there) and the snapshot does not hold is taken away</param>
    public string? MakeNode(string relative, FileKind kind, uint major, uint minor, uint? uid, uint? gid, uint mode, EntryTimes times,
        IReadOnlyCollection<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? xattrs = null, XattrCleanup cleanup = XattrCleanup.None)
    {
        var type = kind switch { FileKind.Fifo => 0x1000u, FileKind.CharDevice => 0x2000u, FileKind.BlockDevice => 0x6000u, FileKind.Socket => 0xC000u, _ => throw new ArgumentException("a node is a FIFO, a socket or a device") };
        var dir = ParentOf(relative, out var name);
        try
        {
            if (Posix.MknodAt(dir, name, type | 0x180, kind is FileKind.Fifo or FileKind.Socket ? 0 : Posix.MakeDev(major, minor)) is var errno and not 0) throw Failure("mknod", relative, errno);
            string? ownerNotSet = null;
            if (uid is not null && Posix.LChownAt(dir, name, uid.Value, gid!.Value) is var e2 and not 0)
            {
                ownerNotSet = OwnerNotSet(uid.Value, gid!.Value, e2);
                mode &= ~0xC00u; // setuid and setgid do not outlive the owner they were for
            }
            var notSet = OnNode(relative, Posix.OPath, node =>
            {
                // A device node made under a folder with a default ACL has that ACL (a group given the raw disk, say):
                // taken away before the mode is set, unless the snapshot holds one of its own.
                var failed = Posix.RemoveInheritedAclOnPathHandle(node, xattrs, cleanup) is { } kept ? [kept] : new List<string>();
                if (xattrs is { Count: > 0 }) failed.AddRange(Posix.SetXattrsOnPathHandle(node, xattrs));
                if (Posix.ChmodHandle(node, mode) is var e3 and not 0) throw Failure("chmod", relative, e3);
                return failed;
            });
            if (Posix.SetTimesAt(dir, name, times) is var e4 and not 0) throw Failure("set times of", relative, e4);
            return Both(ownerNotSet, XattrsNotSet(notSet is { Count: > 0 } ? notSet : null));
        }
        finally
        {
            Posix.Close(dir);
        }
    }
}
