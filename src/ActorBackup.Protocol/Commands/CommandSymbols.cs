using System.CommandLine;

namespace ActorBackup.Protocol.Commands;

public static class CommandSymbols
{
    /// <summary>Adds arguments and options to <paramref name="command"/>, in order; a command table lists them in one place.</summary>
    public static Command With(this Command command, params Symbol[] symbols)
    {
        foreach (var s in symbols)
            switch (s)
            {
                case Argument a: command.Arguments.Add(a); break;
                case Option o: command.Options.Add(o); break;
                default: throw new ArgumentException($"{s.Name}: a command takes arguments and options here, not {s.GetType().Name}");
            }
        return command;
    }
}
