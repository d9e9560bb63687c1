using System.Net;
using System.Net.Sockets;

namespace ActorBackup.Cluster.Hosting;

/// <summary>Where a listener of this node binds: an address as given, or a host name resolved (an IPv4 address first).</summary>
public static class HostAddress
{
    /// <summary>
    /// <paramref name="host"/> as an address: the node's akka.remote hostname may be an address or a name. IPv4 first, as
    /// Akka.Remote does: the data plane's clients connect over IPv4 (localhost resolves to ::1 first here).
    /// </summary>
    public static IPAddress Of(string host) =>
        IPAddress.TryParse(host, out var address) ? address : Dns.GetHostAddresses(host).OrderBy(a => a.AddressFamily != AddressFamily.InterNetwork).First();
}
