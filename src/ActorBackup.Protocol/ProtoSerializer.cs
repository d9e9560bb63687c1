using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ActorBackup.Protocol;

/// <summary>
/// Serializes every protobuf message of the protocol (public messages, persisted events and snapshots) with
/// its message name as the manifest: short, stable, and add-only like the schema. Bound in HOCON to
/// Google.Protobuf.IMessage.
/// </summary>
public sealed class ProtoSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 571;
    private static readonly Dictionary<string, MessageParser> Parsers = [];
    private static readonly Dictionary<Type, string> Manifests = [];

    static ProtoSerializer()
    {
        foreach (var file in new[] { ProtocolReflection.Descriptor })
            foreach (var message in file.MessageTypes) Register(message);
    }

    private static void Register(MessageDescriptor d)
    {
        Parsers[d.Name] = d.Parser;
        Manifests[d.ClrType] = d.Name;
    }

    /// <summary>Every type this serializer handles, for the round-trip tests.</summary>
    public static IReadOnlyCollection<Type> Types => Manifests.Keys;

    public override int Identifier => SerializerId;

    public override byte[] ToBinary(object obj) =>
        obj is IMessage m && Manifests.ContainsKey(obj.GetType()) ? m.ToByteArray()
            : throw new ArgumentException($"{obj.GetType()} is not a protocol message");

    public override object FromBinary(byte[] bytes, string manifest) =>
        Parsers.TryGetValue(manifest, out var parser) ? parser.ParseFrom(bytes)
            : throw new SerializationException($"unknown protocol manifest '{manifest}': a newer node wrote it?");

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var m) ? m : throw new ArgumentException($"{o.GetType()} is not a protocol message");
}
