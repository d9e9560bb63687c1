using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;
using Google.Protobuf;

namespace ActorBackup.Engine.Catalog;

/// <summary>
/// Snapshot manifests kept in the library itself, encrypted like any chunk and flagged <see cref="RecordFlags.Manifest"/>,
/// part of the snapshot's references: with the volumes and the key alone, the catalog of snapshots comes back
/// (`abk catalog rebuild` in a cell, `actorbackup engine rebuild` on its own).
/// </summary>
public static class StoredManifests
{
    /// <summary>Seals the manifest (ManifestSeal), stores it, adds it to the snapshot's references and commits.</summary>
    public static void Store(CellKeys keys, IChunkSink sink, SnapshotManifest manifest, int compressionLevel)
    {
        ManifestSeal.Seal(keys, manifest);
        using var upload = keys.Cipher.BeginUpload();
        using var encoder = new ChunkEncoder(keys, upload, compressionLevel);
        var stored = encoder.Store(manifest.ToByteArray(), RecordFlags.Manifest, sink);
        sink.AddReferences(manifest.Id, [stored.Id]);
        sink.Commit();
    }

    /// <summary>
    /// The manifests stored under <paramref name="ids"/>, opened and checked (a damaged one throws). A stored manifest is
    /// an encrypted chunk that only a holder of the cell key could write: one from before manifests were sealed is
    /// authentic all the same, and comes back sealed.
    /// </summary>
    public static IEnumerable<SnapshotManifest> Open(CellKeys keys, IChunkSource source, IEnumerable<ChunkId> ids)
    {
        using var decoder = new ChunkDecoder(keys);
        foreach (var id in ids)
        {
            var manifest = SnapshotManifest.Parser.ParseFrom(decoder.Load(id, source));
            if (manifest.Mac.IsEmpty) ManifestSeal.Seal(keys, manifest);
            else ManifestSeal.Check(keys, manifest);
            yield return manifest;
        }
    }

    /// <summary>
    /// The engine's own catalog again from its library: every manifest stored there that the catalog lacks is
    /// saved; one that cannot be read is named in the problems, and the others come back all the same.
    /// </summary>
    public static (int Found, IReadOnlyList<string> Added, IReadOnlyList<string> Problems) Rebuild(CellKeys keys, DiskLibrary library, SnapshotCatalog catalog)
    {
        var known = catalog.List().Select(m => m.Id).ToHashSet();
        var manifests = new List<SnapshotManifest>();
        var problems = new List<string>();
        foreach (var id in library.FindRecords(RecordFlags.Manifest))
        {
            try
            {
                manifests.AddRange(Open(keys, library, [id]));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or KeyNotFoundException or InvalidProtocolBufferException)
            {
                problems.Add($"the manifest in record {id.Short} cannot be read: {e.Message}");
            }
        }
        var added = new List<string>();
        foreach (var manifest in manifests.OrderBy(m => m.FinishedUnixMs))
        {
            if (!known.Add(manifest.Id)) continue;
            catalog.Save(manifest);
            added.Add(manifest.Id);
        }
        return (manifests.Count, added, problems);
    }
}
