using ActorBackup.Engine.Crypto;
using ActorBackup.Node;
using ActorBackup.Protocol.Commands;

return await CommandLineRunner.Run("actorbackup", NodeCommand.Build().Parse(args), e => e switch
{
    UsageException => (2, e.Message + "\nrun 'actorbackup --help' or 'actorbackup engine --help' for the commands"),
    Akka.Configuration.ConfigurationException => (2, $"bad configuration: {e.Message}"),
    WrongKeyException => (5, e.Message),
    FormatException => (2, $"bad configuration: {e.Message}"), // a --set value of the wrong kind read outside NodeSettings
    IOException or UnauthorizedAccessException or KeyNotFoundException or ArgumentException or InvalidDataException => (1, e.Message),
    _ => null,
}, cancelOnSignals: false);
