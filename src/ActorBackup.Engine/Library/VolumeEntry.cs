using System.Text.Json.Serialization;

namespace ActorBackup.Engine.Library;

/// <summary>One row of a library's volume table.</summary>
public sealed class VolumeEntry
{
    [JsonPropertyName("number")] public uint Number { get; set; }
    [JsonPropertyName("label")] public string Label { get; set; } = "";
    [JsonPropertyName("state")] public VolumeState State { get; set; }
    [JsonPropertyName("bytes")] public long Bytes { get; set; }
    [JsonPropertyName("records")] public int Records { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
    /// <summary>Marked Recycle to be taken out of service (a cartridge with read errors): never written again, even if its deletion waits for the next open.</summary>
    [JsonPropertyName("retire")] public bool Retire { get; set; }
}
