using ActorBackup.Engine.Crypto;
using ActorBackup.Cluster.Ops;
using ActorBackup.Node;
using ActorBackup.Node.Engine;

try
{
    if (args.Length > 0 && args[0] == "engine")
    {
        if (args.Length == 1 || args[1] is "--help" or "-h" or "help")
        {
            Console.WriteLine(EngineCommand.Usage);
            return 0;
        }
        return EngineCommand.Run(args[1..]);
    }
    return NodeCommand.Run(args);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"actorbackup: {e.Message}");
    Console.Error.WriteLine("run 'actorbackup --help' or 'actorbackup engine --help' for the commands");
    return 2;
}
catch (Akka.Configuration.ConfigurationException e)
{
    Console.Error.WriteLine($"actorbackup: bad configuration: {e.Message}");
    return 2;
}
catch (WrongKeyException e)
{
    Console.Error.WriteLine($"actorbackup: {e.Message}");
    return 5;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or KeyNotFoundException or ArgumentException or InvalidDataException)
{
    Console.Error.WriteLine($"actorbackup: {e.Message}");
    return 1;
}
