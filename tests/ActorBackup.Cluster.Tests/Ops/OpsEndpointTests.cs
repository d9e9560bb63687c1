using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol.Trust;
using ActorBackup.Cluster.Ops;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;
using Akka.Actor;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests.Ops;

/// <summary>The operator endpoint on a real socket: mutual TLS with the cell's certificates, bounded frames, only protocol messages.</summary>
public sealed class OpsEndpointTests : TestKit, IDisposable
{
    private readonly TestTrust _cell = new();
    private readonly NodeTrust _node;
    private readonly OpsEndpoint _endpoint;
    private readonly ConcurrentQueue<OpsCall> _calls = new();

    /// <summary>Answers every ListJobs with one job, as a node's OpsActor would, and keeps the calls.</summary>
    private sealed class StandInOps : ReceiveActor
    {
        public StandInOps(ConcurrentQueue<OpsCall> calls) => Receive<OpsCall>(c =>
        {
            calls.Enqueue(c);
            if (c.Command is GetJob { Job: "fails" })
            {
                c.Reply.TryComplete(); // a handler that stopped on a fault: no last answer
                return;
            }
            if (c.Command is GetJob { Job: "flood" })
            {
                // A streamed command (an ls): more answers than the sockets' buffers hold, and more to come.
                for (var i = 0; i < 400; i++) c.Reply.TryWrite(new OpsAnswer(new JobInfo { Id = "1", Reason = new string('x', 64 * 1024) }, More: true));
                return;
            }
            c.Reply.TryWrite(new OpsAnswer(new JobProgress { Job = "1" }, More: true));
            c.Reply.TryWrite(new OpsAnswer(new JobList { Jobs = { new JobInfo { Id = "1" } } }, More: false));
        });
    }

    public OpsEndpointTests() : base("akka.loglevel = WARNING")
    {
        _node = _cell.Node();
        _endpoint = new OpsEndpoint("127.0.0.1", 0, _node, Sys.Log);
        _endpoint.Start(Sys.ActorOf(Props.Create(() => new StandInOps(_calls))));
    }

    void IDisposable.Dispose()
    {
        _endpoint.Dispose();
        _node.Dispose();
        _cell.Dispose();
    }

    private async Task<NetworkStream> Connect()
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(_endpoint.Endpoint);
        return tcp.GetStream();
    }

    /// <summary>A TLS connection presenting <paramref name="certificate"/>, trusting the node's CA <paramref name="ca"/>.</summary>
    private async Task<SslStream> ConnectTls(X509Certificate2 certificate, X509Certificate2? ca = null)
    {
        var tls = new SslStream(await Connect());
        await tls.AuthenticateAsClientAsync(CellCertificates.ClientOptions(certificate, ca ?? _cell.Ca));
        return tls;
    }

    private X509Certificate2 Operator() => _cell.Issue(CellIdentity.Of(CellRole.Operator, "alice")).Certificate;

    [Fact]
    public async Task A_command_whose_handler_stopped_without_its_answer_is_answered_so_and_the_connection_goes_on()
    {
        await using var stream = await ConnectTls(Operator());
        await OpsWire.Write(stream, new GetJob { Job = "fails" }, more: false);
        var answer = await OpsWire.Read(stream).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(answer!.Value.More);
        Assert.Contains("without answering it", Assert.IsType<CommandRejected>(answer.Value.Message).Reason);
        await OpsWire.Write(stream, new ListJobs(), more: false);
        Assert.IsType<JobProgress>((await OpsWire.Read(stream))!.Value.Message);
    }

    [Fact]
    public async Task A_shell_that_stops_reading_ends_its_call_once_a_write_times_out_so_that_the_command_stops_too()
    {
        using var endpoint = new OpsEndpoint("127.0.0.1", 0, _node, Sys.Log) { WriteTimeout = TimeSpan.FromSeconds(1) };
        var calls = new ConcurrentQueue<OpsCall>();
        endpoint.Start(Sys.ActorOf(Props.Create(() => new StandInOps(calls))));
        var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint.Endpoint);
        await using var stream = new SslStream(tcp.GetStream());
        await stream.AuthenticateAsClientAsync(CellCertificates.ClientOptions(Operator(), _cell.Ca));
        await OpsWire.Write(stream, new GetJob { Job = "flood" }, more: false);
        // Nothing read: the node's write of an answer times out, and the call's token says the command is to stop
        // (its handler stops, and a client node listing for it is told so).
        AwaitCondition(() => calls.TryPeek(out var call) && call.Cancel.IsCancellationRequested, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task An_operator_gets_every_answer_of_a_call_over_one_connection_and_its_role_goes_with_it()
    {
        await using var stream = await ConnectTls(Operator());
        for (var call = 0; call < 2; call++)
        {
            await OpsWire.Write(stream, new ListJobs(), more: false);
            var first = await OpsWire.Read(stream);
            Assert.True(first!.Value.More);
            Assert.IsType<JobProgress>(first.Value.Message);
            var last = await OpsWire.Read(stream);
            Assert.False(last!.Value.More);
            Assert.Equal("1", Assert.IsType<JobList>(last.Value.Message).Jobs[0].Id);
        }
        Assert.All(_calls, c => Assert.Equal(CellRole.Operator, c.Caller.Role));
        Assert.All(_calls, c => Assert.Equal("alice", c.Caller.Name));
    }

    [Fact]
    public async Task A_shell_without_a_certificate_or_with_another_cells_is_refused_in_the_handshake_and_nothing_reaches_the_cell()
    {
        // No TLS at all: the operator wire in plain text.
        await using (var plain = await Connect())
        {
            await OpsWire.Write(plain, new ListJobs(), more: false);
            try
            {
                Assert.Null(await OpsWire.Read(plain));
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
            }
        }
        // TLS without a client certificate.
        var bare = new SslStream(await Connect());
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await bare.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "actorbackup", RemoteCertificateValidationCallback = (_, _, _, _) => true,
            });
            await OpsWire.Write(bare, new ListJobs(), more: false);
            Assert.Null(await OpsWire.Read(bare));
            throw new IOException("closed");
        });
        // An operator certificate of another CA.
        using var other = new TestTrust("elsewhere");
        var stranger = other.Issue(CellIdentity.Of(CellRole.Operator, "mallory")).Certificate;
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            var tls = new SslStream(await Connect());
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "actorbackup", ClientCertificates = [stranger], RemoteCertificateValidationCallback = (_, _, _, _) => true,
            });
            await OpsWire.Write(tls, new ListJobs(), more: false);
            Assert.Null(await OpsWire.Read(tls));
            throw new IOException("closed");
        });
        Assert.Empty(_calls);
    }

    [Fact]
    public async Task A_frame_that_claims_a_gigabyte_ends_the_connection_before_anything_is_allocated_and_others_go_on()
    {
        await using (var stream = await ConnectTls(Operator()))
        {
            var header = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(header, 1u << 30);
            await stream.WriteAsync(header);
            Assert.Equal(0, await stream.ReadAsync(new byte[16]));
        }
        await using (var stream = await ConnectTls(Operator()))
        {
            // a frame naming a type that is no protocol message
            var frame = new OpsFrame { Type = "System.Diagnostics.Process", Body = Google.Protobuf.ByteString.CopyFromUtf8("x") };
            var bytes = new byte[4 + frame.CalculateSize()];
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)frame.CalculateSize());
            Google.Protobuf.MessageExtensions.WriteTo(frame, bytes.AsSpan(4));
            await stream.WriteAsync(bytes);
            // Answered with what it is (a command of a newer abk, as this build sees it), then closed: nothing reached the cell.
            var answer = await OpsWire.Read(stream);
            var rejected = Assert.IsType<CommandRejected>(answer?.Message);
            Assert.True(rejected.Closes);
            Assert.Contains("does not know that command (unknown message type 'System.Diagnostics.Process'", rejected.Reason);
            Assert.Contains("runs build", rejected.Reason);
            Assert.Null(await OpsWire.Read(stream));
        }
        Assert.Empty(_calls);
        await An_operator_gets_every_answer_of_a_call_over_one_connection_and_its_role_goes_with_it();
    }

    [Fact]
    public async Task Connections_that_never_authenticate_do_not_take_the_slots_and_an_idle_one_is_closed()
    {
        using var endpoint = new OpsEndpoint("127.0.0.1", 0, _node, Sys.Log) { IdleTimeout = TimeSpan.FromSeconds(1) };
        endpoint.Start(Sys.ActorOf(Props.Create(() => new StandInOps(_calls))));
        // As many silent connections as one address may have authenticating at once: the next from it is closed.
        var silent = new List<TcpClient>();
        try
        {
            // An operator's own connection from that address is closed before its TLS handshake (once the server has
            // taken the silent ones: it accepts one at a time, in order). Each try opens its silent ones anew: on a
            // loaded machine those of a try before may have reached their hello timeout and been closed.
            await Eventually.Until(async () =>
            {
                silent.ForEach(t => t.Dispose());
                silent.Clear();
                for (var i = 0; i < DataPlane.Handshakes.MaxPerAddress; i++)
                {
                    var tcp = new TcpClient();
                    await tcp.ConnectAsync(endpoint.Endpoint);
                    silent.Add(tcp);
                }
                try
                {
                    await using var tls = new SslStream(await ConnectTo(endpoint));
                    await tls.AuthenticateAsClientAsync(CellCertificates.ClientOptions(Operator(), _cell.Ca));
                    return "authenticated";
                }
                catch (IOException)
                {
                    return "closed";
                }
            }, r => r == "closed", "a connection beyond the address's handshakes closed before its handshake", TimeSpan.FromSeconds(30));
        }
        finally
        {
            silent.ForEach(t => t.Dispose());
        }
        // An operator's connection that sends nothing after its handshake is closed once idle (the shell reconnects).
        await Eventually.Until(async () =>
        {
            try
            {
                await using var tls = new SslStream(await ConnectTo(endpoint));
                await tls.AuthenticateAsClientAsync(CellCertificates.ClientOptions(Operator(), _cell.Ca));
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                return await tls.ReadAsync(new byte[16], wait.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                return -1; // refused while the silent ones were still being let go, or not closed
            }
        }, read => read == 0, "an idle operator connection closed", TimeSpan.FromSeconds(60));
    }

    private static async Task<NetworkStream> ConnectTo(OpsEndpoint endpoint)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint.Endpoint);
        return tcp.GetStream();
    }

    [Fact]
    public async Task One_client_hosts_certificate_holds_at_most_its_share_of_connections_and_an_operator_still_gets_in()
    {
        var host = _cell.Issue(CellIdentity.Of(CellRole.Client, "web1", "web1")).Certificate;
        var held = new List<SslStream>();
        try
        {
            for (var i = 0; i < OpsSlots.PerCaller; i++)
            {
                var s = await ConnectTls(host);
                await OpsWire.Write(s, new ListJobs(), more: false); // served: it holds a slot from here on
                Assert.IsType<JobProgress>((await OpsWire.Read(s))!.Value.Message);
                Assert.IsType<JobList>((await OpsWire.Read(s))!.Value.Message);
                held.Add(s);
            }
            await using var one = await ConnectTls(host);
            await OpsWire.Write(one, new ListJobs(), more: false);
            var refused = await OpsWire.Read(one).WaitAsync(TimeSpan.FromSeconds(20));
            var refusal = Assert.IsType<CommandRejected>(refused!.Value.Message);
            Assert.Contains("connections open to this node already", refusal.Reason);
            Assert.True(refusal.Closes, "the shell would send its next command on a connection the node closed");
            await using var op = await ConnectTls(Operator());
            await OpsWire.Write(op, new ListJobs(), more: false);
            Assert.IsType<JobProgress>((await OpsWire.Read(op))!.Value.Message);
        }
        finally
        {
            foreach (var s in held) await s.DisposeAsync();
        }
    }

    [Fact]
    public void Slots_keep_room_for_operators_and_count_each_certificate_apart()
    {
        var slots = new OpsSlots();
        var others = Enumerable.Range(0, OpsSlots.Total - OpsSlots.ForOperators).Select(i => CellIdentity.Of(CellRole.Client, $"h{i}", $"h{i}")).ToList();
        Assert.All(others, o => Assert.Null(slots.Take(o)));
        Assert.Contains("for operators", slots.Take(CellIdentity.Of(CellRole.Integrator, "app")));
        var alice = CellIdentity.Of(CellRole.Operator, "alice");
        for (var i = 0; i < OpsSlots.ForOperators; i++) Assert.Null(slots.Take(alice)); // an operator is not held to a share
        Assert.Contains($"{OpsSlots.Total} shell connections", slots.Take(alice));
        slots.Release(others[0]);
        Assert.Null(slots.Take(CellIdentity.Of(CellRole.Client, "h0", "h0")));
    }

    [Fact]
    public void A_node_certificate_holds_one_connection_at_most()
    {
        // It may ask nothing here (each command is refused, saying which certificate to use): a client host's node key
        // took a program's 32, and two of them every slot but the operators'.
        var slots = new OpsSlots();
        var node = CellIdentity.Of(CellRole.Node, "web1", "web1", ["client"]);
        Assert.Null(slots.Take(node));
        Assert.Contains("has 1 connection open to this node already", slots.Take(node));
        Assert.Null(slots.Take(CellIdentity.Of(CellRole.Integrator, "app"))); // others unaffected
    }
}
