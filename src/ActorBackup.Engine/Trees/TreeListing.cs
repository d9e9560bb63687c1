using ActorBackup.Engine.Hashing;

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
        // In the one form listings show (an escape's case, as sets and restores take it): caf\xE9 is caf\xe9.
        prefix = prefix is "" or "/" ? "" : "/" + Posix.PosixNames.Display(Posix.PosixNames.Parse(prefix)).Trim('/');
        return Walk(trees, trees.Load(snapshot.RootTree), "", prefix, 0);
    }

    private static IEnumerable<(string Path, Node Node)> Walk(TreeReader trees, Tree tree, string dir, string prefix, int depth)
    {
        if (depth >= NodeExtensions.MaxDepth) throw new InvalidDataException($"{dir}: folders nested deeper than {NodeExtensions.MaxDepth} levels (a damaged tree)");
        foreach (var node in tree.Nodes)
        {
            var path = dir + "/" + Posix.PosixNames.Display(node.FileName());
            var inside = prefix == "" || path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
            var above = prefix.StartsWith(path + "/", StringComparison.Ordinal);
            if (!inside && !above) continue;
            if (inside) yield return (path, node);
            if (node.Type != NodeType.Directory || node.Subtree.IsEmpty) continue;
            if (node.Subtree.Length != ChunkId.Size) throw new InvalidDataException($"{path}: a tree id of {node.Subtree.Length} bytes (a damaged tree)");
            foreach (var e in Walk(trees, trees.Load(node.Subtree), path, prefix, depth + 1)) yield return e;
        }
    }
}
