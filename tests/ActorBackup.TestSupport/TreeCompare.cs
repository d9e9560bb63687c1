using Xunit;

namespace ActorBackup.TestSupport;

/// <summary>What a folder held: every entry's kind, bytes, mode and mtime, to compare a restore with its source.</summary>
public static class TreeCompare
{
    public static Dictionary<string, string> Describe(string root)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(root, path);
            var info = new FileInfo(path);
            if (info.LinkTarget is { } target) result[rel] = $"link -> {target}";
            else if (Directory.Exists(path)) result[rel] = $"dir {File.GetUnixFileMode(path)}";
            else
            {
                var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));
                result[rel] = $"file {info.Length} {hash} {File.GetUnixFileMode(path)} {info.LastWriteTimeUtc.Ticks}";
            }
        }
        return result;
    }

    public static void AssertSame(Dictionary<string, string> expected, string actualRoot)
    {
        var actual = Describe(actualRoot);
        var missing = expected.Keys.Except(actual.Keys).ToList();
        var extra = actual.Keys.Except(expected.Keys).ToList();
        var different = expected.Keys.Intersect(actual.Keys).Where(k => expected[k] != actual[k]).Select(k => $"{k}: {actual[k]} != {expected[k]}").ToList();
        Assert.True(missing.Count + extra.Count + different.Count == 0,
            $"restore differs from the source:\nmissing {string.Join(", ", missing)}\nextra {string.Join(", ", extra)}\n{string.Join("\n", different)}");
    }
}
