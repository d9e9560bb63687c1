namespace ActorBackup.Cluster.Tests;

/// <summary>The configuration of a one-node cluster on 127.0.0.1 with an in-memory journal: a manager actor's tests.</summary>
public static class OneNodeCell
{
    public const string Config = """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.loglevel = WARNING
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        """;
}
