using Akka.Configuration;

namespace ActorBackup.Cluster.Hosting;

/// <summary>
/// One HOCON setting as a Config object, built from a path and a value rather than glued text: the value is
/// serialized (quoting and escaping included) by Akka's ConfigurationFactory.FromObject.
/// </summary>
public static class HoconValues
{
    public static Config At(string path, object value)
    {
        object node = value;
        foreach (var key in path.Split('.').Reverse()) node = new Dictionary<string, object> { [key] = node };
        return ConfigurationFactory.FromObject(node);
    }

    /// <summary>
    /// `--set KEY=VALUE` as an operator types it: a list or object is HOCON text (e.g. roles=[manager,media]);
    /// a number, on/off/true/false, or anything else is one value, taken literally.
    /// </summary>
    public static Config FromSetting(string setting)
    {
        var eq = setting.IndexOf('=');
        if (eq <= 0) throw new ConfigurationException($"--set wants KEY=VALUE, got '{setting}'");
        var (key, value) = (setting[..eq].Trim(), setting[(eq + 1)..].Trim());
        if (value.StartsWith('[') || value.StartsWith('{')) return ConfigurationFactory.ParseString(setting);
        // A value quoted as in HOCON ("0 4 * * *") is the text between the quotes.
        if (value.Length >= 2 && value[0] == '"' && value[^1] == '"' && !value[1..^1].Contains('"')) return At(key, value[1..^1]);
        object typed = long.TryParse(value, out var n) ? n : value switch
        {
            "on" or "true" => true,
            "off" or "false" => false,
            _ => value,
        };
        return At(key, typed);
    }
}
