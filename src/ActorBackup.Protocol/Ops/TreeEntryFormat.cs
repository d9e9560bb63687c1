namespace ActorBackup.Protocol;

public sealed partial class TreeEntry
{
    /// <summary>One `ls -l` style line: type and mode, owner (by name where it had one), size, local mtime, path, link target.</summary>
    public string ToLine()
    {
        var time = DateTimeOffset.FromUnixTimeSeconds(MtimeUnixSec).LocalDateTime;
        var extra = Type switch { "l" => " -> " + Target, "h" => " => " + Target, _ => "" };
        var user = User == "" ? Uid.ToString() : User;
        var group = Group == "" ? Gid.ToString() : Group;
        return $"{Type}{Convert.ToString(Mode & 0xFFF, 8).PadLeft(4, '0')} {user,8} {group,8} {Size,12} {time:yyyy-MM-dd HH:mm:ss} {Path}{extra}";
    }
}
