using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Ops;
using Akka.Actor;
using Akka.Configuration;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup [--config FILE]... [--set KEY=VALUE]... [--data DIR]`: runs a node of a cell until SIGTERM or
/// Ctrl-C, then leaves the cluster through coordinated shutdown. With no argument, the embedded cell.
/// </summary>
public static class NodeCommand
{
    public const string Usage = """
        usage: actorbackup [--config FILE]... [--set KEY=VALUE]... [--data DIR] [--port N]
               actorbackup engine ...          the backup engine alone (actorbackup engine --help)
               actorbackup bench-recovery [--chunks N] [--postgres CONNECTION_STRING]
                                               how long a media agent takes to recover an index of N chunks

        With no argument: the embedded cell, one node with the manager, media and client roles, SQLite in
        ./data and one disk library, listening on 127.0.0.1:4053. Node files (hocon/node-*.conf) set roles,
        libraries, client id and data folder; --set overrides any HOCON key; so does $ABK_HOCON (HOCON text).
        """;

    public static Config BuildConfig(Args a)
    {
        var overrides = new List<string>();
        foreach (var s in a.Values("set"))
        {
            var eq = s.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--set wants KEY=VALUE, got '{s}'");
            overrides.Add($"{s[..eq]} = {Quote(s[(eq + 1)..])}");
        }
        if (a.Value("data") is { } data) overrides.Add($"actorbackup.data-dir = {Quote(data)}");
        if (a.Value("port") is { } port)
        {
            overrides.Add($"akka.remote.dot-netty.tcp.port = {int.Parse(port)}");
        }
        var config = ConfigurationFactory.ParseString(string.Join("\n", overrides));
        if (Environment.GetEnvironmentVariable("ABK_HOCON") is { Length: > 0 } env) config = config.WithFallback(ConfigurationFactory.ParseString(env));
        foreach (var file in a.Values("config").Reverse())
        {
            if (!File.Exists(file)) throw new UsageException($"config file {file} does not exist");
            config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(file)));
        }
        var persistence = config.GetString("actorbackup.persistence", "sqlite");
        return config.WithFallback(CellNode.Defaults(Path.Combine(AppContext.BaseDirectory, "hocon"), persistence));
    }

    private static string Quote(string value) =>
        value.StartsWith('[') || value.StartsWith('{') || long.TryParse(value, out _) || value is "on" or "off" or "true" or "false"
            ? value : "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    public static int Run(string[] args)
    {
        var a = new Args(args);
        if (a.Flag("help")) { Console.WriteLine(Usage); return 0; }
        if (a.Positional is ["bench-recovery"]) return RecoveryBench.Run(a.Int("chunks", 1_000_000), a.Value("postgres"));
        if (a.Positional.Count > 0) throw new UsageException($"unexpected '{a.Positional[0]}'");
        var config = BuildConfig(a);
        CellNode node;
        try
        {
            node = CellNode.Start(config);
        }
        catch (Exception e) when (e.InnerException is System.Net.Sockets.SocketException || e is System.Net.Sockets.SocketException
                                  || e.GetBaseException() is System.Net.Sockets.SocketException)
        {
            var port = config.GetInt("akka.remote.dot-netty.tcp.port");
            Console.Error.WriteLine($"actorbackup: cannot listen on port {port}: another node runs here? stop it, or give this one --port N");
            return 1;
        }
        var system = node.System;
        var self = Akka.Cluster.Cluster.Get(system).SelfAddress;
        Console.WriteLine($"actorbackup node {self} roles [{string.Join(", ", node.Settings.Roles)}] data {node.Settings.DataDir}"
                          + (node.Settings.Roles.Contains("media") ? $" libraries [{string.Join(", ", node.Settings.Libraries.Select(l => l.Id + "=" + l.Path))}]" : ""));
        var stopping = 0;
        void Stop()
        {
            if (Interlocked.Exchange(ref stopping, 1) == 1) return;
            CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance).Wait(TimeSpan.FromSeconds(30));
        }
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            Task.Run(Stop);
        };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop();
        Akka.Cluster.Cluster.Get(system).RegisterOnMemberUp(() => Console.WriteLine("cell member up"));
        system.WhenTerminated.Wait();
        Console.WriteLine("actorbackup node stopped");
        return 0;
    }
}
