using System.Diagnostics;
using System.Net.Sockets;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>
/// Mutual TLS and roles with the real processes: who may do what is decided by the certificate a shell or node
/// presents, and a stranger (no certificate, or one of another cell's CA) gets nothing done and writes nothing.
/// </summary>
public class TrustTests
{
    private static ProcessResult Actorbackup(params string[] args)
    {
        var r = Processes.Run(Processes.Actorbackup, args);
        Assert.True(r.ExitCode == 0, $"actorbackup {string.Join(' ', args)}: {r.Stderr}{r.Stdout}");
        return r;
    }

    private static ProcessResult AbkWith(CellProcess cell, string certs, params string[] args) =>
        Processes.Run(Processes.Abk, ["--node", cell.Node, "--certs", certs, .. args], timeout: TimeSpan.FromMinutes(2));

    [Fact]
    public async Task Shells_get_what_their_certificate_allows_and_a_stranger_nothing()
    {
        using var dir = new TempDir();
        var src = Path.Combine(dir.Path, "src");
        CellTests.MakeSource(src);
        using var cell = new CellProcess(Path.Combine(dir.Path, "node"), null, "--set", "actorbackup.client-id=host-a").Start();

        // The first node made the cell's CA and an operator's certificate, private to its owner.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(cell.CertsDir));
        foreach (var key in (string[])["ca.key", "node.key", "operator.key"])
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(cell.CertsDir, key)));
        var backup = cell.AbkJson("backup", src);
        // The journal (the catalog: every host's paths, the sets' commands) is the node's user's alone, its WAL too.
        Assert.NotEmpty(Directory.GetFiles(cell.DataDir, "actorbackup.db*"));
        foreach (var db in Directory.GetFiles(cell.DataDir, "actorbackup.db*"))
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(db));
        var snapshot = backup.GetProperty("snapshot").GetString()!;

        // A stranger: an operator certificate of another cell's CA. Refused at the handshake, whatever it asks.
        var stranger = Path.Combine(dir.Path, "stranger");
        Actorbackup("ca", "init", "--dir", stranger, "--name", "elsewhere");
        Actorbackup("ca", "issue", "--ca", stranger, "--role", "operator", "--name", "mallory", "--out", stranger);
        var target = Path.Combine(dir.Path, "stolen");
        foreach (var args in (string[][])[["job", "list"], ["snapshot", "list"], ["backup", src], ["restore", snapshot, "--to", target],
                     ["job", "cancel", "1"], ["cluster", "down", "--force", $"akka.tcp://actorbackup@{cell.ClusterNode}"], ["snapshot", "delete", snapshot]])
        {
            var r = AbkWith(cell, stranger, args);
            Assert.True(r.ExitCode != 0, $"abk {string.Join(' ', args)} with another cell's certificate succeeded: {r.Stdout}");
            Assert.Contains("trust", r.Stderr + r.Stdout);
        }
        // No certificate at all: a plain TCP connection that speaks the operator wire gets no answer.
        using (var tcp = new TcpClient())
        {
            tcp.Connect("127.0.0.1", cell.OpsPort);
            var stream = tcp.GetStream();
            stream.ReadTimeout = 30_000;
            try
            {
                await OpsWire.Write(stream, new ListJobs(), more: false);
                var answer = await OpsWire.Read(stream);
                Assert.Null(answer);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                // closed or garbage: either way no answer
            }
        }
        Assert.False(Directory.Exists(target), "a refused restore wrote something");
        var jobs = cell.AbkJson("job", "list").GetProperty("jobs");
        Assert.Equal(1, jobs.GetArrayLength()); // the operator's backup, nothing the stranger asked for
        Assert.Single(cell.AbkJson("snapshot", "list").GetProperty("snapshots").EnumerateArray());

        // A client host's certificate: its own client's data only.
        var hostB = Path.Combine(dir.Path, "host-b");
        Actorbackup("ca", "issue", "--ca", cell.CertsDir, "--role", "client", "--name", "host-b", "--out", hostB);
        var listed = AbkWith(cell, hostB, "--json", "snapshot", "list");
        Assert.True(listed.ExitCode == 0, listed.Stderr);
        Assert.DoesNotContain(snapshot, listed.Stdout);
        var otherRestore = AbkWith(cell, hostB, "restore", snapshot, "--to", target);
        Assert.NotEqual(0, otherRestore.ExitCode);
        Assert.Contains($"no snapshot '{snapshot}' of client host-b", otherRestore.Stderr);
        var intoA = AbkWith(cell, hostB, "restore", "latest", "--to", target, "--client", "host-a");
        Assert.NotEqual(0, intoA.ExitCode);
        Assert.Contains("may act for client host-b only", intoA.Stderr);
        foreach (var args in (string[][])[["snapshot", "delete", snapshot], ["prune"], ["cluster", "down", "--force", $"akka.tcp://actorbackup@{cell.ClusterNode}"],
                     ["set", "add", "evil", "--path", "/", "--pre-command", "id"], ["job", "show", "1"]])
        {
            var r = AbkWith(cell, hostB, args);
            Assert.True(r.ExitCode != 0, $"a client host's abk {string.Join(' ', args)} succeeded: {r.Stdout}");
        }
        Assert.False(Directory.Exists(target), "a refused restore wrote something");
        Assert.Single(cell.AbkJson("snapshot", "list").GetProperty("snapshots").EnumerateArray());

        // The host that made the snapshot restores it with its own client certificate ('latest' is its newest).
        var hostA = Path.Combine(dir.Path, "host-a");
        Actorbackup("ca", "issue", "--ca", cell.CertsDir, "--role", "client", "--name", "host-a", "--out", hostA);
        var own = Path.Combine(dir.Path, "own");
        var restored = AbkWith(cell, hostA, "restore", "latest", "--to", own);
        Assert.True(restored.ExitCode == 0, restored.Stderr + restored.Stdout);
        TreeCompare.AssertSame(TreeCompare.Describe(src), own + src);

        // An integrator starts jobs and looks, but deletes, prunes and downs nothing.
        var integrator = Path.Combine(dir.Path, "integrator");
        Actorbackup("ca", "issue", "--ca", cell.CertsDir, "--role", "integrator", "--name", "ci", "--out", integrator);
        Assert.Equal(0, AbkWith(cell, integrator, "snapshot", "list").ExitCode);
        foreach (var args in (string[][])[["snapshot", "delete", snapshot], ["prune"], ["cluster", "down", "--force", $"akka.tcp://actorbackup@{cell.ClusterNode}"]])
        {
            var r = AbkWith(cell, integrator, args);
            Assert.True(r.ExitCode != 0, $"an integrator's abk {string.Join(' ', args)} succeeded: {r.Stdout}");
            Assert.Contains("takes an operator certificate", r.Stderr);
        }
        Assert.Single(cell.AbkJson("snapshot", "list").GetProperty("snapshots").EnumerateArray());
        // An auditor reads the catalog and the audit trail, and nothing else.
        var auditor = Path.Combine(dir.Path, "auditor");
        Actorbackup("ca", "issue", "--ca", cell.CertsDir, "--role", "auditor", "--name", "carol", "--out", auditor);
        Assert.Equal(0, AbkWith(cell, auditor, "snapshot", "list").ExitCode);
        var trail = AbkWith(cell, auditor, "audit", "list", "--caller", "host-b");
        Assert.True(trail.ExitCode == 0, trail.Stderr);
        Assert.Contains("StartRestore", trail.Stdout); // host-b's restores of host-a's snapshot, refused by the manager
        Assert.Contains("refused: ", trail.Stdout);
        foreach (var args in (string[][])[["ls", snapshot], ["snapshot", "delete", snapshot], ["restore", snapshot, "--to", target], ["backup", src]])
        {
            var r = AbkWith(cell, auditor, args);
            Assert.True(r.ExitCode != 0, $"an auditor's abk {string.Join(' ', args)} succeeded: {r.Stdout}");
            Assert.Contains("an auditor's certificate reads the catalog", r.Stderr);
        }
        // The node's own certificate is no shell's.
        var nodeOnly = Path.Combine(dir.Path, "node-only");
        Directory.CreateDirectory(nodeOnly);
        foreach (var f in (string[])["ca.crt", "node.crt", "node.key"]) File.Copy(Path.Combine(cell.CertsDir, f), Path.Combine(nodeOnly, f));
        File.Copy(Path.Combine(nodeOnly, "node.crt"), Path.Combine(nodeOnly, "integrator.crt"));
        File.Copy(Path.Combine(nodeOnly, "node.key"), Path.Combine(nodeOnly, "integrator.key"));
        var asNode = AbkWith(cell, nodeOnly, "job", "list");
        Assert.NotEqual(0, asNode.ExitCode);
        Assert.Contains("node certificate", asNode.Stderr);
    }

    [Fact]
    public void A_revoked_operator_certificate_is_refused_from_then_on_a_restart_included()
    {
        using var dir = new TempDir();
        var nodeDir = Path.Combine(dir.Path, "node");
        var bob = Path.Combine(dir.Path, "bob");
        int port;
        using (var cell = new CellProcess(nodeDir, null, "--set", "actorbackup.client-id=host-a").Start())
        {
            port = cell.Port;
            Actorbackup("ca", "issue", "--ca", cell.CertsDir, "--role", "operator", "--name", "bob", "--out", bob);
            var before = AbkWith(cell, bob, "client", "list");
            Assert.True(before.ExitCode == 0, before.Stderr + before.Stdout);
            // Revoked by its certificate file (its serial read from it), as an operator does for a lost laptop.
            var revoked = cell.Abk("cert", "revoke", Path.Combine(bob, "operator.crt"), "--reason", "lost laptop");
            Assert.True(revoked.ExitCode == 0, revoked.Stderr + revoked.Stdout);
            Assert.Contains("CN=bob", revoked.Stdout);
            var refused = AbkWith(cell, bob, "client", "list");
            Assert.True(refused.ExitCode != 0, "a revoked certificate's abk was answered: " + refused.Stdout);
            Assert.Contains("lost laptop", cell.Abk("cert", "list").Stdout);
            var twice = cell.Abk("cert", "revoke", Path.Combine(bob, "operator.crt"));
            Assert.Contains("was revoked already", twice.Stderr);
            Assert.Equal(0, cell.Abk("client", "list").ExitCode); // the other operator's certificate goes on
        }
        // Started again, the node refuses it still (the manager's journal and the node's certs folder keep the list).
        using var again = new CellProcess(nodeDir, port, "--set", "actorbackup.client-id=host-a").Start();
        Assert.NotEqual(0, AbkWith(again, bob, "client", "list").ExitCode);
        Assert.Equal(0, again.Abk("client", "list").ExitCode);
    }

    [Fact]
    public void A_client_host_with_its_own_keyring_reads_its_own_snapshots_and_another_hosts_only_when_restoring_one_onto_it()
    {
        using var dir = new TempDir();
        var srcA = Path.Combine(dir.Path, "src-a");
        var srcB = Path.Combine(dir.Path, "src-b");
        CellTests.MakeSource(srcA);
        CellTests.MakeSource(srcB);
        File.WriteAllText(Path.Combine(srcB, "only-b.txt"), "host-b's own");
        // A: the first node (manager, library, client host-a, the cell key); B: client host-b with its keyring only.
        using var a = new CellProcess(Path.Combine(dir.Path, "node-a"), null, "--set", "actorbackup.client-id=host-a").Start();
        var nodeB = Path.Combine(dir.Path, "node-b");
        using var b = new CellProcess(nodeB, null, "--set", "actorbackup.roles=[client]", "--set", "actorbackup.client-id=host-b") { JoinCellOf = a }
            .Start(seedPort: a.Port.ToString());
        Assert.False(File.Exists(Path.Combine(nodeB, "keys", "master.json")), "host-b was given the cell key");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(nodeB, "keys", "client.json")));

        var snapA = a.AbkJson("backup", "--client", "host-a", srcA).GetProperty("snapshot").GetString()!;
        var backupB = a.AbkJson("backup", "--client", "host-b", srcB);
        Assert.True(backupB.GetProperty("state").GetString() == "SUCCEEDED", backupB + b.Log);
        var snapB = backupB.GetProperty("snapshot").GetString()!;

        // host-b restores its own snapshot with its keyring; the holder of the cell key restores it too, onto host-a.
        var own = Path.Combine(dir.Path, "own");
        var restored = a.Abk("restore", snapB, "--to", own, "--client", "host-b");
        Assert.True(restored.ExitCode == 0, restored.Stderr + restored.Stdout + b.Log);
        TreeCompare.AssertSame(TreeCompare.Describe(srcB), own + srcB);
        var onA = Path.Combine(dir.Path, "on-a");
        Assert.Equal(0, a.Abk("restore", snapB, "--to", onA, "--client", "host-a").ExitCode);
        TreeCompare.AssertSame(TreeCompare.Describe(srcB), onA + srcB);

        // host-a's snapshot onto host-b, as the operator asked: host-b lacks host-a's keys, and host-a's node gives
        // host-b its key for this restore only (the manager signed the assignment that names host-b).
        var across = Path.Combine(dir.Path, "across");
        var granted = a.Abk("restore", snapA, "--to", across, "--client", "host-b");
        Assert.True(granted.ExitCode == 0, granted.Stderr + granted.Stdout + b.Log);
        TreeCompare.AssertSame(TreeCompare.Describe(srcA), across + srcA);
        Assert.Contains("client host-a's key granted by host-a", b.Log);
        Assert.False(File.Exists(Path.Combine(nodeB, "keys", "master.json")), "host-b kept more than its keyring");

        // ls through host-b's node: its own snapshot there; host-a's goes to a node that holds host-a's keys.
        var lsOwn = b.Abk("ls", snapB);
        Assert.True(lsOwn.ExitCode == 0, lsOwn.Stderr);
        Assert.Contains("only-b.txt", lsOwn.Stdout);
        var lsA = b.Abk("ls", snapA);
        Assert.True(lsA.ExitCode == 0, lsA.Stderr + b.Log);
        Assert.DoesNotContain("only-b.txt", lsA.Stdout);
        // A catalog rebuild needs the cell key to check every client's manifests: a keyring node refuses it.
        var rebuild = b.Abk("catalog", "rebuild", "lib1");
        Assert.True(rebuild.ExitCode != 0, rebuild.Stdout);
        Assert.Contains("cell key", rebuild.Stderr + rebuild.Stdout);
    }

    [Fact]
    public async Task A_node_with_a_certificate_of_another_cell_never_joins()
    {
        using var dir = new TempDir();
        using var a = new CellProcess(Path.Combine(dir.Path, "node-a"), null, "--set", "actorbackup.client-id=host-a").Start();
        var nodeB = Path.Combine(dir.Path, "node-b");
        var certsB = Path.Combine(nodeB, "certs");
        Actorbackup("ca", "init", "--dir", certsB, "--name", "elsewhere");
        Actorbackup("ca", "issue", "--ca", certsB, "--role", "node", "--name", "host-b", "--roles", "media", "--libraries", "libb", "--out", certsB);
        var port = Ports.Free();
        var psi = new ProcessStartInfo(Processes.Actorbackup) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["--data", nodeB, "--port", port.ToString(), "--set", "actorbackup.client-id=host-b", "--set", "actorbackup.roles=[media]",
                     "--set", "actorbackup.libraries=[{id=libb}]", "--set", $"akka.cluster.seed-nodes=[\"akka.tcp://actorbackup@{a.ClusterNode}\"]"])
            psi.ArgumentList.Add(arg);
        var log = new System.Text.StringBuilder();
        using var b = Process.Start(psi)!;
        b.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        b.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        b.BeginOutputReadLine();
        b.BeginErrorReadLine();
        try
        {
            // Each side refuses the other's certificate in the TLS handshake and says why.
            await Eventually.Until(() => Task.FromResult(a.Log + Locked(log, l => l.ToString())), l => l.Contains("not from this cell's CA"),
                "a refused handshake in a log", TimeSpan.FromMinutes(1));
            var members = a.AbkJson("cluster", "show").GetProperty("members");
            Assert.Equal(1, members.GetArrayLength());
            Assert.DoesNotContain("libb", a.Abk("library", "list").Stdout);
        }
        finally
        {
            b.Kill(entireProcessTree: true);
            await b.WaitForExitAsync();
        }
    }

    private static T Locked<T>(System.Text.StringBuilder log, Func<System.Text.StringBuilder, T> read)
    {
        lock (log) return read(log);
    }
}
