using Google.Protobuf;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Commands;
using static ActorBackup.Cluster.Definitions.HoconSubset;

namespace ActorBackup.Cluster.Definitions;

/// <summary>
/// An `abk apply` file: storage policies and backup sets as code, in HOCON (hocon/definitions-example.conf),
/// read with <see cref="HoconSubset"/>. Parsed whole into one ApplyDefinitions; every problem is reported at
/// once with its line, and a file with any problem changes nothing. What the manager then checks (clients,
/// libraries, policies) is reported with the same lines.
/// </summary>
public static class DefinitionsFile
{
    public const int MaxBytes = 1 << 20;

    private static readonly string[] SetKeys = ["client", "paths", "excludes", "one-file-system", "atime", "private-keys", "policy", "schedules", "time-zone", "window", "priority", "enabled",
        "pre-command", "post-command", "on-success", "on-failure", "command-timeout", "max-run-time", "exclude-if-present", "exclude-caches"];
    private static readonly string[] PolicyKeys = ["libraries", "choice", "chunk-kib", "compression", "retries", "retention", "copies", "tier", "verify"];
    private static readonly string[] VerifyKeys = ["schedule", "share-percent"];
    private static readonly string[] TierKeys = ["libraries", "after"];
    private static readonly string[] CopyKeys = ["libraries", "fulls-only", "retention", "schedule"];
    private static readonly string[] RetentionKeys = ["last", "within", "daily", "weekly", "monthly", "yearly", "minimum"];

    /// <summary>`abk apply`: the definitions of the file the operator sent, or a CommandRejected that says every problem (nothing is applied).</summary>
    public static IMessage ToApply(ApplyFile f)
    {
        try
        {
            var definitions = Parse(f.Text, f.Name);
            definitions.DryRun = f.DryRun;
            definitions.Prune = f.Prune;
            return definitions;
        }
        catch (FormatException e)
        {
            return new CommandRejected { Reason = "nothing was applied:\n" + e.Message };
        }
    }

    /// <summary>The file as definitions; FormatException with every problem, one per line, as "FILE:LINE: what".</summary>
    public static ApplyDefinitions Parse(string text, string file)
    {
        if (text.Length > MaxBytes) throw new FormatException($"{file}: {text.Length} bytes; an apply file is at most {MaxBytes} bytes");
        Obj root;
        try
        {
            root = HoconSubset.Parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{file}:{e.Message}");
        }
        var errors = new List<string>();
        var result = new ApplyDefinitions { Source = file };
        foreach (var (key, node) in root.Members)
            if (key is not ("sets" or "policies"))
                errors.Add($"{file}:{node.Line}: unknown section '{key}': a file has 'policies' and 'sets'");

        void Read<T>(string section, string kind, string[] keys, Func<string, Fields, T> make, ICollection<T> into)
        {
            if (!root.Members.TryGetValue(section, out var node)) return;
            if (node is not Obj obj)
            {
                errors.Add($"{file}:{node.Line}: '{section}' is an object {{ NAME {{ ... }} }}");
                return;
            }
            foreach (var (name, value) in obj.Members)
            {
                result.Lines[Key(kind, name)] = value.Line;
                try
                {
                    if (value is not Obj definition) throw new FormatException($"a {kind} is an object {{ ... }}");
                    if (definition.Members.Keys.FirstOrDefault(k => !keys.Contains(k)) is { } unknown)
                        throw new FormatException($"unknown key '{unknown}'; a {kind} has {string.Join(", ", keys)}");
                    into.Add(make(name, new Fields(definition)));
                }
                catch (FormatException e)
                {
                    errors.Add($"{file}:{value.Line}: {kind} '{name}': {e.Message}");
                }
            }
        }
        Read("policies", "policy", PolicyKeys, Policy, result.Policies);
        Read("sets", "set", SetKeys, Set, result.Sets);
        if (errors.Count > 0) throw new FormatException(string.Join("\n", errors));
        return result;
    }

    /// <summary>The key under which a definition's line is kept in ApplyDefinitions.lines.</summary>
    public static string Key(string kind, string name) => kind + ":" + name;

    private static StoragePolicy Policy(string name, Fields c)
    {
        var p = new StoragePolicy { Name = name, ChunkKib = c.Int("chunk-kib"), Compression = c.Int("compression") };
        p.Libraries.AddRange(c.Strings("libraries"));
        p.Choice = c.String("choice", "balance") switch
        {
            "balance" => LibraryChoice.Balance,
            "fill-first" => LibraryChoice.FillFirst,
            var other => throw new FormatException($"choice '{other}': balance or fill-first"),
        };
        if (c.Has("retries")) p.Retries = c.Int("retries");
        foreach (var (copyName, rule) in c.Objects("copies", CopyKeys))
        {
            var copy = new CopyRule
            {
                FullsOnly = rule.Bool("fulls-only", false), Retention = rule.Object("retention", RetentionKeys) is { } cr ? Retention(cr) : null,
                Schedule = rule.String("schedule", ""),
            };
            copy.Libraries.AddRange(rule.Strings("libraries"));
            if (copy.Libraries.Count == 0) throw new FormatException($"copies: '{copyName}' names no library (libraries = [lib2])");
            p.Copies.Add(copy);
        }
        if (c.Object("tier", TierKeys) is { } tier)
        {
            p.Tier = new TierRule { AfterSeconds = (long)tier.Age("after").TotalSeconds };
            p.Tier.Libraries.AddRange(tier.Strings("libraries"));
            if (p.Tier.Libraries.Count == 0) throw new FormatException("tier names no library (libraries = [lib2])");
        }
        if (c.Object("verify", VerifyKeys) is { } v) p.Verify = new VerifyRule { Schedule = v.String("schedule", ""), SharePercent = v.Has("share-percent") ? v.Int("share-percent") : 0 };
        if (c.Object("retention", RetentionKeys) is { } r) p.Retention = Retention(r);
        return p;
    }

    private static RetentionRule Retention(Fields r) => new()
    {
        Last = r.Int("last"), WithinSeconds = (long)r.Age("within").TotalSeconds, Daily = r.Int("daily"), Weekly = r.Int("weekly"),
        Monthly = r.Int("monthly"), Yearly = r.Int("yearly"), Minimum = r.Int("minimum"),
    };

    private static BackupSetDefinition Set(string name, Fields c)
    {
        var s = new BackupSetDefinition
        {
            Name = name, Client = c.String("client"), OneFileSystem = c.Bool("one-file-system", false), Atime = c.Bool("atime", false), PrivateKeys = c.Bool("private-keys", false), Policy = c.String("policy"),
            TimeZone = c.String("time-zone"), Priority = c.Int("priority"), Disabled = !c.Bool("enabled", true),
            WindowSeconds = (long)c.Duration("window").TotalSeconds, CommandTimeoutSeconds = (int)c.Duration("command-timeout").TotalSeconds,
            MaxRunSeconds = (long)c.Duration("max-run-time").TotalSeconds,
            PreCommand = c.String("pre-command"), PostCommand = c.String("post-command"), OnSuccess = c.String("on-success"), OnFailure = c.String("on-failure"),
        };
        s.Paths.AddRange(c.Strings("paths"));
        s.Excludes.AddRange(c.Strings("excludes"));
        s.ExcludeIfPresent.AddRange(SharedOptions.Markers([.. c.Strings("exclude-if-present")], c.Bool("exclude-caches", false)));
        s.Schedules.AddRange(c.Strings("schedules").Select(SharedOptions.ParseScheduleRule));
        return s;
    }

    /// <summary>A definition's values, typed, each error naming the key.</summary>
    private sealed class Fields(Obj obj)
    {
        public bool Has(string key) => obj.Members.ContainsKey(key);

        /// <summary>A nested object of named objects of these keys only (none when absent), in the file's order.</summary>
        public IEnumerable<(string Name, Fields Fields)> Objects(string key, string[] keys)
        {
            switch (obj.Members.GetValueOrDefault(key))
            {
                case null:
                    yield break;
                case Obj o:
                    foreach (var (name, value) in o.Members)
                    {
                        if (value is not Obj inner) throw new FormatException($"{key}: '{name}' is an object {{ ... }}");
                        if (inner.Members.Keys.FirstOrDefault(k => !keys.Contains(k)) is { } unknown)
                            throw new FormatException($"{key}: '{name}': unknown key '{unknown}'; it has {string.Join(", ", keys)}");
                        yield return (name, new Fields(inner));
                    }
                    break;
                default:
                    throw new FormatException($"{key} is an object of named objects {{ NAME {{ ... }} }}");
            }
        }

        /// <summary>A nested object of these keys only; null when absent.</summary>
        public Fields? Object(string key, string[] keys) => obj.Members.GetValueOrDefault(key) switch
        {
            null => null,
            Obj o when o.Members.Keys.FirstOrDefault(k => !keys.Contains(k)) is { } unknown =>
                throw new FormatException($"{key}: unknown key '{unknown}'; {key} has {string.Join(", ", keys)}"),
            Obj o => new Fields(o),
            _ => throw new FormatException($"{key} is an object {{ ... }}"),
        };

        public string String(string key, string fallback = "") => obj.Members.GetValueOrDefault(key) switch
        {
            null => fallback,
            Text t => t.Value,
            _ => throw new FormatException($"{key} is one value, not a list or an object"),
        };

        public IReadOnlyList<string> Strings(string key) => obj.Members.GetValueOrDefault(key) switch
        {
            null => [],
            List l => l.Items.Select(i => i as Text ?? throw new FormatException($"{key} is a list of values")).Select(t => t.Value).ToList(),
            Text t => [t.Value],
            _ => throw new FormatException($"{key} is a list [ ... ]"),
        };

        public int Int(string key, int fallback = 0) =>
            !Has(key) ? fallback : int.TryParse(String(key), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n
                : throw new FormatException($"{key} '{String(key)}' is not a whole number");

        public bool Bool(string key, bool fallback) => !Has(key) ? fallback : String(key) switch
        {
            "true" or "on" or "yes" => true,
            "false" or "off" or "no" => false,
            var other => throw new FormatException($"{key} '{other}' is not true or false"),
        };

        /// <summary>An age of snapshots (within, after): SharedOptions.ParseAge, which refuses a bare m.</summary>
        public TimeSpan Age(string key) =>
            !Has(key) ? TimeSpan.Zero : SharedOptions.ParseAge(String(key)) ?? throw new FormatException($"{key} '{String(key)}' is not an age: {SharedOptions.AgeForm}");

        public TimeSpan Duration(string key) =>
            !Has(key) ? TimeSpan.Zero : SharedOptions.ParseDuration(String(key)) ?? throw new FormatException($"{key} '{String(key)}' is not a duration: a number and s, m, h or d, e.g. 4h");
    }
}
