using ActorBackup.Cluster.Hosting;
using ActorBackup.Cluster.Media;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.TestKit.Xunit2;

namespace ActorBackup.Cluster.Tests;

/// <summary>A media agent in a node with a certificate of its cell: what it takes only from whom.</summary>
public sealed class MediaActorTrustTests : TestKit, IDisposable
{
    private sealed record Fixture(string Dir, TestTrust Cell, NodeTrust Node)
    {
        public static Fixture Make()
        {
            var cell = new TestTrust();
            return new(Directory.CreateTempSubdirectory("abk-media-trust-").FullName, cell,
                cell.Node(CellIdentity.Of(CellRole.Node, "media1", "", ["media"], ["libm"])));
        }

        public ActorSystemSetup Setup() => ActorSystemSetup.Create(
            BootstrapSetup.Create().WithConfig(CellNode.StandaloneSqlite(Dir, Path.Combine(AppContext.BaseDirectory, "hocon"))),
            new NodeTrustSetup(Node));
    }

    private readonly Fixture _f;

    public MediaActorTrustTests() : this(Fixture.Make()) { }

    private MediaActorTrustTests(Fixture f) : base(f.Setup()) => _f = f;

    void IDisposable.Dispose()
    {
        Shutdown();
        _f.Node.Dispose();
        _f.Cell.Dispose();
        try { Directory.Delete(_f.Dir, true); } catch (IOException) { }
    }

    [Fact]
    public void A_prune_a_check_and_a_session_are_taken_only_from_the_manager_and_with_its_ticket()
    {
        MediaActorJourneys.OnlyOwnLibraries(this, "libm");
        var media = Sys.ActorOf(MediaActor.Props(new LibraryDeclaration("libm", Path.Combine(_f.Dir, "libm"), 1024 * 1024), TestActor));
        ExpectMsg<RegisterLibrary>(TimeSpan.FromSeconds(20));
        ExpectMsg<IndexReport>();
        using var client = _f.Cell.Node(CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        using var manager = _f.Cell.Node(CellIdentity.Of(CellRole.Node, "mgr", "", ["manager"]));
        // A prune that drops what the catalog does not know, a check: not unsigned, not from a client host.
        var prune = new PruneLibrary { Library = "libm", Job = "p1", DropUnknown = true };
        media.Tell(prune);
        Assert.Contains("not signed", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        media.Tell(MessageSignature.Sign(prune, client));
        Assert.Contains("not by a manager node", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        media.Tell(MessageSignature.Sign(new VerifyLibrary { Library = "libm", Job = "v1" }, client));
        Assert.Contains("not by a manager node", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        // A session without the manager's ticket for its job.
        media.Tell(new OpenSession { Library = "libm", Job = "1", Write = true });
        Assert.Contains("no ticket", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        // The manager's prune is taken (nothing was run for the others: its end is the first).
        media.Tell(MessageSignature.Sign(new PruneLibrary { Library = "libm", Job = "p2" }, manager));
        var ended = FishForMessage<JobFinished>(_ => true, TimeSpan.FromSeconds(30));
        Assert.Equal("p2", ended.Job);
    }

    [Fact]
    public void A_scan_for_a_catalog_rebuilds_manifests_is_done_only_for_a_client_node_with_an_operators_rebuild_of_that_library_once()
    {
        MediaActorJourneys.OnlyOwnLibraries(this, "libm");
        var media = Sys.ActorOf(MediaActor.Props(new LibraryDeclaration("libm", Path.Combine(_f.Dir, "libm"), 1024 * 1024), TestActor));
        ExpectMsg<RegisterLibrary>(TimeSpan.FromSeconds(20));
        ExpectMsg<IndexReport>();
        using var client = _f.Cell.Node(CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        using var otherMedia = _f.Cell.Node(CellIdentity.Of(CellRole.Node, "media2", "", ["media"], ["libm"]));
        using var stranger = new TestTrust("other");
        using var strangersClient = stranger.Node(CellIdentity.Of(CellRole.Node, "host-a", "host-a", ["client"]));
        // Every volume is read whole for it: not for an unsigned request, another role's node, or another cell's.
        media.Tell(new ListManifests { Library = "libm" });
        Assert.Contains("not signed", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm" }, otherMedia));
        Assert.Contains("not by a client node", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm" }, strangersClient));
        ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20));
        // A client node's without an operator's signed rebuild of this library: refused (a client host could keep the
        // library's drives reading every volume, and learn every snapshot id in it).
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm" }, client));
        Assert.Contains("only for an operator's 'abk catalog rebuild'", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        using var alice = _f.Cell.Issue(CellIdentity.Of(CellRole.Operator, "alice")).Certificate;
        CallerSigned Rebuild(string library) => OperatorCommands.Sign(new RebuildCatalog { Library = library }, alice, DateTimeOffset.UtcNow);
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm", Caller = Rebuild("libx") }, client));
        Assert.Contains("not libm", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
        // With one: the (here empty) list, to each of two requests, however they meet the scan; the same one again: refused.
        var asked = Rebuild("libm");
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm", Caller = asked }, client));
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm", Caller = Rebuild("libm") }, client));
        Assert.Equal("libm", ExpectMsg<ManifestIds>(TimeSpan.FromSeconds(20)).Library);
        Assert.Empty(ExpectMsg<ManifestIds>(TimeSpan.FromSeconds(20)).Ids);
        media.Tell(MessageSignature.Sign(new ListManifests { Library = "libm", Caller = asked }, client));
        Assert.Contains("given before", ExpectMsg<CommandRejected>(TimeSpan.FromSeconds(20)).Reason);
    }
}
