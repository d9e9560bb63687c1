using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// The manager's snapshot list asked for page by page: a catalog of tens of thousands of snapshots is more than one
/// message holds (Akka.Remote's frame and the operator endpoint's are 4 MiB), so no answer carries more than a page.
/// </summary>
public static class SnapshotPages
{
    /// <summary>Snapshots a page holds: about 1 KB each with their retention verdicts, well under a frame.</summary>
    public const uint PageSize = 1000;

    /// <summary>The page <paramref name="request"/> asks for of <paramref name="all"/> (all of it when it asks for no page size), and whether more follow.</summary>
    public static List<T> Page<T>(IEnumerable<T> all, ListSnapshots request, out bool more)
    {
        var from = all.Skip((int)Math.Min(request.Skip, int.MaxValue));
        if (request.Take == 0)
        {
            more = false;
            return from.ToList();
        }
        var page = from.Take((int)Math.Min(request.Take, int.MaxValue - 1) + 1).ToList(); // one more: whether more follow
        more = page.Count > request.Take;
        if (more) page.RemoveAt(page.Count - 1);
        return page;
    }

    /// <summary>
    /// Every page of <paramref name="request"/> (its client, its verdicts), each handed to <paramref name="page"/> as it
    /// comes (the last with <c>more</c> false); null when all came, else the manager's refusal or what it answered.
    /// </summary>
    public static async Task<string?> Each(ListSnapshots request, Func<ListSnapshots, Task<object>> ask, Func<SnapshotList, Task> page)
    {
        for (uint skip = 0; ; skip += PageSize)
        {
            var asked = request.Clone();
            asked.Skip = skip;
            asked.Take = PageSize;
            switch (await ask(asked))
            {
                case SnapshotList list:
                    await page(list);
                    if (!list.More) return null;
                    break;
                case CommandRejected r:
                    return r.Reason;
                case var other:
                    return $"the manager answered {other.GetType().Name}";
            }
        }
    }

    /// <summary>The whole list, gathered from its pages; or the refusal, as a CommandRejected.</summary>
    public static async Task<object> All(ListSnapshots request, Func<ListSnapshots, Task<object>> ask)
    {
        var all = new SnapshotList();
        var refused = await Each(request, ask, list =>
        {
            all.Snapshots.AddRange(list.Snapshots);
            return Task.CompletedTask;
        });
        return refused is null ? all : new CommandRejected { Reason = refused };
    }
}
