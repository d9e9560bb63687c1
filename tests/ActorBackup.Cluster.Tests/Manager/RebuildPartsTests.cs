using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>A catalog rebuild's manifests too many for one message, sent in parts and put together again by the manager.</summary>
public sealed class RebuildPartsTests
{
    private static RecordSnapshots Found(int count) => new()
    {
        Library = "lib1", Complete = true, Referenced = { "s0" },
        Manifests = { Enumerable.Range(0, count).Select(i => new SnapshotManifest { Id = $"s{i}", Client = "web1", Library = "lib1", RootTree = ByteString.CopyFrom(new byte[32]) }.ToByteString()) },
    };

    [Fact]
    public void Manifests_that_fit_go_whole_and_more_go_in_parts_put_together_in_order()
    {
        var small = Found(3);
        Assert.Empty(RebuildParts.Split(small));
        Assert.Equal((3, true, 0), (small.Manifests.Count, small.Complete, small.Parts));

        var original = Found(10);
        var request = original.Clone();
        var parts = RebuildParts.Split(request, partBytes: 100);
        Assert.True(parts.Count > 1);
        Assert.All(parts, p => Assert.True(p.Token == request.PartsToken && p.Parts == parts.Count && p.Library == "lib1"));
        // An older manager, which knows nothing of the parts, sees a request that records nothing and is not complete.
        Assert.Equal((0, false, true, parts.Count), (request.Manifests.Count, request.Complete, request.PartsComplete, request.Parts));
        var held = new RebuildParts();
        foreach (var p in parts.AsEnumerable().Reverse()) Assert.Null(held.Add(p, 0));
        Assert.Equal(original.Manifests, held.Take(request, 0, out var error));
        Assert.Equal("", error);
        Assert.Null(held.Take(request, 0, out error)); // taken once
        Assert.Contains("did not reach the manager", error);
    }

    [Fact]
    public void A_part_lost_changed_or_of_another_library_records_nothing_and_parts_do_not_wait_for_ever()
    {
        var request = Found(10);
        var parts = RebuildParts.Split(request, partBytes: 100);
        var held = new RebuildParts();
        foreach (var p in parts.Skip(1)) held.Add(p, 0);
        Assert.Null(held.Take(request, 0, out var error));
        Assert.Contains("1 of the", error);
        Assert.Contains("run 'abk catalog rebuild lib1' again", error);

        foreach (var p in parts) held.Add(p, 0);
        parts[0].Manifests.Add(new SnapshotManifest { Id = "planted", Client = "other", RootTree = ByteString.CopyFrom(new byte[32]) }.ToByteString());
        Assert.Null(held.Take(request, 0, out error));
        Assert.Contains("not those its rebuild sent", error);

        var again = Found(10);
        var fresh = RebuildParts.Split(again, partBytes: 100);
        foreach (var p in fresh) held.Add(p, 0);
        held.Add(new RecordSnapshotsPart { Token = "other", Part = 0, Parts = 1 }, (long)RebuildParts.WaitAtMost.TotalMilliseconds + 1); // long after: the first ones went
        Assert.Null(held.Take(again, 0, out error));
        Assert.NotNull(held.Add(new RecordSnapshotsPart { Token = "t", Part = 3, Parts = 2 }, 0));
        Assert.NotNull(held.Add(new RecordSnapshotsPart { Token = "", Part = 0, Parts = 1 }, 0));
    }
}
