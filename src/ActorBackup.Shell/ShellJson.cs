using System.Text.Json.Serialization;

namespace ActorBackup.Shell;

/// <summary>The shapes abk writes with System.Text.Json, generated at build time (abk is compiled ahead of time: no reflection).</summary>
[JsonSerializable(typeof(Dictionary<string, Dictionary<string, int>>))]
internal sealed partial class ShellJson : JsonSerializerContext;
