using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Tests;

/// <summary>
/// Two writers meet on one chunk: the second must not take "someone else is storing it" for "stored", or its
/// snapshot could name a chunk that the first writer, failing, never stores.
/// </summary>
public class ReservationTests
{
    private static readonly ChunkId X = new(Enumerable.Repeat((byte)7, ChunkId.Size).ToArray());

    [Fact]
    public async Task A_second_writer_waits_for_the_first_and_then_reuses_what_it_stored()
    {
        using var dir = new TempDir();
        using var lib = DiskLibrary.Create(Path.Combine(dir.Path, "lib"), "l");
        Assert.True(lib.TryReserve(X));
        var second = Task.Run(() => lib.TryReserve(X));
        Assert.False(await Task.WhenAny(second, Task.Delay(200)) == second, "the second writer must wait while the first one stores the chunk");
        lib.Append(X, RecordFlags.None, new byte[100]);
        await second.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(await second); // stored by the first: nothing to do
    }

    [Fact]
    public async Task A_second_writer_stores_the_chunk_itself_when_the_first_gives_up()
    {
        using var dir = new TempDir();
        using var lib = DiskLibrary.Create(Path.Combine(dir.Path, "lib"), "l");
        Assert.True(lib.TryReserve(X));
        var second = Task.Run(() => lib.TryReserve(X));
        Assert.False(await Task.WhenAny(second, Task.Delay(200)) == second);
        lib.Release(X); // the first writer's read failed, or its job died
        await second.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(await second); // now it is the second one's to store
        lib.Append(X, RecordFlags.None, new byte[100]);
        Assert.True(lib.Contains(X));
    }
}
