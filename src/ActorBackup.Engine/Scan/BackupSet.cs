using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Trees;
using DotNet.Globbing;

namespace ActorBackup.Engine.Scan;

/// <summary>What to back up on a client: paths, exclude globs, and whether to stay on each path's file system.</summary>
public sealed record BackupSet(string Name, IReadOnlyList<string> Paths, IReadOnlyList<string>? Excludes = null, bool OneFileSystem = false);

public sealed record BackupOptions
{
    public Level Level { get; init; } = Level.Full;
    public ChunkerOptions Chunker { get; init; } = ChunkerOptions.Default;
    public int CompressionLevel { get; init; } = 3;
    public int Parallelism { get; init; } = Math.Max(2, Environment.ProcessorCount);
    public string Client { get; init; } = Environment.MachineName;
    public string Library { get; init; } = "";
    public string Job { get; init; } = "";
    /// <summary>Bytes read per second, averaged over the job, across all its threads; 0: no limit.</summary>
    public long MaxBytesPerSecond { get; init; }
}

public sealed record BackupProgress(long FilesDone, long FilesToRead, long BytesDone, long BytesToRead, long ChunksNew, long BytesStored);

/// <summary>
/// Exclude patterns, restic-style: a pattern with a '/' is matched against the whole path, one without
/// against each entry's name ("*.tmp", "node_modules"). '**' crosses directories.
/// </summary>
public sealed class ExcludeMatcher
{
    private readonly List<Glob> _pathGlobs = [];
    private readonly List<Glob> _nameGlobs = [];

    public ExcludeMatcher(IEnumerable<string>? patterns)
    {
        foreach (var p in patterns ?? [])
        {
            if (string.IsNullOrWhiteSpace(p)) continue;
            Glob glob;
            try
            {
                glob = Glob.Parse(p);
            }
            catch (Exception e)
            {
                throw new ArgumentException($"exclude pattern '{p}' is not a valid glob: {e.Message}", e);
            }
            (p.Contains('/') ? _pathGlobs : _nameGlobs).Add(glob);
        }
    }

    public bool IsExcluded(string fullPath, string name)
    {
        foreach (var g in _nameGlobs) if (g.IsMatch(name)) return true;
        foreach (var g in _pathGlobs) if (g.IsMatch(fullPath)) return true;
        return false;
    }
}
