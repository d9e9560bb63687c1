using ActorBackup.Protocol;
using ActorBackup.Shell;

// abk: the operator shell. `abk COMMAND ...` runs one command; `abk` alone opens a prompt.
var node = "127.0.0.1:4053";
var json = false;
var rest = new List<string>();
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--node" when i + 1 < args.Length:
            node = args[++i];
            break;
        case "--json":
            json = true;
            break;
        default:
            rest.Add(args[i]);
            break;
    }
}
if (Environment.GetEnvironmentVariable("ABK_NODE") is { Length: > 0 } envNode && !args.Contains("--node")) node = envNode;

await using var cell = new CellConnection(node);
if (rest.Count == 0) return await Interactive.Run(cell, json);
return await RunOne(cell, rest, json);

static async Task<int> RunOne(CellConnection cell, IReadOnlyList<string> words, bool json)
{
    var reply = await cell.Run(words, json, o => (o.Error ? Console.Error : Console.Out).WriteLine(o.Text), TimeSpan.FromSeconds(15));
    if (reply.Text != "") Console.WriteLine(reply.Text);
    if (reply.Error != "") Console.Error.WriteLine("abk: " + reply.Error);
    return reply.ExitCode;
}
