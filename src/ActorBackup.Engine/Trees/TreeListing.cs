namespace ActorBackup.Engine.Trees;

/// <summary>
/// A snapshot's entries below a path, in tree order, like `ls -lR` of the whole subtree. Paths, the one asked for
/// included, are as people see them (Posix/PosixNames.Display: a byte that is not UTF-8 or a control character as
/// \xHH, a backslash as \\).
/// </summary>
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
            var path = dir + "/" + Posix.PosixNames.Display(node.FileName());
            var inside = prefix == "" || path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
            var above = prefix.StartsWith(path + "/", StringComparison.Ordinal);
            if (!inside && !above) continue;
            if (inside) yield return (path, node);
            if (node.Type == NodeType.Directory && node.Subtree.Length > 0)
                foreach (var e in Walk(trees, trees.Load(node.Subtree), path, prefix)) yield return e;
        }
    }
}
