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
    /// <summary>
    /// Seals the manifest (ManifestSeal) under its client's keys, stores it under the cell's data keys (so that any
    /// node of the cell finds it in a rebuild; only its client's keys check its seal), adds it to the snapshot's
    /// references and commits.
    /// </summary>
    public static void Store(KeyRing ring, CellKeys keys, IChunkSink sink, SnapshotManifest manifest, int compressionLevel)
    {
        ManifestSeal.Seal(keys, manifest);
        using var upload = ring.Shared.Cipher.BeginUpload();
        using var encoder = new ChunkEncoder(ring.Shared, upload, compressionLevel);
        var stored = encoder.Store(manifest.ToByteArray(), RecordFlags.Manifest, sink);
        sink.AddReferences(manifest.Id, [stored.Id]);
        sink.Commit();
    }

    /// <summary>
    /// The manifests stored under <paramref name="ids"/>, opened and checked under their clients' keys (a damaged one
    /// throws, one whose client's keys this ring lacks throws MissingKeyException). One without a seal (from before
    /// manifests were sealed) is refused: every client host holds the data keys it is stored under, so it proves
    /// nothing.
    /// </summary>
    public static IEnumerable<SnapshotManifest> Open(KeyRing ring, IChunkSource source, IEnumerable<ChunkId> ids)
    {
        using var decoder = new ChunkDecoder(ring.Shared);
        foreach (var id in ids)
        {
            var manifest = SnapshotManifest.Parser.ParseFrom(decoder.Load(id, source));
            ManifestSeal.Check(ring.For(manifest), manifest);
            yield return manifest;
        }
    }

    /// <summary>
    /// The engine's own catalog again from its library: every manifest stored there that the catalog lacks is
    /// saved; one that cannot be read is named in the problems, and the others come back all the same.
    /// </summary>
    public static (int Found, IReadOnlyList<string> Added, IReadOnlyList<string> Problems) Rebuild(KeyRing ring, DiskLibrary library, SnapshotCatalog catalog)
    {
        var known = catalog.List().Select(m => m.Id).ToHashSet();
        var manifests = new List<SnapshotManifest>();
        var problems = new List<string>();
        foreach (var id in library.FindRecords(RecordFlags.Manifest))
        {
            try
            {
                manifests.AddRange(Open(ring, library, [id]));
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
