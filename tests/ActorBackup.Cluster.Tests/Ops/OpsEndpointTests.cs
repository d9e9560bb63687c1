using System.Buffers.Binary;
using System.Net.Sockets;
using ActorBackup.Cluster.Ops;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;
using Akka.Actor;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests.Ops;

/// <summary>The operator endpoint on a real socket: the token first, bounded frames, only protocol messages.</summary>
public sealed class OpsEndpointTests : TestKit, IDisposable
{
    private const string Token = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    private readonly OpsEndpoint _endpoint;

    /// <summary>Answers every ListJobs with one job, as a node's OpsActor would.</summary>
    private sealed class StandInOps : ReceiveActor
    {
        public StandInOps() => Receive<OpsCall>(c =>
        {
            c.Reply.TryWrite(new OpsAnswer(new JobProgress { Job = "1" }, More: true));
            c.Reply.TryWrite(new OpsAnswer(new JobList { Jobs = { new JobInfo { Id = "1" } } }, More: false));
        });
    }

    public OpsEndpointTests() : base("akka.loglevel = WARNING")
    {
        _endpoint = new OpsEndpoint("127.0.0.1", 0, System.Text.Encoding.ASCII.GetBytes(Token), Sys.Log);
        _endpoint.Start(Sys.ActorOf(Props.Create(() => new StandInOps())));
    }

    void IDisposable.Dispose() => _endpoint.Dispose();

    private async Task<NetworkStream> Connect()
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(_endpoint.Endpoint);
        return tcp.GetStream();
    }

    [Fact]
    public async Task An_operator_with_the_token_gets_every_answer_of_a_call_over_one_connection()
    {
        await using var stream = await Connect();
        await OpsWire.Write(stream, new OpsHello { Token = Token }, more: false);
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
    }

    [Fact]
    public async Task A_wrong_token_is_refused_and_the_connection_closed()
    {
        await using var stream = await Connect();
        await OpsWire.Write(stream, new OpsHello { Token = Token.Replace('0', '1') }, more: false);
        await OpsWire.Write(stream, new ListJobs(), more: false);
        var answer = await OpsWire.Read(stream);
        Assert.Contains("not authorized", Assert.IsType<CommandRejected>(answer!.Value.Message).Reason);
        Assert.Null(await OpsWire.Read(stream));
    }

    [Fact]
    public async Task A_command_before_the_hello_is_refused()
    {
        await using var stream = await Connect();
        await OpsWire.Write(stream, new ListJobs(), more: false);
        var answer = await OpsWire.Read(stream);
        Assert.Contains("not authorized", Assert.IsType<CommandRejected>(answer!.Value.Message).Reason);
    }

    [Fact]
    public async Task A_frame_that_claims_a_gigabyte_ends_the_connection_before_anything_is_allocated_and_others_go_on()
    {
        await using (var stream = await Connect())
        {
            var header = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(header, 1u << 30);
            await stream.WriteAsync(header);
            Assert.Equal(0, await stream.ReadAsync(new byte[16]));
        }
        await using (var stream = await Connect())
        {
            await OpsWire.Write(stream, new OpsHello { Token = Token }, more: false);
            // a frame naming a type that is no protocol message
            var frame = new OpsFrame { Type = "System.Diagnostics.Process", Body = Google.Protobuf.ByteString.CopyFromUtf8("x") };
            var bytes = new byte[4 + frame.CalculateSize()];
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)frame.CalculateSize());
            Google.Protobuf.MessageExtensions.WriteTo(frame, bytes.AsSpan(4));
            await stream.WriteAsync(bytes);
            Assert.Equal(0, await stream.ReadAsync(new byte[16]));
        }
        await An_operator_with_the_token_gets_every_answer_of_a_call_over_one_connection();
    }
}
