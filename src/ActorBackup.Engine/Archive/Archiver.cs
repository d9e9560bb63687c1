using System.Collections.Concurrent;
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
/// Turns a backup set into a snapshot, streaming: the walk (one thread: lstat every entry, compare it with the
/// parent snapshot's tree) queues each file whose content must be read, readers (one per core; big files ahead of
/// the rest) chunk, hash and, when new, compress, seal and append them, and a folder's tree is stored as soon as
/// every entry in it is final (read, confirmed unchanged, stored), then let go. The queue and the batches of unchanged
/// files asked about (FlushReused) are bounded, so a backup holds the folders still open, not the whole tree: its
/// memory is flat in the number of files. A folder whose every entry is as in the parent keeps the parent's tree
/// (not built or stored again). The root tree id names the snapshot. A file that cannot be read, vanishes or changes
/// while read goes to the snapshot's error list; the backup goes on. Nothing is visible to a restore until the sink
/// commits and the caller records the manifest.
/// </summary>
public sealed class Archiver(CellKeys keys, IChunkSink sink, IChunkSource source, CellKeys? parentKeys = null)
{
    /// <summary>
    /// A folder being built. Its tree is stored as soon as everything in it is final (Pending falls to 0: walked, its files
    /// read or confirmed, its folders stored), and its entries are let go then: the walk streams, and what a backup holds
    /// is the folders still open, not the whole tree.
    /// </summary>
    private sealed class DirBuild(string path, Node node, DirBuild? up = null)
    {
        public string Path { get; } = path;
        public Node Node { get; } = node;
        public DirBuild? Up { get; } = up;
        public List<Node> Children { get; private set; } = [];
        public List<DirBuild> SubDirs { get; private set; } = [];
        /// <summary>The parent snapshot's tree of this folder, when it was walked against one.</summary>
        public ParentTree? From { get; set; }
        /// <summary>
        /// Entries of <see cref="From"/> taken as they are (files found unchanged field for field): by their index, no node
        /// made, unless one is made since (ParentTree.Made: a file the library lost chunks of, read again).
        /// </summary>
        public List<int> Kept { get; private set; } = [];
        /// <summary>What keeps its tree from being stored: 1 while it is walked, and one for each entry not final yet.</summary>
        public int Pending = 1;
        /// <summary>The parent snapshot's record of this folder, when its names may be the parent's tree's (<see cref="ListsAsParent"/>).</summary>
        public Recorded? Recorded { get; set; }

        /// <summary>Its tree is stored: its entries go (its own node stays in its folder's).</summary>
        public void Release()
        {
            Children = [];
            SubDirs = [];
            Kept = [];
            From?.Return(); // nothing reads it again: its arrays go back to the pool
            From = null;
        }
        /// <summary>
        /// The parent snapshot's tree of this folder when every entry came out equal to the parent's (so its tree would
        /// be the same bytes, under the same id): stored again only if the library lost it. Null: store it.
        /// </summary>
        public ChunkId? Same { get; set; }

        /// <summary>The further records of <see cref="Same"/> (Tree.parts; none for most folders): referenced and checked with it.</summary>
        public IReadOnlyList<ChunkId> SameParts { get; set; } = [];

        /// <summary>An entry below changed after it was compared (a reused file read again, a path of the set added): no parent's tree here or above.</summary>
        public bool Dirty { get; private set; }

        /// <summary>An entry below changed after it was compared: this folder and those above are stored, even those still being walked.</summary>
        public void Changed()
        {
            for (var d = this; d is not null; d = d.Up)
            {
                d.Same = null;
                d.Dirty = true;
            }
        }
    }

    /// <param name="Dir">its folder, whose tree waits for it</param>
    /// <param name="Group">when it is the first name of an inode with more: the group its other names wait in</param>
    /// <param name="Part">a part of a big file (Read): the readers read its parts at once</param>
    /// <param name="Fine">cut with one of BlockFiles' finer chunkers (a disk image or a database, by its name or its first
    /// bytes): 1 + its index in BlockFiles.Chunkers; 0 for the policy's</param>
    private sealed record FileJob(string Path, Node Node, FileStat Stat, DirBuild Dir, LinkGroup? Group = null, Part? Part = null, int Fine = 0);

    /// <summary>A big file read in parts by several readers at once: each part's chunks, put in order when the last is read.</summary>
    private sealed class SplitFile(FileJob whole, int parts)
    {
        public FileJob Whole { get; } = whole;
        public readonly byte[][] Ids = new byte[parts][];
        public readonly List<uint>[] Sizes = new List<uint>[parts];
        public int Left = parts;
        public volatile string? Error;
        private Microsoft.Win32.SafeHandles.SafeFileHandle? _handle;

        /// <summary>
        /// The file, opened once for every part (positional reads): all parts read the inode the first one opened, so a
        /// file renamed over or deleted meanwhile is read whole as it was, as a file read in one go is.
        /// </summary>
        public Microsoft.Win32.SafeHandles.SafeFileHandle Open()
        {
            lock (this) return _handle ??= Posix.Posix.OpenWalked(Whole.Path, Whole.Stat);
        }

        /// <summary>The last part is done: the handle goes.</summary>
        public void Close()
        {
            lock (this) _handle?.Dispose();
        }
    }

    /// <summary>Bytes [Offset, Offset + Length) of a big file, chunked on their own (the chunk boundaries start again at each part).</summary>
    private sealed record Part(SplitFile File, int Index, long Offset, long Length);

    /// <summary>The names of one inode (hard links): the others take the first's chunks once it is read or confirmed.</summary>
    private sealed class LinkGroup(Node first, string path, uint names, FileStat st)
    {
        public Node First { get; } = first;
        /// <summary>
        /// Whether <paramref name="other"/> (a name with the group's device and inode) is still the file its first name
        /// was: an inode number freed and given to a new file while the walk ran (a group whose other names are outside
        /// the set stays in the table to the end) would otherwise be linked to another file's content. By its mtime and
        /// size (its ctime changes with its link count); a file written between two of its names' stats makes a group
        /// of its own, read anew: its content right, its names no longer one inode.
        /// </summary>
        public bool Same(FileStat other) => other.MtimeSec == st.MtimeSec && other.MtimeNsec == st.MtimeNsec && other.Size == st.Size;
        public string Path { get; } = path;
        public bool Done;
        /// <summary>A symlink's, FIFO's, socket's or device's names (<see cref="JoinGroup"/>): no content to wait for.</summary>
        public bool Special;
        /// <summary>
        /// How many of its names the walk met: at the link count its first name had (a name removed meanwhile does not
        /// keep a later one from finding the group), it leaves the table (<see cref="_firstLinks"/>).
        /// </summary>
        public uint Seen = 1;
        public uint Names { get; } = names;
        public List<(Node Link, DirBuild Dir)> Waiting = [];
    }

    /// <summary>What the nodes of a snapshot made now record (SnapshotManifest.node_format): extended attributes and file flags of every entry, and the names of the users and groups its ACLs name.</summary>
    /// <summary>
    /// The newest node format this build reads and writes. 2: xattrs and flags; 3: the names of the users and groups in
    /// ACL entries (and chunk lists); 4: folders' trees in several records (Tree.parts), written only by a snapshot that
    /// has such a folder (an older build would read its first record alone: it refuses the snapshot instead), others 3.
    /// </summary>
    public const uint NodeFormat = 4;

    /// <summary>The node format of a snapshot without a folder's tree in parts (<see cref="NodeFormat"/>).</summary>
    private const uint WholeTreesFormat = 3;

    /// <summary>
    /// Refuses a snapshot whose trees are of a node format newer than this build reads: fields it does not know (a big
    /// file's chunk lists were one) would be dropped without a word, and files come back empty or wrong.
    /// </summary>
    /// <exception cref="IOException">the snapshot is of a newer format</exception>
    public static void CheckReadable(SnapshotManifest snapshot)
    {
        if (snapshot.NodeFormat > NodeFormat)
            throw new IOException($"snapshot {snapshot.Id} was made by a newer ActorBackup (node format {snapshot.NodeFormat}; this one reads up to " +
                                           $"{NodeFormat}): restore or verify it with that version or a newer one");
    }

    /// <summary>One reading thread's chunkers (the policy's, and BlockFiles' finer ones, each made when first needed) and encoder.</summary>
    private sealed class FileWorker(StreamChunker chunker, FastCdc?[] fine, ChunkEncoder encoder) : IDisposable
    {
        private readonly StreamChunker?[] _fine = new StreamChunker?[fine.Length];
        public ChunkEncoder Encoder => encoder;

        /// <summary>The chunker for <paramref name="job"/>: a file rewritten in place by blocks is cut finer.</summary>
        public StreamChunker For(FileJob job) =>
            job.Fine > 0 && fine[job.Fine - 1] is { } cdc ? _fine[job.Fine - 1] ??= new StreamChunker(cdc) : chunker;

        public void Dispose()
        {
            chunker.Dispose();
            foreach (var f in _fine) f?.Dispose();
            encoder.Dispose();
        }
    }

    private readonly List<SnapshotError> _errors = [];
    /// <summary>The inodes of more than one name whose names the walk has not all met yet (a group leaves once it has: the table holds the groups open, not every hard-linked file of the run).</summary>
    private readonly Dictionary<(ulong Dev, ulong Ino), LinkGroup> _firstLinks = [];
    /// <summary>The hard-link groups still in the table (tests: a group whose names were all met leaves it).</summary>
    internal int LinkGroupsHeld => _firstLinks.Count;
    private readonly object _linkLock = new();
    /// <summary>
    /// Chunk ids the snapshot references (its trees and its files' chunks), collected as the trees are stored and handed
    /// to the sink in parts, each sorted and without repeats (FlushReferences; a list is cheaper to fill than a set).
    /// </summary>
    private readonly List<ChunkId> _references = [];
    private const int ReferencesPerPart = 256 * 1024;
    private string _snapshotId = "";
    /// <summary>Trees are stored one at a time (by the walk or by a reader that finished a folder's last file).</summary>
    private readonly object _treeLock = new();
    private ChunkEncoder _treeEncoder = null!;
    private ChunkId? _rootId;
    /// <summary>Files to read: big ones (read first, so that none starts last) and the rest; bounded, so the walk waits for the readers.</summary>
    private BlockingCollection<FileJob> _big = null!, _small = null!;
    private const ulong BigFile = 4 << 20;
    /// <summary>How many files may wait for the readers (and a quarter as many big ones).</summary>
    internal int QueuedFiles { get; init; } = 4096;
    /// <summary>Called with a folder's path right before it is opened to be listed (tests: a folder swapped meanwhile).</summary>
    internal Action<string>? BeforeListing { get; init; }
    /// <summary>Called with a folder's path when its names are taken from the parent's tree, not listed (tests).</summary>
    internal Action<string>? ListedAsParent { get; init; }
    /// <summary>Called with an entry's path right before its extended attributes are read (tests: a read that fails).</summary>
    internal Action<string>? BeforeXattrs { get; init; }
    /// <summary>Called with a file's path right before a reader opens it (tests: a file gone meanwhile).</summary>
    internal Action<string>? BeforeRead { get; init; }
    /// <summary>The most folders open at once in the last run (walked or being walked, their trees not stored yet).</summary>
    internal int PeakOpenFolders => _peakOpen;
    private int _open, _peakOpen;

    private DirBuild NewDir(string path, Node node, DirBuild? up)
    {
        var open = Interlocked.Increment(ref _open);
        if (open > _peakOpen) _peakOpen = open; // only the walk opens folders
        return new DirBuild(path, node, up);
    }
    private long _filesQueued, _bytesQueued;
    private ExcludeMatcher _excludes = new([]);
    /// <summary>The set's <see cref="BackupSet.ExcludeIfPresent"/>, sorted and each once.</summary>
    private string[] _markers = [];
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
    /// <summary>
    /// A folder's names may be its parent's tree's (<see cref="ListsAsParent"/>): the parent walked the same paths with the
    /// same excludes, its nodes record all, its trees are whole listings, and it ran in this boot and ended before now by
    /// the clock (<see cref="NamesFromParent"/>). Then a folder's recorded times must lie before <see cref="_settledBefore"/>,
    /// and no error of the parent may name the folder or an entry in it (<see cref="_parentErrorFolders"/>).
    /// </summary>
    private bool _namesFromParent;
    /// <summary>
    /// The parent's start (its milliseconds rounded up) less the options' <see cref="BackupOptions.RereadChangedWithin"/>:
    /// an entry whose recorded ctime is this or later is read again (<see cref="Settled"/>), a folder whose times are is
    /// listed again (<see cref="ListsAsParent"/>).
    /// </summary>
    private (long Sec, uint Nsec) _settledBefore;
    private HashSet<string>? _parentErrorFolders;

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
        // A parent of a newer node format (a build went back): its nodes may hold what this one does not know of, so none is reused.
        if (parent?.NodeFormat > NodeFormat) parent = null;
        options.Chunker.Validate();
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var snapshotId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        _set = set;
        _treesInParts = false;
        _excludes = new ExcludeMatcher(set.Excludes);
        if (set.ExcludeIfPresent.FirstOrDefault(m => BackupSet.BadMarker(m) is not null) is { } bad) throw new ArgumentException(BackupSet.BadMarker(bad));
        _markers = set.ExcludeIfPresent.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        using var parentTrees = new TreeReader(parentUnder, source);
        _parentTrees = parentTrees;
        _parentRecordsAll = parent?.NodeFormat >= WholeTreesFormat;
        _parentTreesSameKeys = parentUnder.Trees == keys.Trees;
        // The set's paths, as the walk takes them (written as ls shows them: a name that is not UTF-8 with \xHH escapes).
        var paths = set.Paths.Select(NormalizePath).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (options.RereadChangedWithin < TimeSpan.Zero) throw new ArgumentException("RereadChangedWithin must not be negative", nameof(options));
        _settledBefore = parent is null ? default : Stamp(parent.StartedUnixMs + 1 - (long)options.RereadChangedWithin.TotalMilliseconds);
        NamesFromParent(set, paths, parent);
        _snapshotId = snapshotId;
        using var session = keys.Cipher.BeginUpload();
        using var treeSession = keys.Trees.Cipher.BeginUpload();
        using var treeEncoder = new ChunkEncoder(keys.Trees, treeSession, options.CompressionLevel);
        _treeEncoder = treeEncoder;
        var cdc = new FastCdc(keys.Gear, options.Chunker);
        // The finer chunkers of BlockFiles, those finer than the policy's (a policy whose chunks are as fine needs none).
        var fineCdc = BlockFiles.Chunkers.Select(o => options.Chunker.AverageSize > o.AverageSize ? new FastCdc(keys.Gear, o) : null).ToArray();
        _fineCdc = fineCdc;
        _limit = RateLimit.For(options.MaxBytesPerSecond);
        _partSize = Math.Max(MinPartSize, 64L * options.Chunker.AverageSize);
        void Report() => progress?.Report(new BackupProgress(Interlocked.Read(ref _filesDone), Interlocked.Read(ref _filesQueued),
            Interlocked.Read(ref _bytesDone) + Interlocked.Read(ref _holeBytes), Interlocked.Read(ref _bytesQueued), Interlocked.Read(ref _chunksNew), Interlocked.Read(ref _bytesStored),
            // Counted by the walk's own thread; a figure a moment old is all a report needs.
            (long)(_stats.Files + _stats.Directories + _stats.Other)));

        // The walk and the reading run at once: the walk queues each changed file, the readers (one per core) read
        // them, and each folder's tree is stored when its last entry is final.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var big = new BlockingCollection<FileJob>(Math.Max(1, QueuedFiles / 4));
        using var small = new BlockingCollection<FileJob>(QueuedFiles);
        using var room = new ManualResetEventSlim(false, spinCount: 0);
        (_big, _small, _stop, _room) = (big, small, stop.Token, room);
        Exception? fatal = null;
        var readers = Enumerable.Range(0, Math.Max(1, options.Parallelism)).Select(_ => new Thread(() =>
        {
            FileWorker? worker = null; // made on the first file: an unchanged backup makes none (a chunker holds 8 MiB)
            try
            {
                while (BlockingCollection<FileJob>.TryTakeFromAny([big, small], out var job, Timeout.Infinite, stop.Token) >= 0 && job is not null)
                {
                    Taken();
                    worker ??= new FileWorker(new StreamChunker(cdc), fineCdc, new ChunkEncoder(keys.Data, session, options.CompressionLevel));
                    BeforeRead?.Invoke(job.Path);
                    var error = ReadFile(job, worker.For(job), worker.Encoder, stop.Token);
                    if (job.Part is { } part)
                    {
                        PartRead(part, error);
                        continue;
                    }
                    if (error is not null)
                    {
                        job.Node.Type = NodeType.Unspecified; // left out of its tree
                        Error(job.Path, error);
                    }
                    Interlocked.Increment(ref _filesDone);
                    Final(job);
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref fatal, e, null);
                stop.Cancel(); // the walk and the other readers stop too
            }
            finally
            {
                worker?.Dispose();
            }
        }) { IsBackground = true, Name = "archiver" }).ToList();
        readers.ForEach(t => t.Start());
        // The parent's trees of the folders ahead of the walk are read on a thread of their own (ReadAhead).
        using var readAhead = new BlockingCollection<Action>();
        var treeThread = parent is null ? null : new Thread(() =>
        {
            foreach (var read in readAhead.GetConsumingEnumerable()) read();
        }) { IsBackground = true, Name = "archiver-trees" };
        if (treeThread is not null) _readAhead = readAhead;
        treeThread?.Start();
        var root = NewDir("/", new Node { Type = NodeType.Directory }, null);
        double walkSeconds = 0;
        using (var timer = progress is null ? null : new Timer(_ => Report(), null, 250, 250))
        {
            try
            {
                ParentTree? parentRoot = parent is { RootTree.Length: ChunkId.Size } ? LoadParentTree(new ChunkId(parent.RootTree.Span), "/") : null;
                _setPaths = paths.ToHashSet(StringComparer.Ordinal);
                // A folder on the way to another path of the set stays open until every path is walked: a path inside
                // another is walked with it, or on its own where that walk left it out (a mount point with
                // --one-file-system, an excluded or unreadable folder), into the same open folder.
                foreach (var path in paths)
                    for (var slash = path.LastIndexOf('/'); slash > 0; slash = path.LastIndexOf('/', slash - 1))
                        _onTheWay.Add(path[..slash]);
                var walked = 0;
                foreach (var raw in paths)
                {
                    var st = Posix.Posix.LStat(raw);
                    if (st is null)
                    {
                        Error(raw, "path does not exist");
                        continue;
                    }
                    walked++;
                    WalkPath(root, parentRoot, raw, st.Value, stop.Token);
                }
                if (walked == 0) throw new DirectoryNotFoundException($"none of the backup set's paths exists ({string.Join(", ", set.Paths)}): check them on the client");
                FlushReused();
                walkSeconds = clock.Elapsed.TotalSeconds;
                // The folders on the way to the paths, and the root, held a token of the walk until now.
                foreach (var held in _heldOpen) Done(held);
                Done(root);
            }
            catch (Exception) when (fatal is not null)
            {
                // A reader failed first (the walk then stops, or fails on the library the reader broke): the reader's is the one to report.
            }
            catch
            {
                stop.Cancel(); // the walk failed: the readers stop, what they queued is not read
                throw;
            }
            finally
            {
                big.CompleteAdding();
                small.CompleteAdding();
                readers.ForEach(t => t.Join());
                readAhead.CompleteAdding(); // every read ahead was waited for by the folder that asked (Drain)
                treeThread?.Join();
            }
            if (fatal is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(fatal).Throw();
            cancel.ThrowIfCancellationRequested();
        }
        var readSeconds = clock.Elapsed.TotalSeconds;
        var rootId = _rootId ?? throw new InvalidOperationException("the backup's root tree was not stored: a folder still waits for an entry");
        lock (_treeLock)
        {
            _references.Add(rootId);
            FlushReferences();
        }
        var treeSeconds = clock.Elapsed.TotalSeconds;
        if (options.Commit) sink.Commit();
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
        // Its start as the end less the time it ran (a monotonic clock): a wall clock stepped back while it ran (NTP after
        // a VM resumed ahead) would leave a start later than the truth, and the next backup would trust what changed then.
        var finished = DateTimeOffset.UtcNow;
        var manifest = new SnapshotManifest
        {
            Id = snapshotId,
            BackupSet = set.Name,
            Client = keys.Client,
            Keys = keys.Scheme,
            Level = options.Level,
            Parent = parent?.Id ?? "",
            StartedUnixMs = Math.Min(started.ToUnixTimeMilliseconds(), (finished - clock.Elapsed).ToUnixTimeMilliseconds()),
            FinishedUnixMs = finished.ToUnixTimeMilliseconds(),
            RootTree = ByteString.CopyFrom(rootId.ToArray()),
            NodeFormat = _treesInParts ? NodeFormat : WholeTreesFormat,
            Listings = ListingsFormat,
            Library = options.Library,
            Stats = _stats,
            Job = options.Job,
        };
        if (_rootNode is not null)
        {
            manifest.Root = _rootNode.Clone();
            manifest.Root.Subtree = ByteString.Empty; // the root tree
        }
        manifest.Paths.AddRange(set.Paths.Select(p => PosixNames.Display(NormalizePath(p)))); // as listings show them
        manifest.Excludes.AddRange(set.Excludes ?? []);
        manifest.ExcludeIfPresent.AddRange(_markers);
        manifest.Errors.AddRange(RecordedErrors(_errors.OrderBy(e => e.Path, StringComparer.Ordinal), MaxErrorsRecorded, MaxErrorBytesRecorded, out var omitted));
        manifest.ErrorsOmitted = omitted;
        return manifest;
    }

    /// <summary>The most errors a manifest lists, and the most bytes of their paths and reasons (the rest only counted).</summary>
    public const int MaxErrorsRecorded = 10_000, MaxErrorBytesRecorded = 256 * 1024;

    /// <summary>
    /// The errors a manifest lists, in their order, up to <paramref name="maxCount"/> and <paramref name="maxBytes"/> of
    /// paths and reasons; <paramref name="omitted"/> counts the rest. A host with a hundred thousand unreadable files made
    /// a manifest larger than the cell's 4 MiB messages: its snapshot was never recorded, its end sent again and again.
    /// </summary>
    public static List<SnapshotError> RecordedErrors(IEnumerable<SnapshotError> errors, int maxCount, int maxBytes, out ulong omitted)
    {
        var kept = new List<SnapshotError>();
        long bytes = 0;
        omitted = 0;
        foreach (var e in errors)
        {
            bytes += System.Text.Encoding.UTF8.GetByteCount(e.Path) + System.Text.Encoding.UTF8.GetByteCount(e.Reason);
            if (kept.Count < maxCount && bytes <= maxBytes) kept.Add(e);
            else omitted++;
        }
        return kept;
    }

    /// <summary>An entry's extended attributes as read, or why they could not be.</summary>
    private readonly record struct XattrRead(IReadOnlyList<(byte[] Name, byte[] Value)>? Xattrs, string? Failure);

    /// <summary>
    /// A file's or folder's extended attributes (one call, most often answering none; an entry whose inode and ctime
    /// are the parent's keeps the parent's instead, <see cref="KeepsParentXattrs"/>): by its name in its folder's handle
    /// when the walk has one (the walk lists and stats through it), else by its path (a path of the set, or the folders
    /// on its way).
    /// </summary>
    private XattrRead ReadXattrs(string path, Microsoft.Win32.SafeHandles.SafeFileHandle? folder = null, string? name = null)
    {
        try
        {
            BeforeXattrs?.Invoke(path);
            return new(folder is null ? Posix.Posix.ReadXattrs(path) : Posix.Posix.ReadXattrsAt(folder, name!, path), null);
        }
        catch (IOException e)
        {
            return new(null, e.Message);
        }
    }

    /// <summary>The extended attributes read into the node; when they could not be, the path is reported.</summary>
    private void TakeXattrs(Node node, string path, XattrRead read)
    {
        if (read.Xattrs is { } xattrs)
        {
            foreach (var (name, value) in xattrs)
            {
                node.Xattrs.Add(new Xattr { Name = ByteString.CopyFrom(name), Value = ByteString.CopyFrom(value) });
                if (AclIds.IsAcl(name)) NameAclIds(node, value);
            }
            return;
        }
        Error(path, $"its extended attributes are not backed up: {read.Failure}");
        // No ctime recorded: the next backup does not take this node's (empty) xattrs, or its content, as the
        // entry's, but reads them again (KeepsParentXattrs, Unchanged).
        node.CtimeSec = 0;
        node.CtimeNsec = 0;
    }

    /// <summary>The names, on this host, of the users and groups an ACL of the node names by id (AclIds): a restore elsewhere maps them.</summary>
    private void NameAclIds(Node node, ReadOnlySpan<byte> acl)
    {
        foreach (var (group, id) in AclIds.Named(acl))
            if ((group ? _owners.Group(id) : _owners.User(id)) is { Length: > 0 } name)
                (group ? node.AclGroups : node.AclUsers).SetAclName(id, name);
    }

    /// <summary>
    /// Whether an entry takes the parent's extended attributes instead of reading its own: the same inode and ctime as
    /// in a parent that recorded them (setting one changes the ctime), and the same kind.
    /// </summary>
    private bool KeepsParentXattrs(Node? parentNode, FileStat st) =>
        parentNode is not null && KeepsParentXattrs(parentNode.Type, parentNode.Inode, parentNode.CtimeSec, parentNode.CtimeNsec, st);

    private bool KeepsParentXattrs(in ParentTree.Scanned parent, FileStat st) =>
        KeepsParentXattrs(parent.Type, parent.Inode, parent.CtimeSec, parent.CtimeNsec, st);

    private bool KeepsParentXattrs(NodeType parentType, ulong inode, long ctimeSec, uint ctimeNsec, FileStat st)
    {
        var type = TypeOf(st.Kind);
        return _parentRecordsAll && inode == st.Inode && ctimeSec == st.CtimeSec && ctimeNsec == st.CtimeNsec && Settled(ctimeSec, ctimeNsec)
               && (parentType == type || parentType == NodeType.Hardlink && type == NodeType.File);
    }

    /// <summary>Records a path the snapshot leaves out or holds imperfectly, as PosixNames.Display shows it.</summary>
    private void Error(string path, string reason)
    {
        lock (_errors) _errors.Add(new SnapshotError { Path = PosixNames.Display(path), Reason = reason });
    }

    /// <summary>Whether (and when) a folder's names may be taken from the parent's tree this run (<see cref="ListsAsParent"/>).</summary>
    private void NamesFromParent(BackupSet set, List<string> paths, SnapshotManifest? parent)
    {
        // The parent ran since this system booted (a crash between would leave a folder's new names on disk and its
        // times as before, on a file system without a journal), and the clock has not gone back since it ended.
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        _namesFromParent = parent is { Listings: >= ListingsFormat, StartedUnixMs: > 0, ErrorsOmitted: 0 } && _parentRecordsAll
            && Posix.Posix.BootTime() is { } boot && parent.StartedUnixMs > (boot + BootSlack) * 1000 && parent.FinishedUnixMs <= now
            && parent.Excludes.SequenceEqual(set.Excludes ?? [], StringComparer.Ordinal) && parent.ExcludeIfPresent.SequenceEqual(_markers, StringComparer.Ordinal)
            && parent.Paths.Select(PosixNames.Parse).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).SequenceEqual(paths, StringComparer.Ordinal);
        if (!_namesFromParent) return;
        // An error names an entry (left out of its folder's tree) or a folder (not listed, or listed in part).
        _parentErrorFolders = parent!.Errors.Count == 0 ? null
            : parent.Errors.SelectMany(e => new[] { e.Path, e.Path.LastIndexOf('/') is > 0 and var slash ? e.Path[..slash] : "/" }).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>What a snapshot's <c>listings</c> says of its trees (<see cref="ListsAsParent"/>): 1, each folder's whole listing.</summary>
    public const uint ListingsFormat = 1;

    /// <summary>How far /proc/stat's boot time may move with the clock's adjustments (it is the time now less the time up).</summary>
    private const long BootSlack = 10;

    /// <summary>What the parent snapshot recorded of a folder: a folder still so holds the names it held then.</summary>
    internal readonly record struct Recorded(ulong Device, ulong Inode, long MtimeSec, uint MtimeNsec, long CtimeSec, uint CtimeNsec)
    {
        public static Recorded Of(Node node) => new(node.Device, node.Inode, node.MtimeSec, node.MtimeNsec, node.CtimeSec, node.CtimeNsec);
        public static Recorded Of(in ParentTree.Scanned e) => new(e.Device, e.Inode, e.MtimeSec, e.MtimeNsec, e.CtimeSec, e.CtimeNsec);
        public bool Is(in FileStat now) => now.Kind == FileKind.Directory && now.Device == Device && now.Inode == Inode
            && now.MtimeSec == MtimeSec && now.MtimeNsec == MtimeNsec && now.CtimeSec == CtimeSec && now.CtimeNsec == CtimeNsec;
    }

    /// <summary>
    /// The parent's record of a folder (<paramref name="recorded"/>) when the folder's names may be its tree's instead of
    /// listed again, else null. A name added, removed or renamed changes a folder's ctime (and mtime), so a folder whose
    /// inode and times are as recorded holds the names the parent listed, provided that: the parent walked the same paths
    /// with the same excludes, says its trees are whole listings, ran in this boot and ended before now by the clock
    /// (<see cref="_namesFromParent"/>), so its tree of the folder is the folder's listing; no error of the parent names
    /// the folder or an entry in it (left out of that tree); the folder is on the file system of its path of the set (a
    /// mount point left out with --one-file-system has an empty tree); its times lie at least
    /// <see cref="BackupOptions.RereadChangedWithin"/> before the parent began (a change made after the parent listed it, in the same
    /// tick of a coarse clock, would leave them as recorded) and are not whole seconds. When it is opened (<see cref="List"/>)
    /// its handle's stat must still be the record, the tree hold names, in order, and its file system keep folder times
    /// so (Posix.FolderTimesFollowNames: a local one, not encrypted, not a file system's top).
    /// </summary>
    private Recorded? ListsAsParent(Recorded? recorded, string path, ulong device, ulong rootDevice)
    {
        if (!_namesFromParent || recorded is not { } r || device != rootDevice) return null;
        if (!Settled(r.MtimeSec, r.MtimeNsec) || !Settled(r.CtimeSec, r.CtimeNsec)) return null;
        // Times in whole seconds (ext2/3, ext4 of small inodes): a clock set back since could bring a change into the
        // recorded second.
        if (r is { MtimeNsec: 0, CtimeNsec: 0 }) return null;
        if (_parentErrorFolders is not null && _parentErrorFolders.Contains(PosixNames.Display(path))) return null;
        return r;
    }

    /// <summary>
    /// Whether the parent's record of an entry whose recorded time (its ctime; a folder's mtime too) is this may be
    /// trusted when its times still match: the time lies <see cref="BackupOptions.RereadChangedWithin"/> or more before
    /// the parent began (<see cref="_settledBefore"/>). Else (git's "racy clean") a change made after the parent read the
    /// entry, within the same tick of the file system's clock, would match the record and be missed for good; such an
    /// entry is read again (its content and xattrs, a folder's names), once.
    /// </summary>
    private bool Settled(long sec, uint nsec) => sec < _settledBefore.Sec || (sec == _settledBefore.Sec && nsec < _settledBefore.Nsec);

    /// <summary>A time in Unix milliseconds as seconds and nanoseconds (seconds rounded down, also before 1970).</summary>
    private static (long Sec, uint Nsec) Stamp(long unixMs)
    {
        var seconds = unixMs >= 0 ? unixMs / 1000 : (unixMs - 999) / 1000;
        return (seconds, (uint)((unixMs - seconds * 1000) * 1_000_000));
    }

    /// <summary>A path of the set as the walk takes it: its escapes read (<see cref="PosixNames.Parse"/>), absolute, no trailing slash.</summary>
    private static string NormalizePath(string path)
    {
        var full = Path.GetFullPath(PosixNames.Parse(path));
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    /// <summary>A parent's tree as stored: a big file's entries stay in its chunk-list records until the file is found unchanged (<see cref="Unchanged"/>).</summary>
    /// <remarks>
    /// A node whose lists are torn comes without entries (ParentTree.NodeAt), read again as a file whose lists are lost.
    /// </remarks>
    private ParentTree? LoadParentTree(ChunkId id, string path)
    {
        try
        {
            return _parentTrees.LoadParent(id);
        }
        catch (Exception e) when (e is IOException or KeyNotFoundException)
        {
            // Without the parent's listing the directory is simply read in full.
            Error(path, $"parent snapshot's tree unreadable, files read in full: {e.Message}");
            return null;
        }
    }

    private ParentTree? ParentSubtree(Node? parentNode, string path) =>
        parentNode is { Type: NodeType.Directory, Subtree.Length: ChunkId.Size } ? LoadParentTree(parentNode.SubtreeId(), path) : null;

    /// <summary>Adds one backup path under the synthetic root, creating the directories above it.</summary>
    private void WalkPath(DirBuild root, ParentTree? parentRoot, string path, FileStat st, CancellationToken cancel)
    {
        if (path == "/")
        {
            FillNode(root.Node, st);
            root.Node.Flags = Posix.Posix.FolderFlags("/") ?? st.Attributes;
            TakeXattrs(root.Node, "/", ReadXattrs("/"));
            _rootNode = root.Node;
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
            var parentNode = parentTree?.Find(parts[i]) is >= 0 and var at ? parentTree.NodeAt(at) : null;
            // Every folder on the way is held open (_onTheWay): one that stored its tree already would be a bug.
            if (Volatile.Read(ref dir.Pending) <= 0) throw new InvalidOperationException($"{PosixNames.Display(dir.Path)} was stored before the path {PosixNames.Display(path)} below it was walked");
            if (i == parts.Length - 1)
            {
                if (dir.Children.Any(c => c.FileName() == parts[i]) || dir.Kept.Any(k => dir.From!.NameIs(k, parts[i]))) return; // already there through an enclosing path
                dir.Changed(); // an entry its own walk left out: its tree is not the parent's
                AddEntry(dir, parts[i], current, st, parentNode, st.Device, cancel);
                return;
            }
            var existing = dir.SubDirs.FirstOrDefault(d => d.Node.FileName() == parts[i]);
            if (existing is null)
            {
                var ancestor = Posix.Posix.LStat(current) ?? throw new DirectoryNotFoundException($"{current} vanished during the backup");
                // A folder on the way that is a symlink (/home -> /data/home) is recorded as the folder it leads to, its
                // flags and xattrs read through it ("NAME/."): the paths below it restore, list and are found under it (as
                // a symlink node it held them where no restore, ls or find looks). The link itself is not kept.
                var through = current;
                if (ancestor.Kind == FileKind.Symlink)
                {
                    through = current + "/.";
                    ancestor = Posix.Posix.Stat(through) is { Kind: FileKind.Directory } folder ? folder
                        : throw new DirectoryNotFoundException($"{current} is a symlink that leads to no folder");
                }
                var node = new Node().Named(parts[i]);
                FillNode(node, ancestor);
                node.Flags = Posix.Posix.FolderFlags(through) ?? ancestor.Attributes; // not listed: its flags read through a handle (statx tells only a few)
                TakeXattrs(node, current, ReadXattrs(through));
                dir.Changed();
                existing = NewDir(current, node, dir);
                Interlocked.Increment(ref dir.Pending);
                _heldOpen.Add(existing); // not walked itself: its walk token holds it open until every path is walked
                dir.Children.Add(node);
                dir.SubDirs.Add(existing);
            }
            dir = existing;
            parentTree = ParentSubtree(parentNode, current);
        }
    }

    /// <summary>The folders on the way to a path of the set (walked or not): stored only once every path is walked.</summary>
    private readonly List<DirBuild> _heldOpen = [];
    private readonly HashSet<string> _onTheWay = new(StringComparer.Ordinal);
    /// <summary>The root folder's own node when the set holds "/" (SnapshotManifest.root).</summary>
    private Node? _rootNode;
    /// <summary>The set's paths, normalized.</summary>
    private HashSet<string> _setPaths = new(StringComparer.Ordinal);

    /// <summary>The owners' names, looked up once per id in a backup (a new backup sees a changed user database).</summary>
    private readonly OwnerNames _owners = new();

    private void FillNode(Node node, FileStat st)
    {
        node.Type = TypeOf(st.Kind);
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

    private static NodeType TypeOf(FileKind kind) => kind switch
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

    /// <summary>How many of a folder's names are stat-ed at once (on every core), then added in order.</summary>
    private const int StatBlock = 1024;

    /// <summary>How many names one thread takes at a time when a block's names are stat-ed on several (OnEveryCore, WorkRuns).</summary>
    private const int NamesPerRun = 64;

    /// <param name="listed">the folder listed and its first names stat-ed ahead (ListAhead), or null: listed here</param>
    private void WalkDirectory(DirBuild dir, ParentTree? parentTree, ulong rootDevice, CancellationToken cancel, Task<Listing>? listed = null)
    {
        cancel.ThrowIfCancellationRequested();
        _stats.Directories++;
        // The parent's tree id, kept below only when every entry comes out equal (a folder that cannot be listed has none).
        var candidate = dir.Same;
        dir.Same = null;
        var listing = listed?.GetAwaiter().GetResult();
        if (listing is not null && Stopwatch.GetElapsedTime(listing.Listed) > AheadMaxAge)
        {
            // Listed ahead long ago (the walk was deep in the folders before it): its names and stats are listed again,
            // so that what the walk compares and reads is as fresh as when each folder was listed in its turn.
            listing.Release();
            (listing, listed) = (null, null);
        }
        listing ??= List(dir.Path, dir.Node.Device, dir.Node.Inode, parentTree, asParent: ListsAsParent(dir.Recorded, dir.Path, dir.Node.Device, rootDevice));
        try
        {
            if (listing.Failure is { } failure)
            {
                Error(dir.Path, $"cannot list directory: {failure.Message}");
                return;
            }
            if (listed is not null)
            {
                listing.Runs?.Wait(); // the names left to stat, taken with the pool's thread (this one would wait otherwise)
                Attach(listing, parentTree);
            }
            dir.Node.Flags = listing.Flags;
            WalkListed(dir, listing, parentTree, candidate, rootDevice, cancel);
        }
        finally
        {
            listing.Release();
        }
    }

    /// <summary>The entries of a listed folder, block by block, compared with the parent's and added (WalkDirectory).</summary>
    private void WalkListed(DirBuild dir, Listing listing, ParentTree? parentTree, ChunkId? candidate, ulong rootDevice, CancellationToken cancel)
    {
        dir.From = parentTree;
        // The folder's tree is the parent's when each of its entries came out equal to the parent's, and no more or fewer.
        var same = candidate is not null && parentTree is not null;
        var equal = 0;
        if (parentTree is not null) dir.Kept.EnsureCapacity(parentTree.Count);
        var block = listing.Block;
        // The next subfolders' parent trees are read while this one is walked, and their names listed and stat-ed (up to
        // AheadFolders ahead: a walk of unchanged folders otherwise waits for each tree's decoding, and leaves a core idle
        // while it compares).
        var ahead = new Queue<Ahead>();
        var scan = 0;
        // The next subfolders the walk goes into (a mount point left out with --one-file-system is not).
        void TopUp(int count)
        {
            for (; scan < count && ahead.Count < AheadFolders; scan++)
                if (block[scan] is { Stat: { Kind: FileKind.Directory } sub } next && !(_set.OneFileSystem && sub.Device != rootDevice))
                {
                    var path = listing.Prefix + next.Name;
                    var tree = next.At >= 0 && parentTree![next.At] is { Type: NodeType.Directory, HasSubtree: true }
                        ? ReadAhead(parentTree.SubtreeId(next.At), path) : null;
                    // A big folder (its size, on most file systems, follows its names) is listed when the walk comes:
                    // the names of up to 8 folders waiting at every level of the walk stay few.
                    var names = sub.Size <= AheadFolderBytes
                        ? ListAhead(path, sub, tree, tree is null ? null : ListsAsParent(Recorded.Of(parentTree![next.At]), path, sub.Device, rootDevice)) : null;
                    ahead.Enqueue(new Ahead(scan, tree, names));
                }
        }
        try
        {
            for (var first = true; first || listing.Next < listing.Names.Count; first = false)
            {
                cancel.ThrowIfCancellationRequested();
                if (!first) StatNext(listing);
                var count = listing.Count;
                scan = 0;
                TopUp(count);
                for (var k = 0; k < count; k++)
                {
                    var e = block[k];
                    block[k] = default;
                    if (e.Failure is not null)
                    {
                        Error(listing.Prefix + e.Name, e.Failure);
                        continue;
                    }
                    if (e.Stat is not { } st)
                    {
                        Error(listing.Prefix + e.Name, "vanished before it could be read");
                        continue;
                    }
                    Task<ParentTree?>? mine = null;
                    Task<Listing>? mineListed = null;
                    if (st.Kind == FileKind.Directory && ahead.TryPeek(out var a) && a.At == k)
                    {
                        (mine, mineListed) = (a.Tree, a.Listed);
                        ahead.Dequeue();
                        TopUp(count);
                    }
                    if (e.At >= 0 && SameFile(parentTree!, e.At, e.Name, st))
                    {
                        Keep(dir, e.At, st);
                        equal++;
                        continue;
                    }
                    try
                    {
                        if (AddEntry(dir, e.Name, listing.Prefix + e.Name, st, e.At >= 0 ? parentTree!.NodeAt(e.At) : null, rootDevice, cancel, mine, e.Xattrs, mineListed)) equal++;
                        else same = false;
                    }
                    finally
                    {
                        Drain(mine);
                        Drain(mineListed);
                    }
                }
                DrainAll(ahead); // none left: each was taken at its place in the block
            }
        }
        finally
        {
            DrainAll(ahead);
        }
        if (same && !dir.Dirty && equal == parentTree!.Count)
        {
            // Its tree is the parent's if the library still has it: asked with the next batch of reused files.
            dir.Same = candidate;
            dir.SameParts = parentTree.Parts;
            Interlocked.Increment(ref dir.Pending);
            _sameDirs.Add(dir);
            if (_sameDirs.Count >= ReusedPerBatch) FlushReused();
        }
    }

    /// <summary>
    /// A folder's names, sorted, with its first block of them stat-ed (the whole folder, unless it holds more than
    /// <see cref="StatBlock"/>), and the handle it was listed through (open while names are left to stat or extended
    /// attributes to read). Made by the walk or ahead of it (<see cref="ListAhead"/>: then without the parent's tree,
    /// attached by the walk, <see cref="Attach"/>); released once (its block goes back to the pool).
    /// </summary>
    private sealed class Listing(string path, ParentTree? parentTree)
    {
        /// <summary>What a name of the folder is prefixed with to make its path.</summary>
        public string Prefix { get; } = PrefixOf(path);
        public ParentTree? ParentTree { get; set; } = parentTree;
        /// <summary>Why the folder could not be listed (then nothing else is set).</summary>
        public Exception? Failure { get; set; }
        public Microsoft.Win32.SafeHandles.SafeFileHandle? Folder { get; set; }
        public uint Flags { get; set; }
        public List<string> Names { get; set; } = [];
        /// <summary>The parent's entries by name, asked in the listing's (ascending) order.</summary>
        public ParentNames? ParentNodes { get; set; }
        /// <summary>The block of names stat-ed last (a large object for a big folder: from the pool).</summary>
        public Entry[] Block { get; set; } = [];
        /// <summary>How many entries of <see cref="Block"/> are filled; the index of the next name to stat.</summary>
        public int Count, Next;
        /// <summary>When its listing began (Stopwatch ticks): one made ahead that waited too long is listed again (<see cref="AheadMaxAge"/>).</summary>
        public long Listed { get; } = Stopwatch.GetTimestamp();
        /// <summary>A listing made ahead: its first block's stats, taken by the thread that listed it and by the walk's.</summary>
        public WorkRuns? Runs { get; set; }
        private int _released;

        public void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            try
            {
                Runs?.Wait(); // nothing stats into the block or through the handle any more
            }
            catch (Exception)
            {
                // its failure is the walk's to report (WalkDirectory waits for the runs first)
            }
            Folder?.Dispose();
            if (Block.Length == 0) return;
            Array.Clear(Block); // no names, nodes or stats kept alive in the pool
            System.Buffers.ArrayPool<Entry>.Shared.Return(Block);
            Block = [];
        }
    }

    /// <summary>
    /// Lists a folder through a handle checked to be the folder the walk saw, and stats its first block of names; their
    /// extended attributes too, unless it is listed ahead (<paramref name="ahead"/>: the parent's tree, which tells
    /// which to read, is attached later).
    /// </summary>
    /// <param name="asParent">the parent's record of the folder when its names may be its tree's (<see cref="ListsAsParent"/>):
    /// they are, when the folder is still so as it is opened, its file system keeps folder times faithfully, and the tree's
    /// names ascend (as the listing's are sorted) and are each a plain name (stat-ed in the folder as they are)</param>
    private Listing List(string path, ulong device, ulong inode, ParentTree? parentTree, bool ahead = false, Recorded? asParent = null)
    {
        var listing = new Listing(path, parentTree);
        var sorted = false;
        try
        {
            // Names as bytes (PosixNames): one that is not valid UTF-8 is backed up like any other.
            BeforeListing?.Invoke(path);
            listing.Folder = Posix.Posix.OpenWalkedDirectory(path, device, inode, out var now);
            // The names' strings made last (NamesArePlain makes them), when the rest allows the listing to take them.
            // (Not a folder the parent kept only its markers of: a CACHEDIR.TAG rewritten without its signature changes no
            // time of the folder, and its contents must be listed again.)
            if (asParent is { } recorded && recorded.Is(now) && parentTree is { Count: > 0, NamesAscending: true }
                && Posix.Posix.FolderTimesFollowNames(listing.Folder) && parentTree.NamesArePlain)
            {
                var names = new List<string>(parentTree.Count);
                for (var i = 0; i < parentTree.Count; i++) names.Add(parentTree.Name(i));
                if (!HoldsMarker(names))
                {
                    listing.Names = names;
                    listing.Flags = Posix.FileFlags.Get(listing.Folder);
                    sorted = true;
                    ListedAsParent?.Invoke(path);
                }
            }
            if (!sorted)
            {
                listing.Names = Posix.Posix.ListDirectory(listing.Folder, path, out var flags);
                listing.Flags = flags;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            listing.Folder?.Dispose();
            listing.Folder = null;
            listing.Failure = e;
            return listing;
        }
        catch
        {
            listing.Release(); // an unexpected failure: no handle left open
            throw;
        }
        try
        {
            if (!sorted) NameSort.Sort(listing.Names);
            if (_markers.Length > 0) KeepMarkersOnly(listing);
            if (parentTree is not null) listing.ParentNodes = new ParentNames(parentTree);
            // A block of 1,024 entries is a large object (about 190 KB): taken from the pool, not made for each folder
            // (every one made was garbage the GC's oldest generation had to collect).
            listing.Block = System.Buffers.ArrayPool<Entry>.Shared.Rent(Math.Min(StatBlock, listing.Names.Count));
            StatNext(listing, later: ahead);
            return listing;
        }
        catch
        {
            listing.Release(); // no handle left open, the block back in the pool
            throw;
        }
    }

    /// <summary>
    /// A folder holding one of the set's markers (<see cref="BackupSet.ExcludeIfPresent"/>) keeps only its markers: the
    /// rest of its names are left out (not stat-ed, not walked). Its names stay in their order (the markers' among them).
    /// </summary>
    private void KeepMarkersOnly(Listing listing)
    {
        List<string>? kept = null;
        foreach (var name in listing.Names)
            if (Array.BinarySearch(_markers, name, StringComparer.Ordinal) >= 0 && (name != BackupSet.CacheDirTag || IsCacheDirTag(listing)))
                (kept ??= []).Add(name);
        if (kept is null || kept.Count == listing.Names.Count) return;
        listing.Names = kept;
    }

    /// <summary>Whether a folder's names (as its parent's tree gives them) hold one of the set's markers.</summary>
    private bool HoldsMarker(List<string> names) => _markers.Length > 0 && Array.Exists(_markers, names.Contains);

    /// <summary>Whether the folder's CACHEDIR.TAG is a regular file that starts with the specification's signature.</summary>
    private static bool IsCacheDirTag(Listing listing)
    {
        var path = listing.Prefix + BackupSet.CacheDirTag;
        try
        {
            if (Posix.Posix.LStatAt(listing.Folder!, BackupSet.CacheDirTag, path) is not { } stat || stat.Kind != FileKind.Regular || stat.Size < (ulong)BackupSet.CacheDirSignature.Length) return false;
            using var handle = Posix.Posix.OpenWalked(path, stat);
            Span<byte> head = stackalloc byte[BackupSet.CacheDirSignature.Length];
            return Posix.Posix.PRead(handle, head, 0) == head.Length && head.SequenceEqual(BackupSet.CacheDirSignature);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // unreadable: not taken for a tag (the folder is backed up; the tag's own error is reported with it)
        }
    }

    /// <summary>
    /// A parent tree's entries looked up by name, the names asked in ascending ordinal order (a listing's, NameSort): a
    /// merge along the tree's names when they are in that order (as every walk stores them), a dictionary when not (a
    /// name twice, another order: the first of a name is found, as before).
    /// </summary>
    internal sealed class ParentNames(ParentTree tree)
    {
        private readonly Dictionary<string, int>? _byName = tree.NamesAscending ? null : ByName(tree);
        /// <summary>The first of the tree's names not passed yet.</summary>
        private int _next;

        /// <summary>The index of the parent's entry of <paramref name="name"/>, or -1; each name asked after the one before in ordinal order.</summary>
        public int Find(string name)
        {
            if (_byName is not null) return _byName.TryGetValue(name, out var at) ? at : -1;
            for (; _next < tree.Count; _next++)
            {
                var order = tree.CompareName(_next, name);
                if (order == 0) return _next++;
                if (order > 0) return -1; // the tree has no such name: it would lie here
            }
            return -1;
        }

        private static Dictionary<string, int> ByName(ParentTree tree)
        {
            var byName = new Dictionary<string, int>(tree.Count, StringComparer.Ordinal);
            for (var i = 0; i < tree.Count; i++) byName.TryAdd(tree.Name(i), i);
            return byName;
        }
    }

    /// <summary>
    /// A listing made ahead gets the parent's tree of its folder: the entries of its first block are looked up in it,
    /// and the extended attributes of those that do not keep the parent's are read (through the folder's handle).
    /// </summary>
    private void Attach(Listing listing, ParentTree? parentTree)
    {
        var block = listing.Block;
        // A listing made with this tree (its names the tree's) looked its entries up in it already.
        var lookedUp = parentTree is not null && ReferenceEquals(listing.ParentTree, parentTree);
        listing.ParentTree = parentTree;
        if (parentTree is not null && !lookedUp)
        {
            var parentNames = listing.ParentNodes = new ParentNames(parentTree);
            for (var k = 0; k < listing.Count; k++) block[k].At = parentNames.Find(block[k].Name);
        }
        ReadXattrsOf(listing, block, listing.Count);
        if (listing.Next >= listing.Names.Count) listing.Folder!.Dispose(); // every name stat-ed and its xattrs read
    }

    /// <summary>
    /// The next block of a listing's names (those not excluded) stat-ed and their extended attributes read; the folder's
    /// handle closed after the last block's are.
    /// </summary>
    /// <param name="later">the stats left to <see cref="Listing.Runs"/>, for the thread that listed it and the walk's to
    /// take, and the extended attributes to <see cref="Attach"/> (a listing made ahead, without the parent's tree)</param>
    private void StatNext(Listing listing, bool later = false)
    {
        var block = listing.Block;
        var names = listing.Names;
        var count = 0;
        var next = listing.Next;
        while (count < block.Length && next < names.Count)
        {
            var name = names[next++];
            if (_excludes.IsExcluded(listing.Prefix, name)) continue;
            block[count++] = new Entry(name, listing.ParentNodes?.Find(name) ?? -1);
        }
        listing.Next = next;
        listing.Count = count;
        if (later)
        {
            listing.Runs = new WorkRuns(count, k => StatOne(listing, ref block[k], xattrs: false));
            return;
        }
        StatAll(listing, block, count);
        if (next >= names.Count) listing.Folder!.Dispose(); // every name stat-ed: not held open while the subfolders are walked
    }

    /// <summary>What a name in the folder <paramref name="path"/> is prefixed with to make its path.</summary>
    private static string PrefixOf(string path) => path == "/" ? "/" : path + "/";
    /// <summary>One name of a folder being walked: its path, the index of the parent's entry of it (or -1), and what lstat said (or why it could not).</summary>
    private record struct Entry(string Name, int At)
    {
        public FileStat? Stat;
        public string? Failure;
        /// <summary>Its extended attributes, read through the folder's handle when it does not keep the parent's.</summary>
        public XattrRead? Xattrs;
    }

    /// <summary>
    /// lstat of the first <paramref name="count"/> names of a block, and the extended attributes of those that do not
    /// keep their parent's, through the folder's handle, on every core: a walk of unchanged files is mostly these calls.
    /// </summary>
    private void StatAll(Listing listing, Entry[] block, int count) =>
        OnEveryCore(count, k => StatOne(listing, ref block[k], xattrs: true));

    /// <summary>One name's lstat through its folder's handle (the failure names it; the walk reports it under its path).</summary>
    private void StatOne(Listing listing, ref Entry e, bool xattrs)
    {
        try
        {
            e.Stat = Posix.Posix.LStatAt(listing.Folder!, e.Name, e.Name);
        }
        catch (IOException x)
        {
            e.Failure = x.Message;
        }
        if (xattrs) ReadXattrsOf(listing, ref e);
    }

    /// <summary>The extended attributes of the stat-ed entries of a block that do not keep the parent's, on every core when there are many.</summary>
    private void ReadXattrsOf(Listing listing, Entry[] block, int count)
    {
        var read = 0;
        for (var k = 0; k < count; k++)
            if (NeedsXattrs(block[k], listing.ParentTree)) read++;
        if (read == 0) return; // an unchanged folder: every entry keeps the parent's
        if (read < 64)
            for (var k = 0; k < count; k++) ReadXattrsOf(listing, ref block[k]);
        else OnEveryCore(count, k => ReadXattrsOf(listing, ref block[k]));
    }

    private bool NeedsXattrs(in Entry e, ParentTree? parentTree) => e.Stat is { } st && !(e.At >= 0 && KeepsParentXattrs(parentTree![e.At], st));

    /// <summary>
    /// An entry's extended attributes unless it keeps the parent's: by its name in the same folder (no path walked
    /// again), what a folder on its way swapped for a symlink meanwhile would make another file's.
    /// </summary>
    private void ReadXattrsOf(Listing listing, ref Entry e)
    {
        if (NeedsXattrs(e, listing.ParentTree)) e.Xattrs = ReadXattrs(listing.Prefix + e.Name, listing.Folder, e.Name);
    }

    /// <summary>
    /// Work on items 0 .. count-1 in runs of 64, taken by any thread that calls <see cref="Help"/> (a listing made ahead:
    /// the thread that listed it, and the walk's when it comes to the folder instead of waiting). <see cref="Wait"/>
    /// returns once every run is done, and throws what a run threw.
    /// </summary>
    private sealed class WorkRuns
    {
        private readonly Action<int> _one;
        private readonly int _count, _runs;
        private int _next, _left;
        private readonly ManualResetEventSlim _done;
        private Exception? _failure;

        public WorkRuns(int count, Action<int> one)
        {
            _one = one;
            _count = count;
            _runs = (count + NamesPerRun - 1) / NamesPerRun;
            _left = _runs;
            _done = new ManualResetEventSlim(_runs == 0);
        }

        public void Help()
        {
            for (int run; (run = Interlocked.Increment(ref _next) - 1) < _runs;)
            {
                try
                {
                    for (int k = run * NamesPerRun, end = Math.Min(_count, k + NamesPerRun); k < end; k++) _one(k);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, e, null);
                }
                if (Interlocked.Decrement(ref _left) == 0) _done.Set();
            }
        }

        public void Wait()
        {
            Help();
            _done.Wait();
            if (_failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>
    /// <paramref name="one"/> for 0 .. count-1, in runs of 64 taken by whichever thread is free (the calling one among
    /// them): a pool thread that wakes late still takes what is left (split by a fixed stride, the walk's thread took the
    /// pool thread's share too whenever that had not started).
    /// </summary>
    private static void OnEveryCore(int count, Action<int> one)
    {
        var tasks = Math.Min(Environment.ProcessorCount, count / NamesPerRun);
        if (tasks <= 1)
        {
            for (var k = 0; k < count; k++) one(k);
            return;
        }
        Parallel.For(0, (count + NamesPerRun - 1) / NamesPerRun, new ParallelOptions { MaxDegreeOfParallelism = tasks }, run =>
        {
            for (int k = run * NamesPerRun, end = Math.Min(count, k + NamesPerRun); k < end; k++) one(k);
        });
    }

    /// <summary>
    /// The parent's tree of a subfolder, read by the archiver's own tree thread (<see cref="_readAhead"/>): always the
    /// same thread, so that a data plane that keeps a connection per thread opens one more, not one per pool thread.
    /// </summary>
    private Task<ParentTree?> ReadAhead(ChunkId id, string path)
    {
        if (_readAhead is null) return Task.FromResult(LoadParentTree(id, path));
        var read = new TaskCompletionSource<ParentTree?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _readAhead.Add(() =>
        {
            try
            {
                read.SetResult(LoadParentTree(id, path));
            }
            catch (Exception e)
            {
                read.SetException(e);
            }
        });
        return read.Task;
    }

    /// <summary>The reads ahead of the parent's trees, taken in order by one thread (made when a parent is walked against).</summary>
    private BlockingCollection<Action>? _readAhead;

    /// <summary>Waits for a parent tree read ahead and not taken (the walk failed, or the folder was left out): the reader outlives no read.</summary>
    private static void Drain(Task<ParentTree?>? task)
    {
        if (task is null) return;
        try
        {
            task.Wait();
        }
        catch (AggregateException)
        {
            // not taken: its failure is no one's (a folder that takes it sees it)
        }
    }

    /// <summary>
    /// A subfolder listed and its names stat-ed on the pool while the walk is in the folders before it (up to
    /// <see cref="AheadFolders"/> ahead; its parent's tree, read ahead by the tree thread meanwhile, is attached when the
    /// walk takes it): on two cores an unchanged walk otherwise left one idle while it compared each folder's entries.
    /// </summary>
    /// <param name="tree">the parent's tree of the folder, being read ahead (<see cref="ReadAhead"/>)</param>
    /// <param name="asParent">the parent's record of the folder when its names may be that tree's: listed once the tree is read</param>
    private Task<Listing> ListAhead(string path, FileStat st, Task<ParentTree?>? tree, Recorded? asParent)
    {
        var listed = new TaskCompletionSource<Listing>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (asParent is not null && tree is not null)
            tree.ContinueWith(read => Make(read.IsCompletedSuccessfully ? read.Result : null), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        else Task.Run(() => Make(null));
        return listed.Task;

        void Make(ParentTree? parentTree)
        {
            Listing listing;
            try
            {
                listing = List(path, st.Device, st.Inode, parentTree, ahead: true, parentTree is null ? null : asParent);
            }
            catch (Exception e)
            {
                listed.SetException(e);
                return;
            }
            listed.SetResult(listing); // listed: the walk may come and take stats too
            try
            {
                listing.Runs?.Help();
            }
            catch (Exception)
            {
                // kept by the runs: the walk's Wait throws it
            }
        }
    }

    /// <summary>A subfolder of the block being walked, its parent's tree and its listing on their way (<see cref="AheadFolders"/>).</summary>
    private readonly record struct Ahead(int At, Task<ParentTree?>? Tree, Task<Listing>? Listed);

    /// <summary>
    /// How many of a folder's next subfolders have their parent's trees read and their names listed and stat-ed ahead of
    /// the walk: one was not enough to hide a tree's round trip to the library behind the walk's work on the folder before.
    /// </summary>
    internal int AheadFolders { get; init; } = 8;

    /// <summary>The largest folder (its size as stat tells it: about 30,000 names on ext4) listed ahead of the walk.</summary>
    internal ulong AheadFolderBytes { get; init; } = 1 << 20;

    /// <summary>
    /// How long a listing made ahead may wait for the walk (which may be deep in the folders before it); an older one is
    /// listed again when the walk comes, so that no name is compared or read on a stat older than this.
    /// </summary>
    internal TimeSpan AheadMaxAge { get; init; } = TimeSpan.FromSeconds(2);

    private static void DrainAll(Queue<Ahead> ahead)
    {
        while (ahead.TryDequeue(out var a))
        {
            Drain(a.Tree);
            Drain(a.Listed);
        }
    }

    /// <summary>Waits for a listing made ahead and lets it go (taken or not: a listing is released once, by whoever is first).</summary>
    private static void Drain(Task<Listing>? task)
    {
        if (task is null) return;
        try
        {
            task.GetAwaiter().GetResult().Release();
        }
        catch (Exception)
        {
            // not taken: its failure is no one's (a folder that takes it sees it)
        }
    }

    /// <summary>Folders whose tree is the parent's (DirBuild.Same), waiting to be checked with the next batch (FlushReused).</summary>
    private readonly List<DirBuild> _sameDirs = [];

    /// <summary>Adds an entry to its folder's tree; true when it came out equal to the parent's node (then the folder may reuse the parent's tree).</summary>
    /// <param name="parentSubtree">the parent's tree of this folder, read ahead (null: read it here)</param>
    /// <param name="xattrs">its extended attributes, read with its stat (StatAll; null: read them here, by its path)</param>
    /// <param name="listed">a subfolder's listing, made ahead (ListAhead; null: listed when it is walked)</param>
    private bool AddEntry(DirBuild dir, string name, string full, FileStat st, Node? parentNode, ulong rootDevice, CancellationToken cancel,
        Task<ParentTree?>? parentSubtree = null, XattrRead? xattrs = null, Task<Listing>? listed = null)
    {
        var node = new Node().Named(name);
        FillNode(node, st);
        // ACLs and file capabilities among them; a symlink's and a device's own (SELinux labels).
        if (KeepsParentXattrs(parentNode, st))
        {
            node.Xattrs.AddRange(parentNode!.Xattrs);
            node.AclUsers.Add(parentNode.AclUsers);
            node.AclGroups.Add(parentNode.AclGroups);
        }
        else TakeXattrs(node, full, xattrs ?? ReadXattrs(full));
        switch (st.Kind)
        {
            case FileKind.Directory:
                // A mount point with --one-file-system: the folder is kept (a restore makes the place to mount on, with
                // its owner and mode), empty; what is mounted there is not walked.
                var mountPoint = _set.OneFileSystem && st.Device != rootDevice;
                if (mountPoint && _setPaths.Contains(full)) return false; // a path of the set itself: walked on its own (WalkPath)
                var sub = NewDir(full, node, dir);
                if (parentNode is { Type: NodeType.Directory }) sub.Recorded = Recorded.Of(parentNode);
                if (_onTheWay.Contains(full))
                {
                    Interlocked.Increment(ref sub.Pending); // another path of the set lies below: open until every path is walked
                    _heldOpen.Add(sub);
                }
                if (!mountPoint && _parentTreesSameKeys && parentNode is { Type: NodeType.Directory, Subtree.Length: ChunkId.Size }) sub.Same = parentNode.SubtreeId();
                Interlocked.Increment(ref dir.Pending);
                dir.Children.Add(node);
                dir.SubDirs.Add(sub);
                if (mountPoint)
                {
                    node.Flags = st.Attributes; // not listed: the flags statx tells
                    Done(sub);
                    return false;
                }
                WalkDirectory(sub, parentSubtree is null ? ParentSubtree(parentNode, full) : parentSubtree.GetAwaiter().GetResult(), rootDevice, cancel, listed);
                var equal = false;
                if (sub.Same is not null)
                {
                    node.Subtree = parentNode!.Subtree; // its tree is the parent's: this node may be too
                    equal = node.Equals(parentNode);
                }
                Done(sub); // walked: stored once what it holds is final
                return equal;
            case FileKind.Regular:
                _stats.Files++;
                _stats.Bytes += st.Size;
                LinkGroup? group = null;
                if (st.Nlink > 1)
                {
                    LinkGroup? first;
                    lock (_linkLock)
                    {
                        if (_firstLinks.TryGetValue((st.Device, st.Inode), out first) && first.Same(st) && !first.Special)
                        {
                            NameMet(first, (st.Device, st.Inode));
                            node.LinksTo(first.Path);
                            dir.Children.Add(node);
                            if (!first.Done)
                            {
                                // Its chunks come with its first name's, once that is read or confirmed.
                                Interlocked.Increment(ref dir.Pending);
                                first.Waiting.Add((node, dir));
                                return false;
                            }
                        }
                        else _firstLinks[(st.Device, st.Inode)] = group = new LinkGroup(node, full, st.Nlink, st); // (one whose inode was reused: replaced)
                    }
                    if (group is null)
                    {
                        TakeFirst(node, full, first!);
                        return false;
                    }
                }
                dir.Children.Add(node);
                Interlocked.Increment(ref dir.Pending);
                if (Unchanged(parentNode, st))
                {
                    // Reused unless the library lost one of its chunks: asked in batches (FlushReused).
                    node.Chunks = parentNode!.Chunks;
                    node.ChunkSizes.AddRange(parentNode.ChunkSizes);
                    node.ChunkLists = parentNode.ChunkLists; // a big file's lists, as the parent stored them (AsStored)
                    // A chattr changes the ctime: the flags are the parent's (before the parent recorded them: the ones statx tells).
                    node.Flags = _parentRecordsAll ? parentNode.Flags : st.Attributes;
                    _reused.Add(new Reused(full, node, st, dir, group));
                    _reusedChunks += node.ChunkCount();
                    var same = node.Equals(parentNode);
                    if (_reusedChunks >= ReusedPerBatch || _reused.Count >= ReusedPerBatch) FlushReused();
                    return same;
                }
                Read(new FileJob(full, node, st, dir, group));
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
                JoinGroup(node, full, st);
                dir.Children.Add(node);
                return node.Equals(parentNode);
            case FileKind.Unknown:
                Error(full, "unknown file type: left out");
                return false;
            default:
                _stats.Other++;
                JoinGroup(node, full, st);
                dir.Children.Add(node);
                return node.Equals(parentNode);
        }
    }

    /// <summary>
    /// Whether a regular file with one name is, field for field, as in a parent that recorded everything (NodeFormat):
    /// the node the walk would make of it (FillNode, the parent's xattrs, chunks and flags) would equal the parent's,
    /// so the parent's is taken as it is (<see cref="Keep"/>), read from the tree's bytes without a node made. Anything
    /// else (another kind, a hard link, a name stored as bytes, a big file's chunk lists, an owner whose name changed,
    /// an access time asked for or dropped) goes the long way (AddEntry), which makes and compares a node.
    /// </summary>
    private bool SameFile(ParentTree tree, int at, string name, FileStat st)
    {
        ref readonly var parent = ref tree[at];
        return _parentRecordsAll && parent is { Type: NodeType.File, Plain: true, SubtreeLength: 0, RdevMajor: 0, RdevMinor: 0, Nlink: 1 }
            && st is { Kind: FileKind.Regular, Nlink: 1 } && tree.NameIs(at, name)
            && parent.Mode == st.Mode && parent.Uid == st.Uid && parent.Gid == st.Gid && parent.Device == st.Device
            && parent.Size == st.Size && parent.MtimeSec == st.MtimeSec && parent.MtimeNsec == st.MtimeNsec
            && parent.CtimeSec == st.CtimeSec && parent.CtimeNsec == st.CtimeNsec && parent.Inode == st.Inode && Settled(parent.CtimeSec, parent.CtimeNsec)
            && parent.ChunksLength % ChunkId.Size == 0 && parent.ChunkSizes == parent.ChunkCount && (parent.ChunksLength > 0 || st.Size == 0) // its entries whole
            && (_set.Atime ? parent.AtimeSec == st.AtimeSec && parent.AtimeNsec == st.AtimeNsec : parent is { AtimeSec: 0, AtimeNsec: 0 })
            && tree.User(at) == _owners.User(st.Uid) && tree.Group(at) == _owners.Group(st.Gid);
    }

    /// <summary>
    /// The parent's entry <paramref name="at"/> of the folder, taken as it is (<see cref="SameFile"/>): no node made or
    /// compared for each of a million unchanged files. Reused unless the library lost one of its chunks (FlushReused).
    /// </summary>
    private void Keep(DirBuild dir, int at, FileStat st)
    {
        _stats.Files++;
        _stats.Bytes += st.Size;
        dir.Kept.Add(at);
        Interlocked.Increment(ref dir.Pending);
        _reused.Add(new Reused(null, null, st, dir, null, at)); // its path made only if it is read again
        _reusedChunks += dir.From![at].ChunkCount;
        if (_reusedChunks >= ReusedPerBatch || _reused.Count >= ReusedPerBatch) FlushReused();
    }

    /// <summary>
    /// A symlink, FIFO, socket or device node of several names (hard links): its first name is recorded as any, each
    /// further one the same with hardlink_target naming the first, so a restore links it to the first (one inode, as it
    /// was) where a build that does not know this makes it on its own.
    /// </summary>
    private void JoinGroup(Node node, string full, FileStat st)
    {
        if (st.Nlink <= 1) return;
        lock (_linkLock)
        {
            if (_firstLinks.TryGetValue((st.Device, st.Inode), out var first) && first.Special && first.Same(st) && first.First.Type == node.Type)
            {
                NameMet(first, (st.Device, st.Inode));
                node.LinksTo(first.Path, keepType: true);
            }
            else _firstLinks[(st.Device, st.Inode)] = new LinkGroup(node, full, st.Nlink, st) { Done = true, Special = true };
        }
    }

    /// <summary>Under <see cref="_linkLock"/>: a further name of <paramref name="group"/> was met; with its last, the group leaves the table.</summary>
    private void NameMet(LinkGroup group, (ulong Dev, ulong Ino) key)
    {
        if (++group.Seen >= group.Names) _firstLinks.Remove(key);
    }

    /// <summary>A further name of an inode takes its first name's content (or is left out with it, and says so).</summary>
    private void TakeFirst(Node link, string linkPath, LinkGroup group)
    {
        var first = group.First;
        if (first.Type == NodeType.Unspecified)
        {
            link.Type = NodeType.Unspecified;
            Error(linkPath, $"not backed up: a further name of {PosixNames.Display(group.Path)}, which could not be read (its error says why)");
        }
        else
        {
            link.Chunks = first.Chunks;
            link.ChunkSizes.AddRange(first.ChunkSizes);
            link.Size = first.Size;
            link.Flags = first.Flags; // restored with it when only this name is asked for
        }
    }

    /// <summary>Queues a file for the readers (a big one ahead of the rest); waits while they are that far behind.</summary>
    private void Read(FileJob job)
    {
        if (_fineCdc[0] is not null && BlockFiles.Level(job.Path, job.Stat.Size, () => Head(job)) is { } level && _fineCdc[level] is not null)
            job = job with { Fine = level + 1 };
        Interlocked.Increment(ref _filesQueued);
        Interlocked.Add(ref _bytesQueued, (long)job.Stat.Size);
        var size = (long)job.Stat.Size;
        if (size >= 2 * _partSize && !job.Stat.MayBeSparse)
        {
            // A big file is read in parts, each by whichever reader is free: one big file keeps every core busy.
            var parts = (int)((size + _partSize - 1) / _partSize);
            var split = new SplitFile(job, parts);
            for (var i = 0; i < parts; i++)
                Queue(_big, job with { Part = new Part(split, i, i * _partSize, Math.Min(_partSize, size - i * _partSize)) });
            return;
        }
        Queue(job.Stat.Size >= BigFile ? _big : _small, job);
    }

    /// <summary>
    /// Adds a job to a queue; a full one is first let down to half by the readers, the walk asleep meanwhile
    /// (<see cref="_room"/>): a walk waiting at a full queue's edge would spin on every file (BlockingCollection's
    /// wait spins before it sleeps) and take CPU from the readers it waits for.
    /// </summary>
    private void Queue(BlockingCollection<FileJob> queue, FileJob job)
    {
        if (queue.Count >= queue.BoundedCapacity)
        {
            Interlocked.Exchange(ref _waitingOn, queue);
            while (true)
            {
                // Reset, then look: a reader's Set from before is forgotten, one after the look wakes the wait.
                _room.Reset();
                Interlocked.MemoryBarrier();
                if (queue.Count <= queue.BoundedCapacity / 2) break;
                _room.Wait(50, _stop);
            }
            Volatile.Write(ref _waitingOn, null);
        }
        queue.Add(job, _stop);
    }

    /// <summary>BlockFiles' finer chunkers, each null where this backup's policy cuts as finely already (then none finer is used).</summary>
    private FastCdc?[] _fineCdc = [];

    /// <summary>
    /// The first bytes of a file the walk found (<see cref="BlockFiles.HeadSize"/> at most): what it is when its name does
    /// not say. A file that cannot be read now gives none (its reader meets the failure and reports it).
    /// </summary>
    private static byte[] Head(FileJob job)
    {
        try
        {
            using var handle = Posix.Posix.OpenWalked(job.Path, job.Stat);
            var head = new byte[BlockFiles.HeadSize];
            return head[..Posix.Posix.PRead(handle, head, 0)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The queue the walk waits to see half empty (Queue), and the event a reader sets when it is.</summary>
    private BlockingCollection<FileJob>? _waitingOn;
    private ManualResetEventSlim _room = null!;

    /// <summary>A reader took a job: the walk, waiting for room, goes on once its queue is half empty.</summary>
    private void Taken()
    {
        if (Volatile.Read(ref _waitingOn) is { } queue && queue.Count <= queue.BoundedCapacity / 2) _room.Set();
    }

    /// <summary>
    /// How much of a big file one reader takes at once: 64 average chunks, at least 32 MiB (where a part begins, chunk
    /// boundaries start again: one chunk in 64 is cut differently than in a file read whole).
    /// </summary>
    private long _partSize = 32L << 20;

    /// <summary>The least a part of a big file holds (files of twice this and more are read in parts).</summary>
    internal long MinPartSize { get; init; } = 32L << 20;

    /// <summary>A part of a big file is read: the last one puts the file's chunks in order and makes it final.</summary>
    private void PartRead(Part part, string? error)
    {
        var split = part.File;
        lock (split)
        {
            if (error is not null) split.Error ??= error;
            if (--split.Left > 0) return;
        }
        split.Close();
        var whole = split.Whole;
        if (split.Error is not null)
        {
            whole.Node.Type = NodeType.Unspecified; // left out of its tree
            Error(whole.Path, split.Error);
        }
        else if (split.Ids.Sum(i => (long)i.Length) / ChunkId.Size > NodeExtensions.MaxChunkEntries)
        {
            whole.Node.Type = NodeType.Unspecified;
            Error(whole.Path, TooManyChunks.Reason);
        }
        else
        {
            var ids = new byte[split.Ids.Sum(i => i.Length)];
            var at = 0;
            foreach (var piece in split.Ids)
            {
                piece.CopyTo(ids, at);
                at += piece.Length;
            }
            whole.Node.Chunks = ByteString.CopyFrom(ids);
            foreach (var sizes in split.Sizes) whole.Node.ChunkSizes.AddRange(sizes);
            whole.Node.Size = (ulong)split.Sizes.Sum(s => s.Sum(x => (long)x));
            CheckAfterRead(whole);
        }
        Interlocked.Increment(ref _filesDone);
        Final(whole);
    }

    private CancellationToken _stop;

    /// <summary>A file is final (read, left out, or confirmed unchanged): its other names and its folder go on.</summary>
    private void Final(FileJob job) => Final(job.Group, job.Dir);

    private void Final(LinkGroup? first, DirBuild dir)
    {
        if (first is { } group)
        {
            List<(Node Link, DirBuild Dir)> waiting;
            lock (_linkLock)
            {
                group.Done = true;
                (waiting, group.Waiting) = (group.Waiting, []);
            }
            foreach (var (link, linkDir) in waiting)
            {
                TakeFirst(link, PrefixOf(linkDir.Path) + link.FileName(), group);
                Done(linkDir);
            }
        }
        Done(dir);
    }

    /// <summary>One entry of a folder is final; the last one stores the folder's tree.</summary>
    private void Done(DirBuild dir)
    {
        if (Interlocked.Decrement(ref dir.Pending) == 0) Finish(dir);
    }

    /// <summary>
    /// Stores a folder's tree (or takes the parent's, DirBuild.Same), records what it references, lets its entries go,
    /// and tells the folder above.
    /// </summary>
    private void Finish(DirBuild dir)
    {
        ChunkId id;
        lock (_treeLock)
        {
            foreach (var node in dir.Children)
                if (node.Type != NodeType.Unspecified) AddChunks(_references, node.Chunks.Span); // a hole is no chunk
            // The entries kept as the parent's, from the tree's bytes; one made a node since (read again), from its node.
            var from = dir.From;
            foreach (var k in dir.Kept)
                if (from!.Made(k) is not { } made) AddChunks(_references, from.Chunks(k));
                else if (made.Type != NodeType.Unspecified) AddChunks(_references, made.Chunks.Span);
            if (dir.Same is { } same)
            {
                id = same; // every entry as in the parent: its tree, checked to be in the library, with its files' lists
                _references.AddRange(dir.SameParts);
                if (dir.SameParts.Count > 0) _treesInParts = true;
                foreach (var node in dir.Children) _references.AddRange(node.ChunkListIds());
            }
            else
            {
                var tree = new Tree();
                var children = dir.Children.Concat(dir.Kept.Select(k => from!.NodeAt(k)))
                    .Where(n => n.Type != NodeType.Unspecified).OrderBy(n => n.FileName(), StringComparer.Ordinal).ToList();
                var listed = Listed(children);
                tree.Nodes.AddRange(children.Select(n => AsStored(n, listed?.Contains(n) == true)));
                id = StoreTree(dir.Path, tree);
            }
            _references.Add(id);
            if (_references.Count >= ReferencesPerPart) FlushReferences();
        }
        dir.Node.Subtree = ByteString.CopyFrom(id.ToArray());
        dir.Release();
        Interlocked.Decrement(ref _open);
        if (dir.Up is null) _rootId = id;
        else Done(dir.Up);
    }

    /// <summary>The most bytes a folder's tree record holds (tests make it small): under what a record may hold once read (VolumeFormat.MaxPayload).</summary>
    internal int MaxTreeBytes { get; init; } = VolumeFormat.MaxPayload - 1024 * 1024;

    /// <summary>
    /// Stores a folder's tree. One of more entries than a record holds (about 1.5 million small files in one folder) is
    /// stored as several records: the first holds the first entries by name and the ids of the others (Tree.parts),
    /// each of the further entries in order, each referenced by the snapshot. A folder too big even for
    /// TreeReader.MaxParts further records (about 12 million small files) keeps the entries that fit, and the snapshot
    /// says so as an error of the folder.
    /// </summary>
    /// <summary>A folder's tree of this snapshot is in several records (its node format is then <see cref="NodeFormat"/>).</summary>
    private bool _treesInParts;

    private ChunkId StoreTree(string path, Tree tree)
    {
        var bytes = tree.ToByteArray();
        if (bytes.Length > MaxTreeBytes) bytes = Split(path, tree).ToByteArray();
        return StoreTreeRecord(bytes);
    }

    private ChunkId StoreTreeRecord(byte[] bytes)
    {
        var r = _treeEncoder.Store(bytes, RecordFlags.Tree, sink);
        if (r.IsNew)
        {
            _stats.TreesNew++;
            Interlocked.Add(ref _bytesStored, r.StoredLength);
        }
        return r.Id;
    }

    /// <summary>The first record of a folder's tree too big for one: its further records stored (and referenced) here.</summary>
    private Tree Split(string path, Tree tree)
    {
        // Each record at most MaxTreeBytes; the first keeps room for the parts' ids (a tag, a length and 32 bytes each).
        var room = MaxTreeBytes - TreeReader.MaxParts * (2 + ChunkId.Size);
        var records = new List<Tree>();
        var record = new Tree();
        long size = 0;
        foreach (var node in tree.Nodes)
        {
            var length = node.CalculateSize();
            var field = 1 + CodedOutputStream.ComputeLengthSize(length) + length;
            if (size + field > room && record.Nodes.Count > 0)
            {
                records.Add(record);
                record = new Tree();
                size = 0;
            }
            record.Nodes.Add(node);
            size += field;
        }
        records.Add(record);
        if (records.Count > TreeReader.MaxParts + 1)
        {
            var kept = records.Take(TreeReader.MaxParts + 1).Sum(r => r.Nodes.Count);
            Error(path, $"the folder holds {tree.Nodes.Count} entries, more than one folder's tree holds: only the first {kept} by name are in this " +
                        "snapshot; split the folder into several, or exclude part of it");
            records.RemoveRange(TreeReader.MaxParts + 1, records.Count - TreeReader.MaxParts - 1);
        }
        var first = records[0];
        foreach (var part in records.Skip(1))
        {
            var id = StoreTreeRecord(part.ToByteArray());
            _references.Add(id);
            first.Parts.Add(ByteString.CopyFrom(id.ToArray()));
            _treesInParts = true;
        }
        return first;
    }

    /// <summary>The most entries a stored node lists itself (tests make it small; NodeExtensions.EntriesPerList).</summary>
    internal int EntriesPerList { get; init; } = NodeExtensions.EntriesPerList;

    /// <summary>The most entries a folder's tree lists in its nodes (about 72 MB of its record; NodeExtensions.TreeEntryBudget).</summary>
    internal long TreeEntryBudget { get; init; } = NodeExtensions.TreeEntryBudget;

    /// <summary>The fewest entries a file keeps in a list to bring its folder's tree under <see cref="TreeEntryBudget"/>.</summary>
    internal int SmallestListed { get; init; } = 64;

    /// <summary>
    /// The nodes of a folder's tree that keep their entries in lists (null: none): those of more than
    /// <see cref="EntriesPerList"/>, and, while what is left passes <see cref="TreeEntryBudget"/>, the biggest of the others
    /// (of <see cref="SmallestListed"/> entries or more), so that a folder of many big files (disk images cut at 32 KiB)
    /// is still one tree record (VolumeFormat.MaxPayload). Decided by the entries alone: the same folder, the same choice.
    /// </summary>
    private HashSet<Node>? Listed(List<Node> children)
    {
        HashSet<Node>? listed = null;
        long inline = 0;
        foreach (var n in children)
            if (n.ChunkCount() is var c && c > EntriesPerList) (listed ??= new(ReferenceEqualityComparer.Instance)).Add(n);
            else inline += c;
        if (inline <= TreeEntryBudget) return listed;
        listed ??= new(ReferenceEqualityComparer.Instance);
        foreach (var n in children.Where(n => n.ChunkCount() >= SmallestListed && !listed.Contains(n))
                     .OrderByDescending(n => n.ChunkCount()).ThenBy(n => n.FileName(), StringComparer.Ordinal))
        {
            if (inline <= TreeEntryBudget) break;
            listed.Add(n);
            inline -= n.ChunkCount();
        }
        return listed;
    }

    /// <summary>
    /// Under the tree lock: a node as its folder's tree stores it. A file <paramref name="listed"/> keeps its entries in
    /// chunk-list records of <see cref="EntriesPerList"/> each (stored here, the same bytes as the parent's for an
    /// unchanged file, so stored once) and lists their ids; the others list their entries themselves.
    /// </summary>
    private Node AsStored(Node node, bool listed)
    {
        var count = node.ChunkCount();
        if (!listed) return node.ChunkLists.IsEmpty ? node : new Node(node) { ChunkLists = ByteString.Empty };
        var lists = new byte[(count + EntriesPerList - 1) / EntriesPerList * ChunkId.Size];
        for (var (first, k) = (0, 0); first < count; first += EntriesPerList, k++)
        {
            var n = Math.Min(EntriesPerList, count - first);
            var list = new ChunkList { Chunks = ByteString.CopyFrom(node.Chunks.Span.Slice(first * ChunkId.Size, n * ChunkId.Size)) };
            for (var i = first; i < first + n; i++) list.ChunkSizes.Add(node.ChunkSizes[i]);
            var r = _treeEncoder.Store(list.ToByteArray(), RecordFlags.Tree, sink);
            if (r.IsNew)
            {
                _stats.TreesNew++; // a record of the tree's, as a verify counts it
                Interlocked.Add(ref _bytesStored, r.StoredLength);
            }
            r.Id.WriteTo(lists.AsSpan(k * ChunkId.Size));
            _references.Add(r.Id);
        }
        var stored = new Node(node) { Chunks = ByteString.Empty, ChunkLists = UnsafeByteOperations.UnsafeWrap(lists) };
        stored.ChunkSizes.Clear();
        return stored;
    }

    /// <summary>Adds a file's chunk ids to a list, its holes left out (NodeExtensions.ChunksIn).</summary>
    private static void AddChunks(List<ChunkId> ids, ReadOnlySpan<byte> chunks)
    {
        foreach (var id in NodeExtensions.ChunksIn(chunks)) ids.Add(id);
    }

    /// <summary>Under the tree lock: the references collected so far go to the sink (one part of the snapshot's list).</summary>
    private void FlushReferences()
    {
        if (_references.Count == 0) return;
        // Sorted and without repeats (files with the same chunks, folders of the parent's): what a part holds,
        // sends and makes the library stage is each id once.
        var distinct = Library.ReferenceList.SortDistinct(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_references));
        _references.RemoveRange(distinct, _references.Count - distinct);
        sink.AddReferences(_snapshotId, _references);
        _references.Clear();
    }

    /// <summary>
    /// Same size, mtime, ctime and inode as in the parent, and its entries whole (every chunk still in the library is
    /// asked later, FlushReused). A big file's entries are read from its chunk-list records here, only for a file that
    /// is unchanged so far: a changed one is read again without them (a folder of disk images that all changed held
    /// every image's entries while it was walked).
    /// </summary>
    private bool Unchanged(Node? parent, FileStat st)
    {
        if (parent is null || parent.Type is not (NodeType.File or NodeType.Hardlink)) return false;
        if (parent.Size != st.Size || parent.MtimeSec != st.MtimeSec || parent.MtimeNsec != st.MtimeNsec
            || parent.CtimeSec != st.CtimeSec || parent.CtimeNsec != st.CtimeNsec || parent.Inode != st.Inode
            || !Settled(parent.CtimeSec, parent.CtimeNsec)) return false;
        if (!parent.ChunkLists.IsEmpty && parent.Chunks.IsEmpty)
            try
            {
                _parentTrees.ExpandChunkLists(parent); // the walk's own thread: the parent's nodes are its alone by now
            }
            catch (Exception e) when (e is IOException or KeyNotFoundException or InvalidDataException)
            {
                parent.ForgetEntries(); // its list lost: the file is read again
            }
        if (parent.Chunks.Length % ChunkId.Size != 0 || parent.ChunkSizes.Count != parent.ChunkCount() || (parent.Chunks.Length == 0 && st.Size != 0)) return false;
        return true;
    }

    /// <summary>
    /// A file found unchanged, waiting for the library's word on its chunks (FlushReused): kept in a list by value, not
    /// as a FileJob each (a job is made only for one read again), so that a walk of a million unchanged files
    /// allocates no object for each.
    /// </summary>
    /// <param name="Node">its node; null for an entry its folder keeps as the parent's (<see cref="Keep"/>: index <paramref name="At"/> of Dir.From)</param>
    /// <param name="Path">its path (null for a kept entry: made from its folder's and its name when it is read again)</param>
    private readonly record struct Reused(string? Path, Node? Node, FileStat Stat, DirBuild Dir, LinkGroup? Group, int At = -1)
    {
        /// <summary>Its entries' ids (holes among them: the empty id), from its node or the parent's tree bytes.</summary>
        public ReadOnlySpan<byte> Chunks => Node is { } node ? node.Chunks.Span : Dir.From!.Chunks(At);
    }

    private readonly List<Reused> _reused = [];
    /// <summary>The ids asked about in one FlushReused (kept: a batch's list is about as long as the last one's).</summary>
    private readonly List<ChunkId> _asked = [];
    private long _reusedChunks;
    /// <summary>Reused files (or their chunks) asked about at once: one round trip over a socket data plane per batch.</summary>
    internal int ReusedPerBatch { get; init; } = 16 * 1024;

    /// <summary>
    /// The files the walk found unchanged keep their chunk lists only if the library still holds every chunk, and the
    /// folders found unchanged their parent's trees only if it holds those (one question for a batch of them); the
    /// other files are read again, and the folders above them stored anew.
    /// </summary>
    private void FlushReused()
    {
        var ids = _asked; // repeats and all: the library answers for each id it lacks
        ids.Clear();
        foreach (var f in _reused)
        {
            AddChunks(ids, f.Chunks); // a hole is no chunk
            if (f.Node is { } node) ids.AddRange(node.ChunkListIds());
        }
        foreach (var d in _sameDirs)
            if (d.Same is { } tree)
            {
                ids.Add(tree);
                ids.AddRange(d.SameParts);
            }
        var missing = ids.Count == 0 ? new HashSet<ChunkId>() : sink.Missing(ids);
        ids.Clear();
        bool Complete(in Reused f)
        {
            foreach (var id in NodeExtensions.ChunksIn(f.Chunks))
                if (missing.Contains(id)) return false;
            if (f.Node is { } node)
                foreach (var list in node.ChunkListIds())
                    if (missing.Contains(list)) return false;
            return true;
        }
        // The files to read again (none, unless the library lost chunks): by their place in the batch.
        bool[]? again = null;
        if (missing.Count > 0)
            for (var k = 0; k < _reused.Count; k++)
                if (!Complete(_reused[k])) (again ??= new bool[_reused.Count])[k] = true;
        // First every folder above a file read again is marked changed, before any folder of the batch can be stored.
        if (again is not null)
            for (var k = 0; k < _reused.Count; k++)
                if (again[k]) _reused[k].Dir.Changed();
        foreach (var d in _sameDirs)
            if (d.Same is { } tree && (missing.Contains(tree) || d.SameParts.Any(missing.Contains))) d.Same = null; // stored again: the same bytes, the same id
        for (var k = 0; k < _reused.Count; k++)
        {
            var f = _reused[k];
            if (again?[k] == true)
            {
                // A kept entry becomes a node of its own here (ParentTree.NodeAt keeps it: the one its folder stores).
                var node = f.Node ?? f.Dir.From!.NodeAt(f.At);
                node.ForgetEntries();
                Read(new FileJob(f.Path ?? PrefixOf(f.Dir.Path) + f.Dir.From!.Name(f.At), node, f.Stat, f.Dir, f.Group));
                continue;
            }
            _stats.FilesUnchanged++;
            var count = 0;
            foreach (var _ in NodeExtensions.ChunksIn(f.Chunks)) count++;
            Interlocked.Add(ref _chunksTotal, count); // the readers count theirs meanwhile
            Final(f.Group, f.Dir);
        }
        foreach (var d in _sameDirs) Done(d);
        _reused.Clear();
        _reusedChunks = 0;
        _sameDirs.Clear();
    }

    /// <summary>
    /// Reads, chunks and stores one file. Returns the reason when the file could not be read whole; a failure
    /// of the sink (a full or broken library) is not the file's fault and ends the backup. A file with holes
    /// (fewer blocks than its size) is read extent by extent: a hole costs no read and no chunk, only an entry
    /// with the empty id and its length (NodeExtensions.IsHole), and the restore leaves it a hole.
    /// </summary>
    private string? ReadFile(FileJob job, StreamChunker chunker, ChunkEncoder encoder, CancellationToken cancel)
    {
        try
        {
            return ReadChunks(job, chunker, encoder, cancel);
        }
        catch (TooManyChunks)
        {
            return TooManyChunks.Reason;
        }
    }

    /// <summary>A file has more entries than one file may (<see cref="NodeExtensions.MaxChunkEntries"/>).</summary>
    private sealed class TooManyChunks : Exception
    {
        public static readonly string Reason = $"has more than {NodeExtensions.MaxChunkEntries:N0} chunks and holes, more than one file may have: " +
                                               "not backed up (a policy with larger chunks takes it)";
    }

    private string? ReadChunks(FileJob job, StreamChunker chunker, ChunkEncoder encoder, CancellationToken cancel)
    {
        // An entry is at most a hole of MaxHoleEntry (a chunk is less): a file this big cannot fit, whatever it holds.
        if (job.Stat.Size / (ulong)NodeExtensions.MaxHoleEntry > NodeExtensions.MaxChunkEntries) return TooManyChunks.Reason;
        var expected = (int)Math.Min((ulong)(job.Part?.Length ?? (long)job.Stat.Size) / (ulong)chunker.MinSize + 2, 1 << 16);
        var ids = new byte[expected * ChunkId.Size];
        var sizes = new List<uint>(expected);
        var count = 0;
        long size = 0;
        if (job.Part?.File.Error is not null) return null; // another part failed: the file is left out, this part is not read
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            // The very file the walk saw, by handle: a symlink or FIFO swapped in since is refused, never followed or waited on.
            handle = job.Part is { } split ? split.File.Open() : Posix.Posix.OpenWalked(job.Path, job.Stat);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ReadFailure(e);
        }
        void Entry(ChunkId id, long length)
        {
            if (count >= NodeExtensions.MaxChunkEntries) throw new TooManyChunks();
            if ((count + 1) * ChunkId.Size > ids.Length) Array.Resize(ref ids, ids.Length * 2);
            id.WriteTo(ids.AsSpan(count * ChunkId.Size));
            count++;
            sizes.Add((uint)length);
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
        // A file's data extents between from and to read, its holes recorded (a hole costs no read and no chunk).
        string? ReadExtents(List<(long Offset, long Length)> extents, long from, long to)
        {
            var at = from;
            foreach (var (offset, length) in extents)
            {
                if (offset > at) Hole(offset - at);
                var before = size;
                if (Read(new ExtentStream(handle, offset, length)) is { } failed) return failed;
                at = offset + (size - before); // what was read (a file that shrank meanwhile is flagged)
            }
            if (to > at) Hole(to - at);
            return null;
        }
        if (job.Part is { } part)
        {
            // The handle is the file's, shared by its parts (SplitFile.Open): closed with the last one.
            if (part.Index == 0) job.Node.Flags = FileFlags.Get(handle);
            // Blocks allocated past its end may hide holes below it (MayHaveHoles): each part looks for its own.
            var extents = job.Stat.MayHaveHoles ? Posix.Posix.DataExtents(handle, part.Offset, part.Offset + part.Length) : null;
            if ((extents is null || extents is [var only] && only == (part.Offset, part.Length)
                    ? Read(new ExtentStream(handle, part.Offset, part.Length))
                    : ReadExtents(extents, part.Offset, part.Offset + part.Length)) is { } failed) return failed;
            // A part that ends early (the file shrank) would shift every later part's bytes: the file is left out.
            if (size < part.Length && part.Index < part.File.Ids.Length - 1) return "shrank while it was read: not backed up (the next backup reads it again)";
            part.File.Ids[part.Index] = ids[..(count * ChunkId.Size)];
            part.File.Sizes[part.Index] = sizes;
            return null;
        }
        using (handle)
        {
            job.Node.Flags = FileFlags.Get(handle);
            var extents = job.Stat.MayHaveHoles ? Posix.Posix.DataExtents(handle, (long)job.Stat.Size) : null;
            if (extents is null || extents is [(0, var all)] && all == (long)job.Stat.Size)
            {
                // Positional reads to the end, knowing the size the walk saw: no FileStream (whose making and closing ask
                // the kernel for the position and length), and no read past the end to find it. A file that grew or
                // shrank meanwhile is flagged (CheckAfterRead); one that says it is empty (procfs) is read all the same.
                if (Read(new ExtentStream(handle, 0, (long)job.Stat.Size, whole: true)) is { } failed) return failed;
            }
            else if (ReadExtents(extents, 0, (long)job.Stat.Size) is { } failed) return failed;
        }
        job.Node.Chunks = ByteString.CopyFrom(ids, 0, count * ChunkId.Size);
        job.Node.ChunkSizes.AddRange(sizes);
        job.Node.Size = (ulong)size;
        CheckAfterRead(job);
        return null;
    }

    /// <summary>A file read whole is looked at again: one that changed meanwhile is kept (a consistent set of chunks) and named.</summary>
    private void CheckAfterRead(FileJob job)
    {
        FileStat? after;
        try { after = Posix.Posix.LStat(job.Path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A folder on its way made unreadable, a stale NFS handle, an I/O error: this file's matter, not the backup's.
            Error(job.Path, $"could not be looked at again after it was read ({e.Message}): the stored copy may mix old and new content");
            return;
        }
        if (after is not { } a || a.Size != job.Stat.Size || a.MtimeSec != job.Stat.MtimeSec || a.MtimeNsec != job.Stat.MtimeNsec
            || a.CtimeSec != job.Stat.CtimeSec || a.CtimeNsec != job.Stat.CtimeNsec || a.Inode != job.Stat.Inode || job.Node.Size != job.Stat.Size)
            Error(job.Path, "changed while it was read: the stored copy may mix old and new content");
    }

    /// <summary>
    /// One data extent of a sparse file, read through the file's handle at its offsets; or, <paramref name="whole"/>,
    /// a whole file the walk saw at <paramref name="length"/> bytes, read to its real end: each read asks for one byte
    /// more than is left of that size, so a short read there is the end (no read more to find it) and a file larger
    /// than it said (grown, or a file system whose sizes are not its contents') is read on to its end.
    /// </summary>
    private sealed class ExtentStream(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset, long length, bool whole = false) : Stream
    {
        /// <summary>How far past the walk's size a growing file is read at least.</summary>
        public const long GrowthRead = 64L << 20;

        private long _position;
        private bool _end, _beyond;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int index, int count) => Read(buffer.AsSpan(index, count));

        public override int Read(Span<byte> buffer)
        {
            if (_end) return 0;
            // A file that grew since the walk is read on, but not without end (a log written faster than it is read): up to
            // twice the walk's size, 64 MiB more at least; what it holds past that is the next backup's (the file is said
            // changed while read).
            var limit = !whole ? length : _beyond ? length + Math.Max(length, GrowthRead) : length + 1;
            var want = (int)Math.Min(buffer.Length, limit - _position);
            if (want <= 0) return 0;
            var n = Posix.Posix.PRead(handle, buffer[..want], offset + _position);
            _position += n;
            if (whole)
            {
                if (_position > length) _beyond = true;
                else if (n < want) _end = true;
            }
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
}
