using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Verify;

/// <summary>What a verify found: every chunk read back, opened and checked against its id, or what is damaged.</summary>
/// <param name="DamagedFiles">paths of the snapshot that cannot be restored whole (a directory ending in '/':
/// its listing is damaged, and everything under it with it), with the reason, at most <see cref="SnapshotVerifier.MaxReported"/></param>
/// <param name="BadIds">the damaged chunks' ids (at most <see cref="SnapshotVerifier.MaxReported"/>): what a heal copies again from another copy</param>
public sealed record VerifyResult(long Trees, long Chunks, long Bytes, long BadChunks, long DamagedFileCount, IReadOnlyList<string> DamagedFiles, double Seconds,
    IReadOnlyList<ChunkId> BadIds)
{
    public bool Ok => BadChunks == 0;
}

/// <summary>Progress of a verify: chunks and plaintext bytes checked so far.</summary>
public readonly record struct VerifyProgress(long Chunks, long Bytes, long BadChunks);

/// <summary>
/// Reads a snapshot back as a restore would, writing nothing: every tree and every chunk of every file (or a
/// random share of the file chunks) is read from the library, opened (AEAD), decompressed and hashed against its id. A chunk shared by several
/// files or snapshots is read once per verify; a bad one makes every file that needs it damaged.
/// </summary>
public static class SnapshotVerifier
{
    public const int MaxReported = 1000;
    private const int Batch = 64;

    /// <param name="sharePercent">1 to 99: only this share of the file chunks is read back, picked at random (each
    /// distinct chunk drawn once; every tree is read); otherwise all</param>
    public static VerifyResult Run(CellKeys keys, IChunkSource source, SnapshotManifest manifest, IProgress<VerifyProgress>? progress = null,
        CancellationToken cancel = default, int sharePercent = 0)
    {
        Archive.Archiver.CheckReadable(manifest);
        // A chunk id is uniformly random: its first 8 bytes, mixed with a seed of this run, pick the sample.
        var seed = (ulong)Random.Shared.NextInt64();
        var cut = sharePercent is > 0 and < 100 ? (ulong)(sharePercent / 100.0 * ulong.MaxValue) : ulong.MaxValue;
        bool Drawn(ChunkId id)
        {
            if (cut == ulong.MaxValue) return true;
            Span<byte> raw = stackalloc byte[ChunkId.Size];
            id.WriteTo(raw);
            return (System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(raw) ^ seed) < cut;
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var decoder = new ChunkDecoder(keys);
        var good = new HashSet<ChunkId>();
        var bad = new Dictionary<ChunkId, string>();
        var damaged = new List<string>();
        long trees = 0, bytes = 0, damagedCount = 0;
        // What a report shows, published by this thread after each batch and reported every 250 ms by a timer, also
        // while a read hangs (a watcher, and the manager's stall watch, see figures that stopped moving).
        long shownChunks = 0, shownBytes = 0, shownBad = 0;
        using var timer = progress is null ? null : new Timer(_ =>
            progress.Report(new VerifyProgress(Interlocked.Read(ref shownChunks), Interlocked.Read(ref shownBytes), Interlocked.Read(ref shownBad))), null, 250, 250);

        void Damaged(string path, string why)
        {
            damagedCount++;
            if (damaged.Count < MaxReported) damaged.Add($"{path}: {why}");
        }

        void Report()
        {
            Interlocked.Exchange(ref shownChunks, good.Count + bad.Count);
            Interlocked.Exchange(ref shownBytes, bytes);
            Interlocked.Exchange(ref shownBad, bad.Count);
        }

        // A folder's tree of several records (Tree.parts): each further record read as a tree of the same folder.
        var pending = new Stack<(ChunkId Tree, string Path, bool Part)>();
        pending.Push((new ChunkId(manifest.RootTree.Span), "", false));
        var ids = new List<ChunkId>(Batch);
        while (pending.Count > 0)
        {
            cancel.ThrowIfCancellationRequested();
            Report();
            var (treeId, dir, isPart) = pending.Pop();
            Tree tree;
            try
            {
                var plain = decoder.Load(treeId, source);
                tree = Tree.Parser.ParseFrom(plain);
                if (tree.Parts.Count > 0 && isPart) throw new InvalidDataException("a part of a folder's tree has parts of its own");
                TreeReader.CheckParts(treeId, tree.Parts.Count);
                foreach (var part in tree.Parts) pending.Push((TreeReader.PartId(treeId, part), dir, true));
                trees++;
                good.Add(treeId);
                bytes += plain.Length;
            }
            catch (Exception e) when (SourceFault.IsDamage(e)) // a lost connection fails the verify instead (ISourceFault)
            {
                bad[treeId] = e.Message;
                Damaged(dir + "/", $"its listing (tree {treeId.Short}) cannot be read: {e.Message}; nothing under it restores");
                continue;
            }
            foreach (var node in tree.Nodes)
            {
                var path = dir + "/" + Posix.PosixNames.Display(node.FileName());
                if (!node.Subtree.IsEmpty)
                {
                    pending.Push((node.SubtreeId(), path, false));
                    continue;
                }
                ChunkId? reading = null;
                if (!node.ChunkLists.IsEmpty)
                    try
                    {
                        // A big file's entries, in list records of their own: each read and checked like a tree.
                        node.ExpandChunkLists(listId =>
                        {
                            reading = listId;
                            if (bad.TryGetValue(listId, out var known)) throw new InvalidDataException(known); // another name of the file
                            var plain = decoder.Load(listId, source);
                            var list = NodeExtensions.ParseChunkList(listId, plain);
                            trees++;
                            good.Add(listId);
                            bytes += plain.Length;
                            return list;
                        });
                    }
                    catch (Exception e) when (SourceFault.IsDamage(e))
                    {
                        // A bad record like a bad chunk: the verify fails, and a heal may copy it back from another library.
                        if (reading is { } r) bad.TryAdd(r, e.Message);
                        Damaged(path, $"the list of its chunks cannot be read: {e.Message}; it does not restore");
                        continue;
                    }
                // A file's chunks, in batches read ahead; each distinct chunk once per verify.
                string? why = null;
                ids.Clear();
                for (var i = 0; i < node.ChunkCount(); i++)
                {
                    var id = node.ChunkAt(i);
                    if (NodeExtensions.IsHole(id)) { } // a sparse file's hole: no chunk
                    else if (bad.TryGetValue(id, out var known)) why ??= known;
                    else if (!good.Contains(id) && !ids.Contains(id) && Drawn(id)) ids.Add(id);
                    if (ids.Count == Batch || (i == node.ChunkCount() - 1 && ids.Count > 0))
                    {
                        cancel.ThrowIfCancellationRequested();
                        decoder.LoadMany(ids, source, (k, plain, error) =>
                        {
                            if (error is null)
                            {
                                good.Add(ids[k]);
                                bytes += plain.Length;
                            }
                            else
                            {
                                var message = error is ChunkIntegrityException ? error.Message : $"chunk {ids[k].Short}: {error.Message}";
                                bad[ids[k]] = message;
                                why ??= message;
                            }
                        });
                        ids.Clear();
                        Report();
                    }
                }
                if (why is not null) Damaged(path, why);
            }
        }
        timer?.Dispose();
        progress?.Report(new VerifyProgress(good.Count + bad.Count, bytes, bad.Count));
        return new VerifyResult(trees, good.Count + bad.Count, bytes, bad.Count, damagedCount, damaged, clock.Elapsed.TotalSeconds, bad.Keys.Take(MaxReported).ToList());
    }
}
