using System.Runtime.InteropServices;

namespace ActorBackup.Shell;

/// <summary>
/// abk trusts the cell's CA alone, yet on Linux the first X509 chain a process builds (the TLS handshake builds
/// one for the node's certificate, whatever trust mode) makes OpenSSL load every root of the OS store
/// (/etc/ssl/certs: about 0.1 s, two thirds of a command). Pointing OpenSSL's store variables at nothing, in the
/// native environment where OpenSSL reads them, before any certificate is touched, skips that.
/// docs/benchmarks.md, "The shell".
/// </summary>
internal static partial class SystemTrustStore
{
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    public static void Skip()
    {
        if (!OperatingSystem.IsLinux()) return;
        SetEnv("SSL_CERT_FILE", "/dev/null", 1);
        SetEnv("SSL_CERT_DIR", "/nonexistent", 1);
    }
}
