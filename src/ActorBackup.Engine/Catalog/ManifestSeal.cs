using System.Security.Cryptography;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Catalog;

/// <summary>
/// A snapshot manifest is sealed by the client that made it (HMAC-SHA-256 under its client's manifest key: KeyRing)
/// and checked by every client before it trusts one: before a restore, a verify, `ls`, a file index, or using
/// it as a backup's parent. Whoever holds neither the cell key nor that client's keyring (the manager, a media
/// agent, another client host with its own keyring, anyone who reaches them) cannot forge a snapshot, change what one holds or which tree it points to, or pass an old one off under a
/// new id, unnoticed. The seal covers everything but where the snapshot is kept (library, spans, volumes, which
/// the manager changes when it moves one) and itself.
/// </summary>
public static class ManifestSeal
{
    public const int Size = 32;

    /// <summary>Seals <paramref name="manifest"/> in place, under its client's keys (which it then names).</summary>
    public static void Seal(CellKeys keys, SnapshotManifest manifest)
    {
        if (manifest.Client != keys.Client)
            throw new ArgumentException($"snapshot {manifest.Id} of client {manifest.Client} cannot be sealed under client {keys.Client}'s keys");
        manifest.Keys = keys.Scheme;
        manifest.Mac = ByteString.CopyFrom(Mac(keys, manifest));
    }

    /// <summary>
    /// The parent a backup under <paramref name="keys"/> may compare with, and the keys its trees are under: a sealed
    /// snapshot of the same client whose file chunks are under the same keys. One with no seal at all (made before
    /// manifests were sealed), under keys this node lacks, or under another data domain is no parent, and the backup
    /// reads everything (a full one: nothing it could skip is trusted); a wrong seal is tampering and throws.
    /// </summary>
    public static (SnapshotManifest Manifest, CellKeys Keys)? Parent(KeyRing ring, CellKeys keys, SnapshotManifest? parent)
    {
        if (parent is null || parent.Mac.IsEmpty || parent.Client != keys.Client || !ring.Holds(parent.Client, parent.Keys)) return null;
        var parentKeys = ring.For(parent);
        if (parentKeys.Data != keys.Data) return null;
        Check(parentKeys, parent);
        return (parent, parentKeys);
    }

    public static void Check(CellKeys keys, SnapshotManifest manifest)
    {
        if (manifest.Client != keys.Client || manifest.Keys != keys.Scheme || manifest.Mac.Length != Size
            || !CryptographicOperations.FixedTimeEquals(manifest.Mac.Span, Mac(keys, manifest)))
            throw new ForgedManifestException(
                $"snapshot {manifest.Id}{(manifest.Client == "" ? "" : " of " + manifest.Client)} does not carry its client's seal " +
                $"({(manifest.Mac.IsEmpty ? "none" : "a wrong one")}): it was not made by that client of this cell, or was changed since; it is not used. " +
                "Delete it from the catalog (abk snapshot delete) and run a new backup");
    }

    private static byte[] Mac(CellKeys keys, SnapshotManifest manifest)
    {
        var content = manifest.Clone();
        content.Mac = ByteString.Empty;
        content.Library = "";
        content.Spans.Clear();
        content.Volumes.Clear();
        return HMACSHA256.HashData(keys.ManifestKey, content.ToByteArray());
    }
}

/// <summary>A snapshot manifest whose seal does not check: forged, changed, or from another cell (an IOException, as damaged data is).</summary>
public sealed class ForgedManifestException(string message) : IOException(message);
