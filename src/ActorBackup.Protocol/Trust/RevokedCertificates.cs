using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ActorBackup.Protocol.Trust;

/// <summary>
/// The serial numbers of the certificates a cell revoked (abk cert revoke), per cell CA, for this process: every check
/// of a peer's or a signer's certificate against that CA (<see cref="CellCertificates.Check"/>,
/// <see cref="SignedMessages.Signer"/>) refuses them. Filled by the node from its certs folder at start and from the
/// manager's signed lists (Cluster/Trust/Revocations); only ever added to.
/// </summary>
public static class RevokedCertificates
{
    private static readonly ConcurrentDictionary<string, ImmutableHashSet<string>> ByCa = new();

    private static string KeyOf(X509Certificate2 ca) => Convert.ToHexString(ca.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>
    /// A serial number as the cell writes it (upper-case hex, no separators, no leading zero bytes); null when
    /// <paramref name="written"/> is not one (at most 20 bytes, RFC 5280).
    /// </summary>
    public static string? Normalize(string written)
    {
        var hex = new string(written.Where(c => c is not (':' or ' ' or '-')).ToArray()).ToUpperInvariant();
        if (hex.StartsWith("0X", StringComparison.Ordinal)) hex = hex[2..];
        if (hex.Length == 0 || hex.Length > 40 || hex.Any(c => !char.IsAsciiHexDigit(c))) return null;
        if (hex.Length % 2 == 1) hex = "0" + hex;
        while (hex.Length > 2 && hex.StartsWith("00", StringComparison.Ordinal)) hex = hex[2..];
        return hex;
    }

    /// <summary>The serial number of <paramref name="cert"/> as <see cref="Normalize"/> writes it.</summary>
    public static string SerialOf(X509Certificate cert) => Normalize(cert.GetSerialNumberString()) ?? cert.GetSerialNumberString();

    /// <summary>Adds <paramref name="serials"/> to the revoked certificates of <paramref name="ca"/>'s cell; whether any was new.</summary>
    public static bool Add(X509Certificate2 ca, IEnumerable<string> serials)
    {
        var add = serials.Select(Normalize).OfType<string>().ToList();
        var added = false;
        ByCa.AddOrUpdate(KeyOf(ca), _ =>
        {
            added = add.Count > 0;
            return add.ToImmutableHashSet(StringComparer.Ordinal);
        }, (_, set) =>
        {
            var union = set.Union(add);
            added = union.Count > set.Count;
            return union;
        });
        return added;
    }

    /// <summary>Whether <paramref name="cert"/> is revoked in <paramref name="ca"/>'s cell.</summary>
    public static bool IsRevoked(X509Certificate2 ca, X509Certificate cert) =>
        ByCa.TryGetValue(KeyOf(ca), out var set) && set.Contains(SerialOf(cert));

    /// <summary>The revoked serial numbers of <paramref name="ca"/>'s cell.</summary>
    public static IReadOnlyCollection<string> Of(X509Certificate2 ca) => ByCa.TryGetValue(KeyOf(ca), out var set) ? set : [];
}
