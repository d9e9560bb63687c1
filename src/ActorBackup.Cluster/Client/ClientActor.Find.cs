using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Find;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;
using Google.Protobuf;

namespace ActorBackup.Cluster.Client;

/// <summary>
/// `abk find` on a client node: the snapshots' file indexes (Engine/Find), a projection of their trees kept in
/// DATA/file-index. Each backup this client makes is indexed right after it ends; a snapshot without an index
/// here (another client's, one made before, a damaged index) is indexed when a find first needs it. One index
/// build or search at a time on this node; a find does not wait behind a background build (which stops for it).
/// </summary>
public sealed partial class ClientActor
{
    public const int DefaultFindLimit = 1000;
    public const int MaxFindLimit = 20_000;
    private static readonly TimeSpan FindProgressEvery = TimeSpan.FromSeconds(5);
    private readonly Lazy<FileIndexStore> _fileIndexes;
    /// <summary>One index build or search at a time, finds first (a background build stops for a find).</summary>
    private readonly IndexTurns _indexing = new();
    /// <summary>Per backup job running: the catalog's snapshots of this client as its assignment said, and when.</summary>
    private readonly Dictionary<(string Job, int Attempt), (HashSet<string> Ids, long AsOfUnixMs)> _catalogOwn = [];

    /// <summary>
    /// How long before the catalog's list was taken a snapshot of this client must have ended for its index to go when the
    /// list lacks it: a backup that ended just before may not be recorded yet (its commit runs on), and the client's
    /// clock (the snapshot's end) need not be the manager's (the list's time).
    /// </summary>
    private static readonly TimeSpan IndexSweepMargin = TimeSpan.FromDays(1);

    /// <summary>
    /// Indexes a snapshot this client just made, on a thread of its own at the lowest CPU priority: background work that
    /// yields both cores to the next backup or restore, and runs at full speed when the node has nothing else to do.
    /// </summary>
    /// <param name="catalogOwn">the catalog's snapshots of this client as the backup's assignment said (null: not known): the
    /// indexes of the others of its own that ended a day and more before then are deleted after the build</param>
    private void IndexInBackground(ByteString manifestBytes, (HashSet<string> Ids, long AsOfUnixMs)? catalogOwn)
    {
        var log = _log;
        var self = Self;
        new Thread(() =>
        {
            Engine.Posix.Posix.YieldThisThread();
            var manifest = SnapshotManifest.Parser.ParseFrom(manifestBytes);
            var build = _indexing.TakeBackground();
            try
            {
                if (!_fileIndexes.Value.Has(manifest.Id)) BuildIndex(manifest, [manifest.Library], Trust.JobTickets.BackgroundIndex, build.Token);
            }
            catch (OperationCanceledException) when (build.Token.IsCancellationRequested) // a find came: it builds what it needs, at its own priority
            {
                log.Info("file index of snapshot {0} gave way to a find (which builds it when it needs it)", manifest.Id);
            }
            catch (Exception e) // a find builds it later
            {
                log.Warning("file index of snapshot {0} not built now ({1}); abk find builds it when it needs it", manifest.Id, e.Message);
            }
            finally
            {
                // The indexes of snapshots retention deleted since (one a backup: they piled up unless a find ran here).
                try
                {
                    if (catalogOwn is { } own && _fileIndexes.Value.RetainOf(manifest.Client, own.Ids, own.AsOfUnixMs - (long)IndexSweepMargin.TotalMilliseconds) is > 0 and var dropped)
                        log.Info("{0} file index(es) of snapshots of {1} no longer in the catalog deleted", dropped, manifest.Client);
                }
                catch (Exception e) // on a thread of its own: nothing may escape it
                {
                    log.Warning("file indexes of snapshots no longer in the catalog not swept now ({0}); the next backup or find does", e.Message);
                }
                build.Dispose();
                self.Tell(new JobsMayBeOver()); // the backup's last work here
            }
        }) { IsBackground = true, Name = "file-index" }.Start();
    }

    /// <summary>Writes a snapshot's index from its trees, read from the first of <paramref name="libraries"/> that opens.</summary>
    /// <param name="purpose">the look's purpose: "find" for an operator's search (holds the library until it is done), or
    /// <see cref="Trust.JobTickets.BackgroundIndex"/> after a backup (gives way to an operator's export, mount, unmount or clean)</param>
    /// <param name="cancel">a background build's, cancelled by a find that comes (it stops before its next folder)</param>
    private void BuildIndex(SnapshotManifest manifest, IReadOnlyList<string> libraries, string purpose = "find", CancellationToken cancel = default)
    {
        // An unchanged backup has its parent's tree: its index is the parent's under its own header.
        if (manifest.Parent.Length > 0 && _fileIndexes.Value.WriteFrom(manifest.Parent, manifest)) return;
        Exception? last = null;
        foreach (var library in libraries)
        {
            try
            {
                var spans = library == manifest.Library ? manifest.Spans : [];
                var ticket = LookTicket(purpose, spans.Prepend(library));
                using var reads = new ReadSessions(this, spans, ticket, OpenChannel(library, ticket, write: false), library);
                using var trees = new TreeReader(_ring.For(manifest), reads.Source);
                _fileIndexes.Value.Write(manifest.Id, (file, scratch) => FileIndex.Write(trees, manifest, file, scratch, cancel));
                return;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or InvalidProtocolBufferException or Engine.Crypto.WrongKeyException
                                          or KeyNotFoundException or TimeoutException or AskTimeoutException or InvalidOperationException)
            {
                last = e;
            }
        }
        throw new IOException($"cannot read the trees of snapshot {manifest.Id} from {string.Join(" or ", libraries)}: {last?.Message}", last);
    }

    /// <summary>Answers a SearchFileIndex: FindProgress while indexes are built, then FilesFound (or CommandRejected). On a thread of its own.</summary>
    /// <param name="caller">who signed the find (null without trust): a client host searches only the snapshots the catalog says are its own</param>
    private void Find(SearchFileIndex request, IActorRef requester, Protocol.Trust.CellIdentity? caller = null)
    {
        if (caller is { Role: Protocol.Trust.CellRole.Client })
        {
            // The node that relayed the request named the snapshots: the manager's catalog says which are this host's.
            object answer;
            try
            {
                answer = Manager.SnapshotPages.All(new ListSnapshots { Client = caller.Client },
                    m => _manager.Ask<object>(Protocol.Trust.OperatorCommands.For(request.Caller, m), TimeSpan.FromSeconds(30))).GetAwaiter().GetResult();
            }
            catch (AskTimeoutException)
            {
                requester.Tell(new CommandRejected { Reason = "the manager did not say in 30 s which snapshots are this client's: try again" });
                return;
            }
            if (answer is not SnapshotList own)
            {
                requester.Tell(new CommandRejected { Reason = $"the manager did not say which snapshots are this client's: {(answer as CommandRejected)?.Reason ?? answer.GetType().Name}" });
                return;
            }
            var ids = own.Snapshots.Select(s => s.Id).ToHashSet();
            var kept = request.Snapshots.Where(s => ids.Contains(s.Id)).ToList();
            request = request.Clone();
            request.Snapshots.Clear();
            request.Snapshots.AddRange(kept);
        }
        var started = DateTime.UtcNow;
        var query = request.Query;
        FindPattern pattern;
        try
        {
            pattern = FindPattern.Parse(query.Pattern, query.IgnoreCase);
        }
        catch (ArgumentException e)
        {
            requester.Tell(new CommandRejected { Reason = e.Message });
            return;
        }
        var limit = query.Limit <= 0 ? DefaultFindLimit : Math.Min(query.Limit, MaxFindLimit);
        var progress = new FindProgress();
        using var heartbeat = new Timer(_ => requester.Tell(progress.Clone()), null, FindProgressEvery, FindProgressEvery);
        using var turn = _indexing.TakeFind(); // a background build running gives way
        try
        {
            var store = _fileIndexes.Value;
            // The catalog's snapshots, to forget the indexes of deleted ones; a client host's find names only its own.
            if (caller is not { Role: Protocol.Trust.CellRole.Client }) store.Retain(request.Live.ToHashSet());
            var missing = request.Snapshots.Where(s => !store.Has(s.Id)).ToList();
            progress.IndexesToBuild = missing.Count;
            var notSearched = new List<string>();
            foreach (var s in missing)
            {
                progress.Snapshot = s.Id;
                try
                {
                    var detail = _manager.Ask<object>(Protocol.Trust.OperatorCommands.For(request.Caller, new GetSnapshot { Snapshot = s.Id }), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult() switch
                    {
                        SnapshotDetail d => d,
                        CommandRejected r => throw new KeyNotFoundException($"the manager did not give its manifest: {r.Reason}"),
                        var other => throw new KeyNotFoundException($"the manager answered {other.GetType().Name}"),
                    };
                    var manifest = _ring.Open(detail.Manifest);
                    BuildIndex(manifest, s.Libraries.Count > 0 ? s.Libraries : [manifest.Library]);
                    progress.IndexesBuilt++;
                }
                catch (Exception e) when (e is IOException or KeyNotFoundException or AskTimeoutException or InvalidProtocolBufferException or InvalidDataException)
                {
                    notSearched.Add($"{s.Id}: {e.Message}");
                }
            }
            var searched = request.Snapshots.Where(s => notSearched.All(n => !n.StartsWith(s.Id + ":", StringComparison.Ordinal)))
                .Select(s => new VersionFinder.Searched(s.Id, s.Client, s.FinishedUnixMs)).ToList();
            var result = VersionFinder.Find(searched, store, pattern, limit);
            var answer = new FilesFound
            {
                SnapshotsSearched = result.SnapshotsSearched, EntriesSearched = result.EntriesSearched, Matches = result.Matches, Truncated = result.Truncated,
                IndexesBuilt = progress.IndexesBuilt, Seconds = (DateTime.UtcNow - started).TotalSeconds, NotSearched = { notSearched },
            };
            answer.Versions.AddRange(result.Versions.Select(v => new FileVersion
            {
                Client = v.Client, Path = v.Path, Type = v.Type.ToString(), Size = v.Size, MtimeUnixSec = v.MtimeSec, Snapshots = v.Snapshots,
                FirstSnapshot = v.FirstSnapshot, FirstUnixMs = v.FirstUnixMs, LastSnapshot = v.LastSnapshot, LastUnixMs = v.LastUnixMs,
            }));
            requester.Tell(answer);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            requester.Tell(new CommandRejected { Reason = $"find on client node {_settings.ClientId}: {e.Message} (try again: a damaged index is built again)" });
        }
    }
}
