using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Find;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Ops;
using CsCheck;
using Google.Protobuf;
using Xunit.Abstractions;

namespace ActorBackup.Cluster.Tests.Fuzz;

/// <summary>
/// Byte-mutation fuzzing (CsCheck-driven) of every decoder that reads from disk or network: volumes (header,
/// records, footer, trailer, the resync), the chunk index, reference lists, file indexes, snapshot manifests,
/// trees and the operator wire. A mutated input must give one of the decoder's documented damage errors,
/// never another exception, and no input may make a decoder allocate more than a bound tied to its size.
/// Time and memory per input are recorded (the slowest and the hungriest input of each target are printed).
/// Budget: $ABK_FUZZ_SECONDS per target (default 2 s in the test suite; scripts/fuzz.sh runs longer).
/// Every input that once broke a decoder is kept under Fuzz/corpus/TARGET/ and replayed by every run.
/// </summary>
public sealed class DecoderFuzzTests(ITestOutputHelper output)
{
    private static readonly KeyRing Ring = new(MasterKey.Generate());
    private static readonly CellKeys Keys = Ring.For("web1");
    private static readonly string Work = Directory.CreateTempSubdirectory("abk-fuzz-").FullName;

    /// <summary>A decoder under test: reads the bytes the way the product reads such a file or frame.</summary>
    private sealed record Target(string Name, Func<byte[]> Seed, Action<byte[]> Decode, Func<Exception, bool> Damage);

    private static bool IsDamage(Exception e) => e is IOException or InvalidDataException or InvalidProtocolBufferException or EndOfStreamException;

    /// <summary>A delta reference list of 7 removed and 12 added ids.</summary>
    private static byte[] DeltaSeed() => Written(path => ReferenceList.WriteDelta(path, new ReferenceList.BaseList("base_0a1b2c3d", 5000, 0xfeed),
        Enumerable.Range(0, 7).Select(Id).Order().ToArray(), Enumerable.Range(100, 12).Select(Id).Order().ToArray()));

    /// <summary>A reference list read by each of its readers, each on its own (one's damage does not hide the others').</summary>
    private static void ReadEveryWay(string path)
    {
        foreach (var read in new Action[] { () => ReferenceList.BaseOf(path), () => ReferenceList.ReadFirst(path, 8, out _), () => ReferenceList.ReadAny(path) })
        {
            try
            {
                read();
            }
            catch (Exception e) when (IsDamage(e))
            {
            }
        }
        ReferenceList.ReadAny(path); // and once more, its damage to the fuzzer
    }

    /// <summary><paramref name="bytes"/> with their last 4 bytes the crc32 of the rest, as a list's are.</summary>
    private static byte[] Resealed(byte[] bytes)
    {
        if (bytes.Length < 4) return bytes;
        var copy = bytes.ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(copy.Length - 4), System.IO.Hashing.Crc32.HashToUInt32(copy.AsSpan(0, copy.Length - 4)));
        return copy;
    }

    /// <summary>The bytes <paramref name="write"/> puts in a file.</summary>
    private static byte[] Written(Action<string> write)
    {
        var path = Path.Combine(Work, Guid.NewGuid().ToString("n"));
        write(path);
        var bytes = File.ReadAllBytes(path);
        File.Delete(path);
        return bytes;
    }

    /// <summary><paramref name="read"/> run on a file of <paramref name="bytes"/>, deleted after.</summary>
    private static void OnFile(byte[] bytes, Action<string> read)
    {
        var path = TempFile(bytes);
        try
        {
            read(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string TempFile(byte[] bytes)
    {
        var path = Path.Combine(Work, $"{Environment.CurrentManagedThreadId}-{Guid.NewGuid():n}");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static ChunkId Id(int i) => new(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    private static byte[] Volume(bool seal)
    {
        var path = Path.Combine(Work, Guid.NewGuid().ToString("n"));
        using (var w = VolumeWriter.Create(path, 4, "lib1", "lib1-000004"))
        {
            for (var i = 0; i < 4; i++) w.Append(Id(i), RecordFlags.Encrypted, Enumerable.Range(0, 300 + i * 50).Select(b => (byte)(b * i)).ToArray());
            if (seal) w.Seal();
            else w.Sync();
        }
        var bytes = File.ReadAllBytes(path);
        File.Delete(path);
        return bytes;
    }

    private static readonly Target[] Targets =
    [
        new("volume-sealed", () => Volume(seal: true), bytes =>
        {
            var path = TempFile(bytes);
            try
            {
                using var r = new VolumeReader(path);
                var scan = r.Scan();
                var buffer = new byte[4096];
                foreach (var rec in scan.Records) r.ReadRecord(rec.Offset, rec.Id, rec.PayloadLength, new byte[VolumeFormat.RecordOverhead + rec.PayloadLength], out _);
                if (r.ReadTrailer() is { } t) r.ReadFooter(t.FooterOffset, t.Count);
            }
            finally
            {
                File.Delete(path);
            }
        }, IsDamage),
        new("volume-open", () => Volume(seal: false), bytes =>
        {
            var path = TempFile(bytes);
            try
            {
                using var w = VolumeWriter.OpenForAppend(path, out _, committedLength: bytes.Length / 2);
            }
            finally
            {
                File.Delete(path);
            }
        }, e => IsDamage(e) || e is InvalidOperationException { Message: var m } && m.Contains("is sealed")),
        new("chunk-index", () =>
        {
            var index = new ChunkIndex();
            for (var i = 0; i < 20; i++) index.Set(Id(i), new ChunkLocation((uint)i % 3, 100 + i * 1000, 900));
            using var ms = new MemoryStream();
            index.WriteTo(ms);
            return ms.ToArray();
        }, bytes =>
        {
            using var ms = new MemoryStream(bytes, writable: false);
            ChunkIndex.ReadFrom(ms);
        }, IsDamage),
        new("reference-list", () => Written(path => ReferenceList.Write(path, Enumerable.Range(0, 30).Select(Id))),
            bytes => OnFile(bytes, path => ReferenceList.Read(path)), IsDamage),
        new("reference-delta", DeltaSeed, bytes => OnFile(bytes, ReadEveryWay), IsDamage),
        // The same with the checksum made right again after each mutation: what lies behind it (counts, the base's
        // name, the order of the ids) is reached too.
        new("reference-delta-resealed", DeltaSeed, bytes => OnFile(Resealed(bytes), ReadEveryWay), IsDamage),
        new("reference-list-resealed", () => Written(path => ReferenceList.Write(path, Enumerable.Range(0, 30).Select(Id))),
            bytes => OnFile(Resealed(bytes), ReadEveryWay), IsDamage),
        new("file-index", () =>
        {
            var tree = new Tree();
            for (var i = 0; i < 12; i++) tree.Nodes.Add(new Node { Name = $"file-{i}.conf", Type = NodeType.File, Size = (ulong)i * 100, MtimeSec = i });
            using var ms = new MemoryStream();
            FileIndex.Write("a1b2c3d4e5f60718", "web1", 1_700_000_000_000, [("/etc", tree), ("/var", tree)], ms);
            return ms.ToArray();
        }, bytes =>
        {
            FileIndex.Check(bytes);
            FileIndex.Open(bytes);
        }, IsDamage),
        new("manifest", () =>
        {
            var m = new SnapshotManifest { Id = "a1b2c3d4e5f60718", Client = "web1", BackupSet = "/etc", RootTree = ByteString.CopyFrom(new byte[32]), Paths = { "/etc" } };
            ManifestSeal.Seal(Keys, m);
            return m.ToByteArray();
        }, bytes => Ring.Open(ByteString.CopyFrom(bytes)), IsDamage),
        new("tree", () =>
        {
            var tree = new Tree();
            tree.Nodes.Add(new Node { Name = "a", Type = NodeType.Directory, Mode = 493 });
            tree.Nodes.Add(new Node { Name = "b", Type = NodeType.File, Size = 5, Chunks = ByteString.CopyFrom(new byte[32]), ChunkSizes = { 5 } });
            return tree.ToByteArray();
        }, bytes => Tree.Parser.ParseFrom(bytes), IsDamage),
        new("ops-wire", () =>
        {
            using var ms = new MemoryStream();
            OpsWire.Write(ms, new StartRestore { Snapshot = "latest", Target = "/srv/restore", Paths = { "/etc" } }, more: true).GetAwaiter().GetResult();
            OpsWire.Write(ms, new JobList { Jobs = { new JobInfo { Id = "1", Client = "web1" } } }, more: false).GetAwaiter().GetResult();
            return ms.ToArray();
        }, bytes =>
        {
            using var ms = new MemoryStream(bytes, writable: false);
            while (OpsWire.Read(ms).GetAwaiter().GetResult() is not null) { }
        }, IsDamage),
    ];

    public static TheoryData<string> TargetNames() => [.. Targets.Select(t => t.Name)];

    /// <summary>
    /// One mutation of a seed, from a seed number: bit flips, bytes set, integers set to the values that break
    /// arithmetic (0, -1, int.MaxValue, int.MinValue, long.MaxValue, a large count), truncation, slices repeated.
    /// </summary>
    private static byte[] Mutate(byte[] seed, int mutationSeed)
    {
        var rng = new Random(mutationSeed);
        var b = seed.ToList();
        var steps = 1 + rng.Next(4);
        for (var s = 0; s < steps && b.Count > 0; s++)
        {
            var at = rng.Next(b.Count);
            switch (rng.Next(7))
            {
                case 0: b[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: b[at] = (byte)rng.Next(256); break;
                case 2:
                {
                    long[] extremes = [0, -1, int.MaxValue, int.MinValue, long.MaxValue, 50_000_000, 1L << 40, 0xFFFF_FFF0];
                    var value = BitConverter.GetBytes(extremes[rng.Next(extremes.Length)]);
                    var width = rng.Next(2) == 0 ? 4 : 8;
                    for (var i = 0; i < width && at + i < b.Count; i++) b[at + i] = value[i];
                    break;
                }
                case 3: b.RemoveRange(at, b.Count - at); break;
                case 4:
                {
                    var len = Math.Min(rng.Next(1, 64), b.Count - at);
                    b.InsertRange(at, b.GetRange(at, len));
                    break;
                }
                case 5: b.RemoveRange(at, Math.Min(rng.Next(1, 16), b.Count - at)); break;
                default: b.Insert(at, (byte)rng.Next(256)); break;
            }
        }
        return [.. b];
    }

    /// <summary>What an input may cost in memory: a bound tied to its size, never to what its bytes claim.</summary>
    private static long AllocationBound(byte[] input) => 16L * 1024 * 1024 + 64L * input.Length;

    private static string CorpusDir(string target, [CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "corpus", target);

    /// <summary>Runs one input; null when the decoder behaved (read it, or called it damage), else what went wrong.</summary>
    private static string? Run(Target t, byte[] input, out double ms, out long allocated)
    {
        var clock = Stopwatch.StartNew();
        var before = GC.GetAllocatedBytesForCurrentThread();
        string? failure = null;
        try
        {
            t.Decode(input);
        }
        catch (Exception e) when (t.Damage(e))
        {
        }
        catch (Exception e)
        {
            failure = $"{e.GetType().Name}: {e.Message}";
        }
        allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        ms = clock.Elapsed.TotalMilliseconds;
        if (failure is null && allocated > AllocationBound(input)) failure = $"allocated {allocated} bytes for an input of {input.Length}";
        return failure;
    }

    [Theory]
    [MemberData(nameof(TargetNames))]
    [Trait("Category", "Fuzz")]
    public void Mutated_inputs_give_damage_errors_within_bounded_memory(string name)
    {
        var t = Targets.Single(x => x.Name == name);
        var seed = t.Seed();
        Assert.Null(Run(t, seed, out _, out _)); // the seed itself decodes
        // The kept corpus first: every input that once broke a decoder.
        var corpus = CorpusDir(name);
        var replayed = 0;
        if (Directory.Exists(corpus))
            foreach (var file in Directory.EnumerateFiles(corpus))
            {
                var failure = Run(t, File.ReadAllBytes(file), out _, out _);
                Assert.True(failure is null, $"{name}: corpus input {Path.GetFileName(file)}: {failure}");
                replayed++;
            }
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("ABK_FUZZ_SECONDS"), out var s) && s > 0 ? s : 2;
        var inputs = 0L;
        var slowest = (Ms: 0.0, Size: 0);
        var hungriest = (Bytes: 0L, Size: 0);
        var failures = new ConcurrentBag<(byte[] Input, string Failure)>();
        Gen.Int.Sample(mutationSeed =>
        {
            var input = Mutate(seed, mutationSeed);
            var failure = Run(t, input, out var ms, out var allocated);
            lock (failures)
            {
                inputs++;
                if (ms > slowest.Ms) slowest = (ms, input.Length);
                if (allocated > hungriest.Bytes) hungriest = (allocated, input.Length);
            }
            if (failure is not null) failures.Add((input, failure));
        }, iter: int.MaxValue, time: seconds, threads: 1);
        output.WriteLine($"fuzz {name}: {inputs} inputs in {seconds} s (+{replayed} from the corpus); slowest {slowest.Ms:F1} ms (input of {slowest.Size} bytes); " +
                         $"most memory {hungriest.Bytes / 1024} KiB (input of {hungriest.Size} bytes)");
        foreach (var (input, _) in failures.Take(5))
        {
            Directory.CreateDirectory(corpus);
            File.WriteAllBytes(Path.Combine(corpus, $"crash-{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(input))[..16]}.bin"), input);
        }
        Assert.True(failures.IsEmpty, $"{name}: {failures.Count} inputs broke the decoder (kept in {corpus}), e.g. {failures.FirstOrDefault().Failure}");
    }
}
