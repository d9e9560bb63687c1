using System.Text;
using DotNet.Globbing;

namespace ActorBackup.Engine.Find;

/// <summary>
/// What `abk find` looks for, as exclude patterns read: a glob without '/' is matched against each entry's
/// name ("*.conf", "passwd"), one with '/' against the whole path from the root ("/etc/**/*.conf"; "etc/x" is
/// read as "/etc/x"). '*' and '?' stay within one name, '**' crosses directories, [abc] is a class.
/// Matching works on the index's bytes: a name is decoded only when it holds the pattern's longest literal
/// (for a path pattern: the longest literal of its last name). Names are in the index, and patterns are written,
/// as listings show them (Posix/PosixNames.Display: "caf\xe9" for a Latin-1 name; a backslash is "\\"), and such an
/// escape is one character to '?' and to a [class] (one byte of the name); any other backslash is a plain character,
/// never an escape or a separator.
/// </summary>
public sealed class FindPattern
{
    private readonly Glob _glob;
    private readonly byte[]? _exact;
    private readonly byte[]? _literal;
    /// <summary>A path pattern's last name, when it has no '**': what every matching entry's name contains.</summary>
    private readonly byte[]? _nameLiteral;
    /// <summary>A name pattern of only '*': every entry, nothing decoded.</summary>
    private readonly bool _matchesAll;

    /// <summary>True when the pattern is matched against whole paths, false: against names.</summary>
    public bool MatchesPath { get; }
    public string Text { get; }

    private FindPattern(string text, bool ignoreCase)
    {
        MatchesPath = text.Contains('/');
        if (MatchesPath && !text.StartsWith('/') && !text.StartsWith("**", StringComparison.Ordinal)) text = "/" + text;
        Text = text;
        _glob = Glob.Parse(Plain(text), new GlobOptions { Evaluation = { CaseInsensitive = ignoreCase } });
        _matchesAll = !MatchesPath && text.All(c => c == '*');
        if (ignoreCase) return; // the byte prefilters compare exactly
        if (text.IndexOfAny(['*', '?', '[', ']', '{', '}', '\\']) < 0) _exact = Encoding.UTF8.GetBytes(text);
        else if (LongestLiteral(text) is { Length: > 0 } literal) _literal = Encoding.UTF8.GetBytes(literal);
        if (MatchesPath && text[(text.LastIndexOf('/') + 1)..] is { } last && !last.Contains("**", StringComparison.Ordinal) &&
            LongestLiteral(last) is { Length: > 0 } nameLiteral)
            _nameLiteral = Encoding.UTF8.GetBytes(nameLiteral);
    }

    /// <exception cref="ArgumentException">an empty pattern or one that is not a glob, with what to type</exception>
    public static FindPattern Parse(string pattern, bool ignoreCase = false)
    {
        if (pattern.Contains('\0')) throw new ArgumentException("a pattern holds no NUL character");
        if (string.IsNullOrWhiteSpace(pattern)) throw new ArgumentException("give a pattern: a file name (passwd), a glob (*.conf) or a path glob (/etc/**/*.conf)");
        try
        {
            return new FindPattern(Escapes(pattern), ignoreCase);
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            throw new ArgumentException($"'{pattern}' is not a valid glob: {e.Message}", e);
        }
    }

    /// <summary>
    /// A byte escape written in either case (caf\xE9) as listings show it (caf\xe9), as sets, restores and ls take it; an
    /// escaped backslash (\\) is left as it is, and so is the "xE9" after it.
    /// </summary>
    private static string Escapes(string pattern) =>
        System.Text.RegularExpressions.Regex.Replace(pattern, @"\\\\|\\x[0-9a-fA-F]{2}", m => m.Value.ToLowerInvariant());

    /// <summary>
    /// The entries of an index that match, in entry order: at most <paramref name="max"/> of their numbers go
    /// into <paramref name="hits"/>; answers how many matched in all. The names column is searched for the
    /// pattern's literal (vectorized); only names holding it are decoded and matched whole.
    /// </summary>
    public long Search(FileIndex.View index, List<Hit> hits, int max)
    {
        var names = index.Names;
        var dirStarts = MatchesPath ? index.DirStarts() : null;
        var scratch = new byte[4096];
        long total = 0, entry = 0;
        var needle = MatchesPath ? _nameLiteral : _exact ?? _literal;
        if (needle is null)
        {
            for (var at = 0; at < names.Length; entry++)
            {
                var end = at + names[at..].IndexOf((byte)0);
                if (Test(index, dirStarts, entry, names[at..end], ref scratch) && ++total <= max) hits.Add(new Hit(entry, at, end - at));
                at = end + 1;
            }
            return total;
        }
        var counted = 0;
        for (var from = 0; from < names.Length;)
        {
            var found = names[from..].IndexOf(needle);
            if (found < 0) break;
            var pos = from + found;
            var start = names[..pos].LastIndexOf((byte)0) + 1;
            var end = pos + names[pos..].IndexOf((byte)0); // a needle holds no NUL, so the name goes on past it
            entry += names[counted..start].Count((byte)0);
            counted = start;
            if (Test(index, dirStarts, entry, names[start..end], ref scratch) && ++total <= max) hits.Add(new Hit(entry, start, end - start));
            from = end + 1;
        }
        return total;
    }

    /// <summary>A matching entry: its number, and where its name is in the names column.</summary>
    public readonly record struct Hit(long Entry, int NameStart, int NameLength);

    private bool Test(FileIndex.View index, int[]? dirStarts, long entry, ReadOnlySpan<byte> name, ref byte[] scratch)
    {
        if (!MatchesPath)
        {
            if (_exact is not null) return name.SequenceEqual(_exact);
            return _matchesAll || _glob.IsMatch(Plain(Encoding.UTF8.GetString(name)));
        }
        if (_nameLiteral is not null && name.IndexOf(_nameLiteral) < 0) return false;
        var dir = index.Dir(dirStarts!, index.RowOf(entry).Dir);
        var length = dir.Length + 1 + name.Length;
        if (scratch.Length < length) scratch = new byte[Math.Max(length, scratch.Length * 2)];
        dir.CopyTo(scratch);
        scratch[dir.Length] = (byte)'/';
        name.CopyTo(scratch.AsSpan(dir.Length + 1));
        var path = scratch.AsSpan(0, length);
        if (_exact is not null) return path.SequenceEqual(_exact);
        if (_literal is not null && path.IndexOf(_literal) < 0) return false;
        return _glob.IsMatch(Plain(Encoding.UTF8.GetString(path)));
    }

    /// <summary>
    /// What the glob library matches, pattern and name alike: the name as the engine keeps it (an escaped byte \xe9 one
    /// character, so '?' and a [class] take one byte of a name that is not UTF-8, as they take one character of one that
    /// is; \\ one backslash), a backslash then shown to the library as another character (it reads it as a separator).
    /// </summary>
    private static string Plain(string text) => Posix.PosixNames.ForGlob(Posix.PosixNames.Parse(text));

    /// <summary>The longest run of plain characters, outside any [class] or {alternatives}: every match contains it.</summary>
    private static string LongestLiteral(string pattern)
    {
        string best = "";
        var run = new StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c is '[' or '{')
            {
                var close = pattern.IndexOf(c == '[' ? ']' : '}', i + 1);
                i = close < 0 ? pattern.Length : close;
            }
            else if (c is not ('*' or '?' or '\\' or ']' or '}'))
            {
                run.Append(c);
                continue;
            }
            if (run.Length > best.Length) best = run.ToString();
            run.Clear();
        }
        return run.Length > best.Length ? run.ToString() : best;
    }
}
