namespace ActorBackup.Engine.Crypto;

/// <summary>The passphrase or key file does not unlock the master key. Never yields a wrong key.</summary>
public sealed class WrongKeyException(string message) : Exception(message);
