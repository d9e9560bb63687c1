using System.Collections.Concurrent;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

public sealed class DataPlaneSessionsProvider : ExtensionIdProvider<DataPlaneSessions>
{
    public override DataPlaneSessions CreateExtension(ExtendedActorSystem system) => new();
}
