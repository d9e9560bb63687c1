using ActorBackup.Engine.Find;

namespace ActorBackup.Engine.Tests.Find;

public class IndexTurnsTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_find_stops_the_background_build_running_and_goes_before_the_next_one()
    {
        using var turns = new IndexTurns();
        var running = turns.TakeBackground();
        Assert.False(running.Token.IsCancellationRequested);
        var find = Task.Run(turns.TakeFind);
        Assert.True(SpinWait.SpinUntil(() => running.Token.IsCancellationRequested, Patience), "the running build is told to stop");
        Assert.False(find.IsCompleted); // its turn comes when the build has stopped
        var next = Task.Run(turns.TakeBackground); // another backup's index, queued behind the find
        running.Dispose();
        using (var findTurn = await find.WaitAsync(Patience))
        {
            Assert.False(findTurn.Token.IsCancellationRequested);
            Assert.False(next.IsCompleted); // the find holds the turn
        }
        using var nextTurn = await next.WaitAsync(Patience);
        Assert.False(nextTurn.Token.IsCancellationRequested, "no find waits: the build runs to its end");
    }

    [Fact]
    public async Task Finds_take_turns_one_after_the_other_and_a_build_waits_until_none_is_left()
    {
        using var turns = new IndexTurns();
        var first = turns.TakeFind();
        var build = Task.Run(turns.TakeBackground); // queued before the second find, and still after it
        var second = Task.Run(turns.TakeFind);
        Assert.True(SpinWait.SpinUntil(() => turns.Finds == 2, Patience), "the second find is queued");
        Assert.False(second.IsCompleted);
        first.Dispose();
        first.Dispose(); // once is enough: a second dispose gives no turn away
        var secondTurn = await second.WaitAsync(Patience);
        Assert.False(build.IsCompleted); // the second find holds the turn
        secondTurn.Dispose();
        (await build.WaitAsync(Patience)).Dispose();
        using var again = turns.TakeFind(); // free again
    }
}
