namespace ActorBackup.Protocol;

public sealed partial class TreeEntry
{
    /// <summary>One `ls -l` style line: type and mode, owner, size, local mtime, path, link target.</summary>
    public string ToLine()
    {
        var time = DateTimeOffset.FromUnixTimeSeconds(MtimeUnixSec).LocalDateTime;
        var extra = Type switch { "l" => " -> " + Target, "h" => " => " + Target, _ => "" };
        return $"{Type}{Convert.ToString(Mode & 0xFFF, 8).PadLeft(4, '0')} {Uid,5} {Gid,5} {Size,12} {time:yyyy-MM-dd HH:mm:ss} {Path}{extra}";
    }
}
