using System.Diagnostics;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Repository;

namespace ActorBackup.Engine.Tests;

public static class TestRepo
{
    /// <summary>Cheap Argon2 so tests stay quick; the production default is t=3, 64 MiB.</summary>
    public static readonly KeyStore.Argon2Parameters FastArgon = new(1, 8 * 1024 * 1024);

    public static Repository.Repository Create(string root, RepositoryConfig? config = null) =>
        Repository.Repository.Init(root, new KeySource.Passphrase("correct horse"), config, FastArgon);

    public static Repository.Repository Open(string root) => Repository.Repository.Open(root, new KeySource.Passphrase("correct horse"));

    public static byte[] RandomBytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static void Sh(string script)
    {
        var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", script]) { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"sh failed: {script}: {err}");
    }
}
