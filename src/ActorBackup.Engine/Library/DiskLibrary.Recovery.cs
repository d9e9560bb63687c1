using System.Text.Json;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

// Opening, creating and rebuilding a library; finding records written after the last commit.
public sealed partial class DiskLibrary
{
    /// <summary>
    /// Opens (or creates) a library whose index and volume table are kept by its owner, the media agent,
    /// in its journal. Whole records written after the owner's last commit are found again and come back
    /// in the next <see cref="Commit"/>; a torn tail is cut.
    /// </summary>
    /// <param name="medium">where the volumes are (default: ROOT/volumes on disk)</param>
    public static DiskLibrary OpenOwned(string root, string id, long volumeCapacity, ChunkIndex index, IEnumerable<VolumeEntry> volumes, IVolumeMedium? medium = null)
    {
        Directory.CreateDirectory(Path.Combine(root, "volumes"));
        var manifest = new LibraryManifest { Id = id, VolumeCapacity = volumeCapacity, Created = DateTimeOffset.UtcNow, Volumes = volumes.Select(Clone).ToList() };
        return Opened(new DiskLibrary(root, manifest, index, ownsIndex: false, medium), lib =>
        {
            try
            {
                lib.WriteManifest();
            }
            catch (IOException e)
            {
                lib._broken = DescribeWriteFailure(id, root, e); // opens for reading; writes wait for room
            }
            lib.RecoverUncommitted();
            lib.DeleteRecycled();
        });
    }

    public static DiskLibrary Create(string root, string id, long volumeCapacity = 4L * 1024 * 1024 * 1024)
    {
        if (string.IsNullOrWhiteSpace(id) || id.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw new ArgumentException($"library id '{id}' may hold only letters, digits, '-', '_' and '.'");
        if (volumeCapacity < 1024 * 1024 || volumeCapacity > ChunkLocation.MaxOffset)
            throw new ArgumentException($"volume capacity must be between 1 MiB and 1 TiB, got {volumeCapacity}");
        if (File.Exists(Path.Combine(root, "library.json"))) throw new IOException($"{root} already holds a library: open it instead");
        Directory.CreateDirectory(Path.Combine(root, "volumes"));
        var manifest = new LibraryManifest { Id = id, VolumeCapacity = volumeCapacity, Created = DateTimeOffset.UtcNow };
        return Opened(new DiskLibrary(root, manifest, new ChunkIndex()), lib => lib.WriteManifest());
    }

    /// <summary>library.json's values as Create would have made them: a damaged file is damage, never a crash later.</summary>
    private static void CheckManifest(LibraryManifest m)
    {
        if (m.Format > 1) throw new Volumes.NewerFormatException("library.json", m.Format, 1);
        if (m.Format != 1) throw new InvalidDataException($"format {m.Format} (this build reads 1)");
        if (string.IsNullOrWhiteSpace(m.Id) || m.Id.Length > 128 || m.Id.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw new InvalidDataException($"library id '{m.Id}' is not valid");
        if (m.VolumeCapacity < 1024 * 1024 || m.VolumeCapacity > ChunkLocation.MaxOffset) throw new InvalidDataException($"volume_capacity {m.VolumeCapacity} is not between 1 MiB and 1 TiB");
        if (m.Volumes is null) throw new InvalidDataException("no volume table");
        var numbers = new HashSet<uint>();
        foreach (var v in m.Volumes)
        {
            if (v is null || v.Number > ChunkLocation.MaxVolume || !numbers.Add(v.Number))
                throw new InvalidDataException($"the volume table names volume {v?.Number.ToString() ?? "null"} twice or out of bounds");
            if (v.Bytes < 0 || v.Records < 0) throw new InvalidDataException($"volume {v.Number} has a negative size");
        }
    }

    /// <summary>Finishes opening <paramref name="lib"/>; a failure closes it (giving its writer lock back) before it is thrown.</summary>
    private static DiskLibrary Opened(DiskLibrary lib, Action<DiskLibrary> finish)
    {
        try
        {
            finish(lib);
            return lib;
        }
        catch
        {
            lib.Dispose();
            throw;
        }
    }

    public static bool Exists(string root) => File.Exists(Path.Combine(root, "library.json"));

    /// <summary>A disk volume file no longer than a header and all zeros (or empty): a creation that wrote nothing.</summary>
    private bool NeverWritten(string file)
    {
        if (Sequential) return false; // a cartridge's file is the changer's
        var info = new FileInfo(file);
        if (info.Length > VolumeFormat.MaxHeaderSize) return false;
        return !File.ReadAllBytes(file).AsSpan().ContainsAnyExcept((byte)0);
    }

    public static DiskLibrary Open(string root)
    {
        var manifestPath = Path.Combine(root, "library.json");
        if (!File.Exists(manifestPath)) throw new DirectoryNotFoundException($"{root} is not an ActorBackup library (no library.json): create one first, or check the path");
        LibraryManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<LibraryManifest>(File.ReadAllText(manifestPath), Json) ?? throw new InvalidDataException("empty");
            CheckManifest(manifest);
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"{manifestPath} is damaged ({e.Message}): rebuild the library from its volumes", e);
        }
        var indexPath = Path.Combine(root, "index.abi");
        ChunkIndex index;
        if (File.Exists(indexPath))
        {
            try
            {
                using var f = new FileStream(indexPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                index = ChunkIndex.ReadFrom(f);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
                throw new InvalidDataException($"{indexPath} is damaged ({e.Message}): rebuild the library from its volumes", e);
            }
        }
        else if (manifest.Volumes.Count(v => v.Records > 0) is var holding and > 0)
            // Written before library.json at every commit, so only lost by hand or by the file system: opened empty, every
            // committed chunk would be unknown, and a prune would find every volume dead and delete them all.
            throw new InvalidDataException($"{indexPath} is missing, but the volume table lists {holding} volume(s) holding records: the chunk index was lost; rebuild the library from its volumes");
        else index = new ChunkIndex();
        return Opened(new DiskLibrary(root, manifest, index), lib =>
        {
            lib.RecoverUncommitted();
            lib.DeleteRecycled();
        });
    }

    /// <summary>
    /// Like Bacula's bscan: forgets the index and the volume table and reads them back from the volumes alone
    /// (the footer of a sealed volume, else record by record). Damaged records are left out and reported.
    /// </summary>
    public static DiskLibrary Rebuild(string root, string? id = null, long? volumeCapacity = null)
    {
        var volumes = Path.Combine(root, "volumes");
        if (!Directory.Exists(volumes)) throw new DirectoryNotFoundException($"{volumes} does not exist: nothing to rebuild from");
        LibraryManifest? old = null;
        try { old = JsonSerializer.Deserialize<LibraryManifest>(File.ReadAllText(Path.Combine(root, "library.json")), Json); }
        catch (Exception e) when (e is IOException or JsonException) { }
        var manifest = new LibraryManifest
        {
            Id = id ?? old?.Id ?? "",
            VolumeCapacity = volumeCapacity ?? old?.VolumeCapacity ?? 4L * 1024 * 1024 * 1024,
            Created = old?.Created ?? DateTimeOffset.UtcNow,
        };
        var index = new ChunkIndex();
        var problems = new List<string>();
        foreach (var file in Directory.EnumerateFiles(volumes, "vol-*.abv").Order(StringComparer.Ordinal))
        {
            try
            {
                using var reader = new VolumeReader(file);
                if (manifest.Id == "") manifest.Id = reader.Header.LibraryId;
                var scan = reader.Scan();
                var n = reader.Header.VolumeNumber;
                // The first whole record of a chunk wins (volumes in order, records in order): a later record under the same
                // id (a second copy, or one a hostile writer appended) never replaces it.
                foreach (var r in scan.Records)
                    if (!index.Contains(r.Id)) index.Set(r.Id, new ChunkLocation(n, r.Offset, r.PayloadLength));
                foreach (var d in scan.Damage) problems.Add(d.ToString());
                manifest.Volumes.Add(new VolumeEntry
                {
                    Number = n, Label = reader.Header.Label, Records = scan.Records.Count, Bytes = reader.Length,
                    State = scan.Damage.Count > 0 ? VolumeState.Error : scan.Sealed ? VolumeState.Full : VolumeState.Append,
                    Error = scan.Damage.Count > 0 ? scan.Damage[0].ToString() : null,
                });
            }
            catch (Exception e) when (e is VolumeCorruptException or NewerFormatException)
            {
                problems.Add(e.Message); // a newer build's volume: left out of the table, never taken for damage
            }
        }
        if (manifest.Id == "") throw new InvalidDataException($"no readable volume under {volumes}: give the library id to rebuild an empty library");
        // Only the newest unsealed volume takes appends; any older unsealed one is closed for writing.
        var appendable = manifest.Volumes.Where(v => v.State == VolumeState.Append).Select(v => v.Number).DefaultIfEmpty(0u).Max();
        foreach (var v in manifest.Volumes.Where(v => v.State == VolumeState.Append && v.Number != appendable)) v.State = VolumeState.ReadOnly;
        return Opened(new DiskLibrary(root, manifest, index) { LastOpen = new OpenReport(index.Count, 0, problems) }, lib => lib.Commit());
    }

    private void RecoverUncommitted()
    {
        var problems = new List<string>();
        var recovered = 0;
        long cut = 0;
        var known = _manifest.Volumes.ToDictionary(v => v.Number);
        foreach (var file in _medium.Files())
        {
            uint number;
            string label;
            try
            {
                using var r = new VolumeReader(file);
                number = r.Header.VolumeNumber;
                label = r.Header.Label; // a cartridge's: its own label
            }
            catch (NewerFormatException e)
            {
                problems.Add(e.Message); // left as it is: neither appended to nor taken as damaged (its number given to no new volume: HighestWritten)
                continue;
            }
            catch (VolumeCorruptException e)
            {
                if (NeverWritten(file))
                {
                    // Created by an append that stopped before its header reached the disk (a crash, a kill): it holds
                    // nothing, and left there it would stop the next volume of that number from being created.
                    File.Delete(file);
                    continue;
                }
                problems.Add(e.Message);
                continue;
            }
            if (known.TryGetValue(number, out var entry) && entry.State != VolumeState.Append) continue;
            var before = new FileInfo(file).Length;
            try
            {
                var committedBytes = entry?.Bytes ?? 0;
                var writer = VolumeWriter.OpenForAppend(file, out var scan, committedBytes);
                foreach (var rec in scan.Records)
                {
                    if (Has(rec.Id)) continue; // committed (here or in another volume) or found already
                    // Before the committed length, a record the index lacks was removed by a prune: it stays gone.
                    if (rec.Offset < committedBytes) continue;
                    _pending[rec.Id] = new ChunkLocation(number, rec.Offset, rec.PayloadLength);
                    recovered++;
                }
                cut += before - writer.Length;
                if (entry is null)
                {
                    entry = new VolumeEntry { Number = number, Label = label, State = VolumeState.Append };
                    _manifest.Volumes.Add(entry);
                }
                entry.Bytes = writer.Length;
                entry.Records = writer.Records.Count;
                // On tape every unsealed cartridge goes on taking appends (each drive wrote its own; the streams adopt
                // them as they write), else only the newest (held by no stream until one writes): older ones are closed.
                if (Sequential) _writers[-(int)number] = writer;
                else if (!_writers.TryGetValue(0, out var newest) || newest.Number < number)
                {
                    if (newest is not null) MarkReadOnly(newest);
                    _writers[0] = writer;
                }
                else MarkReadOnly(writer);
            }
            catch (VolumeCorruptException e)
            {
                problems.Add(e.Message);
                entry ??= new VolumeEntry { Number = number, Label = label };
                if (!_manifest.Volumes.Contains(entry)) _manifest.Volumes.Add(entry);
                entry.State = VolumeState.Error;
                entry.Error = e.Reason;
            }
            catch (InvalidOperationException)
            {
                // A sealed volume the table did not know as sealed (crash between seal and commit), or did not know
                // at all (the owner's journal was lost): its records the index lacks are found again.
                try
                {
                    using var reader = new VolumeReader(file);
                    var scan = reader.Scan(entry?.Bytes ?? 0);
                    foreach (var rec in scan.Records)
                    {
                        if (Has(rec.Id) || rec.Offset < (entry?.Bytes ?? 0)) continue;
                        _pending[rec.Id] = new ChunkLocation(number, rec.Offset, rec.PayloadLength);
                        recovered++;
                    }
                    foreach (var d in scan.Damage) problems.Add(d.ToString());
                    if (entry is null)
                    {
                        entry = new VolumeEntry { Number = number, Label = reader.Header.Label };
                        _manifest.Volumes.Add(entry);
                    }
                    entry.State = VolumeState.Full;
                    entry.Bytes = reader.Length;
                    entry.Records = scan.Records.Count;
                }
                catch (VolumeCorruptException e)
                {
                    problems.Add(e.Message);
                }
            }
        }
        _manifest.Volumes.Sort((a, b) => a.Number.CompareTo(b.Number));
        LastOpen = new OpenReport(recovered, cut, problems);
        if (_ownsIndex && (recovered > 0 || cut > 0 || problems.Count > 0)) Commit();

        void MarkReadOnly(VolumeWriter w)
        {
            _manifest.Volumes.First(v => v.Number == w.Number).State = VolumeState.ReadOnly;
            w.Dispose();
        }
    }
}
