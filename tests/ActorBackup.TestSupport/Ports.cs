using System.Net;
using System.Net.Sockets;

namespace ActorBackup.TestSupport;

/// <summary>
/// Ports for test nodes. A port asked of the kernel (bind to 0) comes from the ephemeral range, the same
/// range every outgoing connection of the machine takes its local port from: between "free a moment ago"
/// and the node's bind, a parallel test's connection could take it (CI saw "Address already in use"). So
/// ports are handed out below the ephemeral range, never twice in one process, each checked free by a
/// bind; test processes running side by side start at different random places of the range.
/// </summary>
public static class Ports
{
    private static readonly Lock Gate = new();
    private static readonly HashSet<int> Given = [];
    private static readonly (int Low, int High) Range = FreeRange();
    private static int next = Random.Shared.Next(Range.Low, Range.High);

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago and no connection takes by itself.</summary>
    public static int Free()
    {
        lock (Gate)
        {
            for (var tries = 0; tries < Range.High - Range.Low; tries++)
            {
                var port = next;
                next = next + 1 >= Range.High ? Range.Low : next + 1;
                if (Given.Contains(port) || !Bindable(port)) continue;
                Given.Add(port);
                return port;
            }
        }
        throw new InvalidOperationException($"no free TCP port on 127.0.0.1 in {Range.Low}-{Range.High}");
    }

    private static bool Bindable(int port)
    {
        try
        {
            var l = new TcpListener(IPAddress.Loopback, port);
            l.Start();
            l.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Outside the kernel's ephemeral range (net.ipv4.ip_local_port_range), above the well-known ports.</summary>
    private static (int, int) FreeRange()
    {
        var (low, high) = (32768, 60999);
        try
        {
            var parts = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range")
                .Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && int.TryParse(parts[0], out var l) && int.TryParse(parts[1], out var h)) (low, high) = (l, h);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        if (low - 10000 >= 2000) return (10000, low);
        if (65535 - high >= 2000) return (high + 1, 65536);
        return (10000, 12000); // the whole space is ephemeral: a rare race remains, as with any port
    }
}
