using System.Numerics;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

// Storage policies: the library pool of a backup's primary copy and how one is chosen, the chunk size and
// compression its client uses, and how often a job is retried. "default" exists without being defined:
// every library of the cell, balanced, the client's chunking and compression.
public sealed partial record ManagerState
{
    public const string DefaultPolicy = "default";
    public const int DefaultRetries = 2;

    /// <summary>The policy of that name; "default" is implicit until an operator defines it. Null: unknown.</summary>
    public StoragePolicy? PolicyOf(string name) =>
        Policies.TryGetValue(name == "" ? DefaultPolicy : name, out var p) ? p : name is "" or DefaultPolicy ? new StoragePolicy { Name = DefaultPolicy } : null;

    /// <summary>A job's policy; the default when its own has been removed since it was queued.</summary>
    public StoragePolicy PolicyOfJob(JobInfo job) => PolicyOf(job.Policy) ?? PolicyOf(DefaultPolicy)!;

    /// <summary>The libraries a policy's primary copy may go to, in its order; an empty list means every library of the cell.</summary>
    public IReadOnlyList<string> Pool(StoragePolicy policy) => policy.Libraries.Count > 0 ? policy.Libraries : Libraries.Keys.ToList();

    /// <summary>
    /// The libraries a backup may go on in when its own fills up (spanning): the rest of its policy's pool, in
    /// pool order from the one after its library. None for a backup an operator pinned to one library.
    /// </summary>
    /// <param name="evenDisabled">every library it may have gone on in since it was assigned (to close its sessions there),
    /// not only those it may go on in from now on (a disabled library is none of those)</param>
    public IReadOnlyList<string> SpanTargets(JobInfo job, bool evenDisabled = false)
    {
        if (job.LibraryPinned || job.Kind != JobKind.Backup) return [];
        var pool = Pool(PolicyOfJob(job)).Where(l => Libraries.ContainsKey(l) && (evenDisabled || l == job.Library || Disabled(l) is null)).ToList();
        var at = pool.IndexOf(job.Library);
        return at < 0 ? pool : [.. pool.Skip(at + 1), .. pool.Take(at)];
    }

    public static int RetriesOf(StoragePolicy policy) => policy.HasRetries ? policy.Retries : DefaultRetries;

    public Decision DecideDefinePolicy(DefinePolicy cmd, DateTimeOffset now)
    {
        var policy = cmd.Policy?.Clone() ?? new StoragePolicy();
        if (Policies.ContainsKey(policy.Name))
            return Reject($"storage policy '{policy.Name}' exists already: remove it first ('abk policy remove {policy.Name}'), or change it with 'abk apply'");
        if (InvalidPolicy(policy) is { } reason) return Reject($"storage policy '{policy.Name}': {reason}");
        // A name a removed set's snapshots were made under judges them again.
        return UnlessStranded(new PolicyDefined { Policy = policy, UnixMs = now.ToUnixTimeMilliseconds() }, $"storage policy '{policy.Name}'");
    }

    public Decision DecideRemovePolicy(RemovePolicy cmd, DateTimeOffset now)
    {
        if (!Policies.ContainsKey(cmd.Name))
            return Reject(cmd.Name == DefaultPolicy ? "the default policy is built in: it can be redefined, not removed" : UnknownPolicy(cmd.Name));
        var users = SetsOf(cmd.Name);
        // A defined "default" goes back to the built-in one: its sets keep a policy.
        if (users.Count > 0 && cmd.Name != DefaultPolicy)
            return Reject($"storage policy '{cmd.Name}' is used by backup set{(users.Count > 1 ? "s" : "")} {string.Join(", ", users)}: give them another policy first");
        if (cmd.Name != DefaultPolicy && OpenJobsUnder(cmd.Name) is { } jobs) return Reject($"storage policy '{cmd.Name}' {jobs}");
        if (cmd.Name != DefaultPolicy && RetainedUnder(cmd.Name) is { } kept) return Reject($"storage policy '{cmd.Name}' {kept}");
        // No snapshot of a set gone was made under it (RetainedUnder): none falls to the default policy (RetentionOf).
        return UnlessStranded(new PolicyRemoved { Name = cmd.Name, UnixMs = now.ToUnixTimeMilliseconds() }, $"storage policy '{cmd.Name}'");
    }

    /// <summary>What says that jobs not ended yet were queued under <paramref name="policy"/> (its pool, its retries: a job whose
    /// policy went would fall to the default's, every library of the cell), or null when none is.</summary>
    internal string? OpenJobsUnder(string policy) =>
        Jobs.Values.Where(j => !IsFinal(j.State) && j.Policy == policy).Select(j => j.Id).Take(6).ToList() is { Count: > 0 } open
            ? $"is the policy of job{(open.Count > 1 ? "s" : "")} {string.Join(", ", open.Take(5))}{(open.Count > 5 ? ", ..." : "")}, not ended yet: wait for them, or cancel them (abk job cancel JOB), first"
            : null;

    /// <summary>
    /// What says that snapshots of sets no longer defined (a host decommissioned, a set removed) keep the retention of
    /// <paramref name="policy"/>, which they were made under: removed, it would hand them to the default policy's (a
    /// 7-year archive deleted at the next look, or never let go). Null when none does.
    /// </summary>
    internal string? RetainedUnder(string policy)
    {
        var under = Snapshots.Where(s => s.Policy == policy && !(BackupSets.TryGetValue(s.BackupSet, out var d) && d.Client == s.Client)).ToList();
        if (under.Count == 0) return null;
        var sets = under.Select(s => $"{s.Client}:{s.BackupSet}").Distinct().ToList();
        return $"decides the retention of {under.Count} snapshot{(under.Count > 1 ? "s" : "")} of sets no longer defined ({string.Join(", ", sets.Take(5))}" +
               $"{(sets.Count > 5 ? ", ..." : "")}): removed, they would fall to the default policy's retention; keep it, or delete them first (abk snapshot delete)";
    }

    public List<string> SetsOf(string policy) => BackupSets.Values.Where(s => (s.Policy == "" ? DefaultPolicy : s.Policy) == policy).Select(s => s.Name).ToList();

    public PolicyInfo PolicyInfoOf(StoragePolicy policy) => new()
    {
        Policy = policy, Sets = { SetsOf(policy.Name) }, Implicit = !Policies.ContainsKey(policy.Name), Retention = RulesOf(policy.Retention).ToString(),
        CopyRetention = { policy.Copies.Select(c => c.Retention is null ? "" : RulesOf(c.Retention).ToString()) },
    };

    /// <summary>Every policy, the built-in default first when it is not redefined.</summary>
    public IEnumerable<StoragePolicy> AllPolicies() =>
        Policies.ContainsKey(DefaultPolicy) ? Policies.Values : Policies.Values.Prepend(PolicyOf(DefaultPolicy)!);

    public string UnknownPolicy(string name) =>
        $"no storage policy '{name}': known are {string.Join(", ", AllPolicies().Select(p => p.Name))}; add one with 'abk policy add'";

    /// <summary>What is wrong with a policy, or null. Its libraries must be known to the cell.</summary>
    public string? InvalidPolicy(StoragePolicy policy)
    {
        if (InvalidName(policy.Name, "policy") is { } name) return name;
        if (policy.Libraries.FirstOrDefault(l => !Libraries.ContainsKey(l)) is { } unknown)
            return UnknownLibrary(unknown);
        if (policy.Libraries.GroupBy(l => l).FirstOrDefault(g => g.Count() > 1) is { } twice) return $"library '{twice.Key}' is named twice";
        if (policy.ChunkKib != 0 && (policy.ChunkKib is < 64 or > 16384 || !BitOperations.IsPow2(policy.ChunkKib)))
            return $"chunk size {policy.ChunkKib} KiB: give a power of two from 64 to 16384 KiB (default 1024)";
        if (policy.Compression is < 0 or > 19) return $"compression {policy.Compression}: give a zstd level from 1 to 19 (default 3)";
        if (policy.HasRetries && policy.Retries is < 0 or > 10) return $"retries {policy.Retries}: give 0 to 10 (default {DefaultRetries})";
        foreach (var rule in policy.Copies)
        {
            if (rule.Libraries.Count == 0) return "a copy names at least one library";
            if (rule.Libraries.FirstOrDefault(l => !Libraries.ContainsKey(l)) is { } unknownCopy) return $"copy: unknown library '{unknownCopy}'";
            if (InvalidRetention(rule.Retention) is { } copyRetention) return $"copy to {string.Join(" or ", rule.Libraries)}: {copyRetention}";
            if (rule.Schedule != "" && ParseCron(rule.Schedule, out var copyCron) is null) return $"copy schedule '{rule.Schedule}' does not parse: {copyCron}";
        }
        if (policy.Tier is { } tier)
        {
            if (tier.Libraries.FirstOrDefault(l => !Libraries.ContainsKey(l)) is { } unknownTier) return $"tier: unknown library '{unknownTier}'";
            if (tier.AfterSeconds < 0) return "tier: 'after' cannot be negative";
        }
        // A library with copies kept by a retention of their own holds nothing else of the policy: what lives
        // there is judged by that retention alone.
        var retained = policy.Copies.Where(c => c.Retention is not null && RulesOf(c.Retention).Limits).SelectMany(c => c.Libraries).ToList();
        if (retained.Count > 0)
        {
            if (policy.Libraries.Count == 0)
                return "a copy with a retention of its own needs the policy's own libraries named (--library lib1), apart from the copy's";
            if (policy.Libraries.Intersect(retained).FirstOrDefault() is { } both)
                return $"library {both} is in the policy's pool and holds copies with a retention of their own: keep them apart";
            if (retained.GroupBy(l => l).FirstOrDefault(g => g.Count() > 1) is { } shared)
                return $"library {shared.Key} is in two copies with a retention of their own: give it to one";
            // A snapshot moved to the tier would be judged by that copy's rules there (or, moved from it, by the primary's).
            if (policy.Tier is { } t && t.Libraries.Intersect(retained).FirstOrDefault() is { } tiered)
                return $"library {tiered} is the policy's tier and holds copies with a retention of their own: keep them apart";
        }
        // A snapshot tiered onto the library that holds its copy would be one copy where there were two.
        if (policy.Tier is { } tiers && policy.Copies.SelectMany(c => c.Libraries).Intersect(tiers.Libraries).FirstOrDefault() is { } copied)
            return $"library {copied} is both the policy's tier and where it copies to: a snapshot moved there would lose its second copy; tier to another library";
        if (policy.Verify is { SharePercent: < 0 or > 100 } badShare) return $"verify share {badShare.SharePercent}%: give 1 to 100";
        if (policy.Verify is { Schedule: not "" } verify && ParseCron(verify.Schedule, out var cronError) is null)
            return $"verify schedule '{verify.Schedule}' does not parse: {cronError}";
        return InvalidRetention(policy.Retention);
    }

    private static string? InvalidName(string name, string what) =>
        name == "" || name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            ? $"a {what} name is 1 to 64 letters, digits, '-', '_' or '.'"
            : null;
}
