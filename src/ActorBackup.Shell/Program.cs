using ActorBackup.Shell;

// abk: the operator shell. `abk COMMAND ...` runs one command; `abk` alone opens a prompt.
if (RawArguments.NotUtf8() is { } notUtf8)
{
    Console.Error.WriteLine("abk: " + notUtf8);
    return 2;
}
await using var session = new Session();
var root = CommandTable.Build(session, async (pr, cancel) =>
{
    await session.Target(pr.GetValue(CommandTable.NodeOption), pr.GetValue(CommandTable.CertsOption));
    session.KeepAsHome();
    return await Interactive.Run(session, pr.GetValue(CommandTable.JsonOption), cancel);
});
var parsed = root.Parse(args);
// The prompt (abk alone) handles Ctrl-C itself: it stops the command running, not the prompt.
return await Shell.Invoke(parsed, signals: parsed.CommandResult.Command != root);
