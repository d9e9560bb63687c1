using System.Diagnostics;

namespace ActorBackup.TestSupport;

/// <summary>Runs a program to its end (mount, umount, mkfs) and answers its output: an InvalidOperationException with its stderr when it fails.</summary>
internal static class Processes
{
    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {err.Result}");
        return output;
    }
}
