using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Media;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;

namespace ActorBackup.Cluster.Tests;

/// <summary>A chunk a library check found damaged: marked, journaled, still marked after a restart, stored again by the next writer.</summary>
public sealed class MediaActorDamageTests() : JournalTestKit(null, "abk-media-damage-")
{
    private IActorRef Start(LibraryDeclaration decl)
    {
        var media = Sys.ActorOf(MediaActor.Props(decl, TestActor));
        FishForMessage(m => m is IndexReport { Library: "libd" }, TimeSpan.FromSeconds(20));
        return media;
    }

    /// <summary>A library <paramref name="id"/> holding <paramref name="plain"/> (under snapshot s1), and each chunk's record place.</summary>
    private async Task<(LibraryDeclaration Decl, IActorRef Media, List<ChunkId> Ids)> Stored(string id, CellKeys keys, IReadOnlyList<byte[]> plain, IActorRef? region = null)
    {
        var decl = new LibraryDeclaration(id, Path.Combine(Dir, id), 1024 * 1024);
        var media = Sys.ActorOf(MediaActor.Props(decl, TestActor, mediaRegion: region), "media-" + id);
        FishForMessage(m => m is IndexReport r && r.Library == id, TimeSpan.FromSeconds(20));
        var granted = await media.Ask<SessionOpened>(new OpenSession { Library = id, Job = "1", Write = true }, TimeSpan.FromSeconds(20));
        var ids = new List<ChunkId>();
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20)))
        {
            foreach (var p in plain) ids.Add(encoder.Store(p, RecordFlags.None, channel).Id);
            channel.AddReferences("s1", ids);
            await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20));
        }
        media.Tell(new CloseSession { Library = id, Ticket = granted.Ticket });
        return (decl, media, ids);
    }

    /// <summary>Flips a byte in the middle of each of <paramref name="ids"/>' records in <paramref name="decl"/>'s one volume.</summary>
    private static void Rot(LibraryDeclaration decl, params ChunkId[] ids)
    {
        var volume = Directory.GetFiles(Path.Combine(decl.Path, "volumes"), "vol-*.abv").Single();
        List<RecordInfo> records;
        using (var reader = new VolumeReader(volume)) records = reader.Scan().Records;
        using var f = new FileStream(volume, FileMode.Open, FileAccess.ReadWrite);
        foreach (var record in records.Where(r => ids.Contains(r.Id)))
        {
            f.Position = record.Offset + VolumeFormat.RecordHeaderSize + record.PayloadLength / 2;
            var b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x5A));
        }
    }

    [Fact]
    public async Task A_library_missing_one_volume_file_takes_no_writes_but_serves_reads_of_the_others()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var plain = Enumerable.Range(0, 3).Select(i =>
        {
            var b = new byte[600_000]; // incompressible: one chunk a 1 MiB volume
            new Random(i).NextBytes(b);
            return b;
        }).ToList();
        var (decl, media, ids) = await Stored("libv", keys, plain);
        var files = Directory.GetFiles(Path.Combine(decl.Path, "volumes"), "vol-*.abv");
        Assert.True(files.Length >= 3, $"{files.Length} volumes");
        var lost = files.Single(f =>
        {
            using var reader = new VolumeReader(f);
            return reader.Scan().Records.Any(r => r.Id == ids[0]);
        });
        File.Delete(lost);
        // The next health look (5 s) finds it: no writes, but reads go on.
        await AwaitAssertAsync(async () =>
        {
            var refused = await media.Ask<object>(new OpenSession { Library = "libv", Job = "w", Write = true }, TimeSpan.FromSeconds(20));
            Assert.Contains("missing", Assert.IsType<CommandRejected>(refused).Reason);
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
        var read = await media.Ask<SessionOpened>(new OpenSession { Library = "libv", Job = "r", Write = false }, TimeSpan.FromSeconds(20));
        using var channel = DataPlaneSessions.Get(Sys).Connect(read, TimeSpan.FromSeconds(20));
        using var decoder = new ChunkDecoder(keys);
        Assert.Equal(plain[1], decoder.Load(ids[1], channel).ToArray());
        Assert.Equal(plain[2], decoder.Load(ids[2], channel).ToArray());
        Assert.ThrowsAny<Exception>(() => decoder.Load(ids[0], channel).ToArray());
    }

    [Fact]
    public async Task A_heal_mends_the_chunks_its_source_can_give_and_says_which_it_could_not()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var plain = Enumerable.Range(0, 2).Select(i => Enumerable.Range(0, 5000).Select(b => (byte)(b * 11 + i)).ToArray()).ToList();
        var (source, sourceAgent, ids) = await Stored("srch", keys, plain);
        var region = CreateTestProbe();
        var (target, targetAgent, same) = await Stored("dsth", keys, plain, region.Ref);
        Assert.Equal(ids, same);
        Rot(source, ids[0]); // damaged on both: not healed
        Rot(target, ids[0], ids[1]);
        targetAgent.Tell(new CopySnapshot { Library = "dsth", Job = "h1", Snapshot = "s1", SourceLibrary = "srch", Heal = { ids.Select(i => Google.Protobuf.ByteString.CopyFrom(i.ToArray())) } });
        region.FishForMessage(m => m is OpenSession, TimeSpan.FromSeconds(20));
        region.Forward(sourceAgent);
        var ended = FishForMessage<JobFinished>(m => m.Job == "h1", TimeSpan.FromSeconds(60));
        Assert.False(ended.Ok);
        Assert.Equal(JobFault.FaultNone, ended.Fault);
        Assert.Contains("1 of the 2 damaged chunks could not be read from library srch either", ended.Reason);
        Assert.Contains("the other 1 are healed", ended.Reason);
        // The second chunk reads back on the target (the heal's commit was made); the first does not.
        var read = await targetAgent.Ask<SessionOpened>(new OpenSession { Library = "dsth", Job = "r", Write = false }, TimeSpan.FromSeconds(20));
        using var channel = DataPlaneSessions.Get(Sys).Connect(read, TimeSpan.FromSeconds(20));
        using var decoder = new ChunkDecoder(keys);
        Assert.Equal(plain[1], decoder.Load(ids[1], channel).ToArray());
        Assert.ThrowsAny<Exception>(() => decoder.Load(ids[0], channel).ToArray());
    }

    [Fact]
    public async Task A_chunk_a_check_found_damaged_is_stored_again_by_the_next_writer_also_after_a_restart_and_then_reads_back()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var plain = Enumerable.Range(0, 3).Select(i => Enumerable.Range(0, 5000).Select(b => (byte)(b * 13 + i)).ToArray()).ToList();
        var (decl, media, ids) = await Stored("libd", keys, plain);
        Rot(decl, ids[1]); // bits rot in the second chunk's record
        media.Tell(new VerifyLibrary { Library = "libd", Job = "v1", Keep = { "s1" } });
        var check = FishForMessage<JobFinished>(m => m.Job == "v1", TimeSpan.FromSeconds(30));
        Assert.False(check.Ok);
        Assert.Equal(1, check.Verify.BadChunks);
        Assert.Contains("store them again", check.Reason);
        // The mark is journaled at the next health look (every 5 s).
        AwaitAssert(() => Assert.Single(JournaledEvents("media-libd").Select(e => e.Payload).OfType<ChunksDamaged>()), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(300));

        // A restart: the mark holds, and the next writer is told the chunk is missing, not the others.
        Watch(media);
        media.Tell(PoisonPill.Instance);
        ExpectTerminated(media);
        media = Start(decl);
        var again = await media.Ask<SessionOpened>(new OpenSession { Library = "libd", Job = "2", Write = true }, TimeSpan.FromSeconds(20));
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(again, TimeSpan.FromSeconds(20)))
        {
            Assert.Equal([ids[1]], channel.Missing(ids));
            Assert.Equal(ids[1], encoder.Store(plain[1], RecordFlags.None, channel).Id);
            await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Empty(channel.Missing(ids));
        }
        media.Tell(new CloseSession { Library = "libd", Ticket = again.Ticket });

        // Snapshot s1, which names the chunk, reads back whole.
        var read = await media.Ask<SessionOpened>(new OpenSession { Library = "libd", Job = "3", Write = false }, TimeSpan.FromSeconds(20));
        using var source = DataPlaneSessions.Get(Sys).Connect(read, TimeSpan.FromSeconds(20));
        using var decoder = new ChunkDecoder(keys);
        for (var i = 0; i < ids.Count; i++) Assert.Equal(plain[i], decoder.Load(ids[i], source).ToArray());
    }
}
