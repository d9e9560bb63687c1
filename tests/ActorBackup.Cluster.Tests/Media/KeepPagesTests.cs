using ActorBackup.Cluster.Media;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Tests;

/// <summary>A prune's or a check's snapshot lists too long for one message, sent in parts and put together again.</summary>
public sealed class KeepPagesTests
{
    private static PruneLibrary Prune(int keep, int deleted) => new()
    {
        Library = "lib1", Job = "7", Attempt = 2,
        Keep = { Enumerable.Range(0, keep).Select(i => $"k{i:D6}") }, Deleted = { Enumerable.Range(0, deleted).Select(i => $"d{i:D6}") },
    };

    [Fact]
    public void Lists_that_fit_go_whole_in_the_request()
    {
        var request = Prune(5, 5);
        Assert.Empty(KeepPages.Split(request, pageSize: 10));
        Assert.Equal((0, 5, 5), (request.KeepPages, request.Keep.Count, request.Deleted.Count));
        Assert.True(request.KeepDigest.IsEmpty);
        Assert.Empty(KeepPages.Split(new CopySnapshot { Library = "lib1" }, pageSize: 1));
    }

    [Fact]
    public void Parts_arriving_in_any_order_give_back_the_lists_in_their_order()
    {
        var original = Prune(25, 8);
        var request = original.Clone();
        var parts = KeepPages.Split(request, pageSize: 10);
        Assert.Equal(4, parts.Count);
        Assert.All(parts, p => Assert.True(p.Keep.Count + p.Deleted.Count <= 10 && p.Pages == 4 && p.Job == "7" && p.Attempt == 2 && p.Library == "lib1"));
        Assert.Equal((4, 0, 0), (request.KeepPages, request.Keep.Count, request.Deleted.Count));
        Assert.Equal(KeepPages.Digest(original.Keep, original.Deleted), request.KeepDigest);
        var pages = new KeepPages();
        foreach (var p in parts.AsEnumerable().Reverse()) Assert.Null(pages.Add(p, "mgr", 0));
        var lists = pages.Take("7", 2, request.KeepPages, request.KeepDigest, "mgr", out var error);
        Assert.NotNull(lists);
        Assert.Equal("", error);
        Assert.Equal(original.Keep, lists.Value.Keep);
        Assert.Equal(original.Deleted, lists.Value.Deleted);
        // Taken once: asked again, the parts are gone.
        Assert.Null(pages.Take("7", 2, request.KeepPages, request.KeepDigest, "mgr", out error));
        Assert.Contains("4 of the 4 parts", error);
    }

    [Fact]
    public void A_checks_list_goes_in_parts_too()
    {
        var check = new VerifyLibrary { Library = "lib1", Job = "9", Keep = { Enumerable.Range(0, 21).Select(i => $"s{i}") } };
        var kept = check.Keep.ToList();
        var parts = KeepPages.Split(check, pageSize: 10);
        Assert.Equal((3, 0), (check.KeepPages, check.Keep.Count));
        var pages = new KeepPages();
        foreach (var p in parts) Assert.Null(pages.Add(p, "mgr", 0));
        Assert.Equal(kept, pages.Take("9", 0, 3, check.KeepDigest, "mgr", out _)!.Value.Keep);
    }

    [Fact]
    public void A_part_moved_from_keep_to_deleted_or_of_another_attempt_does_not_make_the_signed_lists()
    {
        var request = Prune(3, 0);
        var parts = KeepPages.Split(request, pageSize: 1);
        parts[1].Keep.Clear();
        parts[1].Deleted.Add("k000001"); // the same id, said deleted
        var pages = new KeepPages();
        foreach (var p in parts) pages.Add(p, "mgr", 0);
        Assert.Null(pages.Take("7", 2, 3, request.KeepDigest, "mgr", out var error));
        Assert.Contains("not those the manager signed", error);
        // Parts of attempt 2 do not answer attempt 3.
        var again = Prune(3, 0);
        foreach (var p in KeepPages.Split(again, pageSize: 1)) pages.Add(p, "mgr", 0);
        Assert.Null(pages.Take("7", 3, 3, again.KeepDigest, "mgr", out error));
        Assert.Contains("3 of the 3 parts", error);
    }

    [Fact]
    public void Parts_count_only_from_their_requests_sender_and_wait_a_while_at_most()
    {
        var request = Prune(2, 0);
        var parts = KeepPages.Split(request, pageSize: 1);
        var pages = new KeepPages();
        Assert.Null(pages.Add(parts[0], "mgr", 0));
        // Another node's part for the same job: not mixed in (nor a count of parts other than the first's).
        Assert.Contains("does not match", pages.Add(parts[1], "client", 1));
        Assert.Contains("does not match", pages.Add(new KeepPage { Job = "7", Attempt = 2, Page = 0, Pages = 5 }, "mgr", 1));
        Assert.Null(pages.Add(parts[1], "mgr", 2));
        Assert.Null(pages.Take("7", 2, 2, request.KeepDigest, "client", out var error)); // a request from elsewhere takes none
        Assert.Contains("2 of the 2 parts", error);
        // Parts whose request never came go after WaitAtMost.
        foreach (var p in parts) pages.Add(p, "mgr", 0);
        pages.Add(new KeepPage { Job = "other", Page = 0, Pages = 1 }, "mgr", (long)KeepPages.WaitAtMost.TotalMilliseconds + 1);
        Assert.Null(pages.Take("7", 2, 2, request.KeepDigest, "mgr", out error));
    }

    [Fact]
    public void The_digest_tells_ids_apart_however_they_are_cut_and_a_drop_unknown_prune_in_parts_says_so_only_in_its_own_field()
    {
        Assert.NotEqual(KeepPages.Digest(["a\nk b"], []), KeepPages.Digest(["a", "b"], []));
        Assert.NotEqual(KeepPages.Digest(["a", "b"], []), KeepPages.Digest(["a"], ["b"]));
        // An older media agent ignores the parts and parts_drop_unknown: it must not read drop_unknown on a request that keeps nothing.
        var request = Prune(3, 0);
        request.DropUnknown = true;
        KeepPages.Split(request, pageSize: 1);
        Assert.False(request.DropUnknown);
        Assert.True(request.PartsDropUnknown);
    }

    [Fact]
    public void Parts_out_of_bounds_or_past_what_may_be_held_are_dropped_and_stale_jobs_make_room()
    {
        var pages = new KeepPages(maxHeld: 5);
        Assert.NotNull(pages.Add(new KeepPage { Job = "1", Page = 2, Pages = 2, Keep = { "a" } }, "mgr", 0));
        Assert.NotNull(pages.Add(new KeepPage { Job = "1", Page = 0, Pages = 0 }, "mgr", 0));
        Assert.NotNull(pages.Add(new KeepPage { Job = "1", Page = 0, Pages = 1, Keep = { Enumerable.Range(0, KeepPages.PageSize + 1).Select(i => $"{i}") } }, "mgr", 0));
        Assert.Null(pages.Add(new KeepPage { Job = "1", Page = 0, Pages = 2, Keep = { "a", "b", "c" } }, "mgr", 0));
        Assert.Contains("more than 5 ids wait", pages.Add(new KeepPage { Job = "2", Page = 0, Pages = 1, Keep = { "d", "e", "f" } }, "mgr", 0));
        // The same part again replaces the first: still 3 held.
        Assert.Null(pages.Add(new KeepPage { Job = "1", Page = 0, Pages = 2, Keep = { "a", "b", "c" } }, "mgr", 0));
        // Parts of five jobs: the one heard from least recently goes.
        for (var j = 10; j < 14; j++) Assert.Null(pages.Add(new KeepPage { Job = $"{j}", Page = 0, Pages = 1 }, "mgr", 0));
        Assert.Null(pages.Take("1", 0, 2, Google.Protobuf.ByteString.Empty, "mgr", out var error));
        Assert.Contains("2 of the 2 parts", error);
        Assert.NotNull(pages.Take("13", 0, 1, KeepPages.Digest([], []), "mgr", out _));
    }
}
