using System.Net;
using ActorBackup.Cluster.DataPlane;

namespace ActorBackup.Cluster.Tests;

/// <summary>The handshakes a listener has under way: bounded in all and per address, the oldest giving way when all are taken.</summary>
public sealed class HandshakesTests
{
    [Fact]
    public void A_newcomer_takes_the_oldest_handshakes_place_when_all_are_taken_but_not_past_its_addresss_share()
    {
        var handshakes = new Handshakes(maxAtOnce: 4, maxPerAddress: 2);
        var aborted = new List<int>();
        IPAddress Host(int n) => IPAddress.Parse("10.0.0." + n);
        // Peers of two addresses hold every handshake (silent, as an attacker's would be).
        var held = Enumerable.Range(0, 4).Select(i => { var n = i; return handshakes.Enter(Host(1 + i / 2), () => aborted.Add(n))!; }).ToList();
        Assert.Equal(4, handshakes.Count);
        // A node of the cell connects: it gets in, and the oldest silent one is aborted (it closes its connection).
        var node = handshakes.Enter(Host(9), () => aborted.Add(9));
        Assert.NotNull(node);
        Assert.Equal([0], aborted);
        Assert.Equal(4, handshakes.Count);
        // The aborted one's own end, later, changes nothing, and tells it it was aborted (were it about to be admitted,
        // it must not be: its connection is being closed); the node's admission frees its place.
        Assert.False(handshakes.Leave(held[0]));
        Assert.Equal(4, handshakes.Count);
        Assert.True(handshakes.Leave(node!));
        Assert.Equal(3, handshakes.Count);
        // One address has no more than its share under way, whatever else is free.
        Assert.NotNull(handshakes.Enter(Host(9), () => { }));
        Assert.NotNull(handshakes.Enter(Host(9), () => { }));
        Assert.Null(handshakes.Enter(Host(9), () => { }));
        Assert.Equal([0, 1], aborted); // the second made room by aborting the next oldest
    }
}
