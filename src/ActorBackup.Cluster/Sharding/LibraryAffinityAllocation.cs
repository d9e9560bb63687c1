using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;

namespace ActorBackup.Cluster.Sharding;

/// <summary>
/// A library lives on a host: its shard goes to a node that declared it (cluster role "library:ID"). With
/// two such nodes (shared storage) it goes to the one with fewer libraries, and fails over to the other.
/// A library nobody declares is refused rather than opened on a node that cannot reach it.
/// </summary>
public sealed class LibraryAffinityAllocation(ActorSystem system) : IShardAllocationStrategy
{
    public const string RolePrefix = "library:";

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var declaring = cluster.State.Members
            .Where(m => m.Status == MemberStatus.Up && m.HasRole(RolePrefix + shardId) && !cluster.State.Unreachable.Contains(m))
            .Select(m => m.Address).ToHashSet();
        // The requesting region counts too: at start-up it may ask before the coordinator lists it.
        var regions = currentShardAllocations.Keys.Append(requester).Distinct()
            .Where(r => declaring.Contains(AddressOf(r, cluster)))
            .OrderBy(r => currentShardAllocations.TryGetValue(r, out var shards) ? shards.Count : 0)
            .ToList();
        // No exception escapes into the coordinator: a failed task leaves the shard unallocated, and the
        // region asks again a little later (when the declaring node may have come up).
        return regions.Count > 0
            ? Task.FromResult(regions[0])
            : Task.FromException<IActorRef>(new InvalidOperationException(
                $"no reachable node declares library {shardId}: start a node whose HOCON lists it under actorbackup.libraries"));
    }

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations, IImmutableSet<string> rebalanceInProgress)
    {
        // Move a shard only off a node that does not declare it (e.g. allocated while the right node was away).
        var cluster = Akka.Cluster.Cluster.Get(system);
        var misplaced = currentShardAllocations
            .SelectMany(kv => kv.Value.Where(shard => !cluster.State.Members.Any(m => m.Address == AddressOf(kv.Key, cluster) && m.HasRole(RolePrefix + shard))))
            .Where(s => !rebalanceInProgress.Contains(s)).ToImmutableHashSet();
        return Task.FromResult<IImmutableSet<string>>(misplaced);
    }

    private static Address AddressOf(IActorRef region, Akka.Cluster.Cluster cluster) =>
        region.Path.Address.HasLocalScope ? cluster.SelfAddress : region.Path.Address;
}
