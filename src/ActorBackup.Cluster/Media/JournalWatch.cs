using System.Globalization;

namespace ActorBackup.Cluster.Media;

/// <summary>
/// The manager's journal as a library's media agent has seen it, kept in the library's folder (outside the database):
/// the highest journal sequence number the manager's tickets and prune requests carried, and whether one came lower
/// since. Lower means the manager's journal went back in time: its database restored from an older backup, or another
/// (empty) database. Its catalog then lacks the snapshots made since, whose reference lists a prune would let go once
/// older than prune-orphans-after; while <see cref="Behind"/> says so, prunes keep every list the catalog does not know,
/// until a catalog rebuild of this library is recorded (<see cref="CaughtUp"/>) or an operator drops them
/// (abk prune LIBRARY --drop-unknown).
/// </summary>
public sealed class JournalWatch
{
    /// <summary>
    /// How far below the highest a number may come without counting: a manager may count an event whose write was under
    /// way when it stamped a ticket, and one that stopped then is taken over by one that recovered without it. (A journal
    /// that lost committed events, SQLite after a power cut, is behind indeed: its catalog may lack a snapshot.)
    /// </summary>
    public const long Margin = 10;

    private readonly string _path;

    /// <summary>The highest sequence number seen (0: none yet, or a manager before they were sent).</summary>
    public long Highest { get; private set; }

    /// <summary>Why the manager's catalog is behind this library (said in prunes' reports); null: it is not known to be.</summary>
    public string? Behind { get; private set; }

    /// <param name="folder">the library's folder: the state is its file <c>manager-journal</c></param>
    public JournalWatch(string folder)
    {
        _path = Path.Combine(folder, "manager-journal");
        try
        {
            // Its first 4 KiB at most (what Save writes is less), two lines: "highest N", and "behind TEXT" while behind.
            using var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            var bytes = new byte[Math.Min(file.Length, 4096)];
            file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            foreach (var line in System.Text.Encoding.UTF8.GetString(bytes).Split('\n').Take(2))
                if (line.StartsWith("highest ", StringComparison.Ordinal) && long.TryParse(line.AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out var n)) Highest = n;
                else if (line.StartsWith("behind ", StringComparison.Ordinal)) Behind = line[7..Math.Min(line.Length, 1000)];
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // a library whose manager sent no number yet
        }
    }

    /// <summary>
    /// A number the manager stamped; true when it shows, for the first time, that the manager's journal went back
    /// (<see cref="Behind"/> is set then). 0 (a manager that sends none) says nothing.
    /// </summary>
    /// <exception cref="IOException">the state could not be written (the library's folder)</exception>
    public bool Saw(long sequence, DateTimeOffset now)
    {
        if (sequence <= 0) return false;
        if (sequence + Margin < Highest)
        {
            if (Behind is not null) return false;
            Behind = $"the manager's journal went back in time (this library saw its sequence number {Highest}, now {sequence}, on {now.UtcDateTime:yyyy-MM-dd HH:mm} UTC): " +
                     "its database was restored from an older backup, or is another one, and its catalog lacks what was stored here since";
            Save();
            return true;
        }
        if (sequence <= Highest) return false;
        Highest = sequence;
        Save();
        return false;
    }

    /// <summary>The catalog knows what this library holds again (a rebuild of it recorded, or an operator's --drop-unknown): the number starts again from <paramref name="sequence"/>.</summary>
    /// <exception cref="IOException">the state could not be written</exception>
    public void CaughtUp(long sequence)
    {
        if (Behind is null && sequence <= Highest) return;
        Behind = null;
        if (sequence > 0) Highest = sequence;
        Save();
    }

    private void Save()
    {
        var text = $"highest {Highest.ToString(CultureInfo.InvariantCulture)}\n" + (Behind is null ? "" : $"behind {Behind.ReplaceLineEndings(" ")}\n");
        Engine.Posix.Posix.WriteFileDurably(_path, System.Text.Encoding.UTF8.GetBytes(text), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}
