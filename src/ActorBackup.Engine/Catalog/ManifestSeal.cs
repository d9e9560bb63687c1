using System.Security.Cryptography;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Catalog;

/// <summary>
/// A snapshot manifest is sealed by the client that made it (HMAC-SHA-256 under a key derived from the cell key)
/// and checked by every client before it trusts one: before a restore, a verify, `ls`, a file index, or using
/// it as a backup's parent. Whoever holds no cell key (the manager, a media agent, anyone who reaches them)
/// cannot forge a snapshot, change what one holds or which tree it points to, or pass an old one off under a
/// new id, unnoticed. The seal covers everything but where the snapshot is kept (library, spans, volumes, which
/// the manager changes when it moves one) and itself.
/// </summary>
public static class ManifestSeal
{
    public const int Size = 32;

    /// <summary>Seals <paramref name="manifest"/> in place.</summary>
    public static void Seal(CellKeys keys, SnapshotManifest manifest) => manifest.Mac = ByteString.CopyFrom(Mac(keys, manifest));

    /// <summary>Parses and checks a manifest; throws <see cref="ForgedManifestException"/> when its seal is missing or wrong.</summary>
    public static SnapshotManifest Open(CellKeys keys, ByteString bytes)
    {
        SnapshotManifest manifest;
        try
        {
            manifest = SnapshotManifest.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ForgedManifestException($"a snapshot manifest of {bytes.Length} bytes does not parse ({e.Message}): not used");
        }
        Check(keys, manifest);
        return manifest;
    }

    /// <summary>
    /// The parent a backup may compare with: a sealed one as it is; one with no seal at all (made before manifests were
    /// sealed) is no parent, and the backup reads everything (a full one: nothing it could skip is trusted); a wrong
    /// seal is tampering and throws.
    /// </summary>
    public static SnapshotManifest? Parent(CellKeys keys, SnapshotManifest? parent)
    {
        if (parent is null || parent.Mac.IsEmpty) return null;
        Check(keys, parent);
        return parent;
    }

    public static void Check(CellKeys keys, SnapshotManifest manifest)
    {
        if (manifest.Mac.Length != Size || !CryptographicOperations.FixedTimeEquals(manifest.Mac.Span, Mac(keys, manifest)))
            throw new ForgedManifestException(
                $"snapshot {manifest.Id}{(manifest.Client == "" ? "" : " of " + manifest.Client)} does not carry this cell's seal " +
                $"({(manifest.Mac.IsEmpty ? "none" : "a wrong one")}): it was not made by a client of this cell, or was changed since; it is not used. " +
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
