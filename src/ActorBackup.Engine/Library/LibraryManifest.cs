using System.Text.Json.Serialization;

namespace ActorBackup.Engine.Library;

/// <summary>library.json: the library's id, volume capacity and volume table.</summary>
public sealed class LibraryManifest
{
    [JsonPropertyName("id")] public string Id { get; set; } = "";
    [JsonPropertyName("format")] public int Format { get; set; } = 1;
    [JsonPropertyName("volume_capacity")] public long VolumeCapacity { get; set; }
    [JsonPropertyName("created")] public DateTimeOffset Created { get; set; }
    [JsonPropertyName("volumes")] public List<VolumeEntry> Volumes { get; set; } = [];
}
