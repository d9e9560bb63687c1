using System.Diagnostics;
using System.Security.Cryptography;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Posix;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;
using ActorBackup.Engine.Work;
using Google.Protobuf;

namespace ActorBackup.Engine.Archive;

/// <summary>
/// Turns a backup set into a snapshot. Three phases:
/// 1. walk: lstat every entry (sequential, cheap), compare with the parent snapshot's tree, and collect the
///    files whose content must be read;
/// 2. read: several files in flight at once (largest first), each chunked, hashed and, when new, compressed,
///    sealed and appended by one worker;
/// 3. trees: bottom-up, every directory listing stored as a chunk; the root tree id names the snapshot.
/// A file that cannot be read, vanishes or changes while read goes to the snapshot's error list; the backup
/// goes on. Nothing is visible to a restore until the sink commits and the caller records the manifest.
/// </summary>
public sealed class Archiver(CellKeys keys, IChunkSink sink, IChunkSource source, CellKeys? parentKeys = null)
{
    private sealed class DirBuild(string path, Node node, DirBuild? up = null)
    {
        public string Path { get; } = path;
        public Node Node { get; } = node;
        public DirBuild? Up { get; } = up;
        public List<Node> Children { get; } = [];
        public List<DirBuild> SubDirs { get; } = [];
        /// <summary>
        /// The parent snapshot's tree of this folder when every entry came out equal to the parent's (so its tree would
        /// be the same bytes, under the same id): stored again only if the library lost it. Null: store it.
        /// </summary>
        public ChunkId? Same { get; set; }

        /// <summary>An entry below changed after the walk (a reused file read again): this folder and those above are stored.</summary>
        public void Changed()
        {
            for (var d = this; d is not null; d = d.Up) d.Same = null;
        }
    }

    private sealed record FileJob(string Path, Node Node, FileStat Stat, DirBuild? Dir = null);

    /// <summary>What the nodes of a snapshot made now record (SnapshotManifest.node_format): extended attributes and file flags of every entry.</summary>
    public const uint NodeFormat = 2;

    /// <summary>One reading thread's chunkers (the policy's, and the finer one for BlockFiles, made when first needed) and encoder.</summary>
    private sealed class FileWorker(StreamChunker chunker, Func<StreamChunker>? fine, ChunkEncoder encoder) : IDisposable
    {
        private StreamChunker? _fine;
        public ChunkEncoder Encoder => encoder;

        /// <summary>The chunker for <paramref name="job"/>: a file rewritten in place by blocks is cut finer.</summary>
        public StreamChunker For(FileJob job) => fine is not null && BlockFiles.Are(job.Path, job.Stat.Size) ? _fine ??= fine() : chunker;

        public void Dispose()
        {
            chunker.Dispose();
            _fine?.Dispose();
            encoder.Dispose();
        }
    }

    private readonly List<SnapshotError> _errors = [];
    private readonly List<FileJob> _jobs = [];
    private readonly Dictionary<(ulong Dev, ulong Ino), Node> _firstLinks = [];
    /// <summary>Every chunk id the snapshot references: its trees and its files' chunks (collected as the trees are stored).</summary>
    private readonly HashSet<ChunkId> _references = [];
    private readonly List<(Node Link, Node First)> _links = [];
    private ExcludeMatcher _excludes = new([]);
    private BackupSet _set = null!;
    private TreeReader _parentTrees = null!;
    private readonly SnapshotStats _stats = new();
    private long _filesDone, _bytesDone, _chunksNew, _bytesNew, _bytesStored, _chunksTotal;
    /// <summary>The holes of sparse files: counted as done for progress, never read.</summary>
    private long _holeBytes;
    private RateLimit? _limit;
    /// <summary>The parent's nodes record xattrs and flags (NodeFormat): an entry with the same inode and ctime keeps them.</summary>
    private bool _parentRecordsAll;
    /// <summary>The parent's trees are under this backup's tree keys: an unchanged folder's tree id is the parent's.</summary>
    private bool _parentTreesSameKeys;

    public SnapshotManifest Run(BackupSet set, BackupOptions options, SnapshotManifest? parent,
        IProgress<BackupProgress>? progress = null, CancellationToken cancel = default)
    {
        if (set.Paths.Count == 0) throw new ArgumentException("the backup set names no path: give at least one");
        if (options.Client != "" && options.Client != keys.Client)
            throw new ArgumentException($"a backup of client {options.Client} under client {keys.Client}'s keys: use its own (KeyRing.For)");
        // The parent's trees are read under its own keys; its chunk lists are reused only when they name chunks of this
        // backup's data domain (a set that moved to a private key domain reads everything again).
        var parentUnder = parentKeys ?? keys;
        if (parentUnder.Data != keys.Data || (parent is not null && parent.Client != keys.Client)) parent = null;
        options.Chunker.Validate();
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var snapshotId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        _set = set;
        _excludes = new ExcludeMatcher(set.Excludes);
        using var parentTrees = new TreeReader(parentUnder, source);
        _parentTrees = parentTrees;
        _parentRecordsAll = parent?.NodeFormat >= NodeFormat;
        _parentTreesSameKeys = parentUnder.Trees == keys.Trees;
        if (parent?.Stats is { } ps) _references.EnsureCapacity((int)Math.Min(ps.ChunksTotal + ps.Directories + 16, 64_000_000));

        // Phase 1: walk.
        var root = new DirBuild("/", new Node { Type = NodeType.Directory });
        Tree? parentRoot = parent is { RootTree.Length: ChunkId.Size } ? LoadParentTree(new ChunkId(parent.RootTree.Span), "/") : null;
        var walked = 0;
        foreach (var raw in set.Paths.Select(NormalizePath).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            var st = Posix.Posix.LStat(raw);
            if (st is null)
            {
                Error(raw, "path does not exist");
                continue;
            }
            walked++;
            WalkPath(root, parentRoot, raw, st.Value, cancel);
        }
        if (walked == 0) throw new DirectoryNotFoundException($"none of the backup set's paths exists ({string.Join(", ", set.Paths)}): check them on the client");

        ConfirmReused();
        var walkSeconds = clock.Elapsed.TotalSeconds;
        // Phase 2: read the files that changed, largest first so that no big file starts last.
        _jobs.Sort((a, b) => b.Stat.Size.CompareTo(a.Stat.Size));
        var bytesToRead = _jobs.Sum(j => (long)j.Stat.Size);
        using var session = keys.Cipher.BeginUpload();
        var cdc = new FastCdc(keys.Gear, options.Chunker);
        // A policy whose chunks are as fine already needs no second chunker.
        var fineCdc = options.Chunker.AverageSize > BlockFiles.Chunker.AverageSize ? new FastCdc(keys.Gear, BlockFiles.Chunker) : null;
        _limit = RateLimit.For(options.MaxBytesPerSecond);
        var failed = new bool[_jobs.Count];
        void Report() => progress?.Report(new BackupProgress(Interlocked.Read(ref _filesDone), _jobs.Count, Interlocked.Read(ref _bytesDone) + Interlocked.Read(ref _holeBytes), bytesToRead,
            Interlocked.Read(ref _chunksNew), Interlocked.Read(ref _bytesStored)));
        using (var timer = progress is null || _jobs.Count == 0 ? null : new Timer(_ => Report(), null, 250, 250))
        {
            // Nothing to read (an unchanged backup): no worker, no chunker buffer (8 MiB) to make.
            if (_jobs.Count > 0)
                WorkQueue.Run(_jobs.Count, options.Parallelism, "archiver",
                    () => new FileWorker(new StreamChunker(cdc), fineCdc is null ? null : () => new StreamChunker(fineCdc), new ChunkEncoder(keys.Data, session, options.CompressionLevel)),
                    (worker, i) =>
                    {
                        var error = ReadFile(_jobs[i], worker.For(_jobs[i]), worker.Encoder, cancel);
                        if (error is not null)
                        {
                            failed[i] = true;
                            Error(_jobs[i].Path, error);
                        }
                        Interlocked.Increment(ref _filesDone);
                    }, cancel);
        }
        for (var i = 0; i < _jobs.Count; i++)
            if (failed[i]) _jobs[i].Node.Type = NodeType.Unspecified; // left out of its tree
        foreach (var (link, first) in _links)
        {
            if (first.Type == NodeType.Unspecified) link.Type = NodeType.Unspecified;
            else
            {
                link.Chunks = first.Chunks;
                link.ChunkSizes.AddRange(first.ChunkSizes);
                link.Size = first.Size;
            }
        }

        var readSeconds = clock.Elapsed.TotalSeconds;
        // Phase 3: trees, bottom-up.
        ChunkId rootId;
        using (var treeSession = keys.Trees.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Trees, treeSession, options.CompressionLevel))
            rootId = StoreTree(root, encoder);
        var treeSeconds = clock.Elapsed.TotalSeconds;
        _references.Add(rootId);
        sink.AddReferences(snapshotId, _references.ToArray());
        sink.Commit();
        Report();
        _stats.SecondsWalk = walkSeconds;
        _stats.SecondsRead = readSeconds - walkSeconds;
        _stats.SecondsTrees = treeSeconds - readSeconds;
        _stats.SecondsCommit = clock.Elapsed.TotalSeconds - treeSeconds;

        _stats.BytesRead = (ulong)Interlocked.Read(ref _bytesDone);
        _stats.ChunksNew = (ulong)_chunksNew;
        _stats.BytesNew = (ulong)_bytesNew;
        _stats.BytesStored = (ulong)_bytesStored;
        _stats.ChunksTotal = (ulong)_chunksTotal;
        _stats.Seconds = clock.Elapsed.TotalSeconds;
        var manifest = new SnapshotManifest
        {
            Id = snapshotId,
            BackupSet = set.Name,
            Client = keys.Client,
            Keys = keys.Scheme,
            Level = options.Level,
            Parent = parent?.Id ?? "",
            StartedUnixMs = started.ToUnixTimeMilliseconds(),
            FinishedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            RootTree = ByteString.CopyFrom(rootId.ToArray()),
            NodeFormat = NodeFormat,
            Library = options.Library,
            Stats = _stats,
            Job = options.Job,
        };
        manifest.Paths.AddRange(set.Paths.Select(NormalizePath));
        manifest.Excludes.AddRange(set.Excludes ?? []);
        manifest.Errors.AddRange(_errors.OrderBy(e => e.Path, StringComparer.Ordinal));
        return manifest;
    }

    /// <summary>
    /// A file's or folder's extended attributes into its node (read every time: one call, most often answering none; a
    /// change to them changes the ctime, so an unchanged file would keep its parent's, but a parent from before they
    /// were kept has none).
    /// </summary>
    private void ReadXattrs(Node node, string path)
    {
        try
        {
            foreach (var (name, value) in Posix.Posix.ReadXattrs(path))
                node.Xattrs.Add(new Xattr { Name = ByteString.CopyFrom(name), Value = ByteString.CopyFrom(value) });
        }
        catch (IOException e)
        {
            Error(path, $"its extended attributes are not backed up: {e.Message}");
        }
    }

    /// <summary>Records a path the snapshot leaves out or holds imperfectly, as PosixNames.Display shows it.</summary>
    private void Error(string path, string reason)
    {
        lock (_errors) _errors.Add(new SnapshotError { Path = PosixNames.Display(path), Reason = reason });
    }

    private static string NormalizePath(string path)
    {
        var full = Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    private Tree? LoadParentTree(ChunkId id, string path)
    {
        try
        {
            return _parentTrees.Load(id);
        }
        catch (Exception e) when (e is IOException or KeyNotFoundException)
        {
            // Without the parent's listing the directory is simply read in full.
            Error(path, $"parent snapshot's tree unreadable, files read in full: {e.Message}");
            return null;
        }
    }

    private Tree? ParentSubtree(Node? parentNode, string path) =>
        parentNode is { Type: NodeType.Directory, Subtree.Length: ChunkId.Size } ? LoadParentTree(parentNode.SubtreeId(), path) : null;

    /// <summary>Adds one backup path under the synthetic root, creating the directories above it.</summary>
    private void WalkPath(DirBuild root, Tree? parentRoot, string path, FileStat st, CancellationToken cancel)
    {
        if (path == "/")
        {
            FillNode(root.Node, st);
            WalkDirectory(root, parentRoot, st.Device, cancel);
            return;
        }
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var dir = root;
        var parentTree = parentRoot;
        var current = "";
        for (var i = 0; i < parts.Length; i++)
        {
            current += "/" + parts[i];
            var parentNode = parentTree?.Nodes.FirstOrDefault(n => n.FileName() == parts[i]);
            if (i == parts.Length - 1)
            {
                if (dir.Children.Any(c => c.FileName() == parts[i])) return; // already there through an enclosing path
                AddEntry(dir, parts[i], current, st, parentNode, st.Device, cancel);
                return;
            }
            var existing = dir.SubDirs.FirstOrDefault(d => d.Node.FileName() == parts[i]);
            if (existing is null)
            {
                var ancestor = Posix.Posix.LStat(current) ?? throw new DirectoryNotFoundException($"{current} vanished during the backup");
                var node = new Node().Named(parts[i]);
                FillNode(node, ancestor);
                ReadXattrs(node, current);
                existing = new DirBuild(current, node);
                dir.Children.Add(node);
                dir.SubDirs.Add(existing);
            }
            dir = existing;
            parentTree = ParentSubtree(parentNode, current);
        }
    }

    /// <summary>The owners' names, looked up once per id in a backup (a new backup sees a changed user database).</summary>
    private readonly OwnerNames _owners = new();

    private void FillNode(Node node, FileStat st)
    {
        node.Type = st.Kind switch
        {
            FileKind.Regular => NodeType.File,
            FileKind.Directory => NodeType.Directory,
            FileKind.Symlink => NodeType.Symlink,
            FileKind.Fifo => NodeType.Fifo,
            FileKind.CharDevice => NodeType.CharDevice,
            FileKind.BlockDevice => NodeType.BlockDevice,
            FileKind.Socket => NodeType.Socket,
            _ => NodeType.Unspecified,
        };
        node.Mode = st.Mode;
        node.Uid = st.Uid;
        node.Gid = st.Gid;
        node.User = _owners.User(st.Uid);
        node.Group = _owners.Group(st.Gid);
        node.MtimeSec = st.MtimeSec;
        node.MtimeNsec = st.MtimeNsec;
        node.CtimeSec = st.CtimeSec;
        node.CtimeNsec = st.CtimeNsec;
        if (_set.Atime)
        {
            node.AtimeSec = st.AtimeSec;
            node.AtimeNsec = st.AtimeNsec;
        }
        node.Inode = st.Inode;
        node.Device = st.Device;
        node.Nlink = st.Nlink;
        if (st.Kind == FileKind.Regular) node.Size = st.Size;
        if (st.Kind is FileKind.CharDevice or FileKind.BlockDevice)
        {
            node.RdevMajor = st.RdevMajor;
            node.RdevMinor = st.RdevMinor;
        }
    }

    private void WalkDirectory(DirBuild dir, Tree? parentTree, ulong rootDevice, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        _stats.Directories++;
        // The parent's tree id, kept below only when every entry comes out equal (a folder that cannot be listed has none).
        var candidate = dir.Same;
        dir.Same = null;
        List<string> names;
        try
        {
            // Names as bytes (PosixNames): one that is not valid UTF-8 is backed up like any other.
            names = Posix.Posix.ListDirectory(dir.Path, out var flags);
            dir.Node.Flags = flags;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Error(dir.Path, $"cannot list directory: {e.Message}");
            return;
        }
        names.Sort(StringComparer.Ordinal);
        Dictionary<string, Node>? parentNodes = parentTree is null ? null : parentTree.Nodes.ToDictionary(n => n.FileName(), StringComparer.Ordinal);
        var prefix = dir.Path == "/" ? "/" : dir.Path + "/";
        // The folder's tree is the parent's when each of its entries came out equal to the parent's, and no more or fewer.
        var same = candidate is not null && parentTree is not null;
        var equal = 0;
        foreach (var name in names)
        {
            var full = prefix + name;
            if (_excludes.IsExcluded(full, name)) continue;
            FileStat? st;
            try
            {
                st = Posix.Posix.LStat(full);
            }
            catch (IOException e)
            {
                Error(full, e.Message);
                continue;
            }
            if (st is null)
            {
                Error(full, "vanished before it could be read");
                continue;
            }
            Node? parentNode = null;
            parentNodes?.TryGetValue(name, out parentNode);
            if (AddEntry(dir, name, full, st.Value, parentNode, rootDevice, cancel)) equal++;
            else same = false;
        }
        if (same && equal == parentTree!.Nodes.Count)
        {
            dir.Same = candidate;
            _sameDirs.Add(dir);
        }
    }

    /// <summary>Folders whose tree is the parent's (DirBuild.Same), checked after the walk to be still in the library.</summary>
    private readonly List<DirBuild> _sameDirs = [];

    /// <summary>Adds an entry to its folder's tree; true when it came out equal to the parent's node (then the folder may reuse the parent's tree).</summary>
    private bool AddEntry(DirBuild dir, string name, string full, FileStat st, Node? parentNode, ulong rootDevice, CancellationToken cancel)
    {
        var node = new Node().Named(name);
        FillNode(node, st);
        // Same inode and ctime as in a parent that recorded them: the same xattrs (setting one changes the ctime).
        var sameInode = _parentRecordsAll && parentNode is not null && parentNode.Inode == st.Inode && parentNode.CtimeSec == st.CtimeSec
                        && parentNode.CtimeNsec == st.CtimeNsec && (parentNode.Type == node.Type || parentNode.Type == NodeType.Hardlink && node.Type == NodeType.File);
        if (sameInode) node.Xattrs.AddRange(parentNode!.Xattrs);
        else if (st.Kind is not FileKind.Socket) ReadXattrs(node, full); // ACLs and file capabilities among them; a symlink's and a device's own (SELinux labels)
        switch (st.Kind)
        {
            case FileKind.Directory:
                if (_set.OneFileSystem && st.Device != rootDevice) return false; // a mount point: another file system
                var sub = new DirBuild(full, node, dir);
                if (_parentTreesSameKeys && parentNode is { Type: NodeType.Directory, Subtree.Length: ChunkId.Size }) sub.Same = parentNode.SubtreeId();
                dir.Children.Add(node);
                dir.SubDirs.Add(sub);
                WalkDirectory(sub, ParentSubtree(parentNode, full), rootDevice, cancel);
                if (sub.Same is null) return false;
                node.Subtree = parentNode!.Subtree; // its tree is the parent's: this node may be too
                return node.Equals(parentNode);
            case FileKind.Regular:
                _stats.Files++;
                _stats.Bytes += st.Size;
                if (st.Nlink > 1)
                {
                    if (_firstLinks.TryGetValue((st.Device, st.Inode), out var first))
                    {
                        node.LinksTo(_linkPaths[first]);
                        _links.Add((node, first));
                        dir.Children.Add(node);
                        return false; // its chunks come with its first name's, after the walk
                    }
                    _firstLinks[(st.Device, st.Inode)] = node;
                    _linkPaths[node] = full;
                }
                dir.Children.Add(node);
                if (Unchanged(parentNode, st))
                {
                    // Reused unless the library lost one of its chunks: checked for all files at once after the walk.
                    node.Chunks = parentNode!.Chunks;
                    node.ChunkSizes.AddRange(parentNode.ChunkSizes);
                    // A chattr changes the ctime: the flags are the parent's (before the parent recorded them: the ones statx tells).
                    node.Flags = _parentRecordsAll ? parentNode.Flags : st.Attributes;
                    _reused.Add(new FileJob(full, node, st, dir));
                    return node.Equals(parentNode);
                }
                _jobs.Add(new FileJob(full, node, st, dir));
                return false;
            case FileKind.Symlink:
                try
                {
                    node.LinkTarget = ByteString.CopyFrom(Posix.Posix.ReadLink(full));
                }
                catch (IOException e)
                {
                    Error(full, e.Message);
                    return false;
                }
                _stats.Other++;
                dir.Children.Add(node);
                return node.Equals(parentNode);
            case FileKind.Unknown:
                Error(full, "unknown file type: left out");
                return false;
            default:
                _stats.Other++;
                dir.Children.Add(node);
                return node.Equals(parentNode);
        }
    }

    private readonly Dictionary<Node, string> _linkPaths = new(ReferenceEqualityComparer.Instance);

    /// <summary>Same size, mtime, ctime and inode as in the parent, and every chunk still in the library.</summary>
    private bool Unchanged(Node? parent, FileStat st)
    {
        if (parent is null || parent.Type is not (NodeType.File or NodeType.Hardlink)) return false;
        if (parent.Size != st.Size || parent.MtimeSec != st.MtimeSec || parent.MtimeNsec != st.MtimeNsec
            || parent.CtimeSec != st.CtimeSec || parent.CtimeNsec != st.CtimeNsec || parent.Inode != st.Inode) return false;
        if (parent.Chunks.Length % ChunkId.Size != 0 || parent.ChunkSizes.Count != parent.ChunkCount() || (parent.Chunks.Length == 0 && st.Size != 0)) return false;
        return true;
    }

    private readonly List<FileJob> _reused = [];

    /// <summary>
    /// The files the walk found unchanged keep their chunk lists only if the library still holds every chunk
    /// (one question for all of them: one round trip over a socket data plane); the others are read again.
    /// </summary>
    private void ConfirmReused()
    {
        var ids = new HashSet<ChunkId>();
        foreach (var f in _reused)
            for (var i = 0; i < f.Node.ChunkCount(); i++)
                if (f.Node.ChunkAt(i) is var id && !NodeExtensions.IsHole(id)) ids.Add(id); // a hole is no chunk
        foreach (var d in _sameDirs) ids.Add(d.Same!.Value);
        var missing = ids.Count == 0 ? new HashSet<ChunkId>() : sink.Missing(ids.ToList());
        // A tree the library lost is stored again (the same bytes, the same id: the folders above keep theirs).
        foreach (var d in _sameDirs)
            if (d.Same is { } tree && missing.Contains(tree)) d.Same = null;
        foreach (var f in _reused)
        {
            var complete = true;
            var chunks = 0;
            for (var i = 0; i < f.Node.ChunkCount() && complete; i++)
                if (f.Node.ChunkAt(i) is var id && !NodeExtensions.IsHole(id))
                {
                    complete = !missing.Contains(id);
                    chunks++;
                }
            if (complete)
            {
                _stats.FilesUnchanged++;
                _chunksTotal += chunks;
                continue;
            }
            f.Node.Chunks = ByteString.Empty;
            f.Node.ChunkSizes.Clear();
            f.Dir?.Changed(); // read again: its chunks may differ, and so its folder's tree and those above
            _jobs.Add(f);
        }
    }

    /// <summary>
    /// Reads, chunks and stores one file. Returns the reason when the file could not be read whole; a failure
    /// of the sink (a full or broken library) is not the file's fault and ends the backup. A file with holes
    /// (fewer blocks than its size) is read extent by extent: a hole costs no read and no chunk, only an entry
    /// with the empty id and its length (NodeExtensions.IsHole), and the restore leaves it a hole.
    /// </summary>
    private string? ReadFile(FileJob job, StreamChunker chunker, ChunkEncoder encoder, CancellationToken cancel)
    {
        var expected = (int)Math.Min(job.Stat.Size / (ulong)chunker.MinSize + 2, 1 << 16);
        var ids = new byte[expected * ChunkId.Size];
        var count = 0;
        long size = 0;
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            // The very file the walk saw, by handle: a symlink or FIFO swapped in since is refused, never followed or waited on.
            handle = Posix.Posix.OpenWalked(job.Path, job.Stat);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ReadFailure(e);
        }
        void Entry(ChunkId id, long length)
        {
            if ((count + 1) * ChunkId.Size > ids.Length) Array.Resize(ref ids, ids.Length * 2);
            id.WriteTo(ids.AsSpan(count * ChunkId.Size));
            count++;
            job.Node.ChunkSizes.Add((uint)length);
            size += length;
        }
        string? Read(Stream stream)
        {
            chunker.Reset(stream);
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                ReadOnlyMemory<byte> chunk;
                try
                {
                    if (!chunker.TryNext(out chunk)) return null;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return ReadFailure(e);
                }
                _limit?.Take(chunk.Length, cancel);
                var r = encoder.Store(chunk.Span, RecordFlags.None, sink);
                Entry(r.Id, chunk.Length);
                Interlocked.Add(ref _bytesDone, chunk.Length);
                Interlocked.Increment(ref _chunksTotal);
                if (r.IsNew)
                {
                    Interlocked.Increment(ref _chunksNew);
                    Interlocked.Add(ref _bytesNew, chunk.Length);
                    Interlocked.Add(ref _bytesStored, r.StoredLength);
                }
            }
        }
        void Hole(long length)
        {
            Interlocked.Add(ref _holeBytes, length);
            for (; length > 0; length -= Math.Min(length, NodeExtensions.MaxHoleEntry)) Entry(default, Math.Min(length, NodeExtensions.MaxHoleEntry));
        }
        using (handle)
        {
            job.Node.Flags = FileFlags.Get(handle);
            var extents = job.Stat.MayBeSparse ? Posix.Posix.DataExtents(handle, (long)job.Stat.Size) : null;
            if (extents is null || extents is [(0, var all)] && all == (long)job.Stat.Size)
            {
                using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
                if (Read(stream) is { } failed) return failed;
            }
            else
            {
                long at = 0;
                foreach (var (offset, length) in extents)
                {
                    if (offset > at) Hole(offset - at);
                    var before = size;
                    if (Read(new ExtentStream(handle, offset, length)) is { } failed) return failed;
                    at = offset + (size - before); // what was read (a file that shrank meanwhile is flagged below)
                }
                if ((long)job.Stat.Size > at) Hole((long)job.Stat.Size - at);
            }
        }
        job.Node.Chunks = ByteString.CopyFrom(ids, 0, count * ChunkId.Size);
        job.Node.Size = (ulong)size;
        var after = Posix.Posix.LStat(job.Path);
        if (after is not { } a || a.Size != job.Stat.Size || a.MtimeSec != job.Stat.MtimeSec || a.MtimeNsec != job.Stat.MtimeNsec
            || a.CtimeSec != job.Stat.CtimeSec || a.CtimeNsec != job.Stat.CtimeNsec || a.Inode != job.Stat.Inode || (ulong)size != job.Stat.Size)
        {
            // Keep what was read (a consistent set of chunks) but say that it may be a torn view of the file.
            Error(job.Path, "changed while it was read: the stored copy may mix old and new content");
        }
        return null;
    }

    /// <summary>One data extent of a sparse file, read through the file's handle at its offsets.</summary>
    private sealed class ExtentStream(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset, long length) : Stream
    {
        private long _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int index, int count) => Read(buffer.AsSpan(index, count));

        public override int Read(Span<byte> buffer)
        {
            var want = (int)Math.Min(buffer.Length, length - _position);
            if (want <= 0) return 0;
            var n = RandomAccess.Read(handle, buffer[..want], offset + _position);
            _position += n;
            return n;
        }

        public override void Flush() { }
        public override long Seek(long o, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int index, int count) => throw new NotSupportedException();
    }

    private static string ReadFailure(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "vanished before it could be read",
        Posix.FileChangedException => e.Message,
        UnauthorizedAccessException => $"permission denied: {e.Message}",
        _ => $"read error: {e.Message}",
    };

    private ChunkId StoreTree(DirBuild dir, ChunkEncoder encoder)
    {
        foreach (var sub in dir.SubDirs)
        {
            var subtree = StoreTree(sub, encoder);
            _references.Add(subtree);
            sub.Node.Subtree = ByteString.CopyFrom(subtree.ToArray());
        }
        foreach (var node in dir.Children)
            if (node.Type != NodeType.Unspecified)
                for (var i = 0; i < node.ChunkCount(); i++)
                    if (node.ChunkAt(i) is var id && !NodeExtensions.IsHole(id)) _references.Add(id); // a hole is no chunk
        if (dir.Same is { } same) return same; // every entry as in the parent: its tree, checked to be in the library
        var tree = new Tree();
        tree.Nodes.AddRange(dir.Children.Where(n => n.Type != NodeType.Unspecified).OrderBy(n => n.FileName(), StringComparer.Ordinal));
        var r = encoder.Store(tree.ToByteArray(), RecordFlags.Tree, sink);
        if (r.IsNew)
        {
            _stats.TreesNew++;
            Interlocked.Add(ref _bytesStored, r.StoredLength);
        }
        return r.Id;
    }
}
