using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace ActorBackup.Protocol.Trust;

/// <summary>What a certificate of the cell lets its holder be.</summary>
public enum CellRole
{
    /// <summary>A node of the cell: its Akka roles (manager, media, client), the libraries it serves, its client id.</summary>
    Node,
    /// <summary>An operator (abk): every command.</summary>
    Operator,
    /// <summary>An integrator: starts, watches and lists jobs and snapshots; deletes, prunes, downs and sets no commands.</summary>
    Integrator,
    /// <summary>A protected host's own shell: backs up, restores and lists its own client's data only.</summary>
    Client,
    /// <summary>An auditor: reads the catalog, the jobs, the definitions and the audit trail; changes, starts and restores nothing, lists no file names.</summary>
    Auditor,
}

/// <summary>
/// Who holds a certificate of the cell, as its CA signed it: the role, the name, and for a node its roles,
/// libraries and client id (for a client host, the client it may act for). Carried in a certificate extension
/// of its own (<see cref="Oid"/>, a UTF8String "role=node;name=...;roles=a,b;libraries=x,y;client=c"), read only
/// from a certificate whose chain ends at the cell's CA.
/// </summary>
public sealed record CellIdentity(CellRole Role, string Name, IReadOnlyList<string> NodeRoles, IReadOnlyList<string> Libraries, string Client)
{
    /// <summary>A UUID-based OID (2.25), ours alone: no registration needed.</summary>
    public const string Oid = "2.25.218466963247903125035870227246020720841";
    private const int MaxText = 4096;

    public static CellIdentity Of(CellRole role, string name, string client = "", IReadOnlyList<string>? nodeRoles = null, IReadOnlyList<string>? libraries = null)
    {
        CheckWord(name, "name");
        if (client != "") CheckWord(client, "client");
        foreach (var r in nodeRoles ?? []) CheckWord(r, "role");
        foreach (var l in libraries ?? []) CheckWord(l, "library");
        if (role == CellRole.Client && client == "") throw new ArgumentException("a client certificate names the client it may act for (--client ID)");
        return new CellIdentity(role, name, nodeRoles ?? [], libraries ?? [], client);
    }

    /// <summary>Whether this identity may act for <paramref name="client"/>'s data: an operator or a node for all, a client host for its own.</summary>
    public bool MayActFor(string client) => Role is CellRole.Operator or CellRole.Node or CellRole.Integrator || (Role == CellRole.Client && Client == client);

    public override string ToString() => Role switch
    {
        CellRole.Node => $"node {Name} (roles {string.Join(",", NodeRoles)}; libraries {string.Join(",", Libraries)}{(Client == "" ? "" : "; client " + Client)})",
        CellRole.Client => $"client host {Name} (client {Client})",
        _ => $"{Role.ToString().ToLowerInvariant()} {Name}",
    };

    public X509Extension ToExtension()
    {
        var text = $"role={Role.ToString().ToLowerInvariant()};name={Name};roles={string.Join(",", NodeRoles)};libraries={string.Join(",", Libraries)};client={Client}";
        var w = new AsnWriter(AsnEncodingRules.DER);
        w.WriteCharacterString(UniversalTagNumber.UTF8String, text);
        // Not critical: a TLS peer that does not know the extension must still build the chain.
        return new X509Extension(Oid, w.Encode(), critical: false);
    }

    /// <summary>The identity a certificate carries; null when it carries none or a damaged one.</summary>
    public static CellIdentity? From(X509Certificate2 certificate)
    {
        var ext = certificate.Extensions[Oid];
        if (ext is null || ext.RawData.Length > MaxText) return null;
        string text;
        try
        {
            var r = new AsnReader(ext.RawData, AsnEncodingRules.DER);
            text = r.ReadCharacterString(UniversalTagNumber.UTF8String);
            if (r.HasData) return null;
        }
        catch (AsnContentException)
        {
            return null;
        }
        var fields = new Dictionary<string, string>();
        foreach (var part in text.Split(';'))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0 || !fields.TryAdd(part[..eq], part[(eq + 1)..])) return null;
        }
        if (!fields.TryGetValue("role", out var role) || !fields.TryGetValue("name", out var name) || name == "") return null;
        CellRole parsed;
        switch (role)
        {
            case "node": parsed = CellRole.Node; break;
            case "operator": parsed = CellRole.Operator; break;
            case "integrator": parsed = CellRole.Integrator; break;
            case "client": parsed = CellRole.Client; break;
            case "auditor": parsed = CellRole.Auditor; break;
            default: return null;
        }
        var client = fields.GetValueOrDefault("client", "");
        if (parsed == CellRole.Client && client == "") return null;
        return new CellIdentity(parsed, name, List(fields.GetValueOrDefault("roles", "")), List(fields.GetValueOrDefault("libraries", "")), client);
    }

    public static CellRole ParseRole(string role) => role switch
    {
        "node" => CellRole.Node,
        "operator" => CellRole.Operator,
        "integrator" => CellRole.Integrator,
        "client" => CellRole.Client,
        "auditor" => CellRole.Auditor,
        _ => throw new ArgumentException($"unknown certificate role '{role}': use node, operator, integrator, client or auditor"),
    };

    private static string[] List(string s) => s == "" ? [] : s.Split(',');

    /// <summary>Names, roles, libraries and client ids are words: letters, digits, '-', '_', '.', at most 128.</summary>
    private static void CheckWord(string value, string what)
    {
        if (value.Length is 0 or > 128 || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ArgumentException($"certificate {what} '{value}' must be 1-128 letters, digits, '-', '_' or '.'");
    }
}
