using System.Diagnostics;
using System.Text.Json;

namespace ActorBackup.EndToEnd.Tests;

/// <summary>
/// A real `actorbackup` node process on 127.0.0.1 with its own data folder and port, driven with the real
/// `abk`. Killed (SIGKILL) on dispose; its output is kept for failure messages.
/// </summary>
public sealed class CellProcess : IDisposable
{
    private Process? _process;
    private readonly System.Text.StringBuilder _log = new();
    public string DataDir { get; }
    /// <summary>The cluster (Akka.Remote) port.</summary>
    public int Port { get; }
    /// <summary>The operator endpoint's port, which `abk --node` names.</summary>
    public int OpsPort { get; } = Ports.Free();
    public IReadOnlyList<string> ExtraArgs { get; }
    /// <summary>Environment variables the node process gets besides this one's (a fake clock, say).</summary>
    public Dictionary<string, string> Environment { get; } = [];

    public CellProcess(string dataDir, int? port = null, params string[] extraArgs)
    {
        DataDir = dataDir;
        Port = port ?? Ports.Free();
        ExtraArgs = extraArgs;
    }

    /// <summary>Where `abk` reaches this node.</summary>
    public string Node => $"127.0.0.1:{OpsPort}";
    /// <summary>Where cluster members and integrators (ClusterClient) reach it.</summary>
    public string ClusterNode => $"127.0.0.1:{Port}";
    /// <summary>The operator credential this node created (or shares).</summary>
    public string CertsDir => Path.Combine(DataDir, "certs");
    public string Log { get { lock (_log) return _log.ToString(); } }

    /// <summary>
    /// The first node of the cell this one joins, whose CA issues this node's certificate (and whose operator
    /// certificate this node's abk uses) before it starts; null: this node is the first and creates the CA.
    /// </summary>
    public CellProcess? JoinCellOf { get; init; }

    public CellProcess Start(string? seedPort = null, string libraries = "lib1")
    {
        if (JoinCellOf is { } first && !File.Exists(Path.Combine(CertsDir, "node.crt"))) IssueCertificates(first, libraries);
        if (seedPort is not null && seedPort != Port.ToString() && JoinCellOf is null && !File.Exists(Path.Combine(CertsDir, "node.crt")))
            throw new InvalidOperationException("a node that joins another node's cell needs that node's CA: set JoinCellOf");
        var psi = new ProcessStartInfo(Processes.Actorbackup) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = DataDir };
        Directory.CreateDirectory(DataDir);
        foreach (var a in (string[])["--data", DataDir, "--port", Port.ToString(), "--set", $"actorbackup.ops.port={OpsPort}",
                     "--set", $"akka.cluster.seed-nodes=[\"akka.tcp://actorbackup@127.0.0.1:{seedPort ?? Port.ToString()}\"]", .. ExtraArgs])
            psi.ArgumentList.Add(a);
        foreach (var (name, value) in Environment) psi.Environment[name] = value;
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var r = Abk("--json", "library", "list");
            if (r.ExitCode == 0 && libraries.Split(',', StringSplitOptions.RemoveEmptyEntries).All(l => r.Stdout.Contains($"\"id\": \"{l}\"") && LibraryReachable(r.Stdout, l))) return this;
            if (_process.HasExited) throw new InvalidOperationException($"node exited with {_process.ExitCode}:\n{Log}");
            Thread.Sleep(500);
        }
        Kill(); // the caller never gets the object to dispose: do not leave the node running
        throw new TimeoutException($"node on port {Port} did not get ready:\n{Log}");
    }

    /// <summary>As an operator adds a host: `actorbackup ca issue --role node` on the first node's CA, copied here.</summary>
    private void IssueCertificates(CellProcess first, string libraries)
    {
        var clientId = ExtraArgs.Select(a => a.StartsWith("actorbackup.client-id=", StringComparison.Ordinal) ? a["actorbackup.client-id=".Length..] : null)
            .LastOrDefault(a => a is not null) ?? System.Environment.MachineName;
        var declared = ExtraArgs.Where(a => a.StartsWith("actorbackup.libraries=", StringComparison.Ordinal))
            .SelectMany(a => System.Text.RegularExpressions.Regex.Matches(a, @"id\s*=\s*""?([\w.-]+)").Select(m => m.Groups[1].Value)).ToList();
        var all = declared.Concat(libraries.Split(',', StringSplitOptions.RemoveEmptyEntries)).Append("lib1").Distinct();
        var issued = Processes.Run(Processes.Actorbackup, ["ca", "issue", "--ca", first.CertsDir, "--role", "node", "--name", clientId,
            "--libraries", string.Join(",", all), "--out", CertsDir]);
        if (issued.ExitCode != 0) throw new InvalidOperationException($"actorbackup ca issue failed: {issued.Stderr}{issued.Stdout}");
        foreach (var f in (string[])["operator.crt", "operator.key"]) File.Copy(Path.Combine(first.CertsDir, f), Path.Combine(CertsDir, f), overwrite: true);
        // A client host gets its own keyring, not the cell key (unless the test points it at a key folder).
        var roles = ExtraArgs.LastOrDefault(a => a.StartsWith("actorbackup.roles=", StringComparison.Ordinal));
        var firstKeys = Path.Combine(first.DataDir, "keys");
        if ((roles is null || roles.Contains("client")) && !ExtraArgs.Any(a => a.StartsWith("actorbackup.key-dir=", StringComparison.Ordinal))
            && File.Exists(Path.Combine(firstKeys, "master.json")) && !File.Exists(Path.Combine(DataDir, "keys", "client.json")))
        {
            var keys = Processes.Run(Processes.Actorbackup, ["keys", "issue", "--keys", firstKeys, "--client", clientId, "--out", Path.Combine(DataDir, "keys")]);
            if (keys.ExitCode != 0) throw new InvalidOperationException($"actorbackup keys issue failed: {keys.Stderr}{keys.Stdout}");
        }
    }

    private static bool LibraryReachable(string json, string id)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("libraries").EnumerateArray().Any(l => l.GetProperty("id").GetString() == id && l.GetProperty("reachable").GetBoolean());
    }

    /// <summary>abk on this node's host: a node whose clock the test moves (libfaketime) gives its shell the same clock, since
    /// the manager takes a signed command only within 5 minutes of its own.</summary>
    public ProcessResult Abk(params string[] args) => AbkWithInput(null, args);

    /// <summary>abk with <paramref name="input"/> piped to it (commands for its prompt, one a line).</summary>
    public ProcessResult AbkWithInput(string? input, params string[] args) => Processes.Run(Processes.Abk, ["--node", Node, "--certs", CertsDir, .. args],
        Environment.Where(e => e.Key is "LD_PRELOAD" or "DONT_FAKE_MONOTONIC" || e.Key.StartsWith("FAKETIME", StringComparison.Ordinal)).ToDictionary(),
        timeout: TimeSpan.FromMinutes(3), input: input);

    public JsonElement AbkJson(params string[] args)
    {
        var r = Abk(["--json", .. args]);
        if (r.ExitCode != 0) throw new InvalidOperationException($"abk {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr}{r.Stdout}");
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    /// <summary>SIGKILL: no shutdown hook runs, as when a machine loses power.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    /// <summary>The node's exit code once it has stopped by itself within <paramref name="timeout"/>; null: it still runs.</summary>
    public int? ExitCodeWithin(TimeSpan timeout)
    {
        if (_process is null || !_process.WaitForExit(timeout)) return null;
        _process.WaitForExit(); // and the last of its output read
        return _process.ExitCode;
    }

    /// <summary>SIGTERM: coordinated shutdown.</summary>
    public int Terminate()
    {
        if (_process is not { HasExited: false }) return _process?.ExitCode ?? 0;
        Processes.Run("/bin/kill", ["-TERM", _process.Id.ToString()]);
        if (!_process.WaitForExit(30_000)) Kill();
        else _process.WaitForExit(); // and the last of its output read (see Process.WaitForExit)
        return _process.ExitCode;
    }

    public void Dispose() => Kill();
}
