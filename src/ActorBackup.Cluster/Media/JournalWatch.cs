using System.Globalization;

namespace ActorBackup.Cluster.Media;

/// <summary>
/// The manager's journal as a library's media agent has seen it, kept in the library's folder (outside the database).
/// The manager stamps its tickets and prune requests with its journal's sequence number. A prune request is stamped as
/// the manager asks for it: one lower than a ticket used here well before (<see cref="Settle"/>: that ticket was issued
/// before the prune was asked for) by more than <see cref="Margin"/> means the manager's journal went back in time: its
/// database restored from an older backup, or another (empty) one. Its catalog then lacks the snapshots made since,
/// whose reference lists a prune would let go once older than prune-orphans-after; while <see cref="Behind"/> says so,
/// prunes keep every list the catalog does not know, until a catalog rebuild of this library is recorded
/// (<see cref="CaughtUp"/>) or an operator drops them (abk prune LIBRARY --drop-unknown). A ticket is judged only by
/// when it is used here, never by when it was issued (one may be used hours later: a pre-command, a backup spilling
/// into this library): an old ticket's number is below those used since, and raises nothing.
/// </summary>
public sealed class JournalWatch
{
    /// <summary>How far below the settled highest a prune's number may come without counting (a margin: nothing legitimately comes lower).</summary>
    public const long Margin = 10;

    /// <summary>A ticket's number counts this long after its use here: a prune asked for before the ticket was issued is delivered by then.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromMinutes(30);

    /// <summary>At most this many numbers wait to settle (each higher than the one before); past it the oldest settles early.</summary>
    public const int MaxRecent = 64;

    private readonly string _path;
    /// <summary>Numbers used here that have not settled yet: rising, oldest first.</summary>
    private readonly Queue<(long AtUnixMs, long Sequence)> _recent = new();
    private long _savedUnixMs;

    /// <summary>The highest settled number (0: none yet, or a manager before they were sent).</summary>
    public long Highest { get; private set; }

    /// <summary>Why the manager's catalog is behind this library (said in prunes' reports); null: it is not known to be.</summary>
    public string? Behind { get; private set; }

    /// <param name="folder">the library's folder: the state is its file <c>manager-journal</c></param>
    public JournalWatch(string folder)
    {
        _path = Path.Combine(folder, "manager-journal");
        try
        {
            // Its first 4 KiB at most (what Save writes is less): "highest N", "recent MS:N ..." and "behind TEXT" while behind.
            using var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            var bytes = new byte[Math.Min(file.Length, 4096)];
            file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            foreach (var line in System.Text.Encoding.UTF8.GetString(bytes).Split('\n').Take(3))
                if (line.StartsWith("highest ", StringComparison.Ordinal) && long.TryParse(line.AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out var n)) Highest = n;
                else if (line.StartsWith("behind ", StringComparison.Ordinal)) Behind = line[7..Math.Min(line.Length, 1000)];
                else if (line.StartsWith("recent ", StringComparison.Ordinal))
                    foreach (var pair in line[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(MaxRecent))
                        if (pair.Split(':') is [var at, var sequence] && long.TryParse(at, NumberStyles.None, CultureInfo.InvariantCulture, out var ms)
                            && long.TryParse(sequence, NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > (_recent.Count > 0 ? _recent.Last().Sequence : Highest))
                            _recent.Enqueue((ms, s));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // none yet (or unreadable): as a library whose manager sent no number yet
        }
    }

    /// <summary>A ticket stamped <paramref name="sequence"/> used here now: it counts once settled (0, a manager that sends none: nothing).</summary>
    /// <exception cref="IOException">the state could not be written (the library's folder)</exception>
    public void Used(long sequence, DateTimeOffset now)
    {
        var changed = Fold(now);
        if (sequence > (_recent.Count > 0 ? _recent.Last().Sequence : Highest))
        {
            if (_recent.Count >= MaxRecent) Highest = Math.Max(Highest, _recent.Dequeue().Sequence);
            _recent.Enqueue((now.ToUnixTimeMilliseconds(), sequence));
            changed = true;
        }
        // Written at most once a minute (a number lost to a crash is one less to compare with: no false alarm).
        if (changed && (!File.Exists(_path) || now.ToUnixTimeMilliseconds() - _savedUnixMs >= 60_000)) Save(now);
    }

    /// <summary>
    /// A prune request stamped <paramref name="sequence"/> as the manager asked for it now; true when it shows, for the
    /// first time, that the manager's journal went back (<see cref="Behind"/> is set then).
    /// </summary>
    /// <exception cref="IOException">the state could not be written</exception>
    public bool Asked(long sequence, DateTimeOffset now)
    {
        Fold(now);
        if (sequence <= 0) return false;
        if (sequence + Margin < Highest && Behind is null)
        {
            Behind = $"the manager's journal went back in time (this library saw its sequence number {Highest}, now {sequence}, on {now.UtcDateTime:yyyy-MM-dd HH:mm} UTC): " +
                     "its database was restored from an older backup, or is another one, and its catalog lacks what was stored here since";
            try
            {
                Save(now);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // said all the same (and kept while the node runs); saved with the next change that is
            }
            return true;
        }
        Used(sequence, now);
        return false;
    }

    /// <summary>The catalog knows what this library holds again (a rebuild of it recorded, or an operator's --drop-unknown): the numbers start again from <paramref name="sequence"/>.</summary>
    /// <exception cref="IOException">the state could not be written</exception>
    public void CaughtUp(long sequence, DateTimeOffset now)
    {
        Behind = null;
        _recent.Clear();
        Highest = Math.Max(0, sequence);
        Save(now);
    }

    /// <summary>The numbers used <see cref="Settle"/> ago or more count; true when the highest rose.</summary>
    private bool Fold(DateTimeOffset now)
    {
        var rose = false;
        while (_recent.Count > 0 && now.ToUnixTimeMilliseconds() - _recent.Peek().AtUnixMs >= Settle.TotalMilliseconds)
        {
            var settled = _recent.Dequeue().Sequence;
            if (settled > Highest)
            {
                Highest = settled;
                rose = true;
            }
        }
        return rose;
    }

    private void Save(DateTimeOffset now)
    {
        var text = $"highest {Highest.ToString(CultureInfo.InvariantCulture)}\n" +
                   $"recent {string.Join(' ', _recent.Select(r => $"{r.AtUnixMs.ToString(CultureInfo.InvariantCulture)}:{r.Sequence.ToString(CultureInfo.InvariantCulture)}"))}\n" +
                   (Behind is null ? "" : $"behind {Behind.ReplaceLineEndings(" ")}\n");
        Engine.Posix.Posix.WriteFileDurably(_path, System.Text.Encoding.UTF8.GetBytes(text), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _savedUnixMs = now.ToUnixTimeMilliseconds();
    }
}
