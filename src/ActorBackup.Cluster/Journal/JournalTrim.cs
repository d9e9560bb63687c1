namespace ActorBackup.Cluster.Journal;

/// <summary>
/// Keeps a persistent actor's journal from growing for ever: after each snapshot is saved, the events and snapshots
/// before the previous snapshot go (that one stays, with the events after it, for whoever must recover by hand from it
/// should the newest not read back). At most a step of events a time: a long history (after an upgrade) goes
/// in steps, never in one delete that would hold the embedded journal's write lock for long (the node's actors share
/// one database). How far it got is kept in the snapshots, so a restart does not walk up from the first event again.
/// </summary>
/// <param name="step">the most events one trim deletes: <see cref="ManagerStep"/> for the manager's small events, fewer
/// for a media agent's (each holds up to a million index entries of 48 bytes)</param>
public sealed class JournalTrim(long step = JournalTrim.ManagerStep)
{
    public const long ManagerStep = 20_000;

    /// <summary>The sequence number of the newest snapshot saved or recovered from (0: none yet).</summary>
    private long _previous;

    /// <summary>Events up to this one were deleted (as far as the snapshots know).</summary>
    public long TrimmedUpTo { get; private set; }

    /// <summary>The actor recovered from a snapshot at <paramref name="sequenceNr"/> that said the events up to <paramref name="trimmedUpTo"/> were deleted.</summary>
    public void Recovered(long sequenceNr, long trimmedUpTo)
    {
        _previous = sequenceNr;
        TrimmedUpTo = Math.Max(TrimmedUpTo, Math.Min(trimmedUpTo, sequenceNr));
    }

    /// <summary>A snapshot at <paramref name="sequenceNr"/> was saved: the events to delete (up to, inclusive) and the
    /// snapshots (up to), or null when there is no earlier snapshot to keep in its place.</summary>
    public (long Events, long Snapshots)? Saved(long sequenceNr)
    {
        // An answer to an earlier save that comes after a later one's (two saves in flight) deletes nothing: the later
        // one's previous snapshot is what stays.
        if (sequenceNr <= _previous) return null;
        (long, long)? trim = null;
        if (_previous > 0)
        {
            TrimmedUpTo = Math.Max(TrimmedUpTo, Math.Min(_previous, TrimmedUpTo + step));
            trim = (TrimmedUpTo, _previous - 1);
        }
        _previous = sequenceNr;
        return trim;
    }
}
