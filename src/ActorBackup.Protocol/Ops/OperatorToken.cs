using System.Security.Cryptography;

namespace ActorBackup.Protocol.Ops;

/// <summary>
/// The operator credential of a cell until certificates replace it: 32 random bytes, hex, in a file only its
/// owner reads (DATA/certs/operator.token, or actorbackup.ops.token-file). A node creates it on first start;
/// nodes of one cell point at the same file; `abk` finds it through --certs DIR, $ABK_CERTS or ./data/certs.
/// </summary>
public static class OperatorToken
{
    public const string FileName = "operator.token";

    public static byte[] LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            try
            {
                using var f = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
                using var w = new StreamWriter(f);
                w.Write(token);
            }
            catch (IOException) when (File.Exists(path))
            {
                // another node of the cell created it first: use that one
            }
        }
        return Read(path);
    }

    public static byte[] Read(string path)
    {
        var text = File.ReadAllText(path).Trim();
        if (text.Length != 64 || !text.All(Uri.IsHexDigit))
            throw new InvalidDataException($"{path} is not an operator token (64 hex digits): delete it and restart the node to make a new one");
        return System.Text.Encoding.ASCII.GetBytes(text);
    }

    public static bool Matches(byte[] expected, string offered) =>
        CryptographicOperations.FixedTimeEquals(expected, System.Text.Encoding.ASCII.GetBytes(offered));
}
