using ActorBackup.Cluster.Client;
using ActorBackup.Cluster.DataPlane;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Google.Protobuf;

namespace ActorBackup.Cluster.Tests;

/// <summary>The client against a stand-in media agent (a real library, no journal) and a probe for the manager.</summary>
public sealed class ClientActorTests : TestKit, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-client-").FullName;

    public ClientActorTests() : base("akka.actor.provider = cluster\nakka.remote.dot-netty.tcp.port = 0\nakka.loglevel = WARNING") { }

    void IDisposable.Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>Grants sessions on one library and commits them, as the media agent does (without the journal).</summary>
    private sealed class StandInMedia : ReceiveActor
    {
        public StandInMedia(DiskLibrary library, string? refuse)
        {
            Receive<OpenSession>(m =>
            {
                if (refuse is not null) Sender.Tell(new CommandRejected { Reason = refuse });
                else Sender.Tell(new SessionOpened { Library = m.Library, Ticket = DataPlaneSessions.Get(Context.System).Open(library, Self, m.Library, m.Write) });
            });
            Receive<CommitSession>(m =>
            {
                var batch = library.Commit();
                Sender.Tell(new SessionCommitted { Ticket = m.Ticket, Chunks = batch.Count });
            });
            Receive<CloseSession>(m => DataPlaneSessions.Get(Context.System).Close(m.Ticket));
        }
    }

    private (IActorRef Client, Akka.TestKit.TestProbe Manager, DiskLibrary Library) Start(string? refuse = null, long rateLimit = 0)
    {
        var library = DiskLibrary.Create(Path.Combine(_dir, "lib"), "lib1");
        var media = Sys.ActorOf(Props.Create(() => new StandInMedia(library, refuse)));
        var manager = CreateTestProbe();
        var keys = new KeyRing(MasterKey.Generate());
        var client = Sys.ActorOf(ClientActor.Props(new ClientSettings("host-t", ChunkerOptions.ForAverage(64 * 1024), 3, rateLimit), keys, manager.Ref, media));
        var register = manager.ExpectMsg<RegisterClient>();
        Assert.Equal("host-t", register.Id);
        manager.Reply(new Registered { Id = "host-t" });
        return (client, manager, library);
    }

    private static JobFinished Finished(Akka.TestKit.TestProbe manager) =>
        (JobFinished)manager.FishForMessage(m => m is JobFinished, TimeSpan.FromSeconds(30));

    [Fact]
    public void Backs_up_through_the_media_agent_reports_progress_and_restores_what_it_stored()
    {
        var (client, manager, library) = Start();
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        var data = new byte[3 * 1024 * 1024];
        new Random(3).NextBytes(data);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), data);
        var job = new JobInfo { Id = "7", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } };
        client.Tell(new BackupAssignment { Job = job });
        var finished = Finished(manager);
        Assert.True(finished.Ok, finished.Reason);
        var manifest = SnapshotManifest.Parser.ParseFrom(finished.Manifest);
        Assert.Equal("host-t", manifest.Client);
        Assert.Equal("7", manifest.Job);
        Assert.Equal(1ul, manifest.Stats.Files);
        Assert.True(library.ChunkCount > 10, "the chunks went to the media agent's library");

        var target = Path.Combine(_dir, "restore");
        client.Tell(new RestoreAssignment { Job = new JobInfo { Id = "8", Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target }, Manifest = manifest.ToByteString() });
        var restored = Finished(manager);
        Assert.True(restored.Ok, restored.Reason);
        Assert.Equal(data, File.ReadAllBytes(target + src + "/data.bin"));
    }

    [Fact]
    public void A_client_whose_backup_and_its_file_index_are_done_gives_the_memory_back()
    {
        var (client, manager, _) = Start();
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "data.bin"), new byte[200_000]);
        var before = Volatile.Read(ref ClientActor.MemoryTrims);
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "11", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
        Assert.True(Finished(manager).Ok);
        // Once the backup's file index is built too and nothing of this client runs: a compacting collection (the
        // count is the process's: another test's client may add to it, never take from it).
        AwaitCondition(() => Volatile.Read(ref ClientActor.MemoryTrims) > before, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void A_refused_session_fails_the_job_with_the_media_agents_reason()
    {
        var (client, manager, _) = Start(refuse: "volume error: the disk is full");
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "9", Kind = JobKind.Backup, Library = "lib1", Paths = { _dir }, BackupSet = _dir } });
        var finished = Finished(manager);
        Assert.False(finished.Ok);
        Assert.Contains("the disk is full", finished.Reason);
    }

    [Fact]
    public void A_cancelled_backup_ends_as_cancelled_and_records_nothing()
    {
        // Held to 1 MiB a second, 32 MiB take half a minute: the backup is still running when the cancel arrives, however
        // busy the machine (unlimited, 320 MiB were sometimes done first).
        var (client, manager, _) = Start(rateLimit: 1 << 20);
        var src = Path.Combine(_dir, "big");
        Directory.CreateDirectory(src);
        var data = new byte[4 * 1024 * 1024];
        for (var i = 0; i < 8; i++)
        {
            new Random(i).NextBytes(data);
            File.WriteAllBytes(Path.Combine(src, $"f{i}"), data);
        }
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "10", Kind = JobKind.Backup, Library = "lib1", Paths = { src }, BackupSet = src } });
        manager.FishForMessage(m => m is JobProgress p && p.BytesDone > 0, TimeSpan.FromSeconds(30));
        client.Tell(new CancelAssignment { Job = "10" });
        var finished = Finished(manager);
        Assert.False(finished.Ok);
        Assert.StartsWith("cancelled", finished.Reason);
        Assert.True(finished.Manifest.IsEmpty);
    }

    [Fact]
    public void A_manifest_whose_seal_does_not_check_is_refused_for_a_restore_and_as_a_parent()
    {
        var (client, manager, _) = Start();
        var src = Path.Combine(_dir, "src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "a.txt"), "mine");
        client.Tell(new BackupAssignment { Job = new JobInfo { Id = "11", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelFull, BackupSet = src, Paths = { src } } });
        var made = Finished(manager);
        Assert.True(made.Ok, made.Reason);
        // What a manager (no key) or whoever forged a job's result could hand a client: the snapshot, claimed newer.
        var forged = SnapshotManifest.Parser.ParseFrom(made.Manifest);
        forged.FinishedUnixMs += 1000;
        var target = Path.Combine(_dir, "restore-forged");
        client.Tell(new RestoreAssignment { Job = new JobInfo { Id = "12", Kind = JobKind.Restore, Client = "host-t", Library = "lib1", Target = target }, Manifest = forged.ToByteString() });
        var restore = Finished(manager);
        Assert.False(restore.Ok);
        Assert.Contains("does not carry its client's seal", restore.Reason);
        Assert.False(Directory.Exists(target));
        client.Tell(new BackupAssignment
        {
            Job = new JobInfo { Id = "13", Kind = JobKind.Backup, Client = "host-t", Library = "lib1", Level = BackupLevel.LevelIncremental, BackupSet = src, Paths = { src } },
            ParentManifest = forged.ToByteString(),
        });
        var backup = Finished(manager);
        Assert.False(backup.Ok);
        Assert.Contains("seal", backup.Reason);
    }
}
