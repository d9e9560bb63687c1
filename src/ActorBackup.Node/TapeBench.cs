using System.Diagnostics;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Tape;
using ActorBackup.Engine.Volumes;

namespace ActorBackup.Node;

/// <summary>
/// `actorbackup bench-tape [--files 1000] [--cartridges 10]`: a simulated tape library of 2 drives with LTO timings
/// (mount 30 s, unload 20 s, winding at 50 MB/s of tape, streaming at 300 MB/s) holds N files of 4 chunks of 64 KiB,
/// written by 10 backups over time (each a random tenth of the files, in its own order), so that the files are
/// spread over the cartridges in no relation to their names. Each file is then read back, as a restore with one
/// reader does, first in the order of the files (naive), then in the order of the tape (what the restorer does on
/// tape: by cartridge, then position). Prints the mounts and the simulated seconds of each, and a JSON line.
/// </summary>
public static class TapeBench
{
    private const int ChunksPerFile = 4, ChunkBytes = 64 * 1024;

    public static int Run(int files, int cartridges, string? dir)
    {
        var root = dir ?? Path.Combine(Directory.Exists("/var/tmp") ? "/var/tmp" : Path.GetTempPath(), "abk-tape-bench." + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            return Measure(root, files, cartridges);
        }
        finally
        {
            if (dir is null && Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static int Measure(string root, int files, int cartridges)
    {
        var wall = Stopwatch.StartNew();
        var record = VolumeFormat.RecordOverhead + ChunkBytes;
        // Enough for the files on the cartridges asked for, with room for a header and a footer each.
        var capacity = Math.Max(1L << 20, (long)Math.Ceiling((double)files * ChunksPerFile * record / cartridges) + (1 << 20));
        var changer = TapeChanger.Open(Path.Combine(root, "changer"), new ChangerConfig(Slots: cartridges + 2, Drives: 2, CartridgeCapacity: capacity), new TapeTimings());
        for (var i = 1; i <= cartridges + 1; i++)
        {
            var barcode = $"BEN{i:D3}L8";
            Check(changer.Execute(new ImportCartridge(barcode)));
            Check(changer.Execute(new LabelCartridge(i, barcode)));
        }
        var medium = new TapeMedium(changer, "tape-bench");
        using var library = DiskLibrary.OpenOwned(root, "tape-bench", capacity, new ChunkIndex(), [], medium);
        var random = new Random(11);
        var ids = new ChunkId[files][];
        var payload = new byte[ChunkBytes];
        var raw = new byte[ChunkId.Size];
        // Ten backups over time, each of a random tenth of the files, each in an order of its own.
        var rounds = Enumerable.Range(0, files).GroupBy(_ => random.Next(10)).OrderBy(g => g.Key).Select(g => g.OrderBy(_ => random.Next()).ToList()).ToList();
        foreach (var round in rounds)
        {
            foreach (var f in round)
            {
                ids[f] = new ChunkId[ChunksPerFile];
                for (var c = 0; c < ChunksPerFile; c++)
                {
                    random.NextBytes(raw);
                    random.NextBytes(payload);
                    ids[f][c] = new ChunkId(raw);
                    library.Append(ids[f][c], RecordFlags.Encrypted, payload);
                }
            }
            library.Committed(library.Commit());
        }
        var used = library.Volumes.Count(v => v.Records > 0);

        (long Mounts, double Seconds) Restore(IEnumerable<int> order)
        {
            for (var d = 1; d <= 2; d++)
                if (changer.State.Drives[d - 1].Cartridge != "") Check(changer.Execute(new UnmountCartridge(d))); // both start empty
            var (mounts, seconds) = (medium.Mounts, changer.SimulatedSeconds);
            var buffer = new byte[ChunkBytes + 1024];
            foreach (var f in order)
                foreach (var id in ids[f])
                    library.ReadPayload(id, ref buffer, out _);
            return (medium.Mounts - mounts, changer.SimulatedSeconds - seconds);
        }

        var naive = Restore(Enumerable.Range(0, files));
        var places = ((IChunkPlacement)library).Places([.. ids.Select(f => f[0])]);
        var sorted = Restore(Enumerable.Range(0, files).OrderBy(f => places[f].Volume).ThenBy(f => places[f].Offset));
        Console.WriteLine($"tape bench: {files} files of {ChunksPerFile} x {ChunkBytes >> 10} KiB written by 10 backups over {used} cartridges of {capacity >> 20} MiB; 2 drives, " +
                          "mount 30 s, unload 20 s, wind 50 MB/s, stream 300 MB/s; one reader");
        Console.WriteLine($"{"restore order",-16} {"mounts",7} {"simulated",12}");
        Console.WriteLine($"{"files (naive)",-16} {naive.Mounts,7} {naive.Seconds,10:F0} s");
        Console.WriteLine($"{"tape",-16} {sorted.Mounts,7} {sorted.Seconds,10:F0} s");
        Console.WriteLine($"{{\"files\":{files},\"cartridges\":{used},\"naive_mounts\":{naive.Mounts},\"naive_s\":{naive.Seconds:F1},\"tape_mounts\":{sorted.Mounts},\"tape_s\":{sorted.Seconds:F1},\"wall_s\":{wall.Elapsed.TotalSeconds:F1}}}");
        return 0;
    }

    private static void Check(string? refused)
    {
        if (refused is not null) throw new InvalidOperationException(refused);
    }
}
