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

    /// <summary>
    /// A file of <paramref name="size"/> bytes with 64 KiB of data at its start and at <paramref name="second"/>, holes
    /// between, and twice its size allocated past its end (fallocate --keep-size): more blocks than its size, so its
    /// block count says nothing of its holes.
    /// </summary>
    public static void WritePreallocated(string path, long size, long second, int seed)
    {
        using (var f = new FileStream(path, FileMode.Create))
        {
            f.Write(RandomBytes(64 * 1024, seed));
            f.Position = second;
            f.Write(RandomBytes(64 * 1024, seed + 1));
            f.SetLength(size);
        }
        Sh($"fallocate --keep-size --offset {size} --length {2 * size} '{path}'");
        Assert.False(Posix.Posix.LStat(path)!.Value.MayBeSparse);
    }
}
