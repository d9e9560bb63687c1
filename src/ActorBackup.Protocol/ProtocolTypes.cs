using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace ActorBackup.Protocol;

/// <summary>
/// Every message of the protocol by its name, the one registry that the serializer and the operator endpoint
/// read. Only these types are ever parsed from bytes: nothing polymorphic comes off the wire. No Akka here,
/// so that the shell loads none.
/// </summary>
public static class ProtocolTypes
{
    private static readonly Dictionary<string, MessageParser> Parsers = [];
    private static readonly Dictionary<Type, string> Names = [];

    static ProtocolTypes()
    {
        foreach (var file in new[] { ProtocolReflection.Descriptor, OpsReflection.Descriptor })
            foreach (var message in file.MessageTypes) Register(message);
    }

    private static void Register(MessageDescriptor d)
    {
        Parsers[d.Name] = d.Parser;
        Names[d.ClrType] = d.Name;
    }

    public static IReadOnlyCollection<Type> Types => Names.Keys;

    /// <summary>The message's name, or null when it is not a protocol message.</summary>
    public static string? NameOf(Type type) => Names.GetValueOrDefault(type);

    /// <summary>Parses the bytes of the message called <paramref name="name"/>; null when there is no such message.</summary>
    public static IMessage? Parse(string name, ReadOnlySpan<byte> bytes) => Parsers.TryGetValue(name, out var p) ? p.ParseFrom(bytes) : null;
}
