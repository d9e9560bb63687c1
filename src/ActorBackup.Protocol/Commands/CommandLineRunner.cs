using System.CommandLine;

namespace ActorBackup.Protocol.Commands;

/// <summary>
/// Runs a parsed command line the same way for `abk` and `actorbackup`: a usage error prints its reason and
/// where the usage is, and exits 2; an exception that <c>failure</c> knows prints "PROGRAM: message" and exits
/// with its code; anything else is a bug and is thrown.
/// </summary>
public static class CommandLineRunner
{
    public static async Task<int> Run(string program, ParseResult parsed, Func<Exception, (int Code, string Message)?> failure,
        bool cancelOnSignals, CancellationToken cancel = default)
    {
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) Console.Error.WriteLine($"{program}: {Plain(e.Message)}");
            var path = string.Join(' ', CommandPath(parsed));
            Console.Error.WriteLine(path == "" ? $"run '{program} --help' for the commands" : $"run '{program} {path} --help' for its usage");
            return 2;
        }
        var settings = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (!cancelOnSignals) settings.ProcessTerminationTimeout = null; // the program handles SIGTERM and Ctrl-C itself
        try
        {
            return await parsed.InvokeAsync(settings, cancel);
        }
        catch (Exception e) when (failure(e) is { } f)
        {
            Console.Error.WriteLine($"{program}: {f.Message}");
            return f.Code;
        }
    }

    /// <summary>A parse error in the operator's words: "as a whole number", not "as expected type 'System.Int32'".</summary>
    public static string Plain(string message) => System.Text.RegularExpressions.Regex.Replace(message, @"as expected type '(?:System\.)?(\w+)'", m => m.Groups[1].Value switch
    {
        "Int32" or "Int64" or "UInt32" or "UInt64" or "Int16" or "UInt16" or "Byte" => "as a whole number",
        "Double" or "Single" or "Decimal" => "as a number",
        "TimeSpan" => "as a duration",
        "Boolean" => "as true or false",
        _ => m.Value,
    });

    private static IEnumerable<string> CommandPath(ParseResult parsed)
    {
        var names = new List<string>();
        for (var r = parsed.CommandResult; r.Parent is System.CommandLine.Parsing.CommandResult parent; r = parent) names.Insert(0, r.Command.Name);
        return names;
    }
}
