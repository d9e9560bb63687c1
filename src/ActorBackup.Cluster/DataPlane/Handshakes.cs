using System.Net;

namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The connections of a listener still in their handshake (TLS and hello, before any certificate is known): at most
/// <see cref="MaxAtOnce"/>, and <see cref="MaxPerAddress"/> from one address, apart from the admitted connections'
/// slots, so that peers who open connections and send nothing (each cut off at the handshake's deadline) cannot take
/// the slots the cell's own sessions need, nor one address all the handshakes.
/// </summary>
public sealed class Handshakes(int maxAtOnce = Handshakes.MaxAtOnce, int maxPerAddress = Handshakes.MaxPerAddress)
{
    public const int MaxAtOnce = 128;
    /// <summary>From one address: a client node's threads connect together (one connection each; SocketChannel tries again when closed).</summary>
    public const int MaxPerAddress = 32;

    private readonly Dictionary<IPAddress, int> _byAddress = [];
    private int _total;

    /// <summary>Whether a handshake from <paramref name="peer"/> may begin now (then <see cref="Leave"/> once it ends).</summary>
    public bool Enter(IPAddress peer)
    {
        lock (_byAddress)
        {
            _byAddress.TryGetValue(peer, out var count);
            if (_total >= maxAtOnce || count >= maxPerAddress) return false;
            _byAddress[peer] = count + 1;
            _total++;
            return true;
        }
    }

    public void Leave(IPAddress peer)
    {
        lock (_byAddress)
        {
            if (!_byAddress.TryGetValue(peer, out var count)) return;
            if (count <= 1) _byAddress.Remove(peer);
            else _byAddress[peer] = count - 1;
            _total--;
        }
    }
}
