using ActorBackup.Cluster.DataPlane;

namespace ActorBackup.Cluster.Tests;

/// <summary>A listener whose accepts fail (out of file handles) waits longer after each, says so once, and goes on.</summary>
public sealed class AcceptFailuresTests
{
    [Fact]
    public void Failures_in_a_row_wait_longer_up_to_a_second_and_are_said_once_a_run()
    {
        var said = new List<string>();
        var failures = new AcceptFailures("the data plane", said.Add);
        var emfile = new System.Net.Sockets.SocketException(24);
        var delays = Enumerable.Range(0, 12).Select(_ => failures.Failed(emfile)).ToList();
        Assert.Equal(TimeSpan.FromMilliseconds(10), delays[0]);
        Assert.Equal(TimeSpan.FromMilliseconds(20), delays[1]);
        Assert.True(delays.Zip(delays.Skip(1)).All(d => d.Item2 >= d.Item1));
        Assert.Equal(AcceptFailures.MaxDelay, delays[^1]);
        Assert.Contains("the data plane: accepting a connection failed", Assert.Single(said));
        Assert.Contains("ulimit -n", said[0]);

        failures.Accepted();
        Assert.Contains("accepting connections again after 12 failed", said[^1]);
        failures.Accepted(); // nothing more to say
        Assert.Equal(2, said.Count);
        Assert.Equal(TimeSpan.FromMilliseconds(10), failures.Failed(emfile)); // a new run starts short again, and is said
        Assert.Equal(3, said.Count);
    }
}
