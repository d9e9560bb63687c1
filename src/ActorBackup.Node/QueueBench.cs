using System.Diagnostics;
using ActorBackup.Cluster.Client;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Chunking;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup bench-queue [--sets 200] [--clients 20] [--drives 2]`: the manager's queue under a rush. One
/// node process with the manager, two disk libraries of N drives each and C client actors (each its own client
/// id, as C hosts would be); S backup sets spread over the clients, priorities 1..10, every one scheduled at
/// the same second. Prints the makespan (slot to the last job's end), the time from slot to start (median,
/// p99), and the manager actor's own CPU time (the busy time of its message handling) beside the whole
/// process's CPU time (clients and media agents included).
/// </summary>
public static class QueueBench
{
    public static async Task<int> Run(int sets, int clients, int drives, string? dir)
    {
        // Not /tmp: on some machines it creates files far slower than any other folder (see scripts/bench.sh).
        var root = dir ?? Path.Combine(Directory.Exists("/var/tmp") ? "/var/tmp" : Path.GetTempPath(), "abk-queue-bench." + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            return await Measure(root, sets, clients, drives);
        }
        finally
        {
            if (dir is null) Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<int> Measure(string root, int sets, int clients, int drives)
    {
        // The data: each set a folder of 1 to 5 files of 64 KiB of random bytes (nothing deduplicates).
        var random = new Random(42);
        var buffer = new byte[64 << 10];
        for (var i = 0; i < sets; i++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(root, "src", $"set{i}")).FullName;
            for (var f = 0; f <= i % 5; f++)
            {
                random.NextBytes(buffer);
                await File.WriteAllBytesAsync(Path.Combine(folder, $"f{f}"), buffer);
            }
        }
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var config = NodeCommand.BuildConfig([], [
            $"akka.remote.dot-netty.tcp.port = {port}", $"akka.cluster.seed-nodes = [\"akka.tcp://actorbackup@127.0.0.1:{port}\"]",
            "actorbackup.ops.port = 0", "akka.loglevel = WARNING",
            $"actorbackup.manager.max-jobs-per-client = 4",
            $"actorbackup.libraries = [{{ id = lib1, drives = {drives} }}, {{ id = lib2, drives = {drives} }}]",
        ], Path.Combine(root, "node"), null);
        Console.WriteLine($"queue bench: {sets} sets on {clients} clients, 2 libraries of {drives} drives, {Environment.ProcessorCount} cores");
        await using var node = await CellNode.StartAsync(config);
        var manager = node.Manager;
        var registry = Akka.Hosting.ActorRegistry.For(node.System);
        var keys = new ActorBackup.Engine.Crypto.KeyRing(CellKeyring.LoadOrCreateMaster(node.Settings.KeyDir));
        var clientIds = Enumerable.Range(0, clients).Select(c => $"host{c:D2}").ToList();
        // Each client signs what it sends with a node certificate of its own (the manager takes a client's registration
        // and results only from the node its certificate names), issued here by the node's own CA.
        var certs = node.Settings.CertsDir;
        using var ca = CellCertificates.LoadCa(certs);
        foreach (var id in clientIds)
        {
            var identity = CellIdentity.Of(CellRole.Node, id, id, ["client"]);
            var trust = new NodeTrust(certs, X509CertificateLoader.LoadCertificate(ca.RawData),
                CellCertificates.Issue(certs, identity, Path.Combine(root, "certs", id)), identity);
            node.System.ActorOf(ClientActor.Props(new ClientSettings(id, ChunkerOptions.ForAverage(node.Settings.ChunkAverage), node.Settings.CompressionLevel), keys, manager, node.Media, trust), "client-" + id);
        }
        await Until(async () =>
        {
            var known = await manager.Ask<ClientList>(new ListClients(), TimeSpan.FromSeconds(10));
            var libraries = await manager.Ask<LibraryList>(new ListLibraries(), TimeSpan.FromSeconds(10));
            return clientIds.All(id => known.Clients.Any(c => c.Id == id && c.Reachable)) && libraries.Libraries.Count(l => l.Reachable) == 2;
        }, "the clients and libraries to register");

        var (operatorCertificate, _) = CellCertificates.LoadPair(certs, CellCertificates.PairName(CellRole.Operator), ca);
        // Every set's slot: the same second, far enough ahead for the definitions to land.
        var slot = DateTimeOffset.UtcNow.AddSeconds(10 + sets / 50);
        slot = new DateTimeOffset(slot.Year, slot.Month, slot.Day, slot.Hour, slot.Minute, slot.Second, TimeSpan.Zero);
        var cron = $"{slot.Second} {slot.Minute} {slot.Hour} * * *";
        for (var i = 0; i < sets; i++)
        {
            // As an operator gives it: signed with the operator's certificate (the manager takes set changes from nobody else).
            var answer = await manager.Ask<object>(OperatorCommands.Sign(new DefineBackupSet
            {
                Set = new BackupSetDefinition
                {
                    Name = $"set{i}", Client = clientIds[i % clients], Paths = { Path.Combine(root, "src", $"set{i}") }, Priority = 1 + i % 10,
                    Schedules = { new ScheduleRule { Cron = cron, Level = BackupLevel.LevelFull } }, WindowSeconds = 3600,
                },
            }, operatorCertificate, DateTimeOffset.UtcNow), TimeSpan.FromSeconds(30));
            if (answer is CommandRejected r) throw new InvalidOperationException($"set{i}: {r.Reason}");
        }
        var ended = new TaskCompletionSource<List<JobInfo>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var collector = node.System.ActorOf(Props.Create(() => new EndCollector(sets, ended)));
        await DistributedPubSub.Get(node.System).Mediator.Ask<SubscribeAck>(new Subscribe(ManagerActor.JobEndedTopic, collector), TimeSpan.FromSeconds(10));
        if (DateTimeOffset.UtcNow >= slot) throw new InvalidOperationException("the sets took longer to define than the lead time: fewer sets, or a faster machine");
        var managerBusy = Cluster.Metrics.CellMetrics.ManagerBusy.Value;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;

        var jobs = await ended.Task.WaitAsync(TimeSpan.FromHours(1));
        managerBusy = Cluster.Metrics.CellMetrics.ManagerBusy.Value - managerBusy;
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        var failed = jobs.Where(j => j.State != JobState.Succeeded).ToList();
        foreach (var j in failed.Take(5)) Console.WriteLine($"  job {j.Id} of {j.BackupSet}: {j.State} {j.Reason}");
        var waits = jobs.Where(j => j.StartedUnixMs > 0).Select(j => (j.StartedUnixMs - j.SlotUnixMs) / 1000.0).Order().ToList();
        var makespan = (jobs.Max(j => j.FinishedUnixMs) - slot.ToUnixTimeMilliseconds()) / 1000.0;
        var byLibrary = string.Join(", ", jobs.GroupBy(j => j.Library).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));
        // Among the first quarter of starts, the share of the top priorities (9, 10) against their share of all sets.
        var firstStarts = jobs.OrderBy(j => j.StartedUnixMs).Take(sets / 4).ToList();
        var highFirst = firstStarts.Count(j => j.Priority >= 9) / (double)Math.Max(1, firstStarts.Count);
        Console.WriteLine($"  jobs: {jobs.Count - failed.Count} succeeded, {failed.Count} not; by library: {byLibrary}");
        Console.WriteLine($"  makespan (slot to last end): {makespan:F1} s");
        Console.WriteLine($"  slot to start: median {Percentile(waits, 0.5):F2} s, p99 {Percentile(waits, 0.99):F2} s, first {waits.FirstOrDefault():F2} s");
        Console.WriteLine($"  priorities 9-10: {highFirst:P0} of the first quarter of starts (20% of the sets)");
        Console.WriteLine($"  manager CPU (its message handling): {managerBusy:F2} s, {managerBusy / makespan:P1} of the makespan; whole process CPU: {cpu.TotalSeconds:F1} s");
        return failed.Count == 0 ? 0 : 1;
    }

    private static double Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"gave up waiting for {what}");
            await Task.Delay(200);
        }
    }

    /// <summary>Collects the job-ended notices until every set's job has ended.</summary>
    private sealed class EndCollector : ReceiveActor
    {
        public EndCollector(int expected, TaskCompletionSource<List<JobInfo>> done)
        {
            var jobs = new List<JobInfo>();
            Receive<JobEndedNotice>(n =>
            {
                jobs.Add(n.Job);
                if (jobs.Count == expected) done.TrySetResult(jobs);
            });
        }
    }
}
