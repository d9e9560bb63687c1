using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Client;

/// <summary>A snapshot's tree entries as the protocol carries them to the shell (and the engine CLI prints them).</summary>
public static class TreeEntries
{
    public static IEnumerable<TreeEntry> List(TreeReader trees, SnapshotManifest snapshot, string prefix) =>
        TreeListing.Entries(trees, snapshot, prefix).Select(e => new TreeEntry
        {
            Path = e.Path, Type = TypeLetter(e.Node.Type), Mode = e.Node.Mode & 0xFFF, Uid = e.Node.Uid, Gid = e.Node.Gid, Size = e.Node.Size,
            MtimeUnixSec = e.Node.MtimeSec, User = e.Node.User, Group = e.Node.Group,
            Target = e.Node.Type switch
            {
                NodeType.Symlink => Engine.Posix.PosixNames.Display(Engine.Posix.PosixNames.Decode(e.Node.LinkTarget.Span)),
                NodeType.Hardlink => Engine.Posix.PosixNames.Display(e.Node.LinkedPath()),
                _ => "",
            },
        });

    private static string TypeLetter(NodeType t) => t switch
    {
        NodeType.Directory => "d", NodeType.Symlink => "l", NodeType.Hardlink => "h", NodeType.Fifo => "p",
        NodeType.CharDevice => "c", NodeType.BlockDevice => "b", NodeType.Socket => "s", _ => "-",
    };
}
