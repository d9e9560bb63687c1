namespace ActorBackup.Engine.Posix;

/// <summary>The times a restore gives an entry: its mtime (nanoseconds kept), and its atime when the backup recorded it (else the atime is left as it is).</summary>
public readonly record struct EntryTimes(long MtimeSec, uint MtimeNsec, long AtimeSec = 0, uint AtimeNsec = 0)
{
    public bool HasAtime => AtimeSec != 0 || AtimeNsec != 0;
}
