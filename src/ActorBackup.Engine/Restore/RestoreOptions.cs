namespace ActorBackup.Engine.Restore;

public sealed record RestoreOptions
{
    /// <summary>Snapshot paths (a path restores it and everything below it) or globs; empty: everything.</summary>
    public IReadOnlyList<string> Include { get; init; } = [];
    /// <summary>Set owners back. Default: when running as root (only root may give files away).</summary>
    public bool? RestoreOwner { get; init; }
    /// <summary>Write into / or into a folder that already holds something (what is there may be replaced). Default: refused.</summary>
    public bool Force { get; init; }
    /// <summary>Owners by the recorded ids, as they are; otherwise by the recorded user and group names where this host knows them (tar's way).</summary>
    public bool NumericOwner { get; init; }
    /// <summary>Blocks of zeros (4 KiB, aligned in the file) are not written but left as holes: the file takes no space for them.</summary>
    public bool Sparse { get; init; }
    public int Parallelism { get; init; } = Math.Max(2, Environment.ProcessorCount);
    /// <summary>Told the name of each phase that ended (directories, contents, links): tests change the target between phases.</summary>
    internal Action<string>? Phase { get; init; }
}
