using Google.Protobuf;

namespace ActorBackup.Protocol;

/// <summary>
/// The JSON an operator's --json prints, `abk` and the engine CLI alike: the protobuf JSON form of a message (field
/// names in lowerCamelCase, finishedUnixMs; 64-bit numbers as strings; enums by name), every field (defaults too, so a
/// script finds each key). docs/integrators.md, "abk --json", says so for scripts.
/// </summary>
public static class OperatorJson
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    public static string Format(IMessage message) => Formatter.Format(message);
}
