using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Trees;
using CsCheck;
using Google.Protobuf;

namespace ActorBackup.Engine.Tests.Archive;

/// <summary>
/// A listing's names matched to the parent tree's entries (Archiver.ParentNames): by a merge when the tree's names
/// ascend, by a dictionary when not; either way each name finds the entry a dictionary of the tree would give.
/// </summary>
public sealed class ParentNamesTests
{
    private static ParentTree TreeOf(IEnumerable<string> names)
    {
        var tree = new Tree();
        foreach (var name in names) tree.Nodes.Add(new Node { Name = name, Type = NodeType.File });
        return ParentTree.Scan(default, tree.ToByteArray());
    }

    [Fact]
    public void Each_name_asked_in_order_finds_the_entry_of_that_name()
    {
        var name = Gen.OneOf(Gen.String[Gen.Char['a', 'd'], 1, 3], Gen.Int[0, 50].Select(i => $"f{i:D3}"));
        // The tree's names: sorted and unique (as a walk stores them), or in any order with repeats (the fallback).
        Gen.Select(name.Array[0, 40], Gen.Bool, name.Array[0, 40]).Sample((treeNames, sorted, asked) =>
        {
            var names = sorted ? treeNames.Distinct().Order(StringComparer.Ordinal).ToArray() : treeNames;
            var tree = TreeOf(names);
            var expected = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < names.Length; i++) expected.TryAdd(names[i], i);
            Assert.Equal(names.Zip(names.Skip(1)).All(p => string.CompareOrdinal(p.First, p.Second) < 0), tree.NamesAscending);
            var lookup = new Archiver.ParentNames(tree);
            foreach (var listed in asked.Distinct().Order(StringComparer.Ordinal)) // a folder's names: unique, sorted
                Assert.Equal(expected.TryGetValue(listed, out var at) ? at : -1, lookup.Find(listed));
        }, iter: 3000);
    }
}
