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
        using var endpoint = new MetricsEndpoint(IPAddress.Loopback, 0, TimeSpan.FromSeconds(30)); // a head's 2 s raced a stalled test
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

    /// <summary>A token file (0600), and a self-signed certificate for localhost with its key (PEM, the key 0600), in <paramref name="dir"/>.</summary>
    private static MetricsAccess AccessIn(string dir, string token)
    {
        var access = new MetricsAccess(Path.Combine(dir, "token"), Path.Combine(dir, "metrics.crt"), Path.Combine(dir, "metrics.key"));
        WritePrivate(access.TokenFile, token + "\n");
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        File.WriteAllText(access.CertificateFile, certificate.ExportCertificatePem());
        WritePrivate(access.KeyFile, key.ExportPkcs8PrivateKeyPem());
        return access;
    }

    private static void WritePrivate(string path, string text)
    {
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>The answer to a GET of /metrics over TLS (any certificate taken: the test's own), with this Authorization header if any.</summary>
    private static async Task<string> AskTls(int port, string? authorization)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        await using var tls = new System.Net.Security.SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = "localhost", RemoteCertificateValidationCallback = (_, _, _, _) => true,
        });
        var request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + (authorization is null ? "" : $"Authorization: {authorization}\r\n") + "\r\n";
        await tls.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var answer = new MemoryStream();
        try
        {
            await tls.CopyToAsync(answer);
        }
        catch (IOException)
        {
            // closed without TLS's close_notify: what came before is the answer
        }
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    [Fact]
    public async Task Beyond_this_machine_the_metrics_are_served_over_tls_to_the_holder_of_the_token()
    {
        var dir = Directory.CreateTempSubdirectory("abk-metrics-").FullName;
        try
        {
            const string token = "0123456789abcdef0123456789abcdef";
            var access = AccessIn(dir, token);
            using var endpoint = new MetricsEndpoint(IPAddress.Loopback, 0, TimeSpan.FromSeconds(30), access);
            CellMetrics.QueueLength.Set(0);
            // Plain HTTP is told to use HTTPS, not left to a handshake's timeout.
            var plain = await Ask(endpoint.Port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 400", plain);
            Assert.Contains("HTTPS only", plain);
            // Over TLS: no token, a wrong one, another scheme: 401 and nothing of the metrics.
            foreach (var wrong in new[] { null, "Bearer 0123456789abcdef0123456789abcdeX", "Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes("u:" + token)), "Bearer " })
            {
                var refused = await AskTls(endpoint.Port, wrong);
                Assert.StartsWith("HTTP/1.1 401", refused);
                Assert.Contains("WWW-Authenticate: Bearer", refused);
                Assert.DoesNotContain("actorbackup_queue_length", refused);
            }
            var ok = await AskTls(endpoint.Port, "Bearer " + token);
            Assert.StartsWith("HTTP/1.1 200", ok);
            Assert.Contains("actorbackup_queue_length", ok);
            // A new token takes effect at the next request; the old one is refused.
            WritePrivate(access.TokenFile, "fedcba9876543210fedcba9876543210\n");
            Assert.StartsWith("HTTP/1.1 401", await AskTls(endpoint.Port, "Bearer " + token));
            Assert.StartsWith("HTTP/1.1 200", await AskTls(endpoint.Port, "bearer fedcba9876543210fedcba9876543210"));
            // A token file others may read lets nobody in (and says why on the node's log).
            File.SetUnixFileMode(access.TokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            Assert.StartsWith("HTTP/1.1 401", await AskTls(endpoint.Port, "Bearer fedcba9876543210fedcba9876543210"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void An_endpoint_whose_token_or_certificate_will_not_do_is_refused_at_its_start()
    {
        var dir = Directory.CreateTempSubdirectory("abk-metrics-").FullName;
        try
        {
            var access = AccessIn(dir, "short");
            Assert.Contains("16 or more", Assert.Throws<InvalidDataException>(() => new MetricsEndpoint(IPAddress.Loopback, 0, access)).Message);
            WritePrivate(access.TokenFile, "0123456789abcdef0123456789abcdef");
            File.SetUnixFileMode(access.TokenFile, UnixFileMode.UserRead | UnixFileMode.GroupRead);
            Assert.Contains("chmod 600", Assert.Throws<InvalidDataException>(() => new MetricsEndpoint(IPAddress.Loopback, 0, access)).Message);
            File.SetUnixFileMode(access.TokenFile, UnixFileMode.UserRead);
            File.SetUnixFileMode(access.KeyFile, UnixFileMode.UserRead | UnixFileMode.OtherRead);
            Assert.Contains("chmod 600", Assert.Throws<InvalidDataException>(() => new MetricsEndpoint(IPAddress.Loopback, 0, access)).Message);
            File.SetUnixFileMode(access.KeyFile, UnixFileMode.UserRead);
            File.WriteAllText(access.CertificateFile, "not a certificate");
            Assert.Contains("cannot be loaded", Assert.Throws<InvalidDataException>(() => new MetricsEndpoint(IPAddress.Loopback, 0, access)).Message);
            File.Delete(access.TokenFile);
            Assert.ThrowsAny<IOException>(() => CellMetrics.Serve("127.0.0.1", 1, access)); // said as the node's start failing
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
