namespace ActorBackup.Cluster.Ops;

/// <summary>The operator typed something we cannot act on; the message says what to type instead.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>--name value, --name=value, repeated --name, --flag, and positionals.</summary>
public sealed class Args
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    public List<string> Positional { get; } = [];

    private static readonly HashSet<string> KnownFlags = ["json", "one-file-system", "no-wait", "help"];

    public Args(IEnumerable<string> args)
    {
        var list = args.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (a == "--")
            {
                Positional.AddRange(list.Skip(i + 1));
                break;
            }
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
            {
                Positional.Add(a);
                continue;
            }
            var name = a[2..];
            string? value = null;
            var eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            if (value is null && KnownFlags.Contains(name))
            {
                _flags.Add(name);
                continue;
            }
            if (value is null)
            {
                if (i + 1 >= list.Count) throw new UsageException($"--{name} needs a value");
                value = list[++i];
            }
            if (!_values.TryGetValue(name, out var vs)) _values[name] = vs = [];
            vs.Add(value);
        }
    }

    public bool Flag(string name) => _flags.Contains(name);
    public string? Value(string name) => _values.TryGetValue(name, out var v) ? v[^1] : null;
    public IReadOnlyList<string> Values(string name) => _values.TryGetValue(name, out var v) ? v : [];
    public string Required(string name) => Value(name) ?? throw new UsageException($"--{name} is required");

    public Protocol.BackupLevel Level(string name)
    {
        try
        {
            return Protocol.Commands.SharedOptions.ParseLevel(Value(name));
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    public int Int(string name, int fallback) =>
        Value(name) is { } v ? int.TryParse(v, out var n) ? n : throw new UsageException($"--{name} must be a whole number, got '{v}'") : fallback;

    public long Long(string name, long fallback) =>
        Value(name) is { } v ? long.TryParse(v, out var n) ? n : throw new UsageException($"--{name} must be a whole number, got '{v}'") : fallback;
}
