namespace ActorBackup.Protocol;

public sealed partial class TreeEntry
{
    /// <summary>One `ls -l` style line: type and mode, owner (by name where it had one), size, local mtime, path, link target.</summary>
    public string ToLine()
    {
        var time = LocalTimes.Of(MtimeUnixSec).PadLeft(19);
        var extra = Type switch { "l" => " -> " + Target, "h" => " => " + Target, _ => "" };
        var user = User == "" ? Uid.ToString() : User;
        var group = Group == "" ? Gid.ToString() : Group;
        return $"{Type}{Convert.ToString(Mode & 0xFFF, 8).PadLeft(4, '0')} {user,8} {group,8} {Size,12} {time} {Path}{extra}";
    }
}

/// <summary>Times as listings show them.</summary>
public static class LocalTimes
{
    /// <summary>yyyy-MM-dd HH:mm:ss in local time; a time .NET cannot show (before year 1, after 9999: a file system may
    /// hold one) as "@SECONDS".</summary>
    public static string Of(long unixSec) => unixSec is >= -62135596800 and <= 253402300799
        ? DateTimeOffset.FromUnixTimeSeconds(unixSec).LocalDateTime.ToString("yyyy-MM-dd HH:mm:ss")
        : $"@{unixSec}";
}
