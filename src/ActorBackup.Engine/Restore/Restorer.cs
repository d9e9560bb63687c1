using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Posix;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Work;
using DotNet.Globbing;

namespace ActorBackup.Engine.Restore;

/// <summary>
/// Rebuilds a snapshot, or chosen paths of it, under a target folder. Directories first, then file contents
/// with chunks fetched in parallel and out of order (each checked against its id), then hard links,
/// special files and symlinks, then directory metadata from the deepest up. An entry whose name would leave
/// the target is refused and named. Everything is made through handles below the target (<see cref="RootedDirectory"/>:
/// no symlink followed, nothing outside the target reached), so a symlink planted or swapped in while the restore
/// runs makes the entries below it fail and never redirects a write, a chmod, a chown or a hard link; existing
/// entries are never opened, and files are created with O_EXCL, 0600, folders 0700, until each is whole. Under --force
/// a file already at a name is replaced by one rename once its new copy is whole (made beside it: O_TMPFILE, else a
/// hidden staging name), so a file the restore cannot finish keeps what was there; folders on the way to the paths
/// asked for that were there keep their own metadata.
/// </summary>
public sealed class Restorer(CellKeys keys, IChunkSource source)
{
    /// <param name="Relative">its path below the target, made of checked names: what the handles resolve (and, after a
    /// slash, its path in the snapshot)</param>
    /// <param name="LinkTo">a hard link: the snapshot path of the name it links to, when that is not the one its node
    /// records (that name is not restored, or comes later: see <see cref="_standIns"/>)</param>
    /// <param name="WayDown">a folder on the way to a path asked for, not asked for itself: made when missing, and one
    /// that was there keeps its own mode, owner, times and attributes (<see cref="_foundOnTheWay"/>)</param>
    private sealed record Entry(string Relative, Node Node, int Depth, string? LinkTo = null, bool WayDown = false)
    {
        public string SnapshotPath => "/" + Relative;
    }

    private string TargetOf(Entry e) => Path.Join(_target, e.Relative);

    /// <summary>Whether the snapshot holds an entry at <paramref name="path"/> (as the engine writes names).</summary>
    private static bool HasPath(TreeReader trees, SnapshotManifest snapshot, string path)
    {
        var tree = trees.Load(snapshot.RootTree);
        var names = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < names.Length; i++)
        {
            var node = tree.Nodes.FirstOrDefault(n => n.FileName() == names[i]);
            if (node is null) return false;
            if (i == names.Length - 1) return true;
            if (node.Type != NodeType.Directory || node.Subtree.Length != ChunkId.Size) return false;
            tree = trees.Load(node.Subtree);
        }
        return true;
    }

    private readonly List<SnapshotError> _errors = [];
    /// <summary>Errors past <see cref="MaxErrorsListed"/>: counted, not kept (a target refusing every entry of ten million).</summary>
    private long _errorsOmitted;

    /// <summary>How often a restore has what it wrote so far written back (RootedDirectory.WriteBehind).</summary>
    private static readonly TimeSpan WriteBehindEvery = TimeSpan.FromSeconds(1);

    /// <summary>The most errors a restore lists; the rest it counts (RestoreResult.ErrorCount).</summary>
    public const int MaxErrorsListed = 10_000;

    private void AddError(SnapshotError e)
    {
        lock (_errors)
            if (_errors.Count < MaxErrorsListed) _errors.Add(e);
            else _errorsOmitted++;
    }
    private readonly List<Entry> _dirs = [];
    /// <summary>The directories of <see cref="_dirs"/> before this one are made.</summary>
    private int _dirsMade;
    /// <summary>The files of the wave being planned: restored (<see cref="RestoreWave"/>) when <see cref="WaveFiles"/> are, and at the end.</summary>
    private readonly List<Entry> _files = [];
    private long _filesPlanned, _bytesPlanned;
    private readonly List<Entry> _links = [];
    private readonly List<Entry> _special = [];
    private bool _privileged;
    /// <summary>What a restored entry had before its own attributes were set that goes: the ACLs it inherited (under a folder with a default ACL, or --force).</summary>
    private XattrCleanup _clearAcls;
    /// <summary>A folder's: with --force, one that was there keeps no user.* or trusted.* attribute its snapshot does not hold.</summary>
    private XattrCleanup _clearFolders;
    private const uint SetIdBits = 0xC00; // setuid 04000, setgid 02000
    private readonly List<Entry> _symlinks = [];
    /// <summary>The snapshot paths of the files restored that may be the first name of a hard link (more than one link, or not recorded).</summary>
    private readonly HashSet<string> _restoredFiles = new(StringComparer.Ordinal);
    /// <summary>
    /// A hard-link group whose first name (as its snapshot records it) was not planned when one of its further names
    /// was: that further name is restored with the content, and every other name of the group, the first one too
    /// if it comes later, is linked to it: the group comes back as one inode, not as copies. Keyed by the first name.
    /// </summary>
    private readonly Dictionary<string, string> _standIns = new(StringComparer.Ordinal);
    /// <summary>
    /// A symlink, FIFO, socket or device of several names (hard links): the first of them planned, by its group's first
    /// name (its own path, or the hardlink_target of a further name); each further one is linked to it (<see cref="_otherLinks"/>).
    /// </summary>
    private readonly Dictionary<string, (string Path, NodeType Type)> _otherFirsts = new(StringComparer.Ordinal);
    /// <summary>Further names of symlinks and special files: linked once those are made.</summary>
    private readonly List<Entry> _otherLinks = [];
    /// <summary>The snapshot paths of files that may have further names whose restore failed: no name is linked to what is left of them.</summary>
    private readonly HashSet<string> _failedFiles = new(StringComparer.Ordinal);
    /// <summary>Folders asked for only on the way to what an include may match: planned (made) once something below them is.</summary>
    private readonly List<Entry> _waysDown = [];
    private readonly List<string> _includePaths = [];
    private readonly List<Glob> _includeGlobs = [];
    /// <summary>What the operator wrote for each of <see cref="_includePaths"/> and <see cref="_includeGlobs"/>, and which matched something.</summary>
    private readonly List<string> _pathsAsked = [], _globsAsked = [];
    private readonly HashSet<int> _pathsMatched = [], _globsMatched = [];
    private string _target = "";
    private RootedDirectory _root = null!;
    /// <summary>Where what is already at a name is looked up for <see cref="_overwrite"/> (null: nothing is kept; a dry run into a folder not there).</summary>
    private RootedDirectory? _existing;
    private Archive.ExcludeMatcher _excludes = new([]);
    /// <summary>RestoreOptions.Overwrite, under --force (else Always: nothing is there to keep).</summary>
    private OverwritePolicy _overwrite;
    /// <summary>Entries already at their names left as they were (<see cref="_overwrite"/>).</summary>
    private long _kept;
    private bool _dryRun;
    private Action<string>? _phase;
    private long _bytesDone, _filesDone;
    /// <summary>Folders, hard links, special files and symlinks made (the result counts what was made, not what was planned).</summary>
    private long _dirsRestored, _linksMade, _otherMade;
    /// <summary>Entries planned, and flags and folder metadata set: with the counts of what was made, the progress of phases that move no file or byte.</summary>
    private long _steps;

    /// <summary>RestoreProgress.Entries: steps over entries so far (<see cref="_steps"/> and what was made).</summary>
    private long Entries() => Interlocked.Read(ref _steps) + Interlocked.Read(ref _dirsRestored) + Interlocked.Read(ref _linksMade) + Interlocked.Read(ref _otherMade);

    /// <summary>Why a restore into <paramref name="target"/> would write over what is there (/, or a folder with entries); null when it would not.</summary>
    public static string? Overwrites(string target)
    {
        if (target == "/") return "a restore into / writes over the running system's files: restore into a new folder, or give --force if that is what you mean";
        return Posix.Posix.IsDirectory(target) && Posix.Posix.HasEntries(target)
            ? $"restore target {PosixNames.Display(target)} exists and is not empty: restore into a new or empty folder, or give --force to write over what is there"
            : null;
    }

    public RestoreResult Run(SnapshotManifest snapshot, string target, RestoreOptions options,
        IProgress<RestoreProgress>? progress = null, CancellationToken cancel = default)
    {
        if (snapshot.RootTree.Length != ChunkId.Size) throw new InvalidDataException($"snapshot {snapshot.Id} has no root tree");
        Archive.Archiver.CheckReadable(snapshot);
        // Written as ls shows paths (\\ a backslash, \xHH a byte): a target whose own path is not UTF-8 is made and used by its
        // bytes, as every entry below it is (Posix, RootedDirectory).
        target = Path.GetFullPath(PosixNames.Parse(target));
        var either = new List<string>(); // holding [ or { and no * or ?: a path or a glob, as the snapshot says
        foreach (var inc in options.Include)
        {
            var asked = PosixNames.Parse(inc);
            if (asked.IndexOfAny(['*', '?']) >= 0) IncludeGlob(asked, inc);
            else if (asked.IndexOfAny(['[', '{']) >= 0) either.Add(inc);
            else IncludePath(asked, inc);
        }
        var restoreOwner = options.RestoreOwner ?? Posix.Posix.IsRoot;
        // A whole system restored (a snapshot of "/", all of it) brings its own user and group database: its owners by
        // number, as that /etc/passwd and /etc/group name them, not by the names of whatever host runs the restore (a
        // rescue system's ids are not the restored system's).
        _numericOwner = options.NumericOwner || (snapshot.Root is not null && options.Include.Count == 0);
        _sparse = options.Sparse;
        _excludes = new Archive.ExcludeMatcher(options.Excludes, track: true);
        // Nothing is there to keep but with --force (a new or empty folder, or what an earlier attempt wrote whole or not).
        _overwrite = options.Force ? options.Overwrite : OverwritePolicy.Always;
        var targetStat = Posix.Posix.LStat(target);
        if (targetStat is { Kind: not FileKind.Directory } && !(targetStat.Value.Kind == FileKind.Symlink && Posix.Posix.IsDirectory(target)))
            throw new IOException($"restore target {PosixNames.Display(target)} exists and is not a directory: choose another folder");
        if (options.DryRun) return DryRun(snapshot, target, options, either, targetStat is not null, cancel);
        var made = false;
        try
        {
            if (!options.Force && options.Resumes is null && Overwrites(target) is { } refused) throw new IOException(refused);
            // Setuid/setgid files and device nodes only into a folder this restore made (kept 0700 until the end; not one
            // another user made meanwhile), or with --force: planted in an existing folder others can reach, they would
            // hand them root.
            made = Posix.Posix.CreateDirectories(target, 0x1C0) || options.Resumes == true;
            // A folder that was there, but not this user's to write (another's, a read-only mount): said now, not as
            // an error of each entry under it with the restore ending as done. Not with --force (into "/" of a system
            // whose root is read-only and whose data folders are mounts, say: each entry says what it could not do).
            if (!options.Force && Posix.Posix.NotWritable(target) is { } notWritable) throw notWritable;
            _privileged = made || options.Force;
            options.Claimed?.Invoke(made);
        }
        catch (PosixException e)
        {
            throw new IOException($"restore target {PosixNames.Display(target)}: {e.Message}: restore into a folder this user may make and " +
                                  "write (or run the client as one who may)", e);
        }
        // Under a folder with a default ACL (or into folders that were there: --force) every entry made inherits ACLs
        // its snapshot may not hold: they are taken away where the snapshot has none (two calls an entry, else none).
        var existing = options.Force || options.Resumes is not null; // folders that were there (or an earlier attempt made)
        _resumed = options.Resumes is not null;
        _foundBefore = options.FoundBefore ?? new HashSet<string>();
        _found = options.FoundOnTheWay;
        _foundLevelDone = options.FoundLevelDone;
        _force = options.Force;
        _clearAcls = existing || Posix.Posix.HasDefaultAcl(target) ? XattrCleanup.InheritedAcls : XattrCleanup.None;
        _clearFolders = existing ? XattrCleanup.AllNotHeld : _clearAcls;
        _target = target;
        // Into a new or empty folder, a name already there is one the target's file system folds with another (Fresh).
        using var root = new RootedDirectory(target) { Fresh = !existing };
        _root = root;
        _existing = _overwrite == OverwritePolicy.Always ? null : root;
        using var staging = new Staging(this); // disposed before the root: files left staged by a restore stopped short go
        _xattrsRefused = root.XattrNamespacesRefused();
        // Under a folder with file flags (chattr +d, btrfs +C) every entry made takes some of them, and so do folders
        // that were there (--force): each file and folder then gets its own, none included (else only those with some).
        _resetFlags = existing || root.HasFlags;
        using var decoders = new Decoders(keys.Data);
        _decoders = decoders;
        _phase = options.Phase;

        // Creating an entry is the costliest part of a restore of many small files on some file systems
        // (docs/benchmarks.md has this machine kind's ext4 figures), so every step that creates entries runs
        // on all cores: directories level by level (parents first), then contents, then links.
        // The tree is restored in waves as it is read (WaveFiles files each: their directories, then their contents),
        // so that memory does not grow with the number of files; links, special files, symlinks and the folders'
        // metadata come after the last wave. From tape, one wave: the whole restore is read in the medium's order.
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Parallelism), CancellationToken = cancel };
        _wave = (options.Parallelism, parallel, restoreOwner, cancel);
        if (source is IChunkPlacement { Sequential: true }) WaveFiles = int.MaxValue;
        // The totals a progress report shows: the snapshot's, or (a part of it asked for, or left out) what is planned so far.
        _totals = options.Include.Count + options.Excludes.Count == 0 && _overwrite == OverwritePolicy.Always && snapshot.Stats is { } stats
            ? ((long)stats.Files, (long)stats.Bytes) : null;
        // What is written goes to the disk while the restore goes on (a syncfs a second, on a thread of the pool), so that
        // the sync at its end (below) finds little left: on this machine kind's small-file restore it cost 0.9 s alone,
        // 0.4 s so (docs/benchmarks.md).
        using var behind = new WriteBehind(root, WriteBehindEvery);
        using var timer = progress is null ? null
            : new Timer(_ => progress.Report(new RestoreProgress(Interlocked.Read(ref _filesDone), Totals.Files, Interlocked.Read(ref _bytesDone), Totals.Bytes, Entries())), null, 250, 250);
        PlanAll(snapshot, either, options, cancel);
        RestoreWave();
        _phase?.Invoke("contents");
        Parallel.ForEach(_links, parallel, MakeHardLink);
        Parallel.ForEach(_special, parallel, s => { if (!Guard(s, () => MakeSpecial(s, restoreOwner))) Failed(s); });
        Parallel.ForEach(_symlinks, parallel, s => { if (!Guard(s, () => MakeSymlink(s, restoreOwner))) Failed(s); });
        Parallel.ForEach(_otherLinks, parallel, MakeHardLink);
        _phase?.Invoke("links");
        // File flags after every link (an immutable or append-only file takes no new name) and before the folders'
        // own (an immutable folder takes no new entry); a folder's after its metadata, deepest first.
        Parallel.ForEach(_flagged, parallel, f =>
        {
            Interlocked.Increment(ref _steps);
            Guard(f, () => Partly(f, _root.SetFlags(f.Relative, false, f.Node.Flags)));
        });
        // Directory metadata last and deepest first: writing into a directory changes its mtime, and a
        // read-only mode would stop its children from being written.
        foreach (var level in _dirs.GroupBy(d => d.Depth).OrderByDescending(g => g.Key))
            Parallel.ForEach(level, parallel, d =>
            {
                Interlocked.Increment(ref _steps);
                if (IsBlocked(TargetOf(d) + "/") || _foundOnTheWay.ContainsKey(d.Relative)) return;
                Guard(d, () =>
                {
                    var owner = Owner(d.Node, restoreOwner);
                    Partly(d, _root.SetDirectoryMetadata(d.Relative, owner?.Uid, owner?.Gid, WithoutAcl(d.Node, d.Node.Mode), Times(d.Node), Xattrs(d), _clearFolders));
                });
                if (d.Node.Flags != 0 || _resetFlags) Guard(d, () => Partly(d, _root.SetFlags(d.Relative, true, d.Node.Flags)));
            });
        // A snapshot of "/" restored whole: its target folder becomes that root (mode, owner, times, attributes, flags),
        // last, as any folder's metadata is (a full system restored into a new folder is then usable as a root). One that
        // was there keeps its own under --overwrite never, as every folder there does.
        if (snapshot.Root is { } top && options.Include.Count == 0 && !(_overwrite == OverwritePolicy.Never && !made))
        {
            var itself = new Entry("", top, 0);
            Guard(itself, () =>
            {
                var owner = Owner(top, restoreOwner);
                Partly(itself, _root.SetDirectoryMetadata(".", owner?.Uid, owner?.Gid, WithoutAcl(top, top.Mode), Times(top), Xattrs(itself), _clearFolders));
            });
            if (top.Flags != 0 || _resetFlags) Guard(itself, () => Partly(itself, _root.SetFlags(".", true, top.Flags)));
        }
        // On the disk before the restore says it is done: without it a power cut in the next half minute left files
        // at their size, mode and times with zeros or old blocks for content, and nothing said so. One syncfs of the
        // target's file system (and of those mounted below it) writes back every file and folder at once.
        behind.Dispose();
        try
        {
            _root.Sync();
        }
        catch (PosixException e)
        {
            throw new IOException($"{e.Message}: the restore is not safely on the disk; restore it again once the target's file system is sound", e);
        }
        timer?.Dispose();
        foreach (var (ns, count) in _xattrsLeftOff.OrderBy(x => x.Key, StringComparer.Ordinal))
            AddError(new SnapshotError
            {
                Path = "/", Reason = $"{count:N0} {(count == 1 ? "entry" : "entries")} restored without {(ns == "POSIX ACLs" ? "their POSIX ACLs" : $"their {ns} extended attributes")}: " +
                                     $"the target's file system has none ({_xattrsRefused[ns]}); restore onto one that has them (ext4, XFS, btrfs) to keep them",
            });
        foreach (var ((group, name, recorded), count) in _unknownOwners.OrderBy(u => u.Key.Group).ThenBy(u => u.Key.Name, StringComparer.Ordinal))
        {
            var kind = group ? "group" : "user";
            AddError(new SnapshotError
            {
                Path = "/", Reason = $"{count:N0} {(count == 1 ? "entry" : "entries")} of {kind} '{name}' (id {recorded} where backed up) kept id " +
                                     $"{recorded}: this host has no {kind} of that name, and id {recorded} may be another's here; add the {kind} " +
                                     "and restore again, or give --numeric-owner to keep the recorded ids",
            });
        }
        progress?.Report(new RestoreProgress(_filesDone, _filesPlanned, _bytesDone, _bytesPlanned, Entries()));
        // What was made, not what was planned: an entry that failed (its error says why) or lay below a folder that could
        // not be made is counted as not restored.
        var other = _special.Count + _symlinks.Count;
        var notRestored = _filesPlanned - _filesDone + (_dirs.Count - _dirsRestored) + (_links.Count + _otherLinks.Count - _linksMade) + (other - _otherMade) - _keptAfterPlan;
        return new RestoreResult(_filesDone, _dirsRestored, _linksMade, _otherMade, Interlocked.Read(ref _bytesDone), _errors, notRestored, _errors.Count + _errorsOmitted, _kept);
    }

    /// <summary>
    /// Plans the whole restore (in waves: <see cref="RestoreWave"/> runs as they fill) and says which paths asked for matched
    /// nothing: all of them, the restore fails; some, each is an error of the restore.
    /// </summary>
    private void PlanAll(SnapshotManifest snapshot, List<string> either, RestoreOptions options, CancellationToken cancel)
    {
        using (var trees = new TreeReader(keys, source))
        {
            // A name may hold [ or { itself ("/photos/[2019] trip"): the entry of that name when the snapshot has one,
            // else the glob (which would also match "/photos/2 trip").
            foreach (var written in either)
                if (PosixNames.Parse(written) is var asked && HasPath(trees, snapshot, asked)) IncludePath(asked, written);
                else IncludeGlob(asked, written);
            Plan(trees, new ChunkId(snapshot.RootTree.Span), "", 0, cancel);
        }
        var leftOut = options.Excludes.Count > 0 ? $" once {string.Join(", ", options.Excludes)} {(options.Excludes.Count == 1 ? "is" : "are")} left out" : "";
        if (_includePaths.Count + _includeGlobs.Count > 0 && _dirs.Count + _filesPlanned + _links.Count + _special.Count + _symlinks.Count + _kept == 0)
            throw new FileNotFoundException($"nothing in snapshot {snapshot.Id} matches {string.Join(", ", options.Include)}{leftOut}: list it with ls to see its paths");
        // One of several that matched nothing (a typo beside good paths) is an error of the restore, not silence.
        foreach (var unmatched in _pathsAsked.Where((_, i) => !_pathsMatched.Contains(i)).Concat(_globsAsked.Where((_, i) => !_globsMatched.Contains(i))))
            AddError(new SnapshotError { Path = unmatched, Reason = $"not restored: nothing in snapshot {snapshot.Id} matches it{leftOut} (list the snapshot with ls to see its paths)" });
        // An exclude of paths that left nothing out (a typo) is said: the file the operator meant to keep as it is was written over.
        foreach (var unmatched in _excludes.Unmatched)
            AddError(new SnapshotError { Path = unmatched, Reason = $"--exclude {unmatched} left nothing out: no path of the snapshot matches it (one beginning with '/' names a whole path, /etc/fstab; one without, the end of a path at any depth, etc/fstab)" });
    }

    /// <summary>
    /// A dry run (RestoreOptions.DryRun): the restore planned as it would run, its refusals said as it would say them,
    /// nothing made or written. What is already there is looked at only to say what --overwrite would leave.
    /// </summary>
    private RestoreResult DryRun(SnapshotManifest snapshot, string target, RestoreOptions options, List<string> either, bool exists, CancellationToken cancel)
    {
        if (!options.Force && options.Resumes is null && Overwrites(target) is { } refused) throw new IOException(refused);
        if (exists && !options.Force && Posix.Posix.NotWritable(target) is { } notWritable) throw notWritable;
        _dryRun = true;
        // As the restore would judge what is there (--overwrite if-changed compares the mode and owner it would give).
        _privileged = !exists || options.Force;
        _wave = (options.Parallelism, new ParallelOptions(), options.RestoreOwner ?? Posix.Posix.IsRoot, cancel);
        using var root = exists && _overwrite != OverwritePolicy.Always ? new RootedDirectory(target) : null;
        _existing = root; // read only: Keeps looks up what is at a name, nothing else is done with it
        PlanAll(snapshot, either, options, cancel);
        return new RestoreResult(_filesPlanned, _dirs.Count, _links.Count + _otherLinks.Count, _special.Count + _symlinks.Count, _bytesPlanned, _errors,
            ErrorsInAll: _errors.Count + _errorsOmitted, Kept: _kept, DryRun: true);
    }

    /// <summary>At most this many files are planned before they are restored (<see cref="RestoreWave"/>).</summary>
    internal int WaveFiles { get; set; } = 8192;

    /// <summary>The most files planned at once by this restore.</summary>
    internal int PeakWaveFiles { get; private set; }

    private (int Parallelism, ParallelOptions Parallel, bool RestoreOwner, CancellationToken Cancel) _wave;

    /// <summary>The decoders of this restore's threads, kept from one wave to the next (made in <see cref="Run"/>).</summary>
    private Decoders? _decoders;

    /// <summary>How many decoders the restore made (at most one per thread of a wave, however many waves).</summary>
    internal int DecodersMade => _decoders?.Made ?? 0;

    /// <summary>
    /// Decoders handed from one wave's threads to the next: each grows its buffers to the largest chunk once (made anew
    /// for each wave, they grew them again: megabytes of large objects a wave, about 60 MiB a restore of 57,000 small
    /// files, for the GC's full collections to take back). Disposed with the restore.
    /// </summary>
    private sealed class Decoders(KeyDomain data) : IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentBag<ChunkDecoder> _idle = [];
        private int _made;

        public int Made => Volatile.Read(ref _made);

        public Lease Take()
        {
            if (_idle.TryTake(out var decoder)) return new(this, decoder);
            Interlocked.Increment(ref _made);
            return new(this, new ChunkDecoder(data));
        }

        public void Dispose()
        {
            while (_idle.TryTake(out var decoder)) decoder.Dispose();
        }

        /// <summary>One thread's decoder for one wave; back to the idle ones when the thread is done.</summary>
        public sealed class Lease(Decoders owner, ChunkDecoder decoder) : IDisposable
        {
            public ChunkDecoder Decoder => decoder;
            public void Dispose() => owner._idle.Add(decoder);
        }
    }
    private (long Files, long Bytes)? _totals;
    private (long Files, long Bytes) Totals => _totals is { } t ? (Math.Max(t.Files, _filesPlanned), Math.Max(t.Bytes, _bytesPlanned)) : (_filesPlanned, _bytesPlanned);

    /// <summary>
    /// Restores what is planned so far: the directories not made yet, level by level (parents first), then the
    /// wave's files, which are then forgotten.
    /// </summary>
    private void RestoreWave()
    {
        PeakWaveFiles = Math.Max(PeakWaveFiles, _files.Count);
        if (_dryRun)
        {
            _files.Clear(); // counted as planned; nothing is made
            return;
        }
        foreach (var level in _dirs.Skip(_dirsMade).GroupBy(d => d.Depth).OrderBy(g => g.Key))
            try
            {
                Parallel.ForEach(level, _wave.Parallel, MakeDirectory);
                _foundLevelDone?.Invoke(); // the folders found there recorded before anything goes into them
            }
            catch (AggregateException e) when (e.InnerExceptions.OfType<TargetFullException>().FirstOrDefault() is { } full)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(full).Throw();
            }
        _dirsMade = _dirs.Count;
        _phase?.Invoke("directories");
        RestoreContents(_wave.Parallelism, _wave.RestoreOwner, _wave.Cancel);
        _files.Clear();
    }

    // ---- plan -------------------------------------------------------------------------------------------

    private enum Selection { No, Descend, All }

    /// <summary>
    /// Whether a path or glob asked for names <paramref name="snapshotPath"/> itself; each that does is marked as having
    /// matched (all of them, also below a folder restored whole: "/etc /etc/fstab" asks for nothing missing).
    /// </summary>
    private bool Matched(string snapshotPath)
    {
        var any = false;
        for (var i = 0; i < _includePaths.Count; i++)
            if (_includePaths[i] == "/" || _includePaths[i] == snapshotPath)
                any |= _pathsMatched.Add(i) | true;
        if (_includeGlobs.Count > 0)
        {
            var forGlob = PosixNames.ForGlob(snapshotPath);
            for (var i = 0; i < _includeGlobs.Count; i++)
                if (_includeGlobs[i].IsMatch(forGlob))
                    any |= _globsMatched.Add(i) | true;
        }
        return any;
    }

    /// <summary>Some path or glob asked for has matched nothing yet (a folder restored whole is still looked through for it).</summary>
    private bool Unmatched => _pathsMatched.Count < _includePaths.Count || _globsMatched.Count < _includeGlobs.Count;

    private void IncludePath(string asked, string written)
    {
        _includePaths.Add(asked.Length > 1 ? "/" + asked.Trim('/') : "/");
        _pathsAsked.Add(written);
    }

    private void IncludeGlob(string asked, string written)
    {
        _includeGlobs.Add(Glob.Parse(PosixNames.ForGlob(asked)));
        _globsAsked.Add(written);
    }

    /// <summary>Whether a path is restored (the paths and globs asked for were written as ls shows them: PosixNames.Parse).</summary>
    private Selection Select(string snapshotPath)
    {
        if (_includePaths.Count == 0 && _includeGlobs.Count == 0) return Selection.All;
        var result = Selection.No;
        if (Matched(snapshotPath)) return Selection.All;
        foreach (var p in _includePaths)
        {
            if (p == "/" || snapshotPath.StartsWith(p + "/", StringComparison.Ordinal)) return Selection.All;
            if (p.StartsWith(snapshotPath + "/", StringComparison.Ordinal)) result = Selection.Descend;
        }
        return _includeGlobs.Count > 0 ? Selection.Descend : result;
    }

    /// <summary>
    /// A big file's entries, kept in records of their own (Node.chunk_lists), put back into the node of a file whose
    /// content is restored (not for a name only linked: its entries would sit in memory to the end). False, with the
    /// error, when they cannot be read.
    /// </summary>
    private bool Expanded(TreeReader trees, Node node, string snapshotPath)
    {
        try
        {
            trees.ExpandChunkLists(node);
            return true;
        }
        catch (Exception e) when (SourceFault.IsDamage(e))
        {
            AddError(new SnapshotError { Path = PosixNames.Display(snapshotPath), Reason = $"not restored: the list of its chunks cannot be read: {e.Message}" });
            return false;
        }
    }

    private void Plan(TreeReader trees, ChunkId treeId, string relativeDir, int depth, CancellationToken cancel, bool all = false)
    {
        var snapshotDir = relativeDir == "" ? "" : "/" + relativeDir;
        cancel.ThrowIfCancellationRequested();
        if (depth >= NodeExtensions.MaxDepth)
        {
            // No backup makes this (a walk stops where a path passes PATH_MAX, about 2,000 levels): a damaged or crafted tree.
            AddError(new SnapshotError { Path = PosixNames.Display(snapshotDir), Reason = $"refused: folders nested deeper than {NodeExtensions.MaxDepth} levels; its contents are skipped" });
            return;
        }
        Tree tree;
        try
        {
            tree = trees.Load(treeId);
        }
        catch (Exception e) when (SourceFault.IsDamage(e))
        {
            AddError(new SnapshotError { Path = snapshotDir == "" ? "/" : PosixNames.Display(snapshotDir), Reason = $"directory listing unreadable, its contents are skipped: {e.Message}" });
            return;
        }
        foreach (var node in tree.Nodes)
        {
            Interlocked.Increment(ref _steps);
            var name = node.FileName();
            var snapshotPath = snapshotDir + "/" + name;
            if (NodeExtensions.UnsafeNameReason(name) is { } reason)
            {
                AddError(new SnapshotError { Path = PosixNames.Display(snapshotPath), Reason = $"refused: {reason}; it would escape the restore target" });
                continue;
            }
            if (_excludes.IsExcluded(snapshotDir + "/", name)) continue;
            var selection = all ? Selection.All : Select(snapshotPath);
            if (all && Unmatched) Matched(snapshotPath);
            if (selection == Selection.No) continue;
            var entry = new Entry(relativeDir == "" ? name : relativeDir + "/" + name, node, depth + 1);
            if (node.Type == NodeType.Directory)
            {
                // --overwrite never: a folder that is there keeps its own metadata, as one on the way does.
                if (selection == Selection.All) PlanDirectory(_overwrite == OverwritePolicy.Never ? entry with { WayDown = true } : entry);
                else _waysDown.Add(entry); // made only if something below it is restored
                if (node.Subtree.Length == ChunkId.Size)
                    Plan(trees, node.SubtreeId(), entry.Relative, depth + 1, cancel, selection == Selection.All);
                else if (!node.Subtree.IsEmpty)
                    AddError(new SnapshotError { Path = PosixNames.Display(snapshotPath), Reason = $"its contents are skipped: the tree entry is inconsistent (a tree id of {node.Subtree.Length} bytes)" });
                if (_waysDown.Count > 0 && ReferenceEquals(_waysDown[^1], entry)) _waysDown.RemoveAt(_waysDown.Count - 1); // nothing below it was
                continue;
            }
            if (selection != Selection.All || Keeps(entry)) continue;
            switch (node.Type)
            {
                case NodeType.File when node.Nlink != 1 && _standIns.TryGetValue(snapshotPath, out var standIn):
                    PlanDirectory(null);
                    _links.Add(entry with { LinkTo = standIn }); // the first name of a group a further name already holds
                    break;
                case NodeType.File:
                    if (Expanded(trees, node, snapshotPath)) PlanFile(entry);
                    break;
                case NodeType.Hardlink:
                    var first = node.LinkedPath();
                    if (HardlinkTargetProblem(first) is { } problem)
                        AddError(new SnapshotError { Path = PosixNames.Display(snapshotPath), Reason = $"refused: {problem}" });
                    else if (_restoredFiles.Contains(first))
                    {
                        PlanDirectory(null);
                        _links.Add(entry);
                    }
                    else if (_standIns.TryGetValue(first, out var holder))
                    {
                        PlanDirectory(null);
                        _links.Add(entry with { LinkTo = holder });
                    }
                    else if (Expanded(trees, node, snapshotPath))
                    {
                        // Its first name is not restored (or not yet planned): this name holds the content, the group's
                        // other names are linked to it.
                        _standIns[first] = snapshotPath;
                        PlanFile(entry, firstName: true);
                    }
                    break;
                case NodeType.Symlink:
                    PlanDirectory(null);
                    if (!LinkedOther(entry)) _symlinks.Add(entry);
                    break;
                case NodeType.Fifo or NodeType.CharDevice or NodeType.BlockDevice or NodeType.Socket:
                    // A socket comes back as the inode it was (mknod): the program that listens on it makes it anew
                    // when it starts, but its mode, owner and ACLs are what others are allowed to connect with.
                    PlanDirectory(null);
                    if (!LinkedOther(entry)) _special.Add(entry);
                    break;
                default:
                    AddError(new SnapshotError { Path = PosixNames.Display(snapshotPath), Reason = $"not restored: an entry of a kind this build does not know ({node.Type})" });
                    break;
            }
        }
    }

    /// <summary>
    /// Whether the entry (not a folder) already at <paramref name="entry"/>'s name is left as it is (<see cref="_overwrite"/>):
    /// then nothing of it is planned (no chunk read). A name that cannot be looked at is not kept: making it says why.
    /// </summary>
    private bool Keeps(Entry entry)
    {
        if (_existing is null) return false;
        Posix.Existing there;
        try
        {
            if (_existing.Existing(entry.Relative) is not { } found) return false;
            there = found;
        }
        catch (IOException)
        {
            return false;
        }
        var node = entry.Node;
        var keep = _overwrite switch
        {
            OverwritePolicy.Never => true,
            // One stamped later than now (written while its host's clock was ahead) is not taken for newer: it is replaced.
            OverwritePolicy.IfNewer => (there.MtimeSec, there.MtimeNsec).CompareTo((node.MtimeSec, node.MtimeNsec)) >= 0 && there.MtimeSec <= _now + FutureSlackSeconds,
            // Its mode and owner too (a chmod -R or chown -R to undo keeps sizes and times); a symlink's mode is always 0777.
            OverwritePolicy.IfChanged => there.Kind == KindOf(node.Type) && there.MtimeSec == node.MtimeSec && there.MtimeNsec == node.MtimeNsec
                                         && (there.Kind != FileKind.Regular || there.Size == node.Size)
                                         && (there.Kind == FileKind.Symlink || there.Mode == ModeWanted(entry))
                                         && (!_wave.RestoreOwner || (there.Uid, there.Gid) == (OwnerNames.Resolve(node.Uid, node.User, _numericOwner, UserIdHere),
                                                                                             OwnerNames.Resolve(node.Gid, node.Group, _numericOwner, GroupIdHere))),
            _ => false,
        };
        if (keep) Interlocked.Increment(ref _kept);
        return keep;
    }

    /// <summary>When the restore began (Unix seconds): --overwrite if-newer takes no file dated later than this (and a slack) for newer.</summary>
    private readonly long _now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private const long FutureSlackSeconds = 300;

    private static FileKind KindOf(NodeType type) => type switch
    {
        NodeType.File or NodeType.Hardlink => FileKind.Regular,
        NodeType.Directory => FileKind.Directory,
        NodeType.Symlink => FileKind.Symlink,
        NodeType.Fifo => FileKind.Fifo,
        NodeType.CharDevice => FileKind.CharDevice,
        NodeType.BlockDevice => FileKind.BlockDevice,
        NodeType.Socket => FileKind.Socket,
        _ => FileKind.Unknown,
    };

    /// <summary>
    /// A symlink, FIFO, socket or device of several names: true when another name of its group of the same kind is
    /// planned already (this one is linked to it: one inode, as it was); else it is made, and further names linked to it.
    /// </summary>
    private bool LinkedOther(Entry entry)
    {
        var node = entry.Node;
        if (node.Nlink <= 1) return false;
        var group = node.LinkedPath() is { Length: > 0 } first ? first : entry.SnapshotPath;
        if (_otherFirsts.TryGetValue(group, out var made) && made.Type == node.Type)
        {
            _otherLinks.Add(entry with { LinkTo = made.Path });
            return true;
        }
        _otherFirsts.TryAdd(group, (entry.SnapshotPath, node.Type));
        return false;
    }

    /// <summary>
    /// Something is planned below the folders on the way to it (<see cref="_waysDown"/>): they are made first, parents
    /// before children; then <paramref name="dir"/>, when it is a folder to restore.
    /// </summary>
    private void PlanDirectory(Entry? dir)
    {
        if (_waysDown.Count > 0)
        {
            _dirs.AddRange(_waysDown.Select(w => w with { WayDown = true }));
            _waysDown.Clear();
        }
        if (dir is not null) _dirs.Add(dir);
    }

    /// <summary>
    /// A file to restore: remembered by its path when a hard link may name it (a file of one link never is: the
    /// paths of a million files are not kept), and restored with its wave.
    /// </summary>
    private void PlanFile(Entry file, bool firstName = false)
    {
        PlanDirectory(null);
        if (firstName || file.Node.Nlink != 1) _restoredFiles.Add(file.SnapshotPath); // 0: a snapshot that did not record it
        _files.Add(file);
        _filesPlanned++;
        _bytesPlanned += (long)file.Node.Size;
        if (_files.Count >= WaveFiles) RestoreWave();
    }

    private static string? HardlinkTargetProblem(string path)
    {
        var parts = path.Split('/');
        if (parts.Length < 2 || parts[0] != "") return $"hard link target '{path}' is not a snapshot path";
        foreach (var p in parts.Skip(1))
            if (NodeExtensions.UnsafeNameReason(p) is { } reason) return $"hard link target '{path}': {reason}; it would escape the restore target";
        return null;
    }

    // ---- filesystem -------------------------------------------------------------------------------------

    /// <summary>
    /// A file's or folder's extended attributes as recorded (ACLs and capabilities among them); null when it has none.
    /// The users and groups an ACL names get the ids their recorded names have here, as the owner does (OwnerNames.Resolve).
    /// </summary>
    private List<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>? Xattrs(Entry e)
    {
        var node = e.Node;
        if (node.Xattrs.Count == 0) return null;
        var xattrs = new List<(ReadOnlyMemory<byte> Name, ReadOnlyMemory<byte> Value)>(node.Xattrs.Count);
        HashSet<string>? left = null;
        foreach (var x in node.Xattrs)
        {
            if (_xattrsRefused.Count > 0 && NamespaceOf(x.Name.Span) is { } ns && _xattrsRefused.ContainsKey(ns))
            {
                if ((left ??= []).Add(ns)) _xattrsLeftOff.AddOrUpdate(ns, 1, (_, n) => n + 1);
                continue;
            }
            if (node.AclUsers.Count + node.AclGroups.Count == 0 || _numericOwner || !AclIds.IsAcl(x.Name.Span))
            {
                xattrs.Add((x.Name.Memory, x.Value.Memory));
                continue;
            }
            var acl = AclIds.Map(x.Value.Span, (group, id) => group
                ? OwnerNames.Resolve(id, node.AclGroups.AclName(id) ?? "", false, n => Known(true, n, id, GroupIdHere(n)))
                : OwnerNames.Resolve(id, node.AclUsers.AclName(id) ?? "", false, n => Known(false, n, id, UserIdHere(n))), out var merged);
            foreach (var (group, recorded, id) in merged)
                Partly(e, $"{PosixNames.Display(PosixNames.Decode(x.Name.Span))}: the entry of {(group ? "group" : "user")} " +
                          $"'{(group ? node.AclGroups : node.AclUsers).AclName(recorded) ?? recorded.ToString()}' (id {recorded} where backed up) " +
                          $"has id {id} here, as another entry of the ACL does: that one is kept (give --numeric-owner to keep the recorded ids)");
            xattrs.Add((x.Name.Memory, acl));
        }
        return xattrs;
    }

    /// <summary>The id a user or group name has on another host (tests); null: on this one.</summary>
    internal Func<string, uint?>? UserIds { get; init; }
    internal Func<string, uint?>? GroupIds { get; init; }

    /// <summary>The namespaces the target's file system has none of (RootedDirectory.XattrNamespacesRefused), and how many entries lost theirs.</summary>
    private IReadOnlyDictionary<string, string> _xattrsRefused = new Dictionary<string, string>();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _xattrsLeftOff = new();

    private static string? NamespaceOf(ReadOnlySpan<byte> name) =>
        name.StartsWith("user."u8) ? "user.*" : name.StartsWith("trusted."u8) ? "trusted.*" : name.StartsWith("security."u8) ? "security.*"
        : name.StartsWith("system.posix_acl_"u8) ? "POSIX ACLs" : null;

    /// <summary>Owner names this host does not know, with the id each kept and on how many entries (one error each at the end).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(bool Group, string Name, uint Recorded), int> _unknownOwners = new();

    private uint? Known(bool group, string name, uint recorded, uint? here)
    {
        if (here is null) _unknownOwners.AddOrUpdate((group, name, recorded), 1, (_, n) => n + 1);
        return here;
    }

    private uint? UserIdHere(string name) => UserIds is { } ids ? ids(name) : _owners.UserId(name);
    private uint? GroupIdHere(string name) => GroupIds is { } ids ? ids(name) : _owners.GroupId(name);

    private static EntryTimes Times(Node node) => new(node.MtimeSec, node.MtimeNsec, node.AtimeSec, node.AtimeNsec);

    /// <summary>Records what of an entry's metadata could not be restored (the entry itself is there).</summary>
    private void Partly(Entry e, string? missing)
    {
        if (missing is not null) AddError(new SnapshotError { Path = PosixNames.Display(e.SnapshotPath), Reason = missing });
    }

    /// <summary>Runs what restores <paramref name="e"/>; false (its error recorded) when it failed.</summary>
    private bool Guard(Entry e, Action action)
    {
        try
        {
            action();
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && ex is not TargetFullException)
        {
            AddError(new SnapshotError { Path = PosixNames.Display(e.SnapshotPath), Reason = ex.Message });
            return false;
        }
    }

    private void MakeDirectory(Entry d)
    {
        // Below a directory that could not be made nothing is tried: its path would lead through a symlink, or fail
        // entry by entry for a reason that is the folder's (a name the target file system refuses, say).
        if (IsBlocked(TargetOf(d))) return;
        Guard(d, () =>
        {
            try
            {
                // 0700 until the end, when each directory gets its own mode: nothing inside is reachable by others meanwhile.
                var there = _root.MakeDirectory(d.Relative);
                // /etc of "abk restore S /etc/fstab --to / --force": there already, and not what was asked for.
                // A retry finds those its earlier attempt made too: it leaves only those that attempt found (FoundBefore).
                if (there == FileKind.Directory && d.WayDown && (!_resumed || _foundBefore.Contains(d.Relative)) && _foundOnTheWay.TryAdd(d.Relative, 0))
                    _found?.Invoke(d.Relative);
                if (there is not (null or FileKind.Directory))
                {
                    if (_overwrite == OverwritePolicy.Never)
                        throw new IOException($"{PosixNames.Display(TargetOf(d))} is there and is not a folder, where the snapshot has one: left as it is (--overwrite never)");
                    // Never follow a symlink that was already there: its target is outside our control.
                    if (there == FileKind.Symlink) throw new IOException($"refused: {PosixNames.Display(TargetOf(d))} is an existing symlink; remove it or restore elsewhere");
                    _root.RemoveNonDirectory(d.Relative); // a file where the snapshot has a folder
                    _root.MakeDirectory(d.Relative);
                }
                Interlocked.Increment(ref _dirsRestored);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                if (Posix.Posix.IsNoSpace(ex)) throw Full(d, ex); // no room for a folder's inode or its entry: full, as for a file
                MarkBlocked(TargetOf(d));
                throw new IOException($"{ex.Message} (nothing below it restored)", ex);
            }
        });
    }

    /// <summary>
    /// Folders on the way to the paths asked for that were there before the restore: left as they are (a single file
    /// restored in place does not reset its folders' modes, times and attributes). In a resumed restore, only those its
    /// earlier attempt found (RestoreOptions.FoundBefore): the others it may have made (0700, waiting for their metadata).
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _foundOnTheWay = new(StringComparer.Ordinal);
    private bool _resumed, _force;
    /// <summary>An unnamed staged copy could not be named (no /proc, no privilege to link by handle): the rest, in this process, are named from the start.</summary>
    private static volatile bool UnnamedFails;
    private IReadOnlySet<string> _foundBefore = new HashSet<string>();
    private Action<string>? _found;
    private Action? _foundLevelDone;

    /// <summary>Folders (target paths) not made: nothing below them is tried. A full disk may block every folder of a wave.</summary>
    private readonly HashSet<string> _blocked = new(StringComparer.Ordinal);

    private void MarkBlocked(string dir)
    {
        lock (_blocked) _blocked.Add(dir);
    }

    /// <summary>Whether a folder above <paramref name="path"/> is blocked (with a trailing '/': the folder itself too); one lookup a level.</summary>
    private bool IsBlocked(string path)
    {
        lock (_blocked)
        {
            if (_blocked.Count == 0) return false;
            var blocked = _blocked.GetAlternateLookup<ReadOnlySpan<char>>();
            for (var end = path.Length; end > 0 && (end = path.LastIndexOf('/', end - 1)) > 0;)
                if (blocked.Contains(path.AsSpan(0, end))) return true;
        }
        return false;
    }

    /// <summary>The owner to give an entry back: only when restoring owners.</summary>
    /// <summary>The owner to give an entry (null: leave it as created): the ids its recorded names have here, or the recorded ids (NumericOwner, or a name this host does not know).</summary>
    private (uint Uid, uint Gid)? Owner(Node node, bool restoreOwner) => restoreOwner
        ? (OwnerNames.Resolve(node.Uid, node.User, _numericOwner, n => Known(false, n, node.Uid, UserIdHere(n))),
           OwnerNames.Resolve(node.Gid, node.Group, _numericOwner, n => Known(true, n, node.Gid, GroupIdHere(n))))
        : null;

    private readonly OwnerNames _owners = new();
    private bool _numericOwner;
    /// <summary>Files restored whole that carry file flags: set once every link is made (a file that failed gets none, so that a new restore can replace it).</summary>
    private readonly System.Collections.Concurrent.ConcurrentBag<Entry> _flagged = [];
    /// <summary>
    /// Every entry gets its own file flags, none included: the target (or folders that were there) has some entries
    /// inherit. A file's are set to its before-data ones (none, most often) when it is made, so only one with flags
    /// of its own is set again at the end (no list of every file, no second open); every folder is.
    /// </summary>
    private bool _resetFlags;
    private bool _sparse;

    /// <summary>One file's open handle, shared by the workers that write its pieces.</summary>
    private sealed class FileSlot(Entry file, int pieces)
    {
        public Entry File { get; } = file;
        public readonly object Lock = new();
        /// <summary>The file as created (0600 until its metadata is set through it).</summary>
        public Microsoft.Win32.SafeHandles.SafeFileHandle? Handle;
        public bool Opened;
        public int PiecesLeft = Math.Max(1, pieces);
        public string? Error;
        /// <summary>Which file it is (to open it again after it was closed to bound the open files), and its place among them.</summary>
        public (uint, uint, ulong) Identity;
        public LinkedListNode<FileSlot>? Open;
        public object? Batch;
        /// <summary>The staging name it is written under while a file that was at its name stays (RootedDirectory.CreateFile).</summary>
        public string? Staged;
        /// <summary>Staged with no name yet (O_TMPFILE): it takes <see cref="Staged"/> once whole.</summary>
        public bool Unnamed;
    }

    private sealed class Staging(Restorer restorer) : IDisposable
    {
        public void Dispose() => restorer.DiscardStaged();
    }

    /// <summary>Files written under a staging name and not yet put in place or removed: removed when the restore stops short.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _staged = new(StringComparer.Ordinal);

    /// <summary>The staged files a restore that stopped short (a full target, a cancel, a fault) left: removed, what was at their names kept.</summary>
    private void DiscardStaged()
    {
        foreach (var staged in _staged.Keys)
            try
            {
                _root.Discard(staged);
            }
            catch (IOException)
            {
                // Left as a hidden .abk-restore-* file (an append-only folder, say): nothing depends on it.
            }
        _staged.Clear();
    }

    /// <summary>
    /// From a sequential source (tape) the chunks come in the medium's order, so many files fill at once: at most
    /// this many stay open; the one written least recently is closed and opened again by its name for its next chunk.
    /// </summary>
    internal int MaxOpenFiles { get; set; } = 256;

    /// <summary>The most files this restore had open at once (from a sequential source).</summary>
    internal int PeakOpenFiles { get; private set; }

    private readonly LinkedList<FileSlot> _openFiles = [];
    private bool _boundOpenFiles;

    private readonly record struct Piece(FileSlot Slot, int FirstChunk, int Chunks, long Offset);

    private void RestoreContents(int parallelism, bool restoreOwner, CancellationToken cancel)
    {
        // Largest files first, each cut into pieces of a few chunks, so that both cores work on a big file and
        // no big file starts last. Offsets come from the chunk sizes the tree records. Consecutive pieces form
        // a batch (many small files, or a stretch of a big one) that a worker reads in one go: over a network
        // the source keeps the batch's reads in flight instead of waiting a round trip for each.
        // On tape (a sequential source) each chunk is a piece of its own, put in the order of the medium below.
        var placement = source is IChunkPlacement { Sequential: true } sequential ? sequential : null;
        var chunksPerPiece = placement is null ? 4 : 1;
        const int chunksPerBatch = 32;
        const long bytesPerBatch = 8L << 20;
        var batches = new List<Piece[]>();
        var batch = new List<Piece>();
        int batchChunks = 0;
        long batchBytes = 0;
        void Add(Piece piece, long bytes)
        {
            if (batch.Count > 0 && (batchChunks + piece.Chunks > chunksPerBatch || batchBytes + bytes > bytesPerBatch))
            {
                batches.Add([.. batch]);
                batch.Clear();
                batchChunks = 0;
                batchBytes = 0;
            }
            batch.Add(piece);
            batchChunks += piece.Chunks;
            batchBytes += bytes;
        }
        var pieces = new List<(Piece Piece, long Bytes)>();
        foreach (var f in _files.OrderByDescending(f => f.Node.Size))
        {
            if (IsBlocked(TargetOf(f)))
            {
                Failed(f); // a further name of it elsewhere says why it is not linked
                continue;
            }
            var n = f.Node.ChunkCount();
            // Its size is what its entries add up to (as a backup records it): a size of its own (a damaged or crafted
            // tree: 5 TB over one chunk) would have the restore reserve or extend to it.
            if (f.Node.ChunkSizes.Count != n || f.Node.Chunks.Length % ChunkId.Size != 0 || f.Node.Size > long.MaxValue ||
                f.Node.ChunkSizes.Sum(s => (long)s) != (long)f.Node.Size)
            {
                AddError(new SnapshotError { Path = PosixNames.Display(f.SnapshotPath), Reason = "tree entry is inconsistent (its chunks and their sizes do not match its size)" });
                Failed(f);
                continue;
            }
            var slot = new FileSlot(f, (n + chunksPerPiece - 1) / chunksPerPiece);
            if (n == 0) pieces.Add((new Piece(slot, 0, 0, 0), 0));
            long offset = 0;
            for (var i = 0; i < n; i += chunksPerPiece)
            {
                var count = Math.Min(chunksPerPiece, n - i);
                var start = offset;
                for (var c = i; c < i + count; c++) offset += f.Node.ChunkSizes[c];
                pieces.Add((new Piece(slot, i, count, start), offset - start));
            }
        }
        // On tape, in the order of the medium instead: cartridge by cartridge, forward, each mounted once, by one
        // reader (two would pull the drives between cartridges; a drive streams faster than a core restores).
        if (placement is not null)
        {
            pieces = InPlaceOrder(pieces, placement);
            parallelism = 1;
            _boundOpenFiles = true;
        }
        foreach (var (piece, bytes) in pieces) Add(piece, bytes);
        if (batch.Count > 0) batches.Add([.. batch]);
        WorkQueue.Run(batches.Count, parallelism, "restorer", _decoders!.Take, (lease, i) => WriteBatch(batches[i], lease.Decoder, restoreOwner), cancel);
    }

    /// <summary>
    /// The pieces (one chunk each, on tape) sorted by where their stored chunk is (volume, then offset); holes, and
    /// chunks the library does not place, last. Files read at once by a backup's readers interleave on tape, so the
    /// order is the chunks', not the files'.
    /// </summary>
    private static List<(Piece Piece, long Bytes)> InPlaceOrder(List<(Piece Piece, long Bytes)> pieces, IChunkPlacement placement)
    {
        var has = new bool[pieces.Count];
        var asked = new List<ChunkId>();
        for (var i = 0; i < pieces.Count; i++)
        {
            var (piece, _) = pieces[i];
            for (var c = piece.FirstChunk; c < piece.FirstChunk + piece.Chunks; c++)
                if (piece.Slot.File.Node.ChunkAt(c) is var id && !NodeExtensions.IsHole(id))
                {
                    has[i] = true;
                    asked.Add(id);
                    break;
                }
        }
        var places = placement.Places(asked);
        var keys = new (uint Volume, long Offset)[pieces.Count];
        for (int i = 0, k = 0; i < pieces.Count; i++)
            keys[i] = has[i] && places[k++] is { Volume: > 0 } at ? (at.Volume, at.Offset) : (uint.MaxValue, long.MaxValue);
        return [.. Enumerable.Range(0, pieces.Count).OrderBy(i => keys[i].Volume).ThenBy(i => keys[i].Offset).Select(i => pieces[i])];
    }

    private void WriteBatch(Piece[] pieces, ChunkDecoder decoder, bool restoreOwner)
    {
        var ids = new List<ChunkId>();
        var where = new List<(int Piece, int Chunk, long Offset)>();
        if (_boundOpenFiles) // this batch's files are written next: opening one of them never closes another
            foreach (var piece in pieces)
                lock (piece.Slot.Lock) piece.Slot.Batch = pieces;
        for (var p = 0; p < pieces.Length; p++)
        {
            var piece = pieces[p];
            Open(piece.Slot, pieces);
            if (piece.Slot.Error is not null) continue;
            var offset = piece.Offset;
            for (var c = piece.FirstChunk; c < piece.FirstChunk + piece.Chunks; c++)
            {
                var id = piece.Slot.File.Node.ChunkAt(c);
                if (NodeExtensions.IsHole(id)) Interlocked.Add(ref _bytesDone, piece.Slot.File.Node.ChunkSizes[c]); // left a hole: nothing to read or write
                else
                {
                    ids.Add(id);
                    where.Add((p, c, offset));
                }
                offset += piece.Slot.File.Node.ChunkSizes[c];
            }
        }
        var failed = new bool[pieces.Length];
        void Fail(int p, string reason)
        {
            failed[p] = true;
            lock (pieces[p].Slot.Lock) pieces[p].Slot.Error ??= reason;
        }
        decoder.LoadMany(ids, source, (i, plain, error) =>
        {
            var (p, c, offset) = where[i];
            if (failed[p]) return;
            var slot = pieces[p].Slot;
            if (error is not null)
            {
                Fail(p, error.Message);
                return;
            }
            if (plain.Length != slot.File.Node.ChunkSizes[c])
            {
                Fail(p, new ChunkIntegrityException(ids[i], $"is {plain.Length} bytes, the tree says {slot.File.Node.ChunkSizes[c]}").Message);
                return;
            }
            try
            {
                if (_sparse) WriteSparse(slot.Handle!, plain, offset);
                else RandomAccess.Write(slot.Handle!, plain, offset);
                Interlocked.Add(ref _bytesDone, plain.Length);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A staged copy beside the file it replaces: no room for the two is that file's error, the old one kept.
                if (Posix.Posix.IsNoSpace(e) && slot.Staged is not null) Fail(p, "no room for its new copy beside the file there: free space and restore it again");
                else if (Posix.Posix.IsNoSpace(e)) throw Full(slot.File, e);
                else Fail(p, e.Message);
            }
        });
        foreach (var piece in pieces) Finish(piece.Slot, restoreOwner);
    }

    /// <summary>The first piece of a file to arrive creates it (at its full size); one closed meanwhile is opened again.</summary>
    private void Open(FileSlot slot, object batch)
    {
        lock (slot.Lock)
        {
            try
            {
                if (!slot.Opened)
                {
                    slot.Opened = true;
                    // Created readable by its owner alone: a private file is never open to others while it fills (its
                    // own mode comes with its metadata, once it is whole).
                    // A file with holes gets its size at once and only its data written: the holes stay holes.
                    // Over a live tree (--force) a file there stays until its new copy is whole; one closed and opened again by
                    // its name (a tape's many files at once) needs a name from the start.
                    slot.Handle = _root.CreateFile(slot.File.Relative, (long)slot.File.Node.Size, out slot.Staged, out slot.Unnamed,
                        sparse: _sparse || slot.File.Node.HasHoles(), flagsBeforeData: slot.File.Node.Flags & FileFlags.BeforeData, setFlags: _resetFlags,
                        stage: _force, unnamed: !_boundOpenFiles && !UnnamedFails,
                        // A restore that keeps what it finds at a name: a file is never there unwhole (a retry, or the
                        // operator's next run, would keep this attempt's half-written one).
                        stageNew: _overwrite is OverwritePolicy.Never or OverwritePolicy.IfNewer);
                    if (slot.Staged is not null && !slot.Unnamed) _staged.TryAdd(slot.Staged, 0);
                    // Known from the start: a file closed and opened again is checked to be this one, and one this restore
                    // made and could not finish (a failed close too) is removed only if it still is (Unstaged).
                    slot.Identity = RootedDirectory.Identity(slot.Handle);
                }
                else if (slot.Handle is null && slot.Error is null) slot.Handle = _root.ReopenFile(slot.Staged ?? slot.File.Relative, slot.Identity);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Out of space as it is created (a file system that preallocates: its whole size at once) is the
                // target being full, as a write's: the restore stops there, saying so.
                if (Posix.Posix.IsNoSpace(e)) throw Full(slot.File, e);
                slot.Error = e.Message;
            }
            if (!_boundOpenFiles || slot.Handle is null) return; // its batch was marked by WriteBatch
        }
        lock (_openFiles)
        {
            if (slot.Open is not null) _openFiles.Remove(slot.Open);
            slot.Open = _openFiles.AddLast(slot);
            // The files written least recently are closed, but none of this batch's (they are written next).
            for (var oldest = _openFiles.First; _openFiles.Count > MaxOpenFiles && oldest is not null;)
            {
                var next = oldest.Next;
                var other = oldest.Value;
                lock (other.Lock)
                    if (other.Batch != batch)
                    {
                        if (other.Handle is { } closing)
                            try
                            {
                                Posix.Posix.CloseChecked(closing, TargetOf(other.File));
                            }
                            catch (Posix.PosixException e)
                            {
                                if (Posix.Posix.IsNoSpace(e)) throw Full(other.File, e);
                                other.Error ??= $"{e.Message}: {NotTaken}";
                            }
                        other.Handle = null;
                        _openFiles.Remove(oldest);
                        other.Open = null;
                    }
                oldest = next;
            }
            PeakOpenFiles = Math.Max(PeakOpenFiles, _openFiles.Count);
        }
    }

    /// <summary>
    /// Writes a chunk but its blocks of zeros (4 KiB, aligned in the file), which stay holes of the file (made at its
    /// full size): runs of data in one write each.
    /// </summary>
    internal static void WriteSparse(Microsoft.Win32.SafeHandles.SafeFileHandle handle, ReadOnlySpan<byte> data, long offset)
    {
        const int block = 4096;
        var run = -1;
        for (var i = 0; i < data.Length;)
        {
            var end = (int)Math.Min(data.Length, i + (block - (offset + i) % block));
            if (data[i..end].ContainsAnyExcept((byte)0))
            {
                if (run < 0) run = i;
            }
            else if (run >= 0)
            {
                RandomAccess.Write(handle, data[run..i], offset + run);
                run = -1;
            }
            i = end;
        }
        if (run >= 0) RandomAccess.Write(handle, data[run..], offset + run);
    }

    /// <summary>The last piece of a file to finish closes it and sets its metadata, or records why it failed.</summary>
    private void Finish(FileSlot slot, bool restoreOwner)
    {
        var file = slot.File;
        lock (slot.Lock)
            if (--slot.PiecesLeft > 0) return;
        if (slot.Open is not null)
            lock (_openFiles)
            {
                _openFiles.Remove(slot.Open);
                slot.Open = null;
            }
        using (slot.Handle)
        {
            if (slot.Error is not null)
            {
                AddError(new SnapshotError { Path = PosixNames.Display(file.SnapshotPath), Reason = slot.Error + Unstaged(slot) });
                Failed(file);
                return;
            }
            // A staged copy, whole: named if it has no name yet (before its owner is given away: a link to another's file
            // may be refused, protected_hardlinks), and on the disk before it replaces the file there.
            if (slot.Staged is { } toName)
                try
                {
                    _root.SyncStaged(slot.Handle!, toName); // before it has a name: a crash meanwhile leaves nothing
                    if (slot.Unnamed)
                    {
                        _root.NameStaged(slot.Handle!, toName);
                        slot.Unnamed = false;
                        _staged.TryAdd(toName, 0);
                    }
                }
                catch (IOException e)
                {
                    if (slot.Unnamed) UnnamedFails = true; // the next files (of this restore and the next) get a name from the start
                    AddError(new SnapshotError { Path = PosixNames.Display(file.SnapshotPath), Reason = e.Message + Unstaged(slot) + "; restore it again" });
                    Failed(file);
                    return;
                }
            // Through its handle: whatever its name leads to by now, the mode goes on the file that was written.
            var owner = Owner(file.Node, restoreOwner);
            Guard(file, () => Partly(file, _root.SetMetadata(slot.Handle!, file.Relative, owner?.Uid, owner?.Gid, ModeOf(file), Times(file.Node), Xattrs(file), _clearAcls)));
            // Closed here, the result looked at: a network or FUSE file system reports there what it could not write.
            try
            {
                Posix.Posix.CloseChecked(slot.Handle!, TargetOf(file));
            }
            catch (Posix.PosixException e)
            {
                if (Posix.Posix.IsNoSpace(e)) throw Full(file, e);
                AddError(new SnapshotError { Path = PosixNames.Display(file.SnapshotPath), Reason = $"{e.Message}: {NotTaken}{Unstaged(slot)}" });
                Failed(file);
                return;
            }
            // Whole: in the place of the file that was at its name, in one rename.
            if (slot.Staged is { } staged)
                try
                {
                    // --overwrite never: a file made at its name since the restore looked (a plan hours before, from tape) is kept.
                    var placed = _root.Replace(staged, file.Relative, noReplace: _overwrite == OverwritePolicy.Never);
                    _staged.TryRemove(staged, out _);
                    if (!placed)
                    {
                        Interlocked.Increment(ref _kept);
                        Interlocked.Decrement(ref _filesPlanned);
                        Interlocked.Add(ref _bytesPlanned, -(long)file.Node.Size);
                        Interlocked.Add(ref _bytesDone, -(long)file.Node.Size); // its copy went: not restored, no error
                        if (file.Node.Nlink != 1 || file.Node.Type == NodeType.Hardlink)
                            lock (_keptFiles) _keptFiles.Add(file.SnapshotPath); // no further name is linked to what is there
                        return;
                    }
                }
                catch (RootedDirectory.StagedKeptException e)
                {
                    _staged.TryRemove(staged, out _); // the only copy left: kept where the message says
                    AddError(new SnapshotError { Path = PosixNames.Display(file.SnapshotPath), Reason = e.Message });
                    Failed(file);
                    return;
                }
                catch (IOException e)
                {
                    AddError(new SnapshotError { Path = PosixNames.Display(file.SnapshotPath), Reason = e.Message + Unstaged(slot) });
                    Failed(file);
                    return;
                }
            if (file.Node.Flags != 0) _flagged.Add(file); // one without: made new, its flags set to none while it was empty (CreateFile)
        }
        Interlocked.Increment(ref _filesDone);
    }

    /// <summary>A file not restored whose staged copy is removed: what its reason adds (the file that was at its name is kept).</summary>
    private string Unstaged(FileSlot slot)
    {
        if (slot.Staged is not { } staged)
        {
            // Made new at its name by this restore and not finished (a damaged chunk): not left there looking restored
            // (a retry, or the operator, would take the part written for the file).
            var made = slot.Identity;
            if (made == default) return ""; // not made here (it could not be created)
            try
            {
                return _root.DiscardMade(slot.File.Relative, made) ? "; nothing is left at its name" : "";
            }
            catch (IOException e)
            {
                return $"; its unfinished file could not be removed: {e.Message}";
            }
        }
        if (slot.Unnamed) return "; the file that was there is left as it was"; // its copy has no name: gone with its handle
        try
        {
            _root.Discard(staged);
            _staged.TryRemove(staged, out _);
            return "; the file that was there is left as it was";
        }
        catch (IOException e)
        {
            return $"; the file that was there is left as it was, but its unfinished copy could not be removed: {e.Message}";
        }
    }

    /// <summary>The restore stops: the target is full (nothing more can be written there).</summary>
    private TargetFullException Full(Entry file, Exception e) =>
        new($"the restore target is full (or its disk quota used up) while writing {PosixNames.Display(TargetOf(file))}: free space there and restore again (with --force: the folder now holds what this restore wrote)", e);

    /// <summary>The restore stops: nothing more can be written to the target (not one entry's error).</summary>
    private sealed class TargetFullException(string message, Exception inner) : IOException(message, inner);

    /// <summary>What a file whose close failed is told (a network or FUSE file system reports there what it could not write).</summary>
    private const string NotTaken = "the file system did not take all that was written; restore it again";

    /// <summary>A file that was not restored whole: no further name of it is linked to what is there (<see cref="MakeHardLink"/>).</summary>
    private void Failed(Entry file)
    {
        if (file.Node.Nlink != 1 || file.Node.Type == NodeType.Hardlink)
            lock (_failedFiles) _failedFiles.Add(file.SnapshotPath);
    }

    private void MakeHardLink(Entry l)
    {
        if (IsBlocked(TargetOf(l))) return;
        var first = l.LinkTo ?? l.Node.LinkedPath();
        // Both names below the target, resolved without a symlink: a hard link never reaches a file outside it.
        var existing = string.Join('/', first.Split('/', StringSplitOptions.RemoveEmptyEntries));
        Guard(l, () =>
        {
            bool failed;
            lock (_failedFiles) failed = _failedFiles.Contains(first);
            if (failed) throw new IOException($"not restored: a further name of {PosixNames.Display(first)}, whose restore failed (its error says why); restore again once that is fixed");
            bool keptFirst;
            lock (_keptFiles) keptFirst = _keptFiles.Contains(first);
            // Its first name was left as it was (made there since the restore looked), or this name is taken now: left too.
            if (keptFirst || KeptAfterPlan(l)) return;
            _root.RemoveNonDirectory(l.Relative);
            _root.Link(existing, l.Relative);
            Interlocked.Increment(ref _linksMade);
        });
    }

    private void MakeSpecial(Entry s, bool restoreOwner)
    {
        if (IsBlocked(TargetOf(s))) return;
        var kind = KindOf(s.Node.Type); // a FIFO, socket or device: MakeSpecial's only kinds
        if (kind is FileKind.CharDevice or FileKind.BlockDevice)
        {
            if (!_privileged)
                throw new IOException($"device {PosixNames.Display(s.SnapshotPath)} not restored into a folder that was there before: restore into a new folder, or give --force");
            if (!Posix.Posix.IsRoot) throw new IOException($"device {PosixNames.Display(s.SnapshotPath)} is recorded but only root can create device nodes");
        }
        // A socket where a socket is already (--force): left as it is; a live one is its program's, which would lose its
        // clients to a dead inode. Anything else there (a file, a link) is replaced, as for every other kind.
        if (KeptAfterPlan(s)) return;
        if (kind != FileKind.Socket || _root.KindOf(s.Relative) != FileKind.Socket)
        {
            _root.RemoveNonDirectory(s.Relative);
            var owner = Owner(s.Node, restoreOwner);
            Partly(s, _root.MakeNode(s.Relative, kind, s.Node.RdevMajor, s.Node.RdevMinor, owner?.Uid, owner?.Gid, ModeOf(s), Times(s.Node), Xattrs(s), _clearAcls));
        }
        Interlocked.Increment(ref _otherMade);
    }

    private void MakeSymlink(Entry s, bool restoreOwner)
    {
        if (IsBlocked(TargetOf(s)) || KeptAfterPlan(s)) return;
        _root.RemoveNonDirectory(s.Relative);
        var owner = Owner(s.Node, restoreOwner);
        Partly(s, _root.Symlink(s.Node.LinkTarget.Span, s.Relative, owner?.Uid, owner?.Gid, Times(s.Node), Xattrs(s)));
        Interlocked.Increment(ref _otherMade);
    }

    /// <summary>
    /// --overwrite never: something is at the entry's name now (made there after the plan looked, hours before from tape):
    /// left as it is, counted kept (not "not restored"). Else false: the entry is made, replacing what is there.
    /// </summary>
    private bool KeptAfterPlan(Entry e)
    {
        if (_overwrite != OverwritePolicy.Never || _root.KindOf(e.Relative) is null) return false;
        Interlocked.Increment(ref _kept);
        Interlocked.Increment(ref _keptAfterPlan);
        return true;
    }

    /// <summary>Files --overwrite never found made at their names when they were to be placed (their further names are left too).</summary>
    private readonly HashSet<string> _keptFiles = new(StringComparer.Ordinal);
    /// <summary>Links, symlinks and special files <see cref="KeptAfterPlan"/> left: planned, not made, and no error.</summary>
    private long _keptAfterPlan;

    /// <summary>The mode of an entry whose access ACL the target's file system has no room for (AclIds.ModeWithoutAcl).</summary>
    private uint WithoutAcl(Node node, uint mode)
    {
        if (!_xattrsRefused.ContainsKey("POSIX ACLs")) return mode;
        foreach (var x in node.Xattrs)
            if (x.Name.Span.SequenceEqual("system.posix_acl_access"u8)) return AclIds.ModeWithoutAcl(mode, x.Value.Span);
        return mode;
    }

    /// <summary>The mode <see cref="ModeOf"/> gives <paramref name="e"/>, saying nothing (what --overwrite if-changed compares).</summary>
    private uint ModeWanted(Entry e)
    {
        var mode = WithoutAcl(e.Node, e.Node.Mode) & 0xFFF;
        return _privileged ? mode : mode & ~SetIdBits;
    }

    /// <summary>The mode a file or special file gets: its own, but setuid/setgid only where the restore may (see Run).</summary>
    private uint ModeOf(Entry e)
    {
        var mode = WithoutAcl(e.Node, e.Node.Mode);
        if (_privileged || (mode & SetIdBits) == 0) return mode;
        AddError(new SnapshotError { Path = PosixNames.Display(e.SnapshotPath), Reason = "restored without its setuid/setgid bits (into a folder that was there before: restore into a new folder, or give --force)" });
        return mode & ~SetIdBits;
    }
}
