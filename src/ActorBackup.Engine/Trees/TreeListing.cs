namespace ActorBackup.Engine.Trees;

/// <summary>Prints a snapshot's entries below a path, one per line, like `ls -l` of the whole subtree.</summary>
public static class TreeListing
{
    public static void Print(TreeReader trees, SnapshotManifest snapshot, string prefix, TextWriter output)
    {
        prefix = prefix is "" or "/" ? "" : "/" + prefix.Trim('/');
        Walk(trees, trees.Load(snapshot.RootTree), "", prefix, output);
    }

    private static void Walk(TreeReader trees, Tree tree, string dir, string prefix, TextWriter output)
    {
        foreach (var node in tree.Nodes)
        {
            var path = dir + "/" + node.Name;
            var inside = prefix == "" || path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
            var above = prefix.StartsWith(path + "/", StringComparison.Ordinal);
            if (!inside && !above) continue;
            if (inside)
            {
                var type = node.Type switch { NodeType.Directory => 'd', NodeType.Symlink => 'l', NodeType.Hardlink => 'h', NodeType.Fifo => 'p', NodeType.CharDevice => 'c', NodeType.BlockDevice => 'b', NodeType.Socket => 's', _ => '-' };
                var time = DateTimeOffset.FromUnixTimeSeconds(node.MtimeSec).LocalDateTime;
                var extra = node.Type switch
                {
                    NodeType.Symlink => " -> " + System.Text.Encoding.UTF8.GetString(node.LinkTarget.Span),
                    NodeType.Hardlink => " => " + node.HardlinkTarget,
                    _ => "",
                };
                output.WriteLine($"{type}{Convert.ToString(node.Mode & 0xFFF, 8).PadLeft(4, '0')} {node.Uid,5} {node.Gid,5} {node.Size,12} {time:yyyy-MM-dd HH:mm:ss} {path}{extra}");
            }
            if (node.Type == NodeType.Directory && node.Subtree.Length > 0) Walk(trees, trees.Load(node.Subtree), path, prefix, output);
        }
    }
}
