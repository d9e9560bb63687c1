using Google.Protobuf;

namespace ActorBackup.Shell;

/// <summary>
/// What one `abk` process keeps between commands: the node it talks to, the operator credential's folder,
/// and one connection, opened on the first command that needs the cell and reused by the prompt.
/// </summary>
public sealed class Session : IAsyncDisposable
{
    private OpsConnection? _connection;
    /// <summary>$ABK_NODE, else the embedded cell's node; --node overrides it.</summary>
    public string Node { get; private set; } = Environment.GetEnvironmentVariable("ABK_NODE") is { Length: > 0 } n ? n : "127.0.0.1:" + OpsConnection.DefaultPort;
    /// <summary>$ABK_CERTS, else ./data/certs (the quickstart's); --certs overrides it.</summary>
    public string CertsDir { get; private set; } = Environment.GetEnvironmentVariable("ABK_CERTS") is { Length: > 0 } c ? c : Path.Combine("data", "certs");

    /// <summary>What a command line that names no node or credential talks to: the prompt's own (as `abk --node N` opened it).</summary>
    private (string Node, string Certs)? _home;

    /// <summary>Points the session at the node or credential a command line names; one that names none, at the prompt's
    /// own (a line's --node is that line's, not the rest of the prompt's).</summary>
    public async Task Target(string? node, string? certs)
    {
        node ??= _home?.Node ?? Node;
        certs ??= _home?.Certs ?? CertsDir;
        if (node == Node && certs == CertsDir) return;
        Node = node;
        CertsDir = certs;
        await Disconnect();
    }

    /// <summary>The prompt starts: where it talks now is where its lines without --node or --certs go.</summary>
    public void KeepAsHome() => _home = (Node, CertsDir);

    /// <summary>
    /// A connection left unused this long is not used again: the node closes one idle for 15 minutes
    /// (OpsEndpoint.IdleTimeout), and a command sent on it as it closes would be lost.
    /// </summary>
    private static readonly TimeSpan Reconnect = TimeSpan.FromMinutes(10);
    private DateTime _lastUsed;

    public async Task<IMessage> Call(IMessage command, CancellationToken cancel, Action<IMessage>? onMore = null)
    {
        if (_connection is not null && DateTime.UtcNow - _lastUsed > Reconnect) await Disconnect();
        _connection ??= await OpsConnection.Open(Node, CertsDir, cancel);
        try
        {
            return await _connection.Call(command, onMore, cancel);
        }
        finally
        {
            _lastUsed = DateTime.UtcNow;
            if (_connection.Broken) await Disconnect(); // a broken or abandoned connection is not used again
        }
    }

    public async Task<T> Call<T>(IMessage command, CancellationToken cancel, Action<IMessage>? onMore = null) where T : class, IMessage =>
        await Call(command, cancel, onMore) as T ?? throw new ShellException($"the node answered something other than {typeof(T).Name}: is abk older than the node?");

    private async Task Disconnect()
    {
        if (_connection is not null) await _connection.DisposeAsync();
        _connection = null;
    }

    public ValueTask DisposeAsync() => new(Disconnect());
}
