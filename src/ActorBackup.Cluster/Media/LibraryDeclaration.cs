namespace ActorBackup.Cluster.Media;

/// <summary>A library this node can reach, as its HOCON declares it.</summary>
/// <param name="Streams">how many jobs may read or write the library at once; the manager's queue keeps to it</param>
public sealed record LibraryDeclaration(string Id, string Path, long VolumeCapacity, int Streams = LibraryDeclaration.DefaultStreams)
{
    public const int DefaultStreams = 4;
}
