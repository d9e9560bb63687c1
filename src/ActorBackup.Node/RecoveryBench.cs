using System.Diagnostics;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Media;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Persistence;
using Google.Protobuf;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup bench-recovery [--chunks N] [--postgres CONNECTION_STRING]`: how long a media agent takes to
/// recover an index of N chunks from its journal (a snapshot of the index plus the commits after it), as a
/// node does at start; SQLite in a temporary folder, or the PostgreSQL database given.
/// </summary>
public static class RecoveryBench
{
    private sealed class Seeder : UntypedPersistentActor
    {
        private readonly string _persistenceId;
        private readonly MediaSnapshot _snapshot;
        private readonly IReadOnlyList<IndexBatchCommitted> _events;
        private IActorRef? _requester;

        public Seeder(string persistenceId, MediaSnapshot snapshot, IReadOnlyList<IndexBatchCommitted> events)
        {
            _persistenceId = persistenceId;
            _snapshot = snapshot;
            _events = events;
        }

        public override string PersistenceId => _persistenceId;

        protected override void OnRecover(object message) { }

        protected override void OnCommand(object message)
        {
            switch (message)
            {
                case "wait":
                    _requester = Sender;
                    SaveSnapshot(_snapshot);
                    break;
                case SaveSnapshotSuccess:
                    PersistAll(_events, _ => { });
                    DeferAsync("done", _ => _requester?.Tell("seeded"));
                    break;
            }
        }
    }

    public static int Run(int chunks, string? postgres = null)
    {
        var dir = Directory.CreateTempSubdirectory("abk-recovery-").FullName;
        var library = "bench-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)); // a journal of its own
        try
        {
            var hocon = Path.Combine(AppContext.BaseDirectory, "hocon");
            var config = postgres is null ? CellNode.StandaloneSqlite(dir, hocon) : CellNode.StandalonePostgres(postgres, hocon);
            var tail = MediaActor.SnapshotEvery - 1;
            var perEvent = 2_000;
            var inSnapshot = chunks - tail * perEvent;
            var index = new ChunkIndex(inSnapshot);
            var random = new Random(1);
            var id = new byte[32];
            for (var i = 0; i < inSnapshot; i++)
            {
                random.NextBytes(id);
                index.Set(new ChunkId(id), new ChunkLocation((uint)(i / 4000 + 1), i % 4000 * 1_000_000L, 1_000_000));
            }
            var snapshot = new MediaSnapshot { Index = ByteString.CopyFrom(index.ToBytes()) };
            var events = Enumerable.Range(0, tail).Select(e =>
            {
                var batch = new List<KeyValuePair<ChunkId, ChunkLocation>>();
                for (var i = 0; i < perEvent; i++)
                {
                    random.NextBytes(id);
                    batch.Add(new(new ChunkId(id), new ChunkLocation(999, i * 1000L, 1000)));
                }
                return new IndexBatchCommitted { Entries = ByteString.CopyFrom(ChunkIndex.Pack(batch)) };
            }).ToList();

            using var system = ActorSystem.Create("recovery", config);
            var seeder = system.ActorOf(Props.Create(() => new Seeder("media-" + library, snapshot, events)));
            seeder.Ask<string>("wait", TimeSpan.FromMinutes(5)).Wait();
            system.Stop(seeder);
            Console.WriteLine($"journal ({(postgres is null ? "SQLite" : "PostgreSQL")}): snapshot of {inSnapshot:N0} chunks ({snapshot.Index.Length / 1048576.0:F0} MiB) + {tail} commits of {perEvent:N0}");

            var ready = new TaskCompletionSource();
            var probe = system.ActorOf(Props.Create(() => new ReadyProbe(ready)));
            var clock = Stopwatch.StartNew();
            system.ActorOf(MediaActor.Props(new LibraryDeclaration(library, Path.Combine(dir, "lib"), 4L << 30), probe));
            ready.Task.Wait(TimeSpan.FromMinutes(5));
            Console.WriteLine($"media agent recovered {chunks:N0} chunks in {clock.Elapsed.TotalSeconds:F2} s");
            return 0;
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private sealed class ReadyProbe : ReceiveActor
    {
        public ReadyProbe(TaskCompletionSource ready)
        {
            Receive<RegisterLibrary>(_ => ready.TrySetResult());
            ReceiveAny(_ => { });
        }
    }
}
