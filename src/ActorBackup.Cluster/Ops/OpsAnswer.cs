using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// One answer to an OpsCall: a protocol message, and whether more follow. <paramref name="Written"/>, when given, is
/// called once the answer is written to the shell's connection (a streamed command paces itself by it).
/// </summary>
public sealed record OpsAnswer(IMessage Message, bool More, Action? Written = null);
