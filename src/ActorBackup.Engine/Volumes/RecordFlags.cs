namespace ActorBackup.Engine.Volumes;

[Flags]
public enum RecordFlags : byte
{
    None = 0,
    Compressed = 1,
    Encrypted = 2,
    /// <summary>The chunk is a tree (directory listing), not file data.</summary>
    Tree = 4,
    /// <summary>The chunk is a snapshot's manifest (encrypted like any chunk): the catalog can be rebuilt from the volumes.</summary>
    Manifest = 8,
}
