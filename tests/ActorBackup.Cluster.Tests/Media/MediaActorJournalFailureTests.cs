using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Media;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Volumes;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests.Media;

/// <summary>A media agent whose journal cannot be written: the commit waiting for it hears why at once.</summary>
[Collection(nameof(FailingJournal))] // its switch is static: one test of it at a time
public sealed class MediaActorJournalFailureTests : TestKit, IDisposable
{
    private static readonly string Dir = Directory.CreateTempSubdirectory("abk-media-journal-").FullName;

    public MediaActorJournalFailureTests() : base(ConfigurationFactory.ParseString($$"""
        akka.persistence.journal.plugin = "akka.persistence.journal.failing"
        akka.persistence.journal.failing {
          class = "{{typeof(FailingJournal).AssemblyQualifiedName}}"
          plugin-dispatcher = "akka.actor.default-dispatcher"
        }
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        """).WithFallback(SlowMachine.Config).WithFallback(CellNode.StandaloneSqlite(Dir, Path.Combine(AppContext.BaseDirectory, "hocon"))))
        => MediaActorJourneys.OnlyOwnLibraries(this, "libj");

    void IDisposable.Dispose()
    {
        FailingJournal.Down = false;
        Shutdown();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }

    [Fact]
    public async Task A_commit_the_journal_does_not_take_is_refused_at_once_saying_what_to_do()
    {
        var keys = new KeyRing(MasterKey.Generate()).For("test");
        var media = Sys.ActorOf(MediaActor.Props(new LibraryDeclaration("libj", Path.Combine(Dir, "libj"), 64L * 1024 * 1024, Reserve: 0), TestActor));
        ExpectMsg<RegisterLibrary>(TimeSpan.FromSeconds(20));
        media.Tell(new OpenSession { Library = "libj", Job = "w", Write = true });
        var granted = FishForMessage<SessionOpened>(_ => true, TimeSpan.FromSeconds(20));
        using var session = keys.Cipher.BeginUpload();
        using var encoder = new ChunkEncoder(keys.Data, session, 3);
        using var channel = DataPlaneSessions.Get(Sys).Connect(granted, TimeSpan.FromSeconds(20));
        encoder.Store(new byte[1000], RecordFlags.None, channel);
        FailingJournal.Down = true;
        // Within a minute (the client's commit waits 5 before it gives up, and then blamed the node), and saying why.
        var e = await Assert.ThrowsAnyAsync<IOException>(() => Task.Run(channel.Commit).WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("library libj: the media agent's journal (its node's database) could not be written (the journal's database is not reachable)", e.Message);
        Assert.Contains("free space where that node keeps its database", e.Message);
    }

    [Fact]
    public void An_agent_whose_journal_cannot_be_read_as_it_starts_is_held_and_started_again_not_left_down()
    {
        FailingJournal.Down = true;
        var region = CreateTestProbe();
        var media = Sys.ActorOf(MediaActor.Props(new LibraryDeclaration("libk", Path.Combine(Dir, "libk"), 64L * 1024 * 1024, Reserve: 0), TestActor, mediaRegion: region.Ref));
        Watch(media);
        ExpectTerminated(media, TimeSpan.FromSeconds(20));
        // Held as after a failed write: the status look that starts it again comes once the hold has passed (30 s).
        Assert.NotNull(JournalFailures.Holding(Sys, "libk", Monotonic.Now));
        FailingJournal.Down = false;
    }
}
