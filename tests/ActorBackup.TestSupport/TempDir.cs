namespace ActorBackup.TestSupport;

/// <summary>A folder of its own under the system's temporary folder, removed at the end (read-only parts too).</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("abk-test-").FullName;

    public string Sub(string name)
    {
        var p = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(p);
        return p;
    }

    public void Dispose()
    {
        TreeCompare.Unlock(Path); // immutable or append-only files (the tests make some) cannot be removed
        try
        {
            // Restored read-only directories must be writable again before they can go.
            foreach (var d in Directory.EnumerateDirectories(Path, "*", SearchOption.AllDirectories))
                if (new DirectoryInfo(d).LinkTarget is null)
                    try { File.SetUnixFileMode(d, (UnixFileMode)0b111_111_111); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            Directory.Delete(Path, true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A name that is not valid UTF-8 (the tests make some) cannot be named from .NET: rm can.
            try
            {
                using var rm = System.Diagnostics.Process.Start("/bin/rm", ["-rf", "--", Path]);
                rm.WaitForExit(30_000);
            }
            catch (System.ComponentModel.Win32Exception) { }
        }
    }
}
