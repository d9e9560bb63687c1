using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Protocol.Trust;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// This node's place in the cell's trust: the cell CA, its own certificate and what that certificate lets it be.
/// Every connection the node makes or takes is mutual TLS under it: Akka.Remote (<see cref="RemoteSetup"/>), the
/// data plane and the operator endpoint (<see cref="ServerOptions"/>, <see cref="ClientOptions"/>). Found in the
/// ActorSystem as a setup (<see cref="Of"/>).
/// </summary>
public sealed class NodeTrust : IDisposable
{
    public string Dir { get; }
    public X509Certificate2 Ca { get; }
    public X509Certificate2 Certificate { get; }
    public CellIdentity Identity { get; }

    public NodeTrust(string dir, X509Certificate2 ca, X509Certificate2 certificate, CellIdentity identity)
    {
        Dir = dir;
        Ca = ca;
        Certificate = certificate;
        Identity = identity;
    }

    /// <summary>
    /// The node's trust from its certs folder (actorbackup.certs-dir, default DATA/certs). A node that is the first
    /// of its seeds and finds no certificate there creates the cell's CA with its own and an operator's
    /// certificate (the embedded default: one command, no setup); any other node must be given its certificate.
    /// Where the CA's key is at hand, a node certificate that no longer names the node's roles or libraries is
    /// issued again.
    /// </summary>
    public static NodeTrust ForNode(Config config, NodeSettings settings)
    {
        var dir = settings.CertsDir;
        var wanted = CellIdentity.Of(CellRole.Node, settings.ClientId, settings.Roles.Contains("client") ? settings.ClientId : "", settings.Roles,
            settings.Roles.Contains("media") ? settings.Libraries.Select(l => l.Id).ToList() : []);
        var node = CellCertificates.PairName(CellRole.Node);
        CellCertificates.FinishPairs(dir); // a pair whose writing was cut short
        var haveCa = File.Exists(Path.Combine(dir, CellCertificates.CaCert));
        var haveNode = File.Exists(Path.Combine(dir, node + ".crt"));
        var caKey = Path.Combine(dir, CellCertificates.CaKey);
        var operatorCert = Path.Combine(dir, CellCertificates.PairName(CellRole.Operator) + ".crt");
        if (!haveCa && !haveNode && IsFirstSeed(config))
        {
            if (File.Exists(caKey))
            {
                // A CA key whose certificate never reached the disk (the first start cut short): nothing was issued with
                // it. Kept aside, not deleted; a new CA is made.
                File.Move(caKey, caKey + ".unused", overwrite: true);
                Console.Error.WriteLine($"actorbackup: {caKey} had no {CellCertificates.CaCert} beside it (a first start cut short): moved to {caKey}.unused; making the cell's CA");
            }
            CellCertificates.CreateCa(dir, settings.ClientId);
            CellCertificates.Issue(dir, CellIdentity.Of(CellRole.Operator, "operator"), dir);
            CellCertificates.Issue(dir, wanted, dir);
        }
        else if (haveCa && !haveNode && File.Exists(caKey))
        {
            // The CA is here but not this node's certificate: a first start cut short after the CA was made, or a
            // certificate removed to have it made again. The first seed also gets the operator's it never got.
            Console.Error.WriteLine($"actorbackup: no {node}.crt in {dir}: issued with the cell's CA there");
            if (IsFirstSeed(config) && !File.Exists(operatorCert)) CellCertificates.Issue(dir, CellIdentity.Of(CellRole.Operator, "operator"), dir);
            CellCertificates.Issue(dir, wanted, dir);
        }
        else if (!haveCa || !haveNode)
            throw new ConfigurationException(
                $"no {(haveCa ? node + ".crt" : CellCertificates.CaCert)} in {dir}: " +
                (haveCa ? $"and no {CellCertificates.CaKey} there to issue one (the cell's CA is kept on another host). "
                        : $"this node is not the first seed of its cell ({FirstSeedNote(config)}), so it cannot create the cell's CA. ") +
                $"On the host holding the CA (DATA/certs of the first node) run 'actorbackup ca issue --ca DATA/certs --role node --name {settings.ClientId} " +
                $"--roles {string.Join(",", settings.Roles)}{(settings.Roles.Contains("media") ? " --libraries " + string.Join(",", settings.Libraries.Select(l => l.Id)) : "")} " +
                $"--out DIR' and copy DIR to {dir} here (or point actorbackup.certs-dir at it)");
        var ca = Load(() => CellCertificates.LoadCa(dir));
        var (cert, identity) = Load(() =>
        {
            try
            {
                return CellCertificates.LoadPair(dir, node, ca);
            }
            catch (InvalidDataException e) when (e.InnerException is System.Security.Cryptography.CryptographicException or ArgumentException && File.Exists(caKey))
            {
                // A new key beside the old certificate (a reissue cut short by a power cut): issued again, the CA at hand.
                Console.Error.WriteLine($"actorbackup: {e.Message}; issued again with the cell's CA in {dir}");
                CellCertificates.Issue(dir, wanted, dir);
                return CellCertificates.LoadPair(dir, node, ca);
            }
        });
        if (identity.Role != CellRole.Node)
            throw new ConfigurationException($"{Path.Combine(dir, node + ".crt")} is a certificate of {identity}, not of a node");
        if (!Covers(identity, wanted))
        {
            if (!File.Exists(caKey))
                throw new ConfigurationException($"this node's certificate ({Path.Combine(dir, node + ".crt")}) is for {identity}, but the node is {wanted}: " +
                                                 "if the certificate is right, make the node's config say what it says (actorbackup.client-id for the name, " +
                                                 "actorbackup.roles, actorbackup.libraries; a node given no config file runs every role as its host name); " +
                                                 "else issue it again on the host holding the cell's CA ('actorbackup ca issue --role node ...')");
            cert.Dispose();
            // Said, not silent: a client-id or role typed wrong on the CA's host renames the node in the cell.
            Console.Error.WriteLine($"actorbackup: this node's certificate named {identity}; the node is now {wanted}: issued again with the cell's CA in {dir}");
            CellCertificates.Issue(dir, wanted, dir);
            (cert, identity) = Load(() => CellCertificates.LoadPair(dir, node, ca));
        }
        LoadRevoked(dir, ca);
        if (ca.NotAfter - DateTime.Now < TimeSpan.FromDays(90))
            Console.Error.WriteLine($"actorbackup: the cell's CA expires at {ca.NotAfter.ToUniversalTime():u}: no certificate it issues lasts longer; " +
                                    "before then make a new CA (actorbackup ca init) and issue every node's and operator's certificate with it");
        else if (cert.NotAfter - DateTime.Now < TimeSpan.FromDays(90))
            Console.Error.WriteLine($"actorbackup: this node's certificate expires at {cert.NotAfter.ToUniversalTime():u}: issue a new one before then " +
                                    "(actorbackup ca issue on the CA's host), or the node cannot join its cell");
        return new NodeTrust(dir, ca, cert, identity);
    }

    /// <summary>The cell's revoked serial numbers this node has heard of, one a line: refused from the node's start on.</summary>
    public const string RevokedFile = "revoked";

    private static void LoadRevoked(string dir, X509Certificate2 ca)
    {
        var path = Path.Combine(dir, RevokedFile);
        if (!File.Exists(path)) return;
        try
        {
            RevokedCertificates.Add(ca, File.ReadLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).Take(1_000_000));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"{path} (the cell's revoked certificates) cannot be read: {e.Message}");
        }
    }

    /// <summary>
    /// Takes the revoked certificates of the manager's list: refused from now on, and (when any is new) written to the
    /// certs folder, so that they are refused from the next start on too, before the node hears from the manager again.
    /// Whether any was new.
    /// </summary>
    public bool Learn(IEnumerable<string> serials)
    {
        lock (_learning) return LearnLocked(serials); // the manager's node learns from the manager and from the list (one temporary file)
    }

    private readonly object _learning = new();
    /// <summary>Whether <see cref="RevokedFile"/> lacks serials refused in memory (its last write failed).</summary>
    private bool _fileBehind;

    private bool LearnLocked(IEnumerable<string> serials)
    {
        var path = Path.Combine(Dir, RevokedFile);
        if (!RevokedCertificates.Add(Ca, serials) && !_fileBehind && (File.Exists(path) || RevokedCertificates.Of(Ca).Count == 0)) return false;
        _fileBehind = true; // until written: a failed write is tried again at the next list, the same one too
        var all = RevokedCertificates.Of(Ca).Order(StringComparer.Ordinal);
        Engine.Posix.Posix.WriteFileDurably(path, System.Text.Encoding.ASCII.GetBytes(string.Concat(all.Select(x => x + "\n"))));
        _fileBehind = false;
        return true;
    }

    private static T Load<T>(Func<T> load)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            throw new ConfigurationException(e.Message);
        }
    }

    /// <summary>Whether a certificate's node identity allows what the node is configured to be.</summary>
    private static bool Covers(CellIdentity have, CellIdentity wanted) =>
        have.Name == wanted.Name && (wanted.Client == "" || have.Client == wanted.Client) && wanted.NodeRoles.All(have.NodeRoles.Contains) && wanted.Libraries.All(have.Libraries.Contains);

    /// <summary>
    /// Whether this start makes the cell: the node is its first seed and its certs folder holds neither the CA nor its own
    /// certificate (<see cref="ForNode"/> then makes the CA, and the node's start makes the cell key before it), or holds
    /// the CA with its key and nothing issued yet (a CA made into this folder before the first start, or a first start
    /// of an older build cut short after its CA).
    /// </summary>
    public static bool MakesCell(Config config, NodeSettings settings)
    {
        bool Has(string file) => File.Exists(Path.Combine(settings.CertsDir, file));
        var nothingIssued = !Has(CellCertificates.PairName(CellRole.Node) + ".crt");
        var fresh = nothingIssued && !Has(CellCertificates.CaCert);
        var caAlone = nothingIssued && Has(CellCertificates.CaKey) && !Has(CellCertificates.PairName(CellRole.Operator) + ".crt");
        return (fresh || caAlone) && IsFirstSeed(config);
    }

    /// <summary>Whether this node is the first of its seed nodes (the one that forms the cell), by its HOCON.</summary>
    public static bool IsFirstSeed(Config config)
    {
        var seeds = config.GetStringList("akka.cluster.seed-nodes");
        if (seeds.Count == 0) return true;
        var (host, port) = OwnAddress(config);
        return Uri.TryCreate(seeds[0], UriKind.Absolute, out var first) && first.Port == port && string.Equals(first.Host, host, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The node's own address as Akka makes it: public-hostname and public-port when set (the hostname may be 0.0.0.0).</summary>
    private static (string Host, int Port) OwnAddress(Config config) => (
        config.GetString("akka.remote.dot-netty.tcp.public-hostname", "") is { Length: > 0 } pub ? pub : config.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1"),
        config.GetInt("akka.remote.dot-netty.tcp.public-port", 0) is > 0 and var publicPort ? publicPort : config.GetInt("akka.remote.dot-netty.tcp.port", 0));

    /// <summary>
    /// Why this node is not its first seed, as both are written (the comparison is of the words: a seed written as a
    /// host name is not this node written as its IP address), for a message that refuses what only the first seed may do.
    /// </summary>
    public static string FirstSeedNote(Config config)
    {
        var (host, port) = OwnAddress(config);
        var seeds = config.GetStringList("akka.cluster.seed-nodes");
        var first = seeds.Count > 0 && Uri.TryCreate(seeds[0], UriKind.Absolute, out var u) ? $"{u.Host}:{u.Port}" : seeds.FirstOrDefault() ?? "";
        return $"akka.cluster.seed-nodes[0] is {first}, this node is {host}:{port} (akka.remote.dot-netty.tcp.hostname or public-hostname, and port): " +
               "if this is the cell's first node, write them alike";
    }

    /// <summary>A listener of this node: mutual TLS; a peer whose certificate <paramref name="allowed"/> accepts.</summary>
    public SslServerAuthenticationOptions ServerOptions(Func<CellIdentity, bool> allowed) => CellCertificates.ServerOptions(Certificate, Ca, allowed);

    /// <summary>
    /// A connection from this node to the data plane of library <paramref name="library"/>: the node at the other end
    /// must hold a media node's certificate for that library (a node that only claims the library's role in the
    /// cluster, and got its shard, cannot take its backups).
    /// </summary>
    public SslClientAuthenticationOptions ClientOptions(string library) =>
        CellCertificates.ClientOptions(Certificate, Ca, id => MessageSignature.IsMediaNode(id, library));

    /// <summary>
    /// Akka.Remote over TLS with this node's certificate: mutual authentication, and a peer is admitted only with a
    /// certificate of this cell (node or integrator); the OS trust store plays no part.
    /// </summary>
    public DotNettySslSetup RemoteSetup() => new(Certificate, suppressValidation: false, requireMutualAuthentication: true, validateCertificateHostname: false,
        (cert, _, peer, _, log) =>
        {
            if (CellCertificates.Check(cert, Ca) is { } reason)
            {
                log.Warning("refused the connection of {0}: {1}", peer, reason);
                return false;
            }
            var id = CellIdentity.From(cert!)!;
            if (id.Role is CellRole.Node or CellRole.Integrator) return true;
            log.Warning("refused the connection of {0}: {1} may not join the cell's remoting (only nodes and integrators)", peer, id);
            return false;
        });

    public void Dispose()
    {
        Certificate.Dispose();
        Ca.Dispose();
    }

    /// <summary>The trust of the node an ActorSystem belongs to; null in a system started without one (tests of one actor).</summary>
    public static NodeTrust? Of(ActorSystem system) => system.Settings.Setup.Get<NodeTrustSetup>().Value?.Trust;
}

/// <summary>Carries a node's trust into its ActorSystem.</summary>
public sealed class NodeTrustSetup(NodeTrust trust) : Setup
{
    public NodeTrust Trust { get; } = trust;
}
