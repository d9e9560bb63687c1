using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Spanning;

/// <summary>
/// A backup's chunk sink across the libraries of its pool: chunks go to the first library until it says it is
/// full (<see cref="LibraryFullException"/>, on a reservation), then the backup goes on in the next library
/// that opens (what the full one took stays pending there, whole, until the commit at the end). At the end every library spanned gets the snapshot's whole
/// reference list (a prune of any of them keeps what the snapshot needs) and a commit. Reads of chunks
/// stored before (dedup questions) ask the library written now, and for what it lacks the earlier ones.
/// Thread-safe like the sinks it wraps: the switch happens once, under a lock, whichever writer meets it first.
/// </summary>
public sealed class SpanningSink : IChunkSink
{
    private readonly Func<string, IChunkSink> _open;
    private readonly Queue<string> _next;
    private readonly List<(string Library, IChunkSink Sink)> _spans;
    private readonly object _switch = new();
    /// <summary>Per thread: the sink its current reservation was asked of (it may be a library the backup has left since).</summary>
    private readonly ThreadLocal<IChunkSink?> _reservedOn = new();
    private volatile IChunkSink _current;

    /// <param name="first">the library the backup starts in, and its sink</param>
    /// <param name="next">the libraries it may go on in, in order</param>
    /// <param name="open">opens a library's sink; an IOException: that library is passed over</param>
    public SpanningSink(string first, IChunkSink firstSink, IEnumerable<string> next, Func<string, IChunkSink> open)
    {
        _spans = [(first, firstSink)];
        _current = firstSink;
        _next = new Queue<string>(next.Where(l => l != first).Distinct());
        _open = open;
    }

    /// <summary>Every library the backup wrote into, the first first.</summary>
    public IReadOnlyList<string> Libraries
    {
        get
        {
            lock (_switch) return _spans.Select(s => s.Library).ToList();
        }
    }

    /// <summary>Every library's sink opened, to be closed by the owner.</summary>
    public IReadOnlyList<(string Library, IChunkSink Sink)> Spans
    {
        get
        {
            lock (_switch) return _spans.ToList();
        }
    }

    public bool DefersReserve => _spans[0].Sink.DefersReserve;

    public bool TryReserve(ChunkId id)
    {
        while (true)
        {
            var sink = _current;
            try
            {
                var granted = sink.TryReserve(id);
                _reservedOn.Value = granted ? sink : null;
                return granted;
            }
            catch (LibraryFullException full)
            {
                GoOn(sink, full);
            }
        }
    }

    public void StartReserve(ChunkId id)
    {
        var sink = _current;
        _reservedOn.Value = sink;
        sink.StartReserve(id);
    }

    public bool FinishReserve(ChunkId id)
    {
        var sink = _reservedOn.Value ?? _current;
        try
        {
            var granted = sink.FinishReserve(id);
            if (!granted) _reservedOn.Value = null;
            return granted;
        }
        catch (LibraryFullException full)
        {
            GoOn(sink, full);
            return TryReserve(id);
        }
    }

    public void Release(ChunkId id)
    {
        var sink = _reservedOn.Value ?? _current;
        _reservedOn.Value = null;
        sink.Release(id);
    }

    public void Append(ChunkId id, RecordFlags flags, ReadOnlySpan<byte> payload)
    {
        // A chunk goes where it was reserved, even a library the backup has left since: a full library still takes
        // the appends it granted (its reserve is sized for them), and a media node's data plane takes an append only
        // on the connection that reserved it (sent to the next library's, it was refused and failed the backup).
        // Should the append fail otherwise, the caller's Release goes to the library that holds the reservation.
        var reservedOn = _reservedOn.Value;
        var sink = reservedOn ?? _current;
        try
        {
            sink.Append(id, flags, payload);
            _reservedOn.Value = null;
        }
        catch (LibraryFullException) when (reservedOn is not null && reservedOn != _current)
        {
            // The library left could not take it after all (a tape library without a scratch cartridge for a new
            // volume): given up there, and reserved and written in the one written now (unless another writer has it).
            _reservedOn.Value = null;
            reservedOn.Release(id);
            if (TryReserve(id)) Append(id, flags, payload);
        }
    }

    public bool Contains(ChunkId id)
    {
        foreach (var (_, sink) in Spans.AsEnumerable().Reverse())
            if (sink.Contains(id)) return true;
        return false;
    }

    public IReadOnlySet<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        IReadOnlySet<ChunkId>? missing = null;
        foreach (var (_, sink) in Spans.AsEnumerable().Reverse())
        {
            missing = sink.Missing(missing is null ? ids : missing.ToList());
            if (missing.Count == 0) break;
        }
        return missing!;
    }

    /// <summary>
    /// Each library spanned keeps the ids of the snapshot it holds (a prune of it keeps those), the one written
    /// now all of this part: a library left because it was down to its reserve gets no more than it must write. The
    /// archiver sends its list in parts as folders are done: a part sent before a span went to the libraries of that
    /// moment, which hold every chunk it names (a later library holds only chunks written after it).
    /// </summary>
    public void AddReferences(string snapshot, IReadOnlyList<ChunkId> ids)
    {
        var current = _current;
        foreach (var (_, sink) in Spans)
        {
            if (sink == current)
            {
                sink.AddReferences(snapshot, ids);
                continue;
            }
            var lacking = sink.Missing(ids);
            sink.AddReferences(snapshot, lacking.Count == 0 ? ids : ids.Where(id => !lacking.Contains(id)).ToList());
        }
    }

    /// <summary>Commits every library spanned, the one written now last.</summary>
    public void Commit()
    {
        var spans = Spans;
        foreach (var (_, sink) in spans.Where(s => s.Sink != _current)) sink.Commit();
        _current.Commit();
    }

    /// <summary>
    /// The library <paramref name="full"/> came from is full: open the next one. What the full one took is
    /// committed with the rest at the end (<see cref="Commit"/>), not now: other writers may be in the middle
    /// of a question to it, and a commit over a socket data plane talks on every writer's connection.
    /// </summary>
    private void GoOn(IChunkSink from, LibraryFullException full)
    {
        lock (_switch)
        {
            if (_current != from) return; // another writer went on already
            var refused = new List<string>();
            while (_next.TryDequeue(out var library))
            {
                try
                {
                    var sink = _open(library);
                    _spans.Add((library, sink));
                    _current = sink;
                    return;
                }
                catch (IOException e)
                {
                    refused.Add($"{library}: {e.Message}");
                }
            }
            throw new LibraryFullException(full.Message + (refused.Count == 0
                ? "; no other library of the pool is left to go on in"
                : "; no other library of the pool took the rest (" + string.Join("; ", refused) + ")"));
        }
    }
}
