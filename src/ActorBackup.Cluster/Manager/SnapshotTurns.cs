namespace ActorBackup.Cluster.Manager;

/// <summary>
/// When the manager saves a snapshot of its state: after every <paramref name="every"/> events, but never while the
/// last save has not answered (a state of a large catalog takes seconds to write; at a busy hour's hundreds of events,
/// saves would otherwise pile up, each a copy of the whole state in memory). The events meanwhile count towards the next,
/// which is saved as soon as the last answers when they reached <paramref name="every"/> (a burst is not left unsaved).
/// </summary>
public sealed class SnapshotTurns(int every)
{
    private int _since;
    private bool _saving;

    /// <summary>An event was journaled: whether to save a snapshot now (then one is being saved until <see cref="Answered"/>).</summary>
    public bool Journaled()
    {
        _since++;
        return Due();
    }

    /// <summary>The save answered, whether it succeeded or failed: whether to save again now (the events meanwhile reached the count).</summary>
    public bool Answered()
    {
        _saving = false;
        return Due();
    }

    private bool Due()
    {
        if (_saving || _since < every) return false;
        _since = 0;
        _saving = true;
        return true;
    }
}
