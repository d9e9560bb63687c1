namespace ActorBackup.Cluster.Media;

/// <summary>A library this node can reach, as its HOCON declares it.</summary>
public sealed record LibraryDeclaration(string Id, string Path, long VolumeCapacity);
