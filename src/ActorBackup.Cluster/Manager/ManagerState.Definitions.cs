using ActorBackup.Cluster.Definitions;
using ActorBackup.Protocol;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ActorBackup.Cluster.Manager;

// `abk apply`: sets and policies as code. The whole file is checked against the cell as it would be after
// it (a set may name a policy the same file defines); any problem refuses all of it, each problem with its
// line. What is applied is one DefinitionsApplied event, so it is recorded whole or not at all; a file that
// changes nothing records nothing.
public sealed partial record ManagerState
{
    public (ApplyResult Result, Decision Decision) DecideApply(ApplyDefinitions cmd, DateTimeOffset now)
    {
        var errors = new List<string>();
        string Where(string kind, string name) =>
            cmd.Lines.TryGetValue(DefinitionsFile.Key(kind, name), out var line) && line > 0 ? $"{cmd.Source}:{line}: " : cmd.Source != "" ? $"{cmd.Source}: " : "";
        var result = new ApplyResult();
        var applied = new DefinitionsApplied { UnixMs = now.ToUnixTimeMilliseconds() };
        var next = this;
        bool Changed(string kind, string name, IMessage? before, IMessage after)
        {
            var change = Compare(kind, name, before, after);
            result.Changes.Add(change);
            return change.Action != "unchanged";
        }

        foreach (var policy in cmd.Policies)
        {
            if (next.InvalidPolicy(policy) is { } why) errors.Add($"{Where("policy", policy.Name)}policy '{policy.Name}': {why}");
            if (Changed("policy", policy.Name, Policies.GetValueOrDefault(policy.Name), policy)) applied.Policies.Add(policy);
            next = next.Apply(new PolicyDefined { Policy = policy, UnixMs = applied.UnixMs });
        }
        foreach (var given in cmd.Sets)
        {
            var set = given.Clone();
            var client = ResolveClient(set.Client, out var whyClient);
            if (client is null)
            {
                errors.Add($"{Where("set", set.Name)}set '{set.Name}': {whyClient}");
                continue;
            }
            set.Client = client;
            Normalize(set);
            if (next.Invalid(set) is { } why) errors.Add($"{Where("set", set.Name)}set '{set.Name}': {why}");
            if (Changed("set", set.Name, BackupSets.GetValueOrDefault(set.Name), set)) applied.Sets.Add(set);
            next = next.Apply(new BackupSetDefined { Set = set, UnixMs = applied.UnixMs });
        }
        if (cmd.Prune)
        {
            foreach (var name in BackupSets.Keys.Where(n => cmd.Sets.All(s => s.Name != n)))
            {
                result.Changes.Add(new ApplyChange { Kind = "set", Name = name, Action = "remove" });
                applied.RemovedSets.Add(name);
                next = next.Apply(new BackupSetRemoved { Name = name, UnixMs = applied.UnixMs });
            }
            foreach (var name in Policies.Keys.Where(n => cmd.Policies.All(p => p.Name != n)))
            {
                if (name != DefaultPolicy && next.SetsOf(name) is { Count: > 0 } users)
                    errors.Add($"{cmd.Source}{(cmd.Source != "" ? ": " : "")}policy '{name}' is not in the file but backup sets {string.Join(", ", users)} use it: keep it, or move them");
                else if (name != DefaultPolicy && OpenJobsUnder(name) is { } jobs)
                    errors.Add($"{cmd.Source}{(cmd.Source != "" ? ": " : "")}policy '{name}' is not in the file but {jobs}");
                else if (name != DefaultPolicy && next.RetainedUnder(name) is { } kept)
                    errors.Add($"{cmd.Source}{(cmd.Source != "" ? ": " : "")}policy '{name}' is not in the file but {kept}");
                result.Changes.Add(new ApplyChange { Kind = "policy", Name = name, Action = "remove" });
                applied.RemovedPolicies.Add(name);
                next = next.Apply(new PolicyRemoved { Name = name, UnixMs = applied.UnixMs });
            }
        }
        if (Stranded(next) is { } stranded) errors.Add($"{cmd.Source}{(cmd.Source != "" ? ": " : "")}{stranded}");
        if (errors.Count > 0) return (result, Reject("nothing was applied:\n" + string.Join("\n", errors)));
        var changed = applied.Policies.Count + applied.Sets.Count + applied.RemovedSets.Count + applied.RemovedPolicies.Count > 0;
        result.Applied = changed && !cmd.DryRun;
        return (result, new Decision(result.Applied ? [applied] : [], null));
    }

    /// <summary>
    /// What is wrong with changed definitions (<paramref name="next"/>) for the snapshots that live on a copy with a
    /// retention of its own (their primary's rules let them go and they moved there): once no such copy rule covers
    /// their library (the rule removed, its retention dropped, its library changed, the set given another policy),
    /// their policy's own rules judge them again: rules that let them go once, and would at the next look or as newer
    /// snapshots come (a last-N, the buckets). Null when none is so: the change keeps them covered, or the policy they
    /// fall to keeps everything.
    /// </summary>
    internal string? Stranded(ManagerState next)
    {
        // Only what this change makes unsafe: a snapshot safe now (covered by such a copy rule, or judged by a policy
        // that keeps everything) and not after it, that such a rule covered (now, or under the policy it was made under:
        // a set moved to a keep-everything policy, then given limits). One already unsafe is not this change's doing,
        // and does not block every later change.
        bool Covered(ManagerState state, Engine.Trees.SnapshotManifest x) => RetainedCopyOn(state.RetentionOf(x).Policy, x.Library) is not null;
        bool Safe(ManagerState state, Engine.Trees.SnapshotManifest x) => Covered(state, x) || !RulesOf(state.RetentionOf(x).Policy.Retention).Limits;
        var stranded = Snapshots.Where(x => (Covered(this, x) || PolicyOf(x.Policy) is { } made && RetainedCopyOn(made, x.Library) is not null)
                                            && Safe(this, x) && !Safe(next, x)).ToList();
        if (stranded.Count == 0) return null;
        var libraries = string.Join(", ", stranded.Select(x => x.Library).Distinct().Order(StringComparer.Ordinal));
        return $"{stranded.Count} snapshot{(stranded.Count > 1 ? "s" : "")} ({string.Join(", ", stranded.Take(5).Select(x => x.Id))}{(stranded.Count > 5 ? ", ..." : "")}) " +
               $"live{(stranded.Count > 1 ? "" : "s")} only on {libraries}, kept there by a copy rule's own retention after their policy's rules let them go; " +
               "with no copy rule with a retention on that library, those rules would judge them again and delete them: keep the rule, " +
               "give the policy no retention limit, or delete them first ('abk snapshot delete ID...')";
    }

    /// <summary>A definition's one event (<paramref name="change"/> of <paramref name="what"/>), refused when it strands snapshots (<see cref="Stranded"/>).</summary>
    private Decision UnlessStranded(IMessage change, string what) =>
        Stranded(Apply(change)) is { } stranded ? Reject($"{what}: {stranded}") : new Decision([change], null);

    /// <summary>
    /// A set's paths in one form each, as listings show them (escapes read and written again: \xE9 and \xe9 are one
    /// path, one set, one chain of parents), no trailing '/', each once, in order.
    /// </summary>
    internal static List<string> NormalPaths(IEnumerable<string> paths) =>
        paths.Select(p => Engine.Posix.PosixNames.Display(Engine.Posix.PosixNames.Parse(p))).Select(p => p.TrimEnd('/') is { Length: > 0 } t ? t : p.Length > 0 ? "/" : p)
            .Distinct().Order(StringComparer.Ordinal).ToList();

    /// <summary>Defaults and order as `abk set add` stores them, so that an unchanged file compares equal.</summary>
    private static void Normalize(BackupSetDefinition set)
    {
        if (set.Priority == 0) set.Priority = DefaultPriority;
        if (set.Policy == "") set.Policy = DefaultPolicy;
        var paths = NormalPaths(set.Paths);
        set.Paths.Clear();
        set.Paths.AddRange(paths);
    }

    private static ApplyChange Compare(string kind, string name, IMessage? before, IMessage after)
    {
        var change = new ApplyChange { Kind = kind, Name = name, Action = before is null ? "add" : before.Equals(after) ? "unchanged" : "change" };
        if (change.Action == "change")
            foreach (var field in after.Descriptor.Fields.InFieldNumberOrder())
                if (!Equals(Value(field, before!), Value(field, after))) change.Fields.Add(field.JsonName);
        return change;
    }

    private static object? Value(FieldDescriptor field, IMessage m) =>
        field.Accessor.GetValue(m) is var v && field.IsRepeated ? string.Join("\u0001", ((System.Collections.IEnumerable)v).Cast<object>()) : v;

    private ManagerState ApplyDefinitions(DefinitionsApplied d)
    {
        var s = this;
        foreach (var p in d.Policies) s = s.Apply(new PolicyDefined { Policy = p, UnixMs = d.UnixMs });
        foreach (var set in d.Sets) s = s.Apply(new BackupSetDefined { Set = set, UnixMs = d.UnixMs });
        foreach (var name in d.RemovedSets) s = s.Apply(new BackupSetRemoved { Name = name, UnixMs = d.UnixMs });
        foreach (var name in d.RemovedPolicies) s = s.Apply(new PolicyRemoved { Name = name, UnixMs = d.UnixMs });
        return s;
    }
}
