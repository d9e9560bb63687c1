using System.Collections.Immutable;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

// Holds on snapshots (a legal hold, an investigation): until its end, neither retention nor an operator's delete lets a
// held snapshot go, nor its copies. A hold is extended by holding again, never shortened or lifted early: the operator
// key that put it cannot take it back, so what a court or an auditor was told is kept, is.
public sealed partial record ManagerState
{
    /// <summary>The longest hold: 100 years.</summary>
    public static readonly TimeSpan LongestHold = TimeSpan.FromDays(100 * 366);

    public const int MaxHoldReason = 512;

    /// <summary>Each snapshot's last whole verify (when, the job, its outcome): an auditor's proof that it restores.</summary>
    public ImmutableSortedDictionary<string, SnapshotVerified> Verifications { get; init; } = Named<SnapshotVerified>();

    /// <summary>Holds on snapshots of the catalog, by snapshot id (one past its end stays until its snapshot goes).</summary>
    public ImmutableSortedDictionary<string, SnapshotHold> Holds { get; init; } = Named<SnapshotHold>();

    /// <summary>The hold on <paramref name="snapshot"/> in force at <paramref name="now"/>, or null.</summary>
    public SnapshotHold? HoldOn(string snapshot, DateTimeOffset now) =>
        Holds.GetValueOrDefault(snapshot) is { } h && h.UntilUnixMs > now.ToUnixTimeMilliseconds() ? h : null;

    /// <summary>The snapshots held at <paramref name="now"/>.</summary>
    public IEnumerable<string> HeldAt(DateTimeOffset now) => Holds.Values.Where(h => h.UntilUnixMs > now.ToUnixTimeMilliseconds()).Select(h => h.Snapshot);

    /// <summary>A hold as a reason a snapshot stays, or a delete is refused.</summary>
    public static string Describe(SnapshotHold h) =>
        $"held until {DateTimeOffset.FromUnixTimeMilliseconds(h.UntilUnixMs):yyyy-MM-dd HH:mm}Z{(h.By == "" ? "" : " by " + h.By)}: {h.Reason}";

    /// <summary>An operator's hold: every snapshot named (an id or a unique prefix) must be in the catalog and not held longer already, or none is held.</summary>
    public (SnapshotDeletion Answer, Decision Decision) DecideHold(HoldSnapshots cmd, string by, DateTimeOffset now)
    {
        var fail = new SnapshotDeletion();
        if (cmd.Snapshots.Count == 0) return (fail, Reject("name at least one snapshot to hold: 'abk snapshot list' shows them"));
        if (string.IsNullOrWhiteSpace(cmd.Reason)) return (fail, Reject("a hold needs its reason (--reason \"case 2026-114, legal\"): it is shown wherever the snapshot's deletion is refused"));
        if (cmd.Reason.Length > MaxHoldReason) return (fail, Reject($"a hold's reason is at most {MaxHoldReason} characters"));
        if (cmd.UntilUnixMs <= now.ToUnixTimeMilliseconds()) return (fail, Reject("a hold ends in the future: --until 2027-06-30, or a duration such as 1y"));
        if (cmd.UntilUnixMs > (now + LongestHold).ToUnixTimeMilliseconds()) return (fail, Reject("a hold lasts at most 100 years"));
        var found = new List<string>();
        var problems = new List<string>();
        foreach (var asked in cmd.Snapshots.Distinct())
        {
            string id;
            try
            {
                id = FindSnapshot(asked).Id;
            }
            catch (KeyNotFoundException unknown)
            {
                problems.Add(unknown.Message);
                continue;
            }
            if (HoldOn(id, now) is { } held && held.UntilUnixMs > cmd.UntilUnixMs)
                problems.Add($"snapshot {id} is {Describe(held)}; a hold is never shortened");
            else if (!found.Contains(id)) found.Add(id);
        }
        if (problems.Count > 0) return (fail, Reject(string.Join("; ", problems) + "; nothing was held"));
        var e = new SnapshotsHeld { Snapshots = { found }, UntilUnixMs = cmd.UntilUnixMs, Reason = cmd.Reason, By = by, UnixMs = now.ToUnixTimeMilliseconds() };
        var after = Apply(e);
        var answer = new SnapshotDeletion { Applied = true };
        answer.Snapshots.AddRange(found.Select(id => after.InfoOf(after.Snapshots.First(s => s.Id == id))));
        return (answer, new Decision([e], null));
    }

    private ManagerState Held(SnapshotsHeld e) => this with
    {
        Holds = e.Snapshots.Where(id => Snapshots.Any(s => s.Id == id)).Aggregate(Holds, (h, id) => h.SetItem(id, new SnapshotHold
        {
            Snapshot = id, UntilUnixMs = Math.Max(e.UntilUnixMs, h.GetValueOrDefault(id)?.UntilUnixMs ?? 0), Reason = e.Reason, By = e.By, UnixMs = e.UnixMs,
        })),
    };
}
