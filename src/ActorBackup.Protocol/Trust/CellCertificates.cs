using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ActorBackup.Protocol.Trust;

/// <summary>
/// The cell's certificate authority and the certificates it issues (ECDSA P-256, PEM files). A certs folder
/// holds <c>ca.crt</c> (every holder), <c>ca.key</c> (only where certificates are issued: the first node),
/// and pairs NAME.crt / NAME.key: <c>node</c> for a node, <c>operator</c>, <c>integrator</c> or <c>client</c> for a shell.
/// Keys are written 0600 in a 0700 folder. A peer is trusted when its chain ends at the cell's CA (no OS trust
/// store, no revocation lookups) and it carries a <see cref="CellIdentity"/>.
/// </summary>
public static class CellCertificates
{
    public const string CaCert = "ca.crt";
    public const string CaKey = "ca.key";
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateDir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>How far back a CA or certificate is valid from: a host whose clock is behind the issuer's takes it.</summary>
    private static readonly TimeSpan Backdated = TimeSpan.FromDays(1);

    /// <summary>The file name of a certificate pair for a role: node, operator, integrator, client.</summary>
    public static string PairName(CellRole role) => role.ToString().ToLowerInvariant();

    /// <summary>Creates the cell's CA in <paramref name="dir"/>; refuses to replace one.</summary>
    public static X509Certificate2 CreateCa(string dir, string cellName, int days = 365 * 20)
    {
        CreatePrivateDir(dir);
        if (File.Exists(Path.Combine(dir, CaCert)) || File.Exists(Path.Combine(dir, CaKey)))
            throw new IOException($"{dir} already holds a CA ({CaCert}): a cell keeps its CA; issue certificates with it instead");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN=ActorBackup cell CA {Escape(cellName)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = request.CreateSelfSigned(now - Backdated, now.AddDays(days));
        WritePair(dir, "ca", ca, key);
        return ca;
    }

    /// <summary>Issues a certificate for <paramref name="identity"/> signed by the CA in <paramref name="caDir"/>, written as NAME.crt/.key in <paramref name="outDir"/> with a copy of ca.crt.</summary>
    public static X509Certificate2 Issue(string caDir, CellIdentity identity, string outDir, int days = 365 * 5)
    {
        using var ca = LoadCaWithKey(caDir);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(identity.Name)}, OU={PairName(identity.Role)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false)); // server and client authentication
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        request.CertificateExtensions.Add(identity.ToExtension());
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(identity.Name.ToLowerInvariant());
        request.CertificateExtensions.Add(san.Build());
        var now = DateTimeOffset.UtcNow;
        var notAfter = now.AddDays(days) < ca.NotAfter ? now.AddDays(days) : ca.NotAfter;
        // Valid from a day back (not before the CA): a new host whose clock is behind the issuing host's (not yet synced
        // at its first boot) takes its certificate, where five minutes back it refused it.
        var notBefore = now - Backdated > new DateTimeOffset(ca.NotBefore.ToUniversalTime()) ? now - Backdated : new DateTimeOffset(ca.NotBefore.ToUniversalTime());
        using var issued = request.Create(ca, notBefore, notAfter, RandomNumberGenerator.GetBytes(16));
        CreatePrivateDir(outDir);
        var name = PairName(identity.Role);
        WritePair(outDir, name, issued, key);
        var caCopy = Path.Combine(outDir, CaCert);
        if (Path.GetFullPath(outDir) != Path.GetFullPath(caDir)) WriteNew(caCopy, ca.ExportCertificatePem() + "\n", Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return X509Certificate2.CreateFromPem(issued.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The CA certificate of a certs folder (no key).</summary>
    public static X509Certificate2 LoadCa(string dir)
    {
        var path = Path.Combine(dir, CaCert);
        if (!File.Exists(path)) throw new FileNotFoundException($"no cell CA certificate at {path}");
        try
        {
            var ca = X509CertificateLoader.LoadCertificateFromFile(path);
            if (ca.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
                throw new InvalidDataException($"{path} is not a CA certificate");
            return ca;
        }
        catch (CryptographicException e)
        {
            throw new InvalidDataException($"{path} is not a certificate ({e.Message}): copy ca.crt again from the cell's first node");
        }
    }

    /// <summary>
    /// Refuses a secret file (a private key, the cell key, a client's keyring) that others than its owner may read or
    /// write, as ssh and PostgreSQL refuse theirs: one copied, untarred or mounted 0644 hands the cell to any local user
    /// (a CA key issues operator certificates nothing revokes).
    /// </summary>
    public static void CheckPrivate(string path)
    {
        if (OperatingSystem.IsWindows() || !File.Exists(path)) return;
        var open = File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        if (open != 0)
            throw new InvalidDataException($"{path} holds a secret and may be {(open & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) switch { 0 => "written", _ => "read" }} by " +
                                           $"{((open & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0 ? "any user of this host" : "its group")}: " +
                                           $"make it its owner's alone (chmod 600 {path}), and if others could read it, replace the secret");
    }

    /// <summary>A certificate with its private key from NAME.crt / NAME.key in <paramref name="dir"/>, checked against the cell CA.</summary>
    public static (X509Certificate2 Certificate, CellIdentity Identity) LoadPair(string dir, string name, X509Certificate2 ca)
    {
        var crt = Path.Combine(dir, name + ".crt");
        var key = Path.Combine(dir, name + ".key");
        if (!File.Exists(crt) || !File.Exists(key)) throw new FileNotFoundException($"no certificate {name}.crt with its {name}.key in {dir}");
        CheckPrivate(key);
        X509Certificate2 loaded;
        try
        {
            loaded = X509Certificate2.CreateFromPemFile(crt, key);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException) // ArgumentException: a key that is not the certificate's
        {
            // The exception inside says the two files are not one pair (a key replaced without its certificate).
            throw new InvalidDataException($"{crt} or {key} is not a certificate with its key ({e.Message}): issue it again with 'actorbackup ca issue'", e);
        }
        if (Check(loaded, ca) is { } reason)
        {
            loaded.Dispose();
            throw new InvalidDataException($"{crt}: {reason}");
        }
        return (loaded, CellIdentity.From(loaded)!);
    }

    /// <summary>Why <paramref name="peer"/> is not a certificate of the cell whose CA is <paramref name="ca"/>; null when it is.</summary>
    public static string? Check(X509Certificate? peer, X509Certificate2 ca)
    {
        if (peer is null) return "no certificate was presented";
        using var owned = peer as X509Certificate2 is null ? X509CertificateLoader.LoadCertificate(peer.GetRawCertData()) : null;
        var cert = owned ?? (X509Certificate2)peer;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (!chain.Build(cert))
        {
            // Out of its validity period: a clock that is off (this host's or the issuer's), or a certificate past its
            // years, is said as such, not as a certificate of another cell.
            var now = DateTime.Now;
            if (now > ca.NotAfter || now < ca.NotBefore)
                return $"this cell's CA is valid from {ca.NotBefore.ToUniversalTime():u} to {ca.NotAfter.ToUniversalTime():u} and this host's clock says {now.ToUniversalTime():u}: " +
                       "set the clock right, or, past its end, the cell needs a new CA (actorbackup ca init) and every certificate issued again";
            // Only when the dates are all that is wrong: a certificate of another cell that also expired is another cell's.
            const X509ChainStatusFlags dates = X509ChainStatusFlags.NotTimeValid | X509ChainStatusFlags.NotTimeNested;
            if (chain.ChainStatus.Any(s => s.Status.HasFlag(X509ChainStatusFlags.NotTimeValid)) && chain.ChainStatus.All(s => (s.Status & ~dates) == 0))
                return now < cert.NotBefore
                    ? $"certificate '{cert.Subject}' is valid only from {cert.NotBefore.ToUniversalTime():u} and this host's clock says {now.ToUniversalTime():u}: set this host's clock (or the issuing host's) right"
                    : now > cert.NotAfter
                        ? $"certificate '{cert.Subject}' expired at {cert.NotAfter.ToUniversalTime():u}: issue a new one (actorbackup ca issue) on the CA's host"
                        : $"certificate '{cert.Subject}' or this cell's CA is out of its validity period at {now.ToUniversalTime():u}: check the clocks and the CA";
            return $"certificate '{cert.Subject}' is not from this cell's CA ({string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct())})";
        }
        if (chain.ChainElements.Count != 2 || chain.ChainElements[1].Certificate.Thumbprint != ca.Thumbprint)
            return $"certificate '{cert.Subject}' is not issued directly by this cell's CA";
        if (CellIdentity.From(cert) is null) return $"certificate '{cert.Subject}' carries no ActorBackup role";
        if (RevokedCertificates.IsRevoked(ca, cert))
            return $"certificate '{cert.Subject}' (serial {RevokedCertificates.SerialOf(cert)}) was revoked by an operator of this cell (abk cert list): issue a new one if its holder is to be let in again";
        return null;
    }

    /// <summary>
    /// A TLS validation callback: the peer must hold a certificate of this cell whose role <paramref name="allowed"/>
    /// accepts. The OS's policy errors are ignored on purpose: the cell's CA is in no OS store and names are not hosts.
    /// </summary>
    public static RemoteCertificateValidationCallback Validator(X509Certificate2 ca, Func<CellIdentity, bool> allowed) =>
        (_, cert, _, _) => Check(cert, ca) is null && CellIdentity.From(cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert!.GetRawCertData())) is { } id && allowed(id);

    /// <summary>TLS settings of a node's listener (data plane, operator endpoint): mutual, peers of the cell only.</summary>
    public static SslServerAuthenticationOptions ServerOptions(X509Certificate2 own, X509Certificate2 ca, Func<CellIdentity, bool> allowed) => new()
    {
        ServerCertificateContext = SslStreamCertificateContext.Create(own, null, offline: true),
        ClientCertificateRequired = true,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        CertificateChainPolicy = ChainPolicy(ca),
        RemoteCertificateValidationCallback = Validator(ca, allowed),
    };

    /// <summary>
    /// The chain TLS builds for a peer: to the cell's CA alone. Without it, SslStream first builds one against the OS
    /// store (reading every root of /etc/ssl/certs: 0.2 s of every abk command), only for our callback to ignore it.
    /// </summary>
    private static X509ChainPolicy ChainPolicy(X509Certificate2 ca)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck, DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.Add(ca);
        return policy;
    }

    /// <summary>
    /// TLS settings of a connection to a node: presents <paramref name="own"/>, accepts only a node of the cell (and of
    /// those only one that <paramref name="allowed"/> accepts: the data plane's, a media node of the library it serves).
    /// </summary>
    public static SslClientAuthenticationOptions ClientOptions(X509Certificate2 own, X509Certificate2 ca, Func<CellIdentity, bool>? allowed = null) => new()
    {
        TargetHost = "actorbackup",
        ClientCertificateContext = SslStreamCertificateContext.Create(own, null, offline: true),
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        CertificateChainPolicy = ChainPolicy(ca),
        RemoteCertificateValidationCallback = Validator(ca, id => id.Role == CellRole.Node && (allowed is null || allowed(id))),
    };

    private static X509Certificate2 LoadCaWithKey(string dir)
    {
        var key = Path.Combine(dir, CaKey);
        if (!File.Exists(key))
            throw new FileNotFoundException($"no CA key at {key}: issue certificates on the host that holds the cell's CA (DATA/certs of its first node), or create one with 'actorbackup ca init'");
        CheckPrivate(key);
        var ca = LoadCa(dir);
        try
        {
            return X509Certificate2.CreateFromPemFile(Path.Combine(dir, CaCert), key);
        }
        catch (CryptographicException e)
        {
            ca.Dispose();
            throw new InvalidDataException($"{key} is not the key of {Path.Combine(dir, CaCert)} ({e.Message})");
        }
    }

    /// <summary>
    /// Both files written whole under temporary names first, then moved over: a disk that fills between the two never
    /// leaves a new key beside the old certificate (a node that no longer starts).
    /// </summary>
    private static void WritePair(string dir, string name, X509Certificate2 cert, ECDsa key)
    {
        var keyPath = Path.Combine(dir, name + ".key");
        var certPath = Path.Combine(dir, name + ".crt");
        try
        {
            WriteTemporary(keyPath, key.ExportPkcs8PrivateKeyPem() + "\n", Private);
            WriteTemporary(certPath, cert.ExportCertificatePem() + "\n", Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        catch
        {
            File.Delete(keyPath + ".tmp");
            File.Delete(certPath + ".tmp");
            throw;
        }
        File.Move(keyPath + ".tmp", keyPath, overwrite: true);
        File.Move(certPath + ".tmp", certPath, overwrite: true);
    }

    /// <summary>
    /// Finishes what <see cref="WritePair"/> left undone in <paramref name="dir"/> when it was cut short (a kill, a power
    /// cut): a key moved into place whose certificate was not gets its certificate (written whole before either moved);
    /// a pair neither of whose files moved is dropped, the old pair standing.
    /// </summary>
    public static void FinishPairs(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var tmp in Directory.GetFiles(dir, "*.tmp"))
        {
            if (!File.Exists(tmp)) continue; // dropped with its other half
            var path = tmp[..^".tmp".Length];
            var (crt, key) = path.EndsWith(".crt", StringComparison.Ordinal) ? (path, path[..^4] + ".key")
                : path.EndsWith(".key", StringComparison.Ordinal) ? (path[..^4] + ".crt", path) : (path, path);
            if (crt == key) continue; // not a pair's (ca.crt's copy is written whole by one move)
            if (File.Exists(key + ".tmp"))
            {
                File.Delete(key + ".tmp");
                File.Delete(crt + ".tmp");
            }
            else if (File.Exists(crt + ".tmp") && File.Exists(key)) File.Move(crt + ".tmp", crt, overwrite: true);
            else File.Delete(tmp);
        }
    }

    /// <summary>Written under a temporary name, then moved over: a reader never sees half a key.</summary>
    private static void WriteNew(string path, string text, UnixFileMode mode)
    {
        WriteTemporary(path, text, mode);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>PATH.tmp holding <paramref name="text"/>, on disk.</summary>
    private static void WriteTemporary(string path, string text, UnixFileMode mode)
    {
        var tmp = path + ".tmp";
        File.Delete(tmp);
        using (var f = new FileStream(tmp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = mode }))
        using (var w = new StreamWriter(f))
        {
            w.Write(text);
            w.Flush();
            f.Flush(true); // on disk before it replaces the old one: a power cut leaves one whole key, never an empty file
        }
    }

    private static void CreatePrivateDir(string dir)
    {
        if (!Directory.Exists(dir)) Directory.CreateDirectory(dir, PrivateDir);
    }

    private static string Escape(string s) => s.Replace("\\", "").Replace(",", "").Replace("=", "").Replace("+", "").Replace("\"", "");
}
