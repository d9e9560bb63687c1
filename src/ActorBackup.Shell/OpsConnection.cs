using System.Net;
using System.Net.Sockets;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;
using Google.Protobuf;

namespace ActorBackup.Shell;

/// <summary>
/// One connection to a node's operator endpoint (TCP, see OpsWire): hello with the operator token, then calls,
/// one at a time. No ActorSystem: a command costs one connect and one round trip.
/// </summary>
public sealed class OpsConnection : IAsyncDisposable
{
    public const int DefaultPort = 5053;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    public string Node { get; }
    /// <summary>The last call ended inside its answers (lost connection, or given up): the connection is not usable.</summary>
    public bool Broken { get; private set; }

    private OpsConnection(string node, TcpClient tcp)
    {
        Node = node;
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<OpsConnection> Open(string node, string certsDir, CancellationToken cancel)
    {
        var tokenFile = Path.Combine(certsDir, OperatorToken.FileName);
        if (!File.Exists(tokenFile))
            throw new ShellException($"no operator token at {tokenFile}: give the cell's certs folder with --certs DIR or $ABK_CERTS " +
                                     "(DATA/certs of the cell's first node; ./data/certs after the quickstart)");
        string token;
        try
        {
            token = System.Text.Encoding.ASCII.GetString(OperatorToken.Read(tokenFile));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new ShellException($"cannot read the operator token {tokenFile}: {e.Message}");
        }
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
        var connection = new OpsConnection($"{host}:{port}", tcp);
        await OpsWire.Write(connection._stream, new OpsHello { Token = token }, more: false, cancel);
        return connection;
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
            await OpsWire.Write(_stream, command, more: false, cancel);
            while (true)
            {
                var frame = await OpsWire.Read(_stream, cancel)
                            ?? throw new ShellException($"the node at {Node} closed the connection: see its log (DATA/node.log)");
                if (!frame.More) Broken = false;
                if (frame.Message is CommandRejected r) throw new ShellException(r.Reason);
                if (!frame.More) return frame.Message;
                onMore?.Invoke(frame.Message);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidDataException)
        {
            throw new ShellException($"lost the connection to {Node}: {e.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
