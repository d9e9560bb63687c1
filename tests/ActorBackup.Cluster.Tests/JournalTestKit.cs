using ActorBackup.Cluster.Hosting;
using Akka.Actor;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// What a test kit waits by default for a message it expects (an actor's start, a stop that flushes a library, a
/// round trip across threads): 10 s rather than TestKit's 3, which a busy 2-core machine can reach. A test that
/// expects nothing gives its own wait.
/// </summary>
public static class SlowMachine
{
    public const string Expect = "akka.test.single-expect-default = 10s";
    public static Akka.Configuration.Config Config => Akka.Configuration.ConfigurationFactory.ParseString(Expect);
}

/// <summary>
/// A TestKit on a real journal and snapshot store: SQLite (the embedded default) in a folder of its own, or the
/// PostgreSQL given; the folder (<see cref="Dir"/>, for the test's own files too) and the database go after the test.
/// </summary>
public abstract class JournalTestKit : TestKit, IDisposable
{
    protected string Dir { get; }
    private readonly TestPostgres? _postgres;

    protected JournalTestKit(TestPostgres? postgres, string prefix) : this(Directory.CreateTempSubdirectory(prefix).FullName, postgres) { }

    private JournalTestKit(string dir, TestPostgres? postgres)
        : base(SlowMachine.Config.WithFallback(postgres is null
            ? CellNode.StandaloneSqlite(dir, Path.Combine(AppContext.BaseDirectory, "hocon"))
            : CellNode.StandalonePostgres(postgres.ConnectionString, Path.Combine(AppContext.BaseDirectory, "hocon"))))
    {
        Dir = dir;
        _postgres = postgres;
    }

    /// <summary>The sequence numbers of <paramref name="persistenceId"/>'s events still in the journal.</summary>
    protected List<long> Journaled(string persistenceId) => JournaledEvents(persistenceId).Select(e => e.SequenceNr).ToList();

    /// <summary>The events of <paramref name="persistenceId"/> still in the journal, with their sequence numbers.</summary>
    protected List<(long SequenceNr, object Payload)> JournaledEvents(string persistenceId)
    {
        var probe = CreateTestProbe();
        Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null).Tell(new Akka.Persistence.ReplayMessages(1, long.MaxValue, long.MaxValue, persistenceId, probe.Ref));
        var seen = new List<(long, object)>();
        while (probe.ReceiveOne(TimeSpan.FromSeconds(20)) is Akka.Persistence.ReplayedMessage r) seen.Add((r.Persistent.SequenceNr, r.Persistent.Payload));
        return seen;
    }

    void IDisposable.Dispose()
    {
        Shutdown();
        _postgres?.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}
