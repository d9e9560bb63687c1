using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ActorBackup.Cluster.Metrics;

/// <summary>
/// What an endpoint serving beyond this machine needs (actorbackup.metrics.token-file, .tls-certificate, .tls-key): the
/// bearer token a scraper sends (a file of this node's user alone, read at each request: a new token takes effect at
/// once), and a TLS certificate with its key (PEM, read again when either file changes: a renewal needs no restart).
/// </summary>
public sealed record MetricsAccess(string TokenFile, string CertificateFile, string KeyFile)
{
    /// <summary>The shortest token taken: a guessable one is no authentication.</summary>
    public const int MinTokenLength = 16;

    /// <summary>The token the file holds (its first line, trimmed); refused when others may read the file, or when short.</summary>
    public byte[] Token()
    {
        ActorBackup.Protocol.Trust.CellCertificates.CheckPrivate(TokenFile);
        var token = File.ReadLines(TokenFile).FirstOrDefault()?.Trim() ?? "";
        if (token.Length < MinTokenLength)
            throw new InvalidDataException($"{TokenFile} holds a metrics token of {token.Length} characters: give one of {MinTokenLength} or more (openssl rand -hex 32 > {TokenFile})");
        return SHA256.HashData(Encoding.UTF8.GetBytes(token));
    }
}

/// <summary>
/// /metrics over HTTP on one address (actorbackup.metrics.host and .port), for Prometheus: GET (or HEAD) of
/// /metrics answers the registry's text; any other path 404, any other method 405. Whatever the request's Host header
/// says (Prometheus scrapes by a DNS name; HttpListener answered only a Host equal to the address it was given, 404 to the
/// rest). Bounded: 16 requests at once, and once half of them are taken 2 from one address (more are answered 503, at
/// most 32 such answers at once, then closed), 8 KiB of request head read within 2 s, then 10 s for the answer: a few
/// idle connections do not starve a scraper. With a <see cref="MetricsAccess"/> (required off this machine): HTTPS only
/// (a plain request is told so), and a request without the bearer token is answered 401 before anything else.
/// </summary>
public sealed class MetricsEndpoint : IDisposable
{
    private const int MaxHead = 8192, MaxAtOnce = 16, MaxFromOne = 2, MaxBusy = 32;
    private static readonly TimeSpan RequestTime = TimeSpan.FromSeconds(10);
    private readonly TimeSpan _headTime;
    private readonly Dictionary<IPAddress, int> _fromOne = [];
    private int _serving, _busy;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _slots = new(MaxAtOnce);
    private readonly MetricsAccess? _access;
    private (DateTime Certificate, DateTime Key, X509Certificate2 Loaded)? _certificate;
    private readonly Lock _certificateLock = new();

    public MetricsEndpoint(IPAddress address, int port, MetricsAccess? access = null) : this(address, port, TimeSpan.FromSeconds(2), access)
    {
    }

    /// <param name="headTime">how long a request's head may take to come (tests: long, to hold connections open)</param>
    /// <param name="access">the token and certificate, when the endpoint is not for this machine alone</param>
    internal MetricsEndpoint(IPAddress address, int port, TimeSpan headTime, MetricsAccess? access = null)
    {
        _headTime = headTime;
        _access = access;
        if (access is not null)
        {
            // Both checked now: a node whose metrics cannot be served as configured says so at its start.
            access.Token();
            Certificate();
        }
        _listener = new TcpListener(address, port);
        if (address.Equals(IPAddress.IPv6Any)) _listener.Server.DualMode = true; // "*": IPv4 and IPv6
        _listener.Start();
        _ = Task.Run(AcceptLoop);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>The certificate of <see cref="MetricsAccess"/>, loaded again when either of its files changed.</summary>
    private X509Certificate2 Certificate()
    {
        var access = _access!;
        var (certificate, key) = (File.GetLastWriteTimeUtc(access.CertificateFile), File.GetLastWriteTimeUtc(access.KeyFile));
        lock (_certificateLock)
        {
            if (_certificate is { } c && c.Certificate == certificate && c.Key == key) return c.Loaded;
            ActorBackup.Protocol.Trust.CellCertificates.CheckPrivate(access.KeyFile);
            X509Certificate2 loaded;
            try
            {
                loaded = X509Certificate2.CreateFromPemFile(access.CertificateFile, access.KeyFile);
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException or FileNotFoundException or DirectoryNotFoundException)
            {
                throw new InvalidDataException($"the metrics certificate {access.CertificateFile} with its key {access.KeyFile} cannot be loaded: {e.Message} " +
                                               "(both PEM: the certificate, then its chain if any, and an unencrypted private key)", e);
            }
            _certificate = (certificate, key, loaded);
            return loaded;
        }
    }

    /// <summary>The address a host setting names: an address, "*" (every interface), or a name resolved now.</summary>
    public static IPAddress AddressOf(string host)
    {
        if (host is "*" or "+") return Socket.OSSupportsIPv6 ? IPAddress.IPv6Any : IPAddress.Any;
        if (IPAddress.TryParse(host, out var address)) return address;
        if (host == "localhost") return IPAddress.Loopback;
        var found = Dns.GetHostAddresses(host);
        if (found.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        // Debian's /etc/hosts names the host 127.0.1.1: "its name" would serve this machine alone, silently.
        var outside = found.Where(a => !IPAddress.IsLoopback(a)).ToList();
        if (outside.Count == 0)
            throw new SocketException((int)SocketError.AddressNotAvailable, $"{host} resolves to {found[0]}, a loopback address: give the address to serve on, or \"*\"");
        return outside.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? outside[0];
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // Out of file descriptors, say: a moment, then on (the endpoint never stops accepting for good).
                try { await Task.Delay(100, _stop.Token); } catch (OperationCanceledException) { return; }
                continue;
            }
            var from = (client.Client.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
            bool taken;
            lock (_fromOne)
            {
                // One address's share counts once half the slots are taken (a local Prometheus, or a proxy, is all one address).
                taken = (_serving < MaxAtOnce / 2 || _fromOne.GetValueOrDefault(from) < MaxFromOne) && _slots.Wait(0);
                if (taken)
                {
                    _fromOne[from] = _fromOne.GetValueOrDefault(from) + 1;
                    _serving++;
                }
            }
            if (!taken)
            {
                // Said, not silent, while few are being told; a flood beyond that is closed at once.
                if (_access is null && Interlocked.Increment(ref _busy) <= MaxBusy) _ = Busy(client).ContinueWith(_ => Interlocked.Decrement(ref _busy), TaskScheduler.Default);
                else
                {
                    if (_access is null) Interlocked.Decrement(ref _busy);
                    client.Dispose(); // (over TLS: a plain 503 would be garbage to the scraper's TLS)
                }
                continue;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await Serve(client);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                {
                    // A scraper gone, or too slow: nothing to keep.
                }
                finally
                {
                    client.Dispose();
                    lock (_fromOne)
                    {
                        if (_fromOne.GetValueOrDefault(from) <= 1) _fromOne.Remove(from);
                        else _fromOne[from]--;
                        _serving--;
                    }
                    _slots.Release();
                }
            });
        }
    }

    /// <summary>503 to a connection over the bounds, then closed (a short write: never waited on for long).</summary>
    private static async Task Busy(TcpClient client)
    {
        using (client)
            try
            {
                using var brief = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                await client.GetStream().WriteAsync("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), brief.Token);
                await Drain(client, client.GetStream(), TimeSpan.FromMilliseconds(200)); // its request dropped: the close does not reset the answer away
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
    }

    private async Task Serve(TcpClient client)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(_headTime); // the head (and over TLS its handshake) within 2 s; then the answer within 10
        Stream stream = client.GetStream();
        if (_access is not null)
        {
            // A TLS client's first record is a handshake (22): a plain request is told where to go, not left to time out.
            var first = new byte[1];
            if (await client.Client.ReceiveAsync(first, SocketFlags.Peek, deadline.Token) == 0) return;
            if (first[0] != 22)
            {
                await Answer(stream, 400, "Bad Request", deadline.Token, "this endpoint serves metrics over HTTPS only (scheme: https)\n");
                await Drain(client, stream);
                return;
            }
            var tls = new SslStream(stream, leaveInnerStreamOpen: false);
            stream = tls;
            try
            {
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = Certificate() }, deadline.Token);
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or InvalidDataException)
            {
                if (e is InvalidDataException) Console.Error.WriteLine($"metrics: {e.Message}"); // a renewal gone wrong: the old files were replaced by bad ones
                return;
            }
        }
        await using var owned = stream;
        var head = new byte[MaxHead];
        var length = 0;
        while (head.AsSpan(0, length).IndexOf("\r\n\r\n"u8) < 0)
        {
            if (length == head.Length)
            {
                await Answer(stream, 431, "Request Header Fields Too Large", deadline.Token);
                await Drain(client, stream);
                return;
            }
            var read = await stream.ReadAsync(head.AsMemory(length), deadline.Token);
            if (read == 0) return;
            length += read;
        }
        deadline.CancelAfter(RequestTime);
        var line = Encoding.ASCII.GetString(head, 0, head.AsSpan(0, length).IndexOf("\r\n"u8)).Split(' ');
        if (line.Length != 3 || !line[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            await Answer(stream, 400, "Bad Request", deadline.Token);
            return;
        }
        if (_access is not null && !Authorized(head.AsSpan(0, length)))
        {
            await Answer(stream, 401, "Unauthorized", deadline.Token, "a bearer token is needed (Prometheus: authorization.credentials_file)\n",
                "WWW-Authenticate: Bearer realm=\"actorbackup metrics\"\r\n");
            return;
        }
        if (line[0] is not ("GET" or "HEAD"))
        {
            await Answer(stream, 405, "Method Not Allowed", deadline.Token);
            return;
        }
        if (line[1].Split('?')[0] != "/metrics")
        {
            await Answer(stream, 404, "Not Found", deadline.Token, "Prometheus metrics are at /metrics\n");
            return;
        }
        using var body = new MemoryStream();
        await Prometheus.Metrics.DefaultRegistry.CollectAndExportAsTextAsync(body, deadline.Token);
        await Answer(stream, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", line[0] == "HEAD" ? [] : body.ToArray(), body.Length, deadline.Token);
    }

    /// <summary>Whether the head carries "Authorization: Bearer TOKEN" with the token of the access's file (compared in constant time).</summary>
    private bool Authorized(ReadOnlySpan<byte> head)
    {
        byte[] token;
        try
        {
            token = _access!.Token();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"metrics: no request is let in: {e.Message}");
            return false;
        }
        foreach (var raw in Encoding.ASCII.GetString(head).Split("\r\n").Skip(1))
        {
            var colon = raw.IndexOf(':');
            if (colon < 0 || !raw[..colon].Trim().Equals("Authorization", StringComparison.OrdinalIgnoreCase)) continue;
            var value = raw[(colon + 1)..].Trim();
            if (!value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
            return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(value[7..].Trim())), token);
        }
        return false;
    }

    /// <summary>
    /// After an answer to a request not read whole: the rest read and dropped (up to 64 KiB, 1 s), so that closing does not
    /// reset the connection and take the answer with it before the scraper reads it.
    /// </summary>
    private static async Task Drain(TcpClient client, Stream stream, TimeSpan? within = null)
    {
        client.Client.Shutdown(SocketShutdown.Send);
        using var brief = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(1));
        var sink = new byte[8192];
        for (var left = 64 * 1024; left > 0;)
        {
            var read = await stream.ReadAsync(sink, brief.Token);
            if (read == 0) return;
            left -= read;
        }
    }

    /// <summary>An answer of <paramref name="text"/> (an error's: empty, or what to ask for instead).</summary>
    private static Task Answer(Stream stream, int status, string reason, CancellationToken cancel, string text = "", string extra = "") =>
        Answer(stream, status, reason, "text/plain", Encoding.UTF8.GetBytes(text), text.Length, cancel, extra);

    /// <summary>An answer of <paramref name="length"/> bytes, of which <paramref name="body"/> is sent (none for a HEAD).</summary>
    private static async Task Answer(Stream stream, int status, string reason, string type, byte[] body, long length, CancellationToken cancel, string extra = "")
    {
        var head = $"HTTP/1.1 {status} {reason}\r\nContent-Type: {type}\r\nContent-Length: {length}\r\n{extra}Connection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), cancel);
        if (body.Length > 0) await stream.WriteAsync(body, cancel);
        await stream.FlushAsync(cancel);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _listener.Dispose();
    }
}
