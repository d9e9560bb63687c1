using System.Net;
using System.Net.Sockets;
using System.Text;
using ActorBackup.Cluster.Metrics;

namespace ActorBackup.Cluster.Tests;

public sealed class MetricsEndpointTests
{
    /// <summary>The raw answer to <paramref name="request"/> (its status line and what follows).</summary>
    private static async Task<string> Ask(int port, string request)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var answer = new MemoryStream();
        await stream.CopyToAsync(answer); // the endpoint closes after each answer
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    [Fact]
    public async Task Metrics_are_served_whatever_host_a_scraper_names_and_anything_else_gets_a_clear_refusal()
    {
        using var endpoint = new MetricsEndpoint(IPAddress.Loopback, 0);
        CellMetrics.QueueLength.Set(0); // some series of ours to find

        // Prometheus scrapes by a DNS name: HttpListener answered 404 to any Host but the address it was given.
        var ok = await Ask(endpoint.Port, "GET /metrics HTTP/1.1\r\nHost: backup1.example.com:9464\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", ok);
        Assert.Contains("Content-Type: text/plain; version=0.0.4", ok);
        Assert.Contains("actorbackup_queue_length", ok);
        var body = ok[(ok.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        Assert.Contains($"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n", ok);

        var head = await Ask(endpoint.Port, "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 OK", head);
        Assert.EndsWith("\r\n\r\n", head); // no body
        Assert.StartsWith("HTTP/1.1 404", await Ask(endpoint.Port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 405", await Ask(endpoint.Port, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 400", await Ask(endpoint.Port, "hello\r\n\r\n"));
        // A head that never ends is cut at 8 KiB, answered, and the endpoint goes on.
        Assert.StartsWith("HTTP/1.1 431", await Ask(endpoint.Port, "GET /metrics HTTP/1.1\r\nX: " + new string('a', 20_000)));
        Assert.StartsWith("HTTP/1.1 200", await Ask(endpoint.Port, "GET /metrics HTTP/1.1\r\n\r\n"));
    }

    [Fact]
    public async Task Idle_connections_cannot_take_every_answer()
    {
        // A head may take a minute here: the idle connections stay until the test closes them.
        using var endpoint = new MetricsEndpoint(IPAddress.Loopback, 0, TimeSpan.FromMinutes(1));
        var idle = new List<TcpClient>();
        try
        {
            // Half the slots taken by one address (say nothing: held), then its share of 2 is all it gets.
            for (var i = 0; i < 8; i++)
            {
                var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, endpoint.Port);
                idle.Add(tcp);
            }
            Assert.StartsWith("HTTP/1.1 503", await Eventually.Until(() => Ask(endpoint.Port, "GET /metrics HTTP/1.1\r\n\r\n"), a => a.StartsWith("HTTP/1.1 503"), "a 503"));
            idle.ForEach(t => t.Dispose());
            await Eventually.Until(() => Ask(endpoint.Port, "GET /metrics HTTP/1.1\r\n\r\n"), a => a.StartsWith("HTTP/1.1 200"), "an answer once the idle ones are gone");
        }
        finally
        {
            idle.ForEach(t => t.Dispose());
        }
    }

    [Fact]
    public void A_host_setting_is_an_address_a_name_or_every_interface()
    {
        Assert.Equal(IPAddress.Loopback, MetricsEndpoint.AddressOf("127.0.0.1"));
        Assert.Equal(IPAddress.Loopback, MetricsEndpoint.AddressOf("localhost"));
        Assert.True(MetricsEndpoint.AddressOf("*") is var any && (any.Equals(IPAddress.IPv6Any) || any.Equals(IPAddress.Any)));
        Assert.Equal(IPAddress.Any, MetricsEndpoint.AddressOf("0.0.0.0"));
        Assert.ThrowsAny<SocketException>(() => MetricsEndpoint.AddressOf("no-such-host.invalid"));
    }
}
