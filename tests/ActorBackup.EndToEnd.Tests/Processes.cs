using System.Diagnostics;

namespace ActorBackup.EndToEnd.Tests;

public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the real executables built beside this test project.</summary>
public static class Processes
{
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "ActorBackup.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? throw new InvalidOperationException("cannot find ActorBackup.sln above the test folder");
    }

    private static string Configuration => AppContext.BaseDirectory.Contains("/bin/Release/") ? "Release" : "Debug";

    public static string Actorbackup => Path.Combine(RepoRoot, "src", "ActorBackup.Node", "bin", Configuration, "net10.0", "actorbackup");

    public static string Abk => Path.Combine(RepoRoot, "src", "ActorBackup.Shell", "bin", Configuration, "net10.0", "abk");


    /// <param name="input">written to its stdin, which is then closed (nothing: closed at once)</param>
    public static ProcessResult Run(string exe, IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null, string? input = null)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        if (input is not null) p.StandardInput.Write(input);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} {string.Join(' ', args)} did not finish");
        }
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
