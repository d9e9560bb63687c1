using System.Text.Json.Serialization;
using ActorBackup.Engine.Chunking;

namespace ActorBackup.Engine.Repository;

public sealed class RepositoryConfig
{
    [JsonPropertyName("chunk_min")] public int ChunkMin { get; set; } = ChunkerOptions.Default.MinSize;
    [JsonPropertyName("chunk_avg")] public int ChunkAvg { get; set; } = ChunkerOptions.Default.AverageSize;
    [JsonPropertyName("chunk_max")] public int ChunkMax { get; set; } = ChunkerOptions.Default.MaxSize;
    [JsonPropertyName("compression_level")] public int CompressionLevel { get; set; } = 3;
    [JsonPropertyName("library")] public string Library { get; set; } = "lib1";
    [JsonPropertyName("volume_capacity")] public long VolumeCapacity { get; set; } = 4L * 1024 * 1024 * 1024;

    [JsonIgnore] public ChunkerOptions Chunker => new(ChunkMin, ChunkAvg, ChunkMax);
}
