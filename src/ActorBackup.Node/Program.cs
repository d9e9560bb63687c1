using ActorBackup.Engine.Crypto;
using ActorBackup.Node;
using ActorBackup.Protocol.Commands;

return await CommandLineRunner.Run("actorbackup", NodeCommand.Build().Parse(args), e => e switch
{
    UsageException => (2, e.Message + "\nrun 'actorbackup --help' or 'actorbackup engine --help' for the commands"),
    Akka.Configuration.ConfigurationException => (2, $"bad configuration: {e.Message}"),
    WrongKeyException => (5, e.Message),
    // A --set value of the wrong kind (FormatException), a port taken (InvalidOperationException from the metrics
    // listener), a key file given for a certificate (CryptographicException): the message, not a stack trace.
    FormatException => (2, $"bad configuration: {e.Message}"),
    IOException or UnauthorizedAccessException or KeyNotFoundException or ArgumentException or InvalidDataException
        or InvalidOperationException or System.Security.Cryptography.CryptographicException => (1, e.Message),
    _ => null,
}, cancelOnSignals: false);
