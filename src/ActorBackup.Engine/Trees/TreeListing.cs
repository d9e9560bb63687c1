namespace ActorBackup.Engine.Trees;

/// <summary>A snapshot's entries below a path, in tree order, like `ls -lR` of the whole subtree.</summary>
public static class TreeListing
{
    public static IEnumerable<(string Path, Node Node)> Entries(TreeReader trees, SnapshotManifest snapshot, string prefix)
    {
        prefix = prefix is "" or "/" ? "" : "/" + prefix.Trim('/');
        return Walk(trees, trees.Load(snapshot.RootTree), "", prefix);
    }

    private static IEnumerable<(string Path, Node Node)> Walk(TreeReader trees, Tree tree, string dir, string prefix)
    {
        foreach (var node in tree.Nodes)
        {
            var path = dir + "/" + node.Name;
            var inside = prefix == "" || path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
            var above = prefix.StartsWith(path + "/", StringComparison.Ordinal);
            if (!inside && !above) continue;
            if (inside) yield return (path, node);
            if (node.Type == NodeType.Directory && node.Subtree.Length > 0)
                foreach (var e in Walk(trees, trees.Load(node.Subtree), path, prefix)) yield return e;
        }
    }
}
