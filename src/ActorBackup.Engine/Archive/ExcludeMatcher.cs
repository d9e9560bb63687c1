using DotNet.Globbing;

namespace ActorBackup.Engine.Archive;

/// <summary>
/// Exclude patterns, restic-style: a pattern with a '/' is matched against the whole path when it begins with '/'
/// ("/srv/cache"), and against the path's end at any depth when it does not (".cache/thumbnails" leaves out
/// /home/a/.cache/thumbnails, as restic reads it); one without a '/' against each entry's name ("*.tmp",
/// "node_modules"). '**' crosses directories. A pattern is written as listings
/// show names (Posix/PosixNames: a byte that is not UTF-8 as \xHH, a backslash as \\), and a backslash is a character
/// of a name, never a separator.
/// </summary>
public sealed class ExcludeMatcher
{
    private readonly List<Glob> _pathGlobs = [];
    private readonly List<Glob> _nameGlobs = [];
    /// <summary>With tracking: each glob's pattern as written, and those that matched something (not thread-safe then).</summary>
    private readonly Dictionary<Glob, string>? _written;
    private readonly HashSet<string>? _matched;

    /// <param name="track">remember which patterns matched something (<see cref="Unmatched"/>): one thread only</param>
    public ExcludeMatcher(IEnumerable<string>? patterns, bool track = false)
    {
        if (track) (_written, _matched) = (new(ReferenceEqualityComparer.Instance), new(StringComparer.Ordinal));
        foreach (var p in patterns ?? [])
        {
            if (string.IsNullOrWhiteSpace(p)) continue;
            var text = Posix.PosixNames.ForGlob(Posix.PosixNames.Parse(p));
            // A relative path pattern: its path at the root, or below any folders (as restic matches it).
            string[] forms = !p.Contains('/') || p.StartsWith('/') ? [text] : p.StartsWith("**/", StringComparison.Ordinal) ? ["/" + text] : ["/" + text, "/**/" + text];
            foreach (var form in forms)
            {
                Glob glob;
                try
                {
                    glob = Glob.Parse(form);
                }
                catch (Exception e)
                {
                    throw new ArgumentException($"exclude pattern '{p}' is not a valid glob: {e.Message}", e);
                }
                (p.Contains('/') ? _pathGlobs : _nameGlobs).Add(glob);
                _written?.TryAdd(glob, p);
            }
        }
    }

    /// <summary>
    /// With tracking, the patterns of paths (with a '/') that matched nothing so far (a mistyped path). Those of names
    /// ("*.tmp") are not said: none there is no mistake.
    /// </summary>
    public IEnumerable<string> Unmatched => _written is null ? [] : _written.Values.Where(p => p.Contains('/') && !_matched!.Contains(p)).Distinct();

    /// <summary>With tracking: every pattern that matches is marked (not only the first: --exclude cache --exclude /srv/cache both left it out).</summary>
    private bool Tracked(string globName, string path)
    {
        var fullPath = Posix.PosixNames.ForGlob(path);
        var any = false;
        foreach (var g in _nameGlobs)
            if (g.IsMatch(globName)) any |= _matched!.Add(_written![g]) | true;
        foreach (var g in _pathGlobs)
            if (g.IsMatch(fullPath)) any |= _matched!.Add(_written![g]) | true;
        return any;
    }

    /// <summary>
    /// Whether the entry <paramref name="name"/> of the folder whose entries' paths begin with <paramref name="folderPrefix"/>
    /// ("/a/b/") is left out; its path is made only when a pattern names paths. Thread-safe without tracking: a glob only reads its tokens.
    /// </summary>
    public bool IsExcluded(string folderPrefix, string name)
    {
        if (_nameGlobs.Count + _pathGlobs.Count == 0) return false;
        // A backslash in a name is a character, not a separator (PosixNames.ForGlob).
        var globName = Posix.PosixNames.ForGlob(name);
        if (_written is not null) return Tracked(globName, folderPrefix + name);
        foreach (var g in _nameGlobs) if (g.IsMatch(globName)) return true;
        if (_pathGlobs.Count == 0) return false;
        var fullPath = Posix.PosixNames.ForGlob(folderPrefix + name);
        foreach (var g in _pathGlobs) if (g.IsMatch(fullPath)) return true;
        return false;
    }
}
