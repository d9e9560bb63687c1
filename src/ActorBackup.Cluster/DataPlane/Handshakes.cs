using System.Net;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The connections of a listener still in their handshake (TLS and hello, before any certificate is known): at most
/// <see cref="MaxAtOnce"/>, and <see cref="MaxPerAddress"/> from one address, apart from the admitted connections'
/// slots, so that peers who open connections and send nothing (each cut off at the handshake's deadline) cannot take
/// the slots the cell's own sessions need, nor one address all the handshakes. When all are taken, a newcomer takes
/// the oldest one's place (that one is aborted): peers of several addresses that hold every handshake open and
/// refill them as they time out would otherwise keep every node and shell of the cell out; now they must open
/// connections faster than a handshake takes.
/// </summary>
public sealed class Handshakes(int maxAtOnce = Handshakes.MaxAtOnce, int maxPerAddress = Handshakes.MaxPerAddress)
{
    public const int MaxAtOnce = 128;
    /// <summary>From one address: a client node's threads connect together (one connection each; SocketChannel tries again when closed).</summary>
    public const int MaxPerAddress = 32;

    /// <summary>A handshake under way (<see cref="Enter"/>); <see cref="Leave"/> it once it ends, however.</summary>
    public sealed class Entry(IPAddress peer, Action abort)
    {
        internal IPAddress Peer => peer;
        internal Action Abort => abort;
        internal LinkedListNode<Entry>? Node { get; set; }
    }

    private readonly Dictionary<IPAddress, int> _byAddress = [];
    private readonly LinkedList<Entry> _order = new();

    /// <summary>
    /// A handshake from <paramref name="peer"/> begins now (null: refused, its address has as many under way as it may);
    /// when all are taken, the oldest is aborted (<paramref name="abort"/> of that one: it closes its connection).
    /// </summary>
    public Entry? Enter(IPAddress peer, Action abort)
    {
        Entry? evicted = null;
        var entry = new Entry(peer, abort);
        lock (_byAddress)
        {
            _byAddress.TryGetValue(peer, out var count);
            if (count >= maxPerAddress) return null;
            if (_order.Count >= maxAtOnce)
            {
                evicted = _order.First!.Value;
                Remove(evicted);
            }
            _byAddress[peer] = _byAddress.GetValueOrDefault(peer) + 1;
            entry.Node = _order.AddLast(entry);
        }
        evicted?.Abort();
        return entry;
    }

    /// <summary>
    /// The handshake ended (admitted, refused, timed out, or aborted to make room): it counts no more. False when it
    /// had been aborted to make room (its connection is being closed): one about to be admitted must not be.
    /// </summary>
    public bool Leave(Entry entry)
    {
        lock (_byAddress)
        {
            if (entry.Node?.List is null) return false;
            Remove(entry);
            return true;
        }
    }

    /// <summary>How many handshakes are under way (tests).</summary>
    public int Count
    {
        get
        {
            lock (_byAddress) return _order.Count;
        }
    }

    private void Remove(Entry entry)
    {
        _order.Remove(entry.Node!);
        entry.Node = null;
        var count = _byAddress[entry.Peer];
        if (count <= 1) _byAddress.Remove(entry.Peer);
        else _byAddress[entry.Peer] = count - 1;
    }
}
