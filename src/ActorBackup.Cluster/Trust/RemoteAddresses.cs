namespace ActorBackup.Cluster.Trust;

/// <summary>
/// Akka.Remote over TLS names its addresses akka.ssl.tcp://; operators and files write akka.tcp:// as they always
/// have. Every address the cell reads from a person or a file goes through <see cref="Secure"/>.
/// </summary>
public static class RemoteAddresses
{
    public const string Plain = "akka.tcp://", Tls = "akka.ssl.tcp://";

    public static string Secure(string address) =>
        address.StartsWith(Plain, StringComparison.OrdinalIgnoreCase) ? Tls + address[Plain.Length..] : address;
}
