using Akka.Cluster;

namespace ActorBackup.Cluster.Hosting;

/// <summary>Where a cell's manager runs: the singleton lives on the oldest Up member with the manager role.</summary>
public static class ManagerNode
{
    /// <summary>That member in <paramref name="state"/>; null when the cell has none.</summary>
    public static Member? Of(ClusterEvent.CurrentClusterState state) =>
        state.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole("manager")).OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
}
