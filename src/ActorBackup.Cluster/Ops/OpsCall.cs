using System.Threading.Channels;
using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// One operator command that arrived on the ops endpoint, for the OpsActor of this node. Answers go into
/// <paramref name="Reply"/>; the last one has More = false. <paramref name="Cancel"/> fires when the shell
/// went away, and the command's handler stops.
/// </summary>
public sealed record OpsCall(IMessage Command, ChannelWriter<OpsAnswer> Reply, CancellationToken Cancel);
