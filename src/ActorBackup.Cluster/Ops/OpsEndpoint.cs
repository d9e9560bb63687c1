using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol.Trust;
using System.Threading.Channels;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;
using Google.Protobuf;
using Akka.Actor;
using Akka.Event;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// The operator endpoint of a node: a TCP listener beside Akka.Remote that `abk` reaches in one connect, no
/// ActorSystem of its own (see docs/architecture.md). Each connection is mutual TLS: the shell presents a
/// certificate of the cell's CA, whose role (operator, integrator, client host) goes with each of its calls to
/// the OpsActor as an OpsCall (OpsPermissions decides); answers are written back as they come. A peer without a
/// certificate of the cell is refused in the handshake, before any frame is read.
/// Bounded: frames (OpsWire.MaxFrame), connections at once, and the time a connection may take to authenticate.
/// </summary>
public sealed class OpsEndpoint : IDisposable
{
    public const int MaxConnections = OpsSlots.Total;
    /// <summary>How long one answer may take to write: a shell that stops reading (suspended, say) gives its slot back.</summary>
    internal TimeSpan WriteTimeout { get; init; } = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);
    private readonly TcpListener _listener;
    private IActorRef _ops = ActorRefs.Nobody;
    private readonly SslServerAuthenticationOptions _tls;
    private readonly ILoggingAdapter _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly OpsSlots _slots = new();
    /// <summary>Connections still authenticating: bounded apart from the slots (and per address), so silent ones cannot take them all.</summary>
    private readonly DataPlane.Handshakes _handshakes = new();

    /// <summary>How long an authenticated connection may wait for its next command before it is closed (the shell opens a new one).</summary>
    internal TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(15);

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Binds the listener (so that a port in use fails the node's start); <see cref="Start"/> serves.</summary>
    public OpsEndpoint(string host, int port, NodeTrust trust, ILoggingAdapter log)
    {
        // Any certificate of the cell gets through the handshake; what its role may ask is OpsPermissions', which
        // says so in words (a node certificate in a shell, say) instead of a bare handshake failure.
        _tls = trust.ServerOptions(_ => true);
        _log = log;
        var address = Hosting.HostAddress.Of(host);
        _listener = new TcpListener(address, port);
        _listener.Start();
    }

    /// <summary>Accepts connections from now on and hands their commands to <paramref name="ops"/>.</summary>
    public void Start(IActorRef ops)
    {
        _ops = ops;
        _ = Task.Run(Accept);
    }

    private async Task Accept()
    {
        var failures = new DataPlane.AcceptFailures($"operator endpoint {Endpoint}", m => _log.Warning(m));
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or IOException or OutOfMemoryException)
            {
                // Out of file handles, say: the endpoint goes on listening (it returned for good, and abk timed out).
                try
                {
                    await Task.Delay(failures.Failed(e), _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            failures.Accepted();
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using var _ = client;
        client.NoDelay = true;
        var address = (client.Client.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        // Too many at once from this address: the shell sees the connection close and says so.
        if (_handshakes.Enter(address, client.Dispose) is not { } handshake) return;
        var handshaking = true;
        CellIdentity? slot = null;
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        await using var stream = new SslStream(client.GetStream(), leaveInnerStreamOpen: false);
        try
        {
            CellIdentity caller;
            ByteString callerCertificate;
            using (var hello = CancellationTokenSource.CreateLinkedTokenSource(gone.Token))
            {
                hello.CancelAfter(HelloTimeout);
                try
                {
                    await stream.AuthenticateAsServerAsync(_tls, hello.Token);
                }
                catch (AuthenticationException e)
                {
                    _log.Warning("operator connection from {0} refused in the TLS handshake: {1}", address, e.Message);
                    return;
                }
                if (stream.RemoteCertificate is not X509Certificate2 presented || CellIdentity.From(presented) is not { } identity) return;
                caller = identity;
                callerCertificate = ByteString.CopyFrom(presented.RawData);
            }
            // Authenticated: one of the connections' slots from here on (a refused one stays counted as a handshake
            // until it closes: a loop of refused connections holds no more sockets than handshakes may).
            if (_slots.Take(caller) is { } busy)
            {
                // Said to the shell as the answer to its first command (it reads one before anything else), and logged.
                _log.Warning("operator connection from {0} ({1}) refused: {2}", address, caller, busy);
                using var said = CancellationTokenSource.CreateLinkedTokenSource(gone.Token);
                said.CancelAfter(HelloTimeout);
                await OpsWire.Write(stream, new CommandRejected { Reason = busy, Closes = true }, false, said.Token);
                await OpsWire.Read(stream, said.Token); // its command, so that closing does not reset the connection before it reads the answer
                return;
            }
            slot = caller;
            if (!_handshakes.Leave(handshake)) return; // aborted to make room for a newer handshake: its connection is being closed
            handshaking = false;
            while (await NextCommand(stream, gone.Token) is var (command, _, proof))
            {
                if (proof is not null) proof.Signer = callerCertificate; // signed by the key of the connection's certificate, or it does not check
                var answers = Channel.CreateUnbounded<OpsAnswer>(new UnboundedChannelOptions { SingleReader = true });
                using var call = CancellationTokenSource.CreateLinkedTokenSource(gone.Token);
                _ops.Tell(new OpsCall(command, answers.Writer, call.Token, caller, proof));
                var watch = WatchForHangUp(client.Client, call);
                try
                {
                    var answered = false;
                    await foreach (var answer in answers.Reader.ReadAllAsync(call.Token))
                    {
                        using (var write = CancellationTokenSource.CreateLinkedTokenSource(call.Token))
                        {
                            write.CancelAfter(WriteTimeout);
                            await OpsWire.Write(stream, answer.Message, answer.More, write.Token);
                        }
                        answer.Written?.Invoke();
                        if (answered = !answer.More) break;
                    }
                    // A command that stopped without its last answer (a fault in its handler): the shell hears so, it does not wait.
                    if (!answered)
                        await OpsWire.Write(stream, new CommandRejected { Reason = "the node ended this command without answering it: see the node's log, and try again" }, false, call.Token);
                }
                finally
                {
                    // However the call ends (a write that failed or timed out, a shell gone): its command's handler stops,
                    // and a client node listing for it hears so. (Disposed unCancelled, the call would never say so.)
                    await call.CancelAsync();
                }
                await watch;
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            if (e is InvalidDataException) _log.Warning("operator connection from {0} refused: {1}", address, e.Message);
            // A command this build does not know (an abk newer than the node): the shell hears which, and this node's build,
            // rather than a connection closed on it. The frame was read whole: the answer is the next thing on the stream.
            if (e is InvalidDataException && e.Message.StartsWith("unknown message type", StringComparison.Ordinal) && !handshaking)
                try
                {
                    using var say = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await OpsWire.Write(stream, new CommandRejected
                    {
                        Reason = $"this node does not know that command ({e.Message}): it runs build {Hosting.CellHosting.BuildVersion}, an older one " +
                                 "than this abk's? use the abk built with it, or upgrade the node (README, \"Upgrading a cell\")",
                        Closes = true,
                    }, false, say.Token);
                }
                catch (Exception write) when (write is IOException or InvalidDataException or OperationCanceledException or SocketException or ObjectDisposedException) { }
        }
        finally
        {
            await gone.CancelAsync();
            if (handshaking) _handshakes.Leave(handshake);
            if (slot is not null) _slots.Release(slot);
        }
    }

    /// <summary>The connection's next command, or none once it has waited <see cref="IdleTimeout"/> (the connection then closes).</summary>
    private async Task<(IMessage Command, bool More, CallerSigned? Proof)?> NextCommand(Stream stream, CancellationToken gone)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(gone);
        idle.CancelAfter(IdleTimeout);
        return await OpsWire.Read(stream, idle.Token);
    }

    /// <summary>
    /// Cancels the call when the shell hangs up while it runs (Ctrl-C on `abk job watch`), so that its handler
    /// stops. Looks without reading: the shell may already have sent its next call.
    /// </summary>
    private static async Task WatchForHangUp(Socket socket, CancellationTokenSource call)
    {
        try
        {
            while (!call.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), call.Token);
                if (socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0)
                {
                    await call.CancelAsync();
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
