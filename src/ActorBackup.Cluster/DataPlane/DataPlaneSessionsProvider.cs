using Akka.Actor;

namespace ActorBackup.Cluster.DataPlane;

public sealed class DataPlaneSessionsProvider : ExtensionIdProvider<DataPlaneSessions>
{
    public override DataPlaneSessions CreateExtension(ExtendedActorSystem system) => new(Trust.NodeTrust.Of(system));
}
