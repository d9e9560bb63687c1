using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Protocol.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;
using Google.Protobuf;

namespace ActorBackup.Shell;

/// <summary>
/// One connection to a node's operator endpoint (TCP under mutual TLS with the cell's certificates, see OpsWire):
/// calls, one at a time. No ActorSystem: a command costs one connect and one round trip.
/// </summary>
public sealed class OpsConnection : IAsyncDisposable
{
    public const int DefaultPort = 5053;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);
    private readonly TcpClient _tcp;
    private readonly SslStream _stream;
    public string Node { get; }
    /// <summary>The last call ended inside its answers (lost connection, or given up): the connection is not usable.</summary>
    public bool Broken { get; private set; }
    private bool _answered;
    private const string NotTrusted = "give abk the certs folder of this cell (--certs DIR or $ABK_CERTS; DATA/certs of the cell's first node, " +
                                      "./data/certs after the quickstart) with ca.crt and an operator, integrator or client certificate issued by 'actorbackup ca issue'";

    /// <summary>The shell's certificate (with its key): it signs operator-only commands.</summary>
    private readonly X509Certificate2 _certificate;

    private OpsConnection(string node, TcpClient tcp, SslStream stream, X509Certificate2 certificate)
    {
        Node = node;
        _certificate = certificate;
        _tcp = tcp;
        _stream = stream;
    }

    public static async Task<OpsConnection> Open(string node, string certsDir, CancellationToken cancel)
    {
        SystemTrustStore.Skip(); // before the first certificate is read
        var (certificate, ca) = ShellCertificate(certsDir);
        var (host, port) = ParseNode(node);
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(ConnectTimeout);
            await tcp.ConnectAsync(host, port, timeout.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            tcp.Dispose();
            if (cancel.IsCancellationRequested) throw;
            throw new ShellException($"no ActorBackup node answers at {host}:{port}: start one with 'actorbackup', or give --node HOST:PORT " +
                                     "(the node's operator port: its cluster port + 1000 unless actorbackup.ops.port sets it)");
        }
        var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(ConnectTimeout * 2);
            await ssl.AuthenticateAsClientAsync(CellCertificates.ClientOptions(certificate, ca), timeout.Token);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            await ssl.DisposeAsync();
            tcp.Dispose();
            if (cancel.IsCancellationRequested) throw;
            throw new ShellException($"the node at {host}:{port} and this shell do not trust each other ({e.Message}): {NotTrusted}");
        }
        return new OpsConnection($"{host}:{port}", tcp, ssl, certificate);
    }

    /// <summary>The pairs a shell looks for in its certs folder, in this order.</summary>
    public static readonly CellRole[] ShellRoles = [CellRole.Operator, CellRole.Integrator, CellRole.Client, CellRole.Auditor];

    /// <summary>The cell's CA and the first shell certificate of the folder (operator, integrator, client).</summary>
    private static (X509Certificate2 Certificate, X509Certificate2 Ca) ShellCertificate(string certsDir)
    {
        try
        {
            var ca = CellCertificates.LoadCa(certsDir);
            foreach (var role in ShellRoles)
            {
                var name = CellCertificates.PairName(role);
                if (!File.Exists(Path.Combine(certsDir, name + ".crt"))) continue;
                var own = CellCertificates.LoadPair(certsDir, name, ca).Certificate;
                // Said while there is time: past its end the node refuses the connection.
                var end = own.NotAfter.ToUniversalTime() < ca.NotAfter.ToUniversalTime() ? own.NotAfter.ToUniversalTime() : ca.NotAfter.ToUniversalTime();
                if (end - DateTime.UtcNow < TimeSpan.FromDays(30))
                    Console.Error.WriteLine($"abk: {(end == own.NotAfter.ToUniversalTime() ? $"{Path.Combine(certsDir, name + ".crt")}" : "the cell's CA")} expires at {end:u}: " +
                                            $"have a new certificate issued on the CA's host (actorbackup ca issue --role {role.ToString().ToLowerInvariant()} ...; README, \"Certificates\")");
                return (own, ca);
            }
            throw new FileNotFoundException($"no operator.crt, integrator.crt, client.crt or auditor.crt with its key in {certsDir}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new ShellException($"{e.Message}: give the cell's certs folder with --certs DIR or $ABK_CERTS (DATA/certs of the cell's first node; " +
                                     "./data/certs after the quickstart), or issue a certificate with 'actorbackup ca issue --role operator'");
        }
    }

    public static (string Host, int Port) ParseNode(string node)
    {
        if (IPEndPoint.TryParse(node, out var ip) && (ip.Port != 0 || !node.Contains(':'))) return (ip.Address.ToString(), ip.Port == 0 ? DefaultPort : ip.Port);
        var colon = node.LastIndexOf(':');
        if (colon < 0) return (node, DefaultPort);
        if (!int.TryParse(node[(colon + 1)..], out var port) || port is <= 0 or > 65535)
            throw new ShellException($"--node wants HOST or HOST:PORT, got '{node}'", 2);
        return (node[..colon], port);
    }

    /// <summary>
    /// Sends one command; <paramref name="onMore"/> sees every answer but the last (progress, pages); returns
    /// the last. A CommandRejected answer becomes a ShellException.
    /// </summary>
    public async Task<IMessage> Call(IMessage command, Action<IMessage>? onMore, CancellationToken cancel)
    {
        Broken = true;
        try
        {
            await OpsWire.Write(_stream, command, more: false, cancel, signWith: _certificate); // an operator-only command goes signed
            while (true)
            {
                var frame = await OpsWire.Read(_stream, cancel)
                            ?? throw new ShellException($"the node at {Node} closed the connection: see its log (DATA/node.log); a node of an " +
                                                        "older build than this abk's closes on a command it does not know (abk cluster show's VERSION)");
                _answered = true;
                if (!frame.More) Broken = false;
                if (frame.Message is CommandRejected r)
                {
                    if (r.Closes) Broken = true; // the node refused the connection itself: the next command opens another
                    throw new ShellException(r.Reason) { Refused = true };
                }
                if (!frame.More) return frame.Message;
                onMore?.Invoke(frame.Message);
            }
        }
        catch (InvalidDataException e) when (e.Message.StartsWith("unknown message type", StringComparison.Ordinal))
        {
            // Bytes of the node's that this abk does not read: a newer build's answer, not a refusal of its certificate.
            throw new ShellException($"the node at {Node} answered with what this abk does not read ({e.Message}): the node may run a newer build " +
                                     "than this abk; use the abk built with it (abk cluster show's VERSION)");
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidDataException or AuthenticationException)
        {
            // Under TLS 1.3 a node that refuses this shell's certificate says so on the first read, not in the handshake.
            if (!_answered) throw new ShellException($"the node at {Node} refused this shell ({e.Message}): {NotTrusted}");
            throw new ShellException($"lost the connection to {Node}: {e.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
