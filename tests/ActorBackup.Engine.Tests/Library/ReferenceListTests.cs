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
}
