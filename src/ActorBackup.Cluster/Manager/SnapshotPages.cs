using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// The manager's snapshot list asked for page by page: a catalog of tens of thousands of snapshots is more than one
/// message holds (Akka.Remote's frame and the operator endpoint's are 4 MiB), so no answer carries more than a page.
/// A page goes on after the last snapshot of the one before (by id, not by position: a snapshot retention deletes
/// meanwhile shifts nothing); when that one is gone, the list is asked for again from its start.
/// </summary>
public static class SnapshotPages
{
    /// <summary>Snapshots a page holds: about 1 KB each with their retention verdicts, well under a frame.</summary>
    public const uint PageSize = 1000;

    /// <summary>What the manager answers when the snapshot a page goes on after is gone.</summary>
    public const string Changed = "the catalog changed while it was listed";

    /// <summary>How many times a list is begun again when its catalog changes under it.</summary>
    private const int Attempts = 5;

    /// <summary>
    /// The page <paramref name="request"/> asks for of <paramref name="all"/> (oldest first; all of it when it asks for no
    /// page size) and whether more follow; null when the snapshot it goes on after is no longer there.
    /// </summary>
    public static List<T>? Page<T>(IReadOnlyList<T> all, Func<T, string> id, ListSnapshots request, out bool more)
    {
        more = false;
        var start = 0;
        if (request.After != "")
        {
            start = -1;
            for (var i = 0; i < all.Count && start < 0; i++)
                if (id(all[i]) == request.After) start = i + 1;
            if (start < 0) return null;
        }
        var take = request.Take == 0 ? all.Count : (int)Math.Min(request.Take, int.MaxValue);
        var page = new List<T>(Math.Min(take, Math.Max(0, all.Count - start)));
        for (var i = start; i < all.Count && page.Count < take; i++) page.Add(all[i]);
        more = start + page.Count < all.Count;
        return page;
    }

    /// <summary>The whole list of <paramref name="request"/> (its client, its verdicts), gathered page by page; or the manager's refusal, as a CommandRejected.</summary>
    public static async Task<object> All(ListSnapshots request, Func<ListSnapshots, Task<object>> ask)
    {
        for (var attempt = 1; ; attempt++)
        {
            var all = new SnapshotList();
            for (var after = ""; ;)
            {
                var asked = request.Clone();
                asked.After = after;
                asked.Take = PageSize;
                var answer = await ask(asked);
                if (answer is CommandRejected { Reason: Changed } && attempt < Attempts) break; // begun again
                if (answer is not SnapshotList list) return answer as CommandRejected ?? new CommandRejected { Reason = $"the manager answered {answer.GetType().Name}" };
                all.Snapshots.AddRange(list.Snapshots);
                if (!list.More || list.Snapshots.Count == 0) return all;
                // A manager that does not go on after a snapshot (one that knows no cursor) answers the first page again.
                if (list.Snapshots[^1].Id == after)
                    return new CommandRejected { Reason = "the manager answered the same page again: is its node older than this one? upgrade it" };
                after = list.Snapshots[^1].Id;
            }
        }
    }
}
