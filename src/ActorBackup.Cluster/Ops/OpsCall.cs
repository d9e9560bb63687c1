using System.Threading.Channels;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// One operator command that arrived on the ops endpoint, for the OpsActor of this node. Answers go into
/// <paramref name="Reply"/>; the last one has More = false. <paramref name="Cancel"/> fires when the shell
/// went away, and the command's handler stops. <paramref name="Caller"/> is who the certificate of the connection
/// says sent it (OpsPermissions decides what it may ask). <paramref name="Proof"/>: an operator-only command as the
/// shell signed it, which is what goes to the manager (it takes those commands from nobody else).
/// </summary>
public sealed record OpsCall(IMessage Command, ChannelWriter<OpsAnswer> Reply, CancellationToken Cancel, CellIdentity Caller, Protocol.CallerSigned? Proof = null);
