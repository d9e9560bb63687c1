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
        var store = new ReferenceStore(dir.Path);
        // The backup's part (3,000 ids, more than one write buffer of 64 KiB), then the manifest's and a few repeats.
        store.Add("s", Enumerable.Range(0, 3000).Select(Id).ToList());
        store.Add("s", [Id(5000), Id(12), Id(2999), Id(5000), Id(4000)]);
        var path = store.PathOf("s");
        Assert.Equal(Enumerable.Range(0, 3000).Concat([4000, 5000]).Select(Id).Order().ToArray(), ReferenceList.Read(path));
        Assert.Equal(12 + 3002 * ChunkId.Size + 4, new FileInfo(path).Length);
        Assert.False(File.Exists(path + ".tmp"));
        // Nothing there yet: the part is the list.
        store.Add("t", [Id(3), Id(1), Id(3)]);
        Assert.Equal(new[] { Id(1), Id(3) }.Order().ToArray(), store.Read("t"));
    }

    [Fact]
    public void A_damaged_list_is_not_merged_into_and_stays_as_it_was()
    {
        using var dir = new TempDir();
        var store = new ReferenceStore(dir.Path);
        store.Add("s", Enumerable.Range(0, 10).Select(Id).ToList());
        var path = store.PathOf("s");
        var bytes = File.ReadAllBytes(path);
        bytes[20] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.Throws<InvalidDataException>(() => store.Add("s", [Id(11)]));
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_list_whose_ids_do_not_ascend_is_damaged_though_its_checksum_holds()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "s.ref");
        var descending = new[] { Id(1), Id(2) }.OrderDescending().ToArray();
        ReferenceList.WriteSorted(path, descending); // never written so, but a list read is not trusted
        var e = Assert.Throws<InvalidDataException>(() => ReferenceList.ReadAny(path));
        Assert.Contains("ascending", e.Message);
        ReferenceList.WriteDelta(path, new ReferenceList.BaseList("b", 2, 0), [], descending);
        Assert.Throws<InvalidDataException>(() => ReferenceList.ReadAny(path));
    }
}
