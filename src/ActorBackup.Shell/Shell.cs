using System.CommandLine;

namespace ActorBackup.Shell;

/// <summary>Runs one parsed command line: usage errors exit 2 with the reason, failures 1 with what to do.</summary>
public static class Shell
{
    public static async Task<int> Invoke(RootCommand root, ParseResult parsed, CancellationToken cancel = default)
    {
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) Console.Error.WriteLine($"abk: {e.Message}");
            var path = string.Join(' ', CommandPath(parsed));
            Console.Error.WriteLine(path == "" ? "run 'abk --help' for the commands" : $"run 'abk {path} --help' for its usage");
            return 2;
        }
        try
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }, cancel);
        }
        catch (ShellException e)
        {
            Console.Error.WriteLine($"abk: {e.Message}");
            return e.ExitCode;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("abk: interrupted (a job it started goes on: 'abk job list')");
            return 130;
        }
    }

    private static IEnumerable<string> CommandPath(ParseResult parsed)
    {
        var names = new List<string>();
        for (var r = parsed.CommandResult; r.Parent is System.CommandLine.Parsing.CommandResult parent; r = parent) names.Insert(0, r.Command.Name);
        return names;
    }
}
