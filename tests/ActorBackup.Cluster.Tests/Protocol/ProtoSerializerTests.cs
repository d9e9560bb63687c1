using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ActorBackup.Cluster.Tests;

public class ProtoSerializerTests() : TestKit(Akka.Configuration.ConfigurationFactory.ParseString("""
    akka.actor.serializers.actorbackup-proto = "ActorBackup.Protocol.ProtoSerializer, ActorBackup.Protocol"
    akka.actor.serialization-bindings { "Google.Protobuf.IMessage, Google.Protobuf" = actorbackup-proto }
    """))
{
    /// <summary>Every field set to a non-default value, nested messages, maps and repeated fields included.</summary>
    private static IMessage Populated(MessageDescriptor d, int depth = 0)
    {
        var m = (IMessage)Activator.CreateInstance(d.ClrType)!;
        foreach (var f in d.Fields.InFieldNumberOrder())
        {
            if (f.IsMap)
            {
                var entry = f.MessageType;
                ((System.Collections.IDictionary)f.Accessor.GetValue(m))[Value(entry.FindFieldByNumber(1), depth)!] = Value(entry.FindFieldByNumber(2), depth);
                continue;
            }
            var value = Value(f, depth);
            if (value is null) continue;
            if (f.IsRepeated) ((System.Collections.IList)f.Accessor.GetValue(m)).Add(value);
            else f.Accessor.SetValue(m, value);
        }
        return m;
    }

    private static object? Value(FieldDescriptor f, int depth) => f.FieldType switch
    {
        FieldType.String => "value-" + f.Name,
        FieldType.Bytes => ByteString.CopyFromUtf8("bytes-" + f.Name),
        FieldType.Bool => true,
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => 7 + f.FieldNumber,
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => 1L << 40,
        FieldType.UInt32 or FieldType.Fixed32 => 9u,
        FieldType.UInt64 or FieldType.Fixed64 => ulong.MaxValue,
        FieldType.Double => 1.5,
        FieldType.Float => 2.5f,
        FieldType.Enum => f.EnumType.Values.Count > 1 ? f.EnumType.Values[1].Number : 0,
        FieldType.Message when depth < 2 => Populated(f.MessageType, depth + 1),
        _ => null,
    };

    [Fact]
    public void Every_protocol_message_event_and_snapshot_round_trips_with_a_short_stable_manifest()
    {
        Assert.True(ProtoSerializer.Types.Count >= 50, $"only {ProtoSerializer.Types.Count} types registered");
        foreach (var type in ProtoSerializer.Types)
        {
            var descriptor = (MessageDescriptor)type.GetProperty("Descriptor")!.GetValue(null)!;
            foreach (var message in new[] { (IMessage)Activator.CreateInstance(type)!, Populated(descriptor) })
            {
                var serializer = Sys.Serialization.FindSerializerFor(message);
                Assert.IsType<ProtoSerializer>(serializer);
                var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
                Assert.Equal(descriptor.Name, manifest);
                Assert.True(manifest.Length <= 24, $"manifest {manifest} is long");
                var bytes = serializer.ToBinary(message);
                var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
                Assert.Equal(message, back);
            }
        }
    }

    [Fact]
    public void An_unknown_manifest_is_refused_with_a_reason()
    {
        var serializer = new ProtoSerializer((ExtendedActorSystem)Sys);
        var e = Assert.ThrowsAny<Exception>(() => serializer.FromBinary([], "NoSuchMessage"));
        Assert.Contains("NoSuchMessage", e.Message);
    }
}
