using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>One answer to an OpsCall: a protocol message, and whether more follow.</summary>
public sealed record OpsAnswer(IMessage Message, bool More);
