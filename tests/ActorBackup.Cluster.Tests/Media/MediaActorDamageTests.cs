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

    [Fact]
    public async Task A_chunk_a_check_found_damaged_is_stored_again_by_the_next_writer_also_after_a_restart_and_then_reads_back()
    {
        var decl = new LibraryDeclaration("libd", Path.Combine(Dir, "libd"), 1024 * 1024);
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var plain = Enumerable.Range(0, 3).Select(i => Enumerable.Range(0, 5000).Select(b => (byte)(b * 13 + i)).ToArray()).ToList();
        var media = Start(decl);
        var granted = await media.Ask<SessionOpened>(new OpenSession { Library = "libd", Job = "1", Write = true }, TimeSpan.FromSeconds(20));
        var ids = new List<ChunkId>();
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20)))
        {
            foreach (var p in plain) ids.Add(encoder.Store(p, RecordFlags.None, channel).Id);
            channel.AddReferences("s1", ids);
            await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20));
        }
        media.Tell(new CloseSession { Library = "libd", Ticket = granted.Ticket });

        // Bits rot in the second chunk's record.
        var volume = Directory.GetFiles(Path.Combine(decl.Path, "volumes"), "vol-*.abv").Single();
        RecordInfo record;
        using (var reader = new VolumeReader(volume)) record = reader.Scan().Records.Single(r => r.Id == ids[1]);
        using (var f = new FileStream(volume, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = record.Offset + VolumeFormat.RecordHeaderSize + record.PayloadLength / 2;
            var b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x5A));
        }
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
