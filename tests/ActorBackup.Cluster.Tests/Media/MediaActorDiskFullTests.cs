using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Media;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests.Media;

/// <summary>
/// A media agent whose library disk fills up: it turns Unavailable (refusing sessions with the reason) on the
/// committed index it keeps, without a restart or a journal replay, and takes writes again once there is room.
/// </summary>
public sealed class MediaActorDiskFullTests : TestKit, IDisposable
{
    private static readonly string Journal = Directory.CreateTempSubdirectory("abk-media-full-").FullName;

    public MediaActorDiskFullTests() : base(SlowMachine.Config.WithFallback(CellNode.StandaloneSqlite(Journal, Path.Combine(AppContext.BaseDirectory, "hocon")))) => MediaActorJourneys.OnlyOwnLibraries(this, "libf");

    void IDisposable.Dispose()
    {
        Shutdown();
        try { Directory.Delete(Journal, true); } catch (IOException) { }
    }

    [SmallDiskFact]
    public async Task A_full_disk_makes_the_agent_unavailable_without_a_restart_and_room_makes_it_available_again()
    {
        using var disk = new SmallDisk(8);
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var media = Sys.ActorOf(MediaActor.Props(new LibraryDeclaration("libf", Path.Combine(disk.Path, "libf"), 64L * 1024 * 1024, Reserve: 0), TestActor));
        ExpectMsg<RegisterLibrary>(TimeSpan.FromSeconds(20));
        ExpectMsg<IndexReport>();
        var stored = new List<(ChunkId Id, byte[] Plain)>();

        async Task<IOException?> Write(int chunks, int size)
        {
            media.Tell(new OpenSession { Library = "libf", Job = "w", Write = true });
            var answer = FishForMessage<Google.Protobuf.IMessage>(m => m is SessionOpened or CommandRejected, TimeSpan.FromSeconds(10));
            if (answer is CommandRejected refused) return new IOException(refused.Reason);
            var granted = (SessionOpened)answer;
            try
            {
                using var session = keys.Cipher.BeginUpload();
                using var encoder = new ChunkEncoder(keys.Data, session, 3);
                using var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20));
                var written = new List<(ChunkId, byte[])>();
                for (var i = 0; i < chunks; i++)
                {
                    var plain = new byte[size];
                    Random.Shared.NextBytes(plain);
                    written.Add((encoder.Store(plain, RecordFlags.None, channel).Id, plain));
                }
                await Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(20));
                stored.AddRange(written);
                return null;
            }
            catch (IOException e)
            {
                return e;
            }
            finally
            {
                media.Tell(new CloseSession { Library = "libf", Ticket = granted.Ticket });
            }
        }

        Assert.Null(await Write(3, 50_000));
        FishForMessage<IndexReport>(r => r.Chunks == 3, TimeSpan.FromSeconds(20));
        disk.Fill(leaveBytes: 100_000);
        IOException? full = null;
        // No error is logged (a restart would log the exception that caused it); the agent says what it does.
        await EventFilter.Error().ExpectAsync(0, () =>
            EventFilter.Warning(contains: "opening it again on the committed index").ExpectOneAsync(async () => full = await Write(20, 200_000)));
        Assert.NotNull(full);
        Assert.Contains("out of space", full.Message);

        // It opened the library again at once on its committed index (the torn record cut, a record fits
        // again). With the disk now completely full the next job fails too, and the agent cannot even rewrite
        // its volume table: it stays Unavailable and refuses sessions with the reason, still knowing the chunks.
        disk.Fill(leaveBytes: 0);
        Assert.NotNull(await Write(3, 200_000));
        await AwaitAssertAsync(() =>
        {
            media.Tell(new OpenSession { Library = "libf", Job = "refused", Write = true });
            Assert.Contains("out of space", FishForMessage<CommandRejected>(_ => true, TimeSpan.FromSeconds(5)).Reason);
        }, TimeSpan.FromSeconds(20));
        media.Tell(new GetLibraryStatus { Library = "libf" });
        var unavailable = FishForMessage<IndexReport>(_ => true, TimeSpan.FromSeconds(5));
        Assert.Equal(3ul, unavailable.Chunks);
        Assert.True(unavailable.Reads); // the manager sends restores and verifies here all the same
        // Reads go on: a restore from the library whose disk is full (when it is needed most) is not refused.
        media.Tell(new OpenSession { Library = "libf", Job = "restore-while-full", Write = false });
        var reading = FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(10));
        using (var whileFull = DataPlaneSessions.Get(Sys).Connect(reading, TimeSpan.FromSeconds(20)))
        using (var fullDecoder = new ChunkDecoder(keys))
            foreach (var (id, plain) in stored) Assert.Equal(plain, fullDecoder.Load(id, whileFull).ToArray());

        // Room again while the restore still reads: the library is not pulled from under it (a write hears it opens
        // again once the reads end); another restore still gets in; the last read's end opens it.
        disk.Free();
        var waiting = await Write(1, 10_000);
        Assert.NotNull(waiting);
        Assert.Contains("it has room again and opens to write once the sessions and jobs reading it now end (1)", waiting.Message);
        media.Tell(new GetLibraryStatus { Library = "libf" });
        FishForMessage<IndexReport>(r => r.Unavailable != "" && !r.Reads, TimeSpan.FromSeconds(10)); // the manager sends no new reading job
        media.Tell(new OpenSession { Library = "libf", Job = "another-restore", Write = false }); // one it sent before: still taken
        var another = FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(10));
        media.Tell(new CloseSession { Library = "libf", Ticket = reading.Ticket });
        media.Tell(new CloseSession { Library = "libf", Ticket = another.Ticket });
        Assert.Null(await Write(2, 50_000));
        media.Tell(new GetLibraryStatus { Library = "libf" });
        Assert.Equal(5ul, FishForMessage<IndexReport>(r => r.Chunks == 5, TimeSpan.FromSeconds(20)).Chunks);
        media.Tell(new OpenSession { Library = "libf", Job = "read", Write = false });
        using var reader = DataPlaneSessions.Get(Sys).Connect(FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(5)), TimeSpan.FromSeconds(20));
        using var decoder = new ChunkDecoder(keys);
        foreach (var (id, plain) in stored) Assert.Equal(plain, decoder.Load(id, reader).ToArray());

        // A write fails in a session whose close has not come yet (the agent has not heard of it), then there is room
        // again: the next session opens the library again on its committed index and is granted, not refused with the
        // old reason (an operator who freed space and ran the job again at once; the failed job's close on its way).
        disk.Fill(leaveBytes: 100_000);
        media.Tell(new OpenSession { Library = "libf", Job = "unclosed", Write = true });
        var unclosed = FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(10));
        using (var session = keys.Cipher.BeginUpload())
        using (var encoder = new ChunkEncoder(keys.Data, session, 3))
        using (var channel = DataPlaneSessions.Get(Sys).Connect(unclosed, TimeSpan.FromSeconds(20)))
            Assert.ThrowsAny<IOException>(() =>
            {
                for (var i = 0; i < 200; i++) encoder.Store(System.Security.Cryptography.RandomNumberGenerator.GetBytes(200_000), RecordFlags.None, channel);
            });
        disk.Free();
        Assert.Null(await Write(2, 50_000));
        media.Tell(new GetLibraryStatus { Library = "libf" });
        Assert.Equal(7ul, FishForMessage<IndexReport>(r => r.Chunks == 7, TimeSpan.FromSeconds(20)).Chunks);
    }
}
