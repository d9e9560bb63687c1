using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;

namespace ActorBackup.Shell;

/// <summary>
/// `abk` alone: a prompt with history (up/down, kept in ~/.abk_history) and tab completion of command words,
/// options and ids (jobs, snapshots, libraries, clients). Every line is parsed by the same command table as
/// one-shot mode and sent over the same connection.
/// </summary>
public static class Interactive
{
    public static async Task<int> Run(Session session, bool json, CancellationToken cancel)
    {
        var root = CommandTable.Build(session, (_, _) => Task.FromResult(0));
        var historyFile = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".abk_history");
        // Commands piped in (a script's): no banner and no prompts in their output (with --json, one JSON document a
        // command), no history read or written (a cron job under another HOME would warn in every mail), and the exit
        // code is the worst of them: a failure before a partial one (3), the first failure among failures.
        var piped = Console.IsInputRedirected;
        List<string> history = [];
        try
        {
            if (!piped) history = File.Exists(historyFile) ? File.ReadAllLines(historyFile).ToList() : [];
            // Kept to its newest lines: read whole at each start, it grew with every command for good.
            if (history.Count > 2 * HistoryKept)
            {
                history = history[^HistoryKept..];
                try { RewriteHistory(historyFile, history); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            history = []; // one left root's by a sudo that kept HOME, say: the prompt goes on without it
            Console.Error.WriteLine($"abk: {historyFile} cannot be read ({e.Message}): no history this time");
        }
        if (!piped) Console.WriteLine($"abk: talking to {session.Node}; 'help' lists the commands, 'exit' leaves");
        var last = 0;
        var worst = 0;
        while (!cancel.IsCancellationRequested)
        {
            var line = piped ? Console.ReadLine() : ReadLine(root, history);
            if (line is null) break;
            line = line.Trim();
            if (line == "") continue;
            if (line is "exit" or "quit") break;
            if (line.Contains('\uFFFD'))
            {
                // A byte that is not UTF-8 (read as U+FFFD): taken as it is, the line would name another file.
                Console.Error.WriteLine("abk: the line holds a byte that is not UTF-8: " + RawArguments.HowToWrite);
                last = 2;
                worst = Worse(worst, last);
                continue;
            }
            // Commands piped in are not the operator's to recall.
            if (!piped)
            {
                history.Add(line);
                try { AppendHistory(historyFile, line); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
            List<string> words;
            try
            {
                words = Words(line);
            }
            catch (ShellException e)
            {
                Console.Error.WriteLine($"abk: {e.Message}");
                last = 2;
                worst = Worse(worst, last);
                continue;
            }
            if (words is ["help", .. var rest]) words = [.. rest, "--help"];
            if (json && !words.Contains("--json")) words.Add("--json");
            last = await RunOne(root.Parse(words), cancel);
            worst = Worse(worst, last);
            await session.Target(null, null); // a line's --node or --certs was that line's: completion asks the prompt's node again
        }
        return piped ? worst : last;
    }

    /// <summary>
    /// The exit code of a batch that had <paramref name="so"/> far and now <paramref name="next"/>: a failure (1, 2, ...)
    /// over a command done with some files not handled (3) over success (0); among failures, the first.
    /// </summary>
    public static int Worse(int so, int next)
    {
        static int Rank(int code) => code switch { 0 => 0, 3 => 1, _ => 2 };
        return Rank(next) > Rank(so) ? next : so;
    }

    /// <summary>One command of the prompt: Ctrl-C stops it (a job it started goes on) and the prompt asks for the next.</summary>
    private static async Task<int> RunOne(System.CommandLine.ParseResult parsed, CancellationToken cancel)
    {
        using var command = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        void Interrupt(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true; // not the process: the command
            try
            {
                command.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // the command had ended as Ctrl-C came
            }
        }
        Console.CancelKeyPress += Interrupt;
        try
        {
            return await Shell.Invoke(parsed, command.Token, signals: false);
        }
        finally
        {
            Console.CancelKeyPress -= Interrupt;
        }
    }

    /// <summary>How many lines of history are kept (the file is cut back to them once it holds twice as many).</summary>
    private const int HistoryKept = 1000;

    /// <summary>The history file written anew with <paramref name="lines"/> (0600), under a temporary name first.</summary>
    private static void RewriteHistory(string file, List<string> lines)
    {
        var temp = $"{file}.{Environment.ProcessId}.new"; // two prompts starting at once write files of their own
        using (var writer = PrivateWriter(temp, FileMode.Create))
            foreach (var line in lines) writer.WriteLine(line);
        File.Move(temp, file, overwrite: true);
    }

    /// <summary>A line added to the history file.</summary>
    private static void AppendHistory(string file, string line)
    {
        using var writer = PrivateWriter(file, FileMode.Append);
        writer.WriteLine(line);
    }

    /// <summary>A history file opened to write, made 0600 (commands name hosts, paths and snapshots).</summary>
    private static StreamWriter PrivateWriter(string file, FileMode mode) => new(new FileStream(file, new FileStreamOptions
    {
        Mode = mode, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
    }));

    /// <summary>
    /// A line typed at the prompt. Ctrl-C there drops what was typed and gives a new prompt, as bash does (it ended the
    /// shell); Ctrl-D on an empty line leaves. While a command runs, Ctrl-C is a signal again (RunOne).
    /// </summary>
    private static string? ReadLine(RootCommand root, List<string> history)
    {
        var controlC = Console.TreatControlCAsInput;
        Console.TreatControlCAsInput = true;
        try
        {
            return ReadKeys(root, history);
        }
        finally
        {
            Console.TreatControlCAsInput = controlC;
        }
    }

    private static string? ReadKeys(RootCommand root, List<string> history)
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
                    var options = Complete(root, buffer.ToString());
                    if (options.Count == 1) Replace(buffer, options[0] + " ");
                    else if (options.Count > 1)
                    {
                        Console.WriteLine();
                        Console.WriteLine(string.Join("  ", options.Select(o => o[(o.LastIndexOf(' ') + 1)..])));
                        Console.Write("abk> " + buffer);
                    }
                    break;
                case ConsoleKey.C when key.Modifiers.HasFlag(ConsoleModifiers.Control):
                    Console.WriteLine("^C");
                    return "";
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

    /// <summary>
    /// A prompt line's words as a POSIX shell splits them, so that what works after `abk` in bash works at the prompt:
    /// 'single quotes' keep everything as it is (`'/srv/caf\xe9'`, `'*.tmp'`), "double quotes" keep all but \" \\ \$ \`
    /// escaped, and outside quotes a backslash keeps the next character. An unclosed quote is a usage error.
    /// </summary>
    public static List<string> Words(string line)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        var inWord = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            switch (c)
            {
                case '\'':
                    var close = line.IndexOf('\'', i + 1);
                    if (close < 0) throw new ShellException("a quote (') is not closed", 2);
                    word.Append(line, i + 1, close - i - 1);
                    i = close;
                    break;
                case '"':
                    for (i++; ; i++)
                    {
                        if (i >= line.Length) throw new ShellException("a quote (\") is not closed", 2);
                        if (line[i] == '"') break;
                        if (line[i] == '\\' && i + 1 < line.Length && line[i + 1] is '"' or '\\' or '$' or '`') i++;
                        word.Append(line[i]);
                    }
                    break;
                case '\\':
                    if (i + 1 < line.Length) word.Append(line[++i]);
                    break;
                default:
                    word.Append(c);
                    break;
            }
        }
        if (inWord) words.Add(word.ToString());
        return words;
    }

    /// <summary>
    /// The whole line completed at its last word, one entry per candidate, from the command table: command
    /// words, then (for a word that starts with '-') options, and the ids an argument takes.
    /// </summary>
    public static List<string> Complete(RootCommand root, string line)
    {
        var partial = line.Length == 0 || char.IsWhiteSpace(line[^1]) ? "" : CommandLineParser.SplitCommandLine(line).LastOrDefault() ?? "";
        var head = line[..(line.Length - partial.Length)];
        return root.Parse(line).GetCompletions(line.Length)
            .Select(c => c.InsertText ?? c.Label)
            .Where(c => c.StartsWith(partial, StringComparison.Ordinal) && (partial.StartsWith('-') || !(c.StartsWith('-') || c.StartsWith('/'))))
            .Distinct().Select(c => head + c).ToList();
    }
}
