using ActorBackup.Engine.Archive;
using CsCheck;

namespace ActorBackup.Engine.Tests.Archive;

/// <summary>The walk's sort of a folder's names: the order a tree keeps them in, string ordinal order, whatever the names.</summary>
public sealed class NameSortTests
{
    [Fact]
    public void Names_are_sorted_as_an_ordinal_sort_sorts_them()
    {
        // Few units (many ties in the first eight, names that are prefixes of others, NUL and surrogate units), or any.
        var units = Gen.OneOf(Gen.Char['\0', '\u0003'], Gen.Char['a', 'c'], Gen.Const('\uD800'), Gen.Const('\uFFFF'), Gen.Char);
        var names = Gen.OneOf(Gen.String[units, 0, 12], Gen.String[Gen.Char.AlphaNumeric, 0, 30], Gen.Int[0, 2000].Select(i => $"f{i:D4}.txt"));
        names.List[0, 200].Sample(list =>
        {
            var expected = list.ToList();
            expected.Sort(StringComparer.Ordinal);
            var sorted = list.ToList();
            NameSort.Sort(sorted);
            Assert.Equal(expected, sorted);
        }, iter: 3000);
    }
}
