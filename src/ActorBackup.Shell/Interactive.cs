using System.Text;
using System.Text.Json;

namespace ActorBackup.Shell;

/// <summary>
/// `abk` alone: a prompt with history (up/down, kept in ~/.abk_history) and tab completion of commands and of
/// job and snapshot ids. Uses the same command table as one-shot mode: every line goes to the node's ops actor.
/// </summary>
public static class Interactive
{
    private static readonly string[] Commands =
    [
        "cluster show", "cluster leave", "cluster down", "shard stats", "client list", "library list", "volume list",
        "backup", "job list", "job show", "job watch", "job cancel", "snapshot list", "ls", "restore", "help", "exit",
    ];

    public static async Task<int> Run(CellConnection cell, bool json)
    {
        var historyFile = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".abk_history");
        var history = File.Exists(historyFile) ? File.ReadAllLines(historyFile).ToList() : [];
        Console.WriteLine($"abk: connected to {cell.Node}; 'help' lists the commands, 'exit' leaves");
        var last = 0;
        while (true)
        {
            var line = Console.IsInputRedirected ? ReadRedirected() : await ReadLine(cell, history);
            if (line is null) break;
            line = line.Trim();
            if (line == "") continue;
            if (line is "exit" or "quit") break;
            history.Add(line);
            try { File.AppendAllLines(historyFile, [line]); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            var words = Split(line);
            var reply = await cell.Run(words, json, o => Console.WriteLine(o.Text), TimeSpan.FromSeconds(15));
            if (reply.Text != "") Console.WriteLine(reply.Text);
            if (reply.Error != "") Console.Error.WriteLine("abk: " + reply.Error);
            last = reply.ExitCode;
        }
        return last;
    }

    private static string? ReadRedirected()
    {
        Console.Write("abk> ");
        return Console.ReadLine();
    }

    /// <summary>Splits a line like a shell: spaces separate, quotes group, backslash escapes.</summary>
    public static List<string> Split(string line)
    {
        var words = new List<string>();
        var current = new StringBuilder();
        char? quote = null;
        var any = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (c == '\\' && i + 1 < line.Length) { current.Append(line[++i]); any = true; }
            else if (quote is not null) { if (c == quote) quote = null; else current.Append(c); }
            else if (c is '"' or '\'') { quote = c; any = true; }
            else if (char.IsWhiteSpace(c)) { if (any || current.Length > 0) words.Add(current.ToString()); current.Clear(); any = false; }
            else { current.Append(c); any = true; }
        }
        if (any || current.Length > 0) words.Add(current.ToString());
        return words;
    }

    private static async Task<string?> ReadLine(CellConnection cell, List<string> history)
    {
        Console.Write("abk> ");
        var buffer = new StringBuilder();
        var index = history.Count;
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            switch (key.Key)
            {
                case ConsoleKey.Enter:
                    Console.WriteLine();
                    return buffer.ToString();
                case ConsoleKey.Backspace when buffer.Length > 0:
                    buffer.Length--;
                    Console.Write("\b \b");
                    break;
                case ConsoleKey.UpArrow when index > 0:
                    Replace(buffer, history[--index]);
                    break;
                case ConsoleKey.DownArrow when index < history.Count:
                    index++;
                    Replace(buffer, index < history.Count ? history[index] : "");
                    break;
                case ConsoleKey.Tab:
                    var options = await Complete(cell, buffer.ToString());
                    if (options.Count == 1) Replace(buffer, options[0] + " ");
                    else if (options.Count > 1)
                    {
                        Console.WriteLine();
                        Console.WriteLine(string.Join("  ", options));
                        Console.Write("abk> " + buffer);
                    }
                    break;
                case ConsoleKey.D when key.Modifiers.HasFlag(ConsoleModifiers.Control) && buffer.Length == 0:
                    Console.WriteLine();
                    return null;
                default:
                    if (!char.IsControl(key.KeyChar))
                    {
                        buffer.Append(key.KeyChar);
                        Console.Write(key.KeyChar);
                    }
                    break;
            }
        }
    }

    private static void Replace(StringBuilder buffer, string text)
    {
        Console.Write("\r" + new string(' ', buffer.Length + 5) + "\rabk> " + text);
        buffer.Clear().Append(text);
    }

    /// <summary>Completions of the whole line: command words first, then job or snapshot ids where one is expected.</summary>
    public static async Task<List<string>> Complete(CellConnection cell, string line)
    {
        var commands = Commands.Where(c => c.StartsWith(line, StringComparison.Ordinal)).ToList();
        if (commands.Count > 0) return commands;
        var words = Split(line);
        var partial = line.EndsWith(' ') ? "" : words.LastOrDefault() ?? "";
        var head = line[..(line.Length - partial.Length)];
        string? list = null, idField = null, arrayField = null;
        if (head is "job show " or "job watch " or "job cancel ") (list, arrayField, idField) = ("job list", "jobs", "id");
        else if (head is "ls " or "restore ") (list, arrayField, idField) = ("snapshot list", "snapshots", "id");
        if (list is null) return [];
        var reply = await cell.Run(list.Split(' '), true, _ => { }, TimeSpan.FromSeconds(5));
        if (reply.ExitCode != 0) return [];
        using var doc = JsonDocument.Parse(reply.Text);
        if (!doc.RootElement.TryGetProperty(arrayField!, out var items)) return [];
        return items.EnumerateArray().Select(e => e.GetProperty(idField!).GetString() ?? "")
            .Where(id => id.StartsWith(partial, StringComparison.Ordinal)).Select(id => head + id).ToList();
    }
}
