using System.Text;

namespace ActorBackup.Cluster.Definitions;

/// <summary>
/// The HOCON an `abk apply` file is written in, parsed strictly and within bounds: objects (`key { }`,
/// `key = { }`, dotted keys as paths), lists, quoted, triple-quoted and unquoted strings, `#` and `//`
/// comments, commas or new lines between members. No substitutions and no includes: the file says
/// everything itself. Akka's own HOCON parser is not used here because some malformed text sends it into
/// endless recursion or allocation, and an operator's typo must never take a node down. Every error names
/// its line.
/// </summary>
public static class HoconSubset
{
    public const int MaxDepth = 32;

    public abstract record Node(int Line);
    public sealed record Text(string Value, int Line) : Node(Line);
    public sealed record List(IReadOnlyList<Node> Items, int Line) : Node(Line);
    public sealed record Obj(Dictionary<string, Node> Members, int Line) : Node(Line);

    /// <summary>The whole text as the root object; FormatException "LINE: what" at the first error.</summary>
    public static Obj Parse(string text) => new Reader(text).Root();

    private sealed class Reader(string text)
    {
        private int _i;
        private int _line = 1;

        private FormatException Error(string what, int? line = null) => new($"{line ?? _line}: {what}");

        private char Peek => _i < text.Length ? text[_i] : '\0';

        public Obj Root()
        {
            SkipBlank(newlines: true);
            Obj root;
            if (Peek == '{')
            {
                _i++;
                root = Members('}', 1);
            }
            else root = Members('\0', 1);
            SkipBlank(newlines: true);
            if (_i < text.Length) throw Error($"'{Peek}' after the end of the document");
            return root;
        }

        /// <summary>Members up to <paramref name="close"/> (consumed; '\0': the end of the text).</summary>
        private Obj Members(char close, int depth)
        {
            if (depth > MaxDepth) throw Error($"nested deeper than {MaxDepth} levels");
            var obj = new Obj(new Dictionary<string, Node>(StringComparer.Ordinal), _line);
            while (true)
            {
                SkipBlank(newlines: true);
                if (Peek == ',') { _i++; continue; }
                if (close == '\0' ? _i >= text.Length : Peek == close)
                {
                    if (close != '\0') _i++;
                    return obj;
                }
                if (_i >= text.Length) throw Error($"the text ends before a '{close}'");
                if (Peek is '}' or ']') throw Error($"'{Peek}' closes nothing");
                var line = _line;
                var path = Key();
                if (depth + path.Count > MaxDepth) throw Error($"nested deeper than {MaxDepth} levels");
                SkipBlank(newlines: false);
                Node value;
                if (Peek == '{')
                {
                    _i++;
                    value = Members('}', depth + path.Count) with { Line = line };
                }
                else
                {
                    if (Peek is not ('=' or ':')) throw Error($"'=' or '{{' expected after '{string.Join(".", path)}'");
                    _i++;
                    SkipBlank(newlines: false);
                    value = Value(depth + path.Count);
                }
                Put(obj, path, value, line);
                SkipBlank(newlines: false);
                if (Peek is not (',' or '\n' or '#' or '/' or '\0') && Peek != close) throw Error($"'{Peek}' after the value of '{string.Join(".", path)}': end it with a new line or ','");
            }
        }

        private void Put(Obj into, IReadOnlyList<string> path, Node value, int line)
        {
            for (var k = 0; k < path.Count - 1; k++)
            {
                if (!into.Members.TryGetValue(path[k], out var next)) into.Members[path[k]] = next = new Obj(new Dictionary<string, Node>(StringComparer.Ordinal), line);
                into = next as Obj ?? throw Error($"'{path[k]}' is a value (line {next.Line}), not an object", line);
            }
            var key = path[^1];
            if (!into.Members.TryGetValue(key, out var before)) into.Members[key] = value;
            else if (before is Obj a && value is Obj b) // HOCON merges objects given twice
                foreach (var (k, v) in b.Members) Put(a, [k], v, v.Line);
            else throw Error($"'{key}' is given twice (lines {before.Line} and {line})", line);
        }

        private List<string> Key()
        {
            if (Peek == '"') return [Quoted()];
            var start = _i;
            while (_i < text.Length && (char.IsAsciiLetterOrDigit(text[_i]) || text[_i] is '-' or '_' or '.')) _i++;
            if (_i == start) throw Error($"a key expected, found '{(Peek == '\0' ? "the end" : Peek.ToString())}'");
            var key = text[start.._i];
            var parts = key.Split('.');
            if (parts.Any(p => p == "")) throw Error($"'{key}' is not a key: quote a name with dots in it");
            return parts.ToList();
        }

        private Node Value(int depth)
        {
            if (depth > MaxDepth) throw Error($"nested deeper than {MaxDepth} levels");
            var line = _line;
            switch (Peek)
            {
                case '{':
                    _i++;
                    return Members('}', depth) with { Line = line };
                case '[':
                    _i++;
                    var items = new List<Node>();
                    while (true)
                    {
                        SkipBlank(newlines: true);
                        if (Peek == ',') { _i++; continue; }
                        if (Peek == ']') { _i++; return new List(items, line); }
                        if (_i >= text.Length) throw Error($"the list of line {line} is never closed with ']'", line);
                        items.Add(Value(depth + 1));
                    }
                case '"':
                    return new Text(Quoted(), line);
                case '\0' or '\n' or ',' or '}' or ']':
                    throw Error("a value expected");
                default:
                    var start = _i;
                    while (_i < text.Length && text[_i] is not ('\n' or ',' or '}' or ']' or '{' or '[' or '#' or '"' or '=' or ':') &&
                           !(text[_i] == '/' && _i + 1 < text.Length && text[_i + 1] == '/')) _i++;
                    var value = text[start.._i].Trim();
                    if ((Peek == '{' && value.EndsWith('$')) || value.Contains("${")) throw Error("substitutions (${...}) are not taken: write the value out");
                    if (Peek is '{' or '[' or '"' or '=' or ':') throw Error($"'{Peek}' inside the unquoted value '{value}': quote it");
                    return new Text(value, line);
            }
        }

        private string Quoted()
        {
            var line = _line;
            if (string.CompareOrdinal(text, _i, "\"\"\"", 0, 3) == 0)
            {
                var end = text.IndexOf("\"\"\"", _i + 3, StringComparison.Ordinal);
                if (end < 0) throw Error("a \"\"\" string is never closed", line);
                var raw = text[(_i + 3)..end];
                _line += raw.Count(c => c == '\n');
                _i = end + 3;
                return raw;
            }
            _i++;
            var sb = new StringBuilder();
            while (true)
            {
                if (_i >= text.Length || text[_i] == '\n') throw Error("a quoted string is not closed on its line", line);
                var c = text[_i++];
                if (c == '"') return sb.ToString();
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                if (_i >= text.Length) throw Error("a quoted string is not closed on its line", line);
                var e = text[_i++];
                switch (e)
                {
                    case '"' or '\\' or '/': sb.Append(e); break;
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u' when _i + 4 <= text.Length && ushort.TryParse(text.AsSpan(_i, 4), System.Globalization.NumberStyles.HexNumber, null, out var u)
                                 && !char.IsSurrogate((char)u): // half a character would not survive as UTF-8
                        sb.Append((char)u);
                        _i += 4;
                        break;
                    default: throw Error($"'\\{e}' is not an escape: write \\\\ for a backslash", line);
                }
            }
        }

        /// <summary>Spaces, tabs and comments; new lines too when <paramref name="newlines"/>.</summary>
        private void SkipBlank(bool newlines)
        {
            while (_i < text.Length)
            {
                var c = text[_i];
                if (c == '\n')
                {
                    if (!newlines) return;
                    _line++;
                    _i++;
                }
                else if (c is ' ' or '\t' or '\r' or '\uFEFF') _i++;
                else if (c == '#' || (c == '/' && _i + 1 < text.Length && text[_i + 1] == '/'))
                    while (_i < text.Length && text[_i] != '\n') _i++;
                else return;
            }
        }
    }
}
