using System.Security.Cryptography;
using System.Text;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Media;

/// <summary>
/// The snapshot lists of a prune or a library check too long for one message (Akka.Remote's 4 MiB frames hold some
/// 200,000 snapshot ids): the manager sends them in KeepPage parts just before the request, which then names how many
/// parts and the digest of the lists they make together; the request is signed, the parts are not, so a part from
/// anywhere else, lost or out of order fails the digest and the job fails (to be tried again) instead of sweeping
/// what the catalog keeps. A media agent of a build before the parts ignores them and sees a request that keeps
/// nothing, deletes nothing and does not drop what it does not know (drop_unknown goes as parts_drop_unknown): it
/// keeps the lists the catalog does not know (MediaActor.UnknownListsRefusal). Parts are taken only from the sender
/// of their request, and wait at most <see cref="WaitAtMost"/>.
/// </summary>
public sealed class KeepPages
{
    /// <summary>Ids in one part (about 2 MB on the wire), and the most in a request that goes whole.</summary>
    public const int PageSize = 100_000;

    /// <summary>The most ids held waiting for their requests, all jobs together: some 4 million snapshots a library.</summary>
    public const int MaxHeld = 4_000_000;

    /// <summary>The most jobs whose parts wait at once (a prune and a check of one library; the rest are stale).</summary>
    private const int MaxWaiting = 4;

    /// <summary>How long parts wait for their request (sent right after them): older ones are let go.</summary>
    public static readonly TimeSpan WaitAtMost = TimeSpan.FromMinutes(10);

    private readonly Dictionary<(string Job, int Attempt), Waiting> _waiting = [];
    private readonly int _maxHeld;

    /// <param name="maxHeld">the most ids held waiting (<see cref="MaxHeld"/>; a test's fewer)</param>
    public KeepPages(int maxHeld = MaxHeld) => _maxHeld = maxHeld;
    private long _arrivals;

    private sealed class Waiting(int pages, object from, long since)
    {
        public readonly KeepPage?[] Parts = new KeepPage?[pages];
        public readonly object From = from;
        public readonly long Since = since;
        public long Arrived;
        public int Ids => Parts.Sum(p => p is null ? 0 : p.Keep.Count + p.Deleted.Count);
    }

    /// <summary>Moves <paramref name="request"/>'s lists into parts when they are too long for one message; none when they fit.</summary>
    public static IReadOnlyList<KeepPage> Split(IMessage request, int pageSize = PageSize) => request switch
    {
        PruneLibrary p when p.Keep.Count + p.Deleted.Count > pageSize => Split(p.Library, p.Job, p.Attempt, p.Keep, p.Deleted, pageSize, (n, d) =>
        {
            (p.KeepPages, p.KeepDigest) = (n, d);
            (p.PartsDropUnknown, p.DropUnknown) = (p.DropUnknown, false);
        }),
        VerifyLibrary v when v.Keep.Count > pageSize => Split(v.Library, v.Job, v.Attempt, v.Keep, [], pageSize, (n, d) => (v.KeepPages, v.KeepDigest) = (n, d)),
        _ => [],
    };

    private static List<KeepPage> Split(string library, string job, int attempt, IList<string> keep, IList<string> deleted,
                                        int pageSize, Action<int, ByteString> named)
    {
        var all = keep.Select(k => (Keep: true, Id: k)).Concat(deleted.Select(d => (Keep: false, Id: d))).Chunk(pageSize).ToList();
        var pages = all.Select((part, i) => new KeepPage
        {
            Library = library, Job = job, Attempt = attempt, Page = i, Pages = all.Count,
            Keep = { part.Where(e => e.Keep).Select(e => e.Id) }, Deleted = { part.Where(e => !e.Keep).Select(e => e.Id) },
        }).ToList();
        named(pages.Count, Digest(keep, deleted));
        keep.Clear();
        deleted.Clear();
        return pages;
    }

    /// <summary>SHA-256 of the kept ids, then the deleted ones, each as its kind ('k', 'd'), its UTF-8 length (4 bytes) and its bytes.</summary>
    public static ByteString Digest(IEnumerable<string> keep, IEnumerable<string> deleted)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var head = new byte[5];
        void Add(byte kind, string id)
        {
            var bytes = Encoding.UTF8.GetBytes(id);
            head[0] = kind;
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head.AsSpan(1), bytes.Length);
            hash.AppendData(head);
            hash.AppendData(bytes);
        }
        foreach (var k in keep) Add((byte)'k', k);
        foreach (var d in deleted) Add((byte)'d', d);
        return ByteString.CopyFrom(hash.GetHashAndReset());
    }

    /// <summary>Holds a part until its request comes; a part out of bounds, or one past what may be held, is dropped (its request then fails).</summary>
    /// <returns>why it was dropped, or null</returns>
    /// <param name="from">who sent it: its request must come from the same sender</param>
    /// <param name="now">a monotonic clock's milliseconds</param>
    public string? Add(KeepPage page, object from, long now)
    {
        if (page.Pages is < 1 or > MaxHeld / PageSize + 1 || page.Page < 0 || page.Page >= page.Pages || page.Keep.Count + page.Deleted.Count > PageSize)
            return $"a list part {page.Page} of {page.Pages} with {page.Keep.Count + page.Deleted.Count} ids is out of bounds";
        foreach (var stale in _waiting.Where(w => now - w.Value.Since > (long)WaitAtMost.TotalMilliseconds).Select(w => w.Key).ToList()) _waiting.Remove(stale);
        var key = (page.Job, page.Attempt);
        if (_waiting.TryGetValue(key, out var waiting) && (waiting.Parts.Length != page.Pages || !waiting.From.Equals(from)))
            return $"a list part of job {page.Job} from {from} does not match the {waiting.Parts.Length} parts waiting from {waiting.From}: dropped";
        if (waiting is null)
        {
            while (_waiting.Count >= MaxWaiting) _waiting.Remove(_waiting.MinBy(w => w.Value.Arrived).Key);
            _waiting[key] = waiting = new Waiting(page.Pages, from, now);
        }
        if (_waiting.Values.Sum(w => w.Ids) + page.Keep.Count + page.Deleted.Count - (waiting.Parts[page.Page] is { } was ? was.Keep.Count + was.Deleted.Count : 0) > _maxHeld)
            return $"list parts of more than {_maxHeld} ids wait: part {page.Page} of job {page.Job} dropped";
        waiting.Parts[page.Page] = page;
        waiting.Arrived = ++_arrivals;
        return null;
    }

    /// <summary>A prune as the manager asked for it: <paramref name="request"/> itself, or with its lists put together from their parts; null and <paramref name="error"/> as <see cref="Take"/>.</summary>
    public PruneLibrary? Whole(PruneLibrary request, object from, out string error)
    {
        error = "";
        if (request.KeepPages == 0) return request;
        if (Take(request.Job, request.Attempt, request.KeepPages, request.KeepDigest, from, out error) is not { } lists) return null;
        var whole = request.Clone();
        whole.Keep.AddRange(lists.Keep);
        whole.Deleted.AddRange(lists.Deleted);
        (whole.KeepPages, whole.DropUnknown) = (0, request.PartsDropUnknown);
        return whole;
    }

    /// <summary>A library check as the manager asked for it (<see cref="Whole(PruneLibrary, object, out string)"/>).</summary>
    public VerifyLibrary? Whole(VerifyLibrary request, object from, out string error)
    {
        error = "";
        if (request.KeepPages == 0) return request;
        if (Take(request.Job, request.Attempt, request.KeepPages, request.KeepDigest, from, out error) is not { } lists) return null;
        var whole = request.Clone();
        whole.Keep.AddRange(lists.Keep);
        whole.KeepPages = 0;
        return whole;
    }

    /// <summary>
    /// The lists of job <paramref name="job"/>'s attempt <paramref name="attempt"/>, put together from its parts (which are let go
    /// of); null and <paramref name="error"/> when a part is missing or they do not hash to <paramref name="digest"/>.
    /// </summary>
    /// <param name="from">who sent the request: the parts must be from it</param>
    public (List<string> Keep, List<string> Deleted)? Take(string job, int attempt, int pages, ByteString digest, object from, out string error)
    {
        error = "";
        _waiting.Remove((job, attempt), out var waiting);
        var missing = waiting is null || waiting.Parts.Length != pages || !waiting.From.Equals(from) ? pages : waiting.Parts.Count(p => p is null);
        if (missing > 0)
        {
            error = $"{missing} of the {pages} parts of the catalog's snapshot list did not reach the media agent (lost on the way, or the node restarted): the job is tried again";
            return null;
        }
        var keep = waiting!.Parts.SelectMany(p => p!.Keep).ToList();
        var deleted = waiting.Parts.SelectMany(p => p!.Deleted).ToList();
        if (!Digest(keep, deleted).Equals(digest))
        {
            error = "the parts of the catalog's snapshot list that reached the media agent are not those the manager signed (a part from elsewhere, or out of order): " +
                    "nothing was done, and the job is tried again";
            return null;
        }
        return (keep, deleted);
    }
}
