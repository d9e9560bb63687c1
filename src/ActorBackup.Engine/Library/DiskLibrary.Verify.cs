using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Engine.Library;

// Reading every volume back and checking the index against it (needs no key).
public sealed partial class DiskLibrary
{
    /// <param name="Unreadable">the indexed chunks no whole record holds (damaged, or their volume gone)</param>
    /// <param name="DamagedAt">of those, the ones whose volume the check read (or found damaged) and which are not there
    /// whole, where the index had them: damage, not a volume it could not mount or find</param>
    public sealed record VerifyReport(int Volumes, int Records, long Bytes, IReadOnlyList<VolumeDamage> Damage, IReadOnlyList<string> IndexProblems,
        IReadOnlyList<ChunkId> Unreadable, IReadOnlyList<(ChunkId Id, ChunkLocation At)> DamagedAt)
    {
        public bool Ok => Damage.Count == 0 && IndexProblems.Count == 0;
    }

    /// <summary>
    /// Reads every volume record by record and checks every checksum, then checks the index against what the
    /// volumes hold. Needs no key: it proves the bytes are as written, not what they mean. Backups, copies and a
    /// prune's compaction may write meanwhile: an index entry past what the check read of its volume (or in a volume
    /// made since) is not the check's to judge.
    /// </summary>
    public VerifyReport Verify()
    {
        // The volumes as flushed, under one lock: a volume's Bytes counts what its writer still buffers, and an append
        // between the flush and the listing would be judged unreadable (in the index, below what the check read).
        IReadOnlyList<VolumeEntry> listed;
        lock (_lock)
        {
            FlushWriters();
            listed = Volumes;
        }
        var damage = new List<VolumeDamage>();
        var found = new HashSet<(ChunkId, ChunkLocation)>();
        var read = new Dictionary<uint, long>(); // how far the check read each volume (a volume it could not read: all of it)
        var judged = new HashSet<uint>(); // volumes read, or found damaged: what is not whole in them is damage
        int records = 0, volumes = 0;
        long bytes = 0;
        foreach (var v in listed.Where(v => v.State != VolumeState.Recycle))
        {
            var path = VolumePath(v.Number);
            read[v.Number] = long.MaxValue; // until it is read whole: every entry in it is judged
            try
            {
                using var reader = new VolumeReader(path);
                try
                {
                    _medium.Reading(v.Number, 0, reader.Length); // the whole volume, start to end
                }
                catch (IOException e)
                {
                    damage.Add(new VolumeDamage(path, 0, e.Message)); // its cartridge cannot be mounted
                    continue;
                }
                var length = reader.Length;
                var scan = reader.Scan();
                // The volume being written takes appends meanwhile: what lies past both what the check read of it and
                // what was committed to it when the check began came later. Any other volume is judged whole.
                if (v.State == VolumeState.Append) read[v.Number] = Math.Max(v.Bytes, scan.TornTail ? Math.Min(length, scan.GoodEnd) : length);
                volumes++;
                records += scan.Records.Count;
                bytes += reader.Length;
                damage.AddRange(scan.Damage);
                if (scan.Damage.Count > 0) CartridgeError(v.Number, scan.Damage[0].Reason, scan.Damage[0].Offset);
                // The volume being written may end in a record half written this very moment: not damage.
                if (scan.TornTail && v.State != VolumeState.Append) damage.Add(new VolumeDamage(path, scan.GoodEnd, "torn tail after the last whole record"));
                foreach (var r in scan.Records) found.Add((r.Id, new ChunkLocation(v.Number, r.Offset, r.PayloadLength)));
                judged.Add(v.Number);
            }
            catch (VolumeCorruptException e)
            {
                judged.Add(v.Number);
                damage.Add(new VolumeDamage(path, e.Offset, e.Reason));
                CartridgeError(v.Number, e.Reason, e.Offset);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                // Missing; or gone since the volumes were listed, which a prune's compaction that emptied it is: no damage.
                if (LetGo(v.Number)) read.Remove(v.Number);
                else damage.Add(new VolumeDamage(path, 0, "volume file is missing"));
            }
        }
        var indexProblems = new List<string>();
        var unreadable = new List<ChunkId>();
        var damagedAt = new List<(ChunkId, ChunkLocation)>();
        lock (_lock)
        {
            foreach (var (id, loc) in _index.Entries)
            {
                if (found.Contains((id, loc))) continue;
                if (!read.TryGetValue(loc.Volume, out var end) || loc.Offset >= end) continue; // written after the check read there
                unreadable.Add(id);
                if (judged.Contains(loc.Volume)) damagedAt.Add((id, loc));
                indexProblems.Add($"chunk {id.Short} is indexed at volume {loc.Volume} offset {loc.Offset}, but no whole record there holds it");
            }
        }
        return new VerifyReport(volumes, records, bytes, damage, indexProblems, unreadable, damagedAt);
    }

    /// <summary>
    /// Whether volume <paramref name="number"/> left service since the check listed the volumes (a prune running beside
    /// it compacted it and deleted its file): what is missing of it then is no damage, and nothing indexed is there.
    /// </summary>
    private bool LetGo(uint number)
    {
        lock (_lock) return !_manifest.Volumes.Any(x => x.Number == number && x.State != VolumeState.Recycle);
    }
}
