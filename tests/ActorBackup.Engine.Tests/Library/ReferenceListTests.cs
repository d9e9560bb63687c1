using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.TestSupport;

namespace ActorBackup.Engine.Tests;

public class ReferenceListTests
{
    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    [Fact]
    public void A_list_with_repeats_in_any_order_is_written_sorted_and_distinct()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "s.ref");
        // Parts of one snapshot name shared chunks again (a tree's, a file's twice), in no order.
        var ids = Enumerable.Range(0, 500).Select(i => Id(i % 200)).Reverse().Concat([Id(7), Id(199), Id(0)]).ToList();
        ReferenceList.Write(path, ids);
        var back = ReferenceList.Read(path);
        Assert.Equal(Enumerable.Range(0, 200).Select(Id).Order().ToArray(), back);
        Assert.Equal(12 + 200 * ChunkId.Size + 4, new FileInfo(path).Length);
    }

    [Fact]
    public void A_part_committed_later_is_merged_into_the_list_there_sorted_and_distinct()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "s.ref");
        // The backup's part (3,000 ids, more than one write buffer of 64 KiB), then the manifest's and a few repeats.
        ReferenceList.Write(path, Enumerable.Range(0, 3000).Select(Id).ToList());
        ReferenceList.Merge(path, [Id(5000), Id(12), Id(2999), Id(5000), Id(4000)]);
        var back = ReferenceList.Read(path);
        Assert.Equal(Enumerable.Range(0, 3000).Concat([4000, 5000]).Select(Id).Order().ToArray(), back);
        Assert.Equal(12 + 3002 * ChunkId.Size + 4, new FileInfo(path).Length);
        Assert.False(File.Exists(path + ".tmp"));
        // Nothing there yet: the part is the list.
        var fresh = Path.Combine(dir.Path, "t.ref");
        ReferenceList.Merge(fresh, [Id(3), Id(1), Id(3)]);
        Assert.Equal(new[] { Id(1), Id(3) }.Order().ToArray(), ReferenceList.Read(fresh));
    }

    [Fact]
    public void A_damaged_list_is_not_merged_into_and_stays_as_it_was()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "s.ref");
        ReferenceList.Write(path, Enumerable.Range(0, 10).Select(Id).ToList());
        var bytes = File.ReadAllBytes(path);
        bytes[20] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.Throws<InvalidDataException>(() => ReferenceList.Merge(path, [Id(11)]));
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }
}
