using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;

namespace ActorBackup.Protocol;

/// <summary>
/// Stands where Akka would otherwise run its polymorphic JSON serializer (type names from the wire): bound as
/// <c>akka.actor.serializers.json</c>, so that no Newtonsoft serializer exists in a node and a payload that claims
/// it (serializer id 1) is unknown and dropped. It serializes and deserializes nothing: every message between
/// nodes is protobuf (<see cref="ProtoSerializer"/>) or Akka's own.
/// </summary>
public sealed class RefusingSerializer(ExtendedActorSystem system) : Serializer(system)
{
    /// <summary>What Akka calls when serialization-settings hold a section for the alias (json has one): ignored.</summary>
    public RefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config _) : this(system) { }

    public const int SerializerId = 572;
    public override int Identifier => SerializerId;
    public override bool IncludeManifest => false;

    public override byte[] ToBinary(object obj) =>
        throw new SerializationException($"{obj.GetType().FullName} is not a protocol message: only protobuf messages travel between nodes");

    public override object FromBinary(byte[] bytes, Type type) =>
        throw new SerializationException("refused a payload for a serializer that takes types from the wire");
}
