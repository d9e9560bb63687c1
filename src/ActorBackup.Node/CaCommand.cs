using System.CommandLine;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup ca init|issue|show`: the cell's certificate authority. The first node of a cell creates one in its
/// certs folder by itself; these verbs make one by hand and issue certificates to further nodes, operators,
/// integrators and client hosts.
/// </summary>
public static class CaCommand
{
    public static Command Build()
    {
        var ca = new Command("ca", "the cell's certificate authority: create it, issue certificates, show one");

        var dir = new Option<string>("--dir") { Description = "where the CA goes (ca.crt, ca.key)", HelpName = "DIR", DefaultValueFactory = _ => Path.Combine("data", "certs") };
        var cell = new Option<string>("--name") { Description = "the cell's name, in the CA's subject", HelpName = "NAME", DefaultValueFactory = _ => Environment.MachineName };
        var init = new Command("init", "create the cell's CA in DIR (refused when one is there)") { dir, cell };
        init.SetAction(pr =>
        {
            var d = pr.GetValue(dir)!;
            using var made = CellCertificates.CreateCa(d, pr.GetValue(cell)!);
            Console.WriteLine($"created the cell CA in {Path.GetFullPath(d)} ({made.Subject}, until {made.NotAfter:yyyy-MM-dd}); keep {CellCertificates.CaKey} private");
            return 0;
        });
        ca.Subcommands.Add(init);

        var caDir = new Option<string>("--ca") { Description = "the folder with the CA's ca.crt and ca.key", HelpName = "DIR", DefaultValueFactory = _ => Path.Combine("data", "certs") };
        var role = new Option<string>("--role") { Description = "node, operator, integrator, client or auditor (reads the catalog and the audit trail, changes nothing)", HelpName = "ROLE", Required = true };
        role.AcceptOnlyFromAmong("node", "operator", "integrator", "client", "auditor");
        var name = new Option<string>("--name") { Description = "who holds it: a node's client id (its host name by default), a person, a program", HelpName = "NAME", Required = true };
        var roles = new Option<string?>("--roles") { Description = "a node's roles, e.g. media,client (default manager,media,client)", HelpName = "LIST" };
        var libraries = new Option<string?>("--libraries") { Description = "the libraries a media node serves, e.g. lib2,lib3", HelpName = "LIST" };
        var client = new Option<string?>("--client") { Description = "the client a client-host certificate acts for (default: --name); a node's client id (default: --name)", HelpName = "ID" };
        var days = new Option<int>("--days") { Description = "valid for this many days", HelpName = "N", DefaultValueFactory = _ => 365 * 5 };
        var output = new Option<string>("--out") { Description = "folder for ca.crt and the new pair (node.crt/.key, operator.crt/.key, ...)", HelpName = "DIR", Required = true };
        var issue = new Command("issue", "issue a certificate signed by the cell's CA") { caDir, role, name, roles, libraries, client, days, output };
        issue.SetAction(pr =>
        {
            var r = CellIdentity.ParseRole(pr.GetValue(role)!);
            var n = pr.GetValue(name)!;
            var nodeRoles = r == CellRole.Node ? Split(pr.GetValue(roles) ?? "manager,media,client") : [];
            foreach (var x in nodeRoles)
                if (x is not ("manager" or "media" or "client")) throw new UsageException($"unknown node role '{x}': use manager, media, client");
            var clientId = r switch
            {
                CellRole.Client => pr.GetValue(client) ?? n,
                CellRole.Node when nodeRoles.Contains("client") => pr.GetValue(client) ?? n,
                _ => "",
            };
            var identity = CellIdentity.Of(r, n, clientId, nodeRoles, r == CellRole.Node ? Split(pr.GetValue(libraries) ?? "") : []);
            var o = pr.GetValue(output)!;
            using var issued = CellCertificates.Issue(pr.GetValue(caDir)!, identity, o, pr.GetValue(days));
            var pair = CellCertificates.PairName(r);
            Console.WriteLine($"issued {identity} until {issued.NotAfter:yyyy-MM-dd}: {Path.Combine(Path.GetFullPath(o), pair)}.crt and .key, with ca.crt");
            Console.WriteLine(r == CellRole.Node
                ? $"copy {o} to the node's certs folder (DATA/certs, or actorbackup.certs-dir)"
                : $"give abk that folder: abk --certs {o} ... (or ABK_CERTS={o})");
            return 0;
        });
        ca.Subcommands.Add(issue);

        var file = new Argument<string>("CERT") { Description = "a certificate file (.crt)" };
        var show = new Command("show", "what a certificate of the cell says: holder, role, validity") { file };
        show.SetAction(pr =>
        {
            var path = pr.GetValue(file)!;
            if (!File.Exists(path)) throw new FileNotFoundException($"no certificate at {path}");
            System.Security.Cryptography.X509Certificates.X509Certificate2 cert;
            try
            {
                cert = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(path);
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                throw new InvalidDataException($"{path} is not a certificate ({e.Message}): give a .crt file, not its .key", e);
            }
            using var _ = cert;
            Console.WriteLine($"{cert.Subject}, issued by {cert.Issuer}, valid {cert.NotBefore:yyyy-MM-dd} to {cert.NotAfter:yyyy-MM-dd}, serial {cert.SerialNumber}");
            Console.WriteLine(CellIdentity.From(cert) is { } id ? $"holder: {id}" : "holder: no ActorBackup role (not a certificate of a cell)");
            return 0;
        });
        ca.Subcommands.Add(show);
        return ca;
    }

    private static string[] Split(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
