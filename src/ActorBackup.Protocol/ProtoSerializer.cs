using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Google.Protobuf;

namespace ActorBackup.Protocol;

/// <summary>
/// Serializes every protobuf message of the protocol (public messages, persisted events and snapshots) with
/// its message name as the manifest: short, stable, and add-only like the schema. Bound in HOCON to
/// Google.Protobuf.IMessage.
/// </summary>
public sealed class ProtoSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 571;

    /// <summary>Every type this serializer handles, for the round-trip tests.</summary>
    public static IReadOnlyCollection<Type> Types => ProtocolTypes.Types;

    public override int Identifier => SerializerId;

    public override byte[] ToBinary(object obj) =>
        obj is IMessage m && ProtocolTypes.NameOf(obj.GetType()) is not null ? m.ToByteArray()
            : throw new ArgumentException($"{obj.GetType()} is not a protocol message");

    public override object FromBinary(byte[] bytes, string manifest) =>
        ProtocolTypes.Parse(manifest, bytes) ?? throw new SerializationException($"unknown protocol manifest '{manifest}': a newer node wrote it?");

    public override string Manifest(object o) =>
        ProtocolTypes.NameOf(o.GetType()) ?? throw new ArgumentException($"{o.GetType()} is not a protocol message");
}
