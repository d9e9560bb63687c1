using ActorBackup.Cluster.Ops;
using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Manager;

/// <summary>
/// What the certificate that signed a job command (OperatorCommands.Jobs) may start, steer or stop, decided by the
/// manager on its own state, never on what a node relaying it says: an operator anything; an integrator what its
/// role allows (OpsPermissions), restoring a snapshot only onto the host that made it and never a backup of its own
/// paths under a defined set's name; a client host its own client's jobs only (a snapshot it names, 'latest'
/// included, is looked up among its own). Narrows the command in place (the client it is for, the snapshot id, the
/// origin).
/// </summary>
public static class JobCallers
{
    /// <summary>Why <paramref name="caller"/> may not give <paramref name="command"/>; null when it may (the command narrowed).</summary>
    public static string? Narrow(CellIdentity caller, IMessage command, ManagerState state)
    {
        if (OpsPermissions.Refusal(caller, command) is { } refused) return refused;
        SetOrigin(command, caller.Role == CellRole.Integrator ? JobOrigin.Integrator : JobOrigin.Operator);
        try
        {
            switch (caller.Role)
            {
                case CellRole.Operator:
                    return null;
                case CellRole.Integrator:
                    switch (command)
                    {
                        case StartRestore r:
                            if (state.LatestOfWhom(r.Snapshot, r.Client) is { } whom) return whom; // before 'latest' becomes an id below
                            var s = state.FindSnapshot(state.LatestHolding(r, DateTimeOffset.UtcNow), r.Client, DateTimeOffset.UtcNow);
                            if (r.Client != "" && r.Client != s.Client)
                                return $"{caller} may not restore a snapshot of {s.Client} onto {r.Client}: restoring into another host's folders takes an operator certificate";
                            r.Snapshot = s.Id; // the one checked
                            return null;
                        case StartBackup integrated:
                            return DefinedSet(state, integrated.BackupSet);
                        default:
                            return null;
                    }
                case CellRole.Client:
                    var own = caller.Client;
                    switch (command)
                    {
                        case StartBackup b:
                            if (OpsPermissions.NotOwn(caller, b.Client) is { } a) return a;
                            if (b.Priority != 0) return NoPriority(caller);
                            b.Client = own;
                            return DefinedSet(state, b.BackupSet);
                        case StartRestore r:
                            if (OpsPermissions.NotOwn(caller, r.Client) is { } d) return d;
                            r.Client = own; // 'latest' is its own newest (holding the paths asked for)
                            r.Snapshot = Own(state, state.LatestHolding(r, DateTimeOffset.UtcNow), own).Id;
                            return null;
                        case StartVerify v:
                            if (v.Library != "" && v.Snapshot == "") return $"{caller} may not check a whole library: that takes an operator certificate";
                            if (v.Priority != 0) return NoPriority(caller);
                            if (OpsPermissions.NotOwn(caller, v.Client) is { } e) return e;
                            v.Snapshot = Own(state, v.Snapshot, own).Id;
                            v.Client = own;
                            return null;
                        case CancelJob c:
                            return OpsPermissions.NotOwnJob(caller, c.Job, state.Job(c.Job)?.Client);
                        default:
                            return $"{caller} may not send {command.Descriptor.Name}";
                    }
                default:
                    return $"{caller} may not send {command.Descriptor.Name}";
            }
        }
        catch (KeyNotFoundException e)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Why <paramref name="caller"/> may not see what <paramref name="look"/> (OperatorCommands.CatalogLooks) asks;
    /// null when it may. An operator or an integrator sees the whole catalog; a client host its own client's jobs and
    /// snapshots (the look narrowed in place to them: a list to its client, a snapshot it names, 'latest' included,
    /// looked up among its own), and not the backup sets or policies (whose commands and rules are the operator's).
    /// </summary>
    public static string? NarrowLook(CellIdentity caller, IMessage look, ManagerState state)
    {
        if (OpsPermissions.Refusal(caller, look) is { } refused) return refused;
        // An operator's or integrator's list of a client the cell does not know (a typo): said, not an empty list. A client
        // host's own lists are narrowed to it below, registered or not, and name no other client.
        if (caller.Role != CellRole.Client)
            return look switch { ListJobs j => j.Client, ListSnapshots l => l.Client, _ => "" } is { Length: > 0 } asked && state.UnknownToCatalog(asked)
                ? state.UnknownClient(asked) : null;
        var own = caller.Client;
        try
        {
            switch (look)
            {
                case ListJobs j:
                    if (OpsPermissions.NotOwn(caller, j.Client) is { } a) return a;
                    j.Client = own;
                    return null;
                case ListSnapshots l:
                    if (OpsPermissions.NotOwn(caller, l.Client) is { } b) return b;
                    l.Client = own;
                    return null;
                case GetSnapshot g:
                    g.Snapshot = Own(state, g.Snapshot, own).Id;
                    return null;
                case GetJob or WatchJob:
                    var id = look is GetJob gj ? gj.Job : ((WatchJob)look).Job;
                    return OpsPermissions.NotOwnJob(caller, id, state.Job(id)?.Client);
                default:
                    return $"{caller} may not send {look.Descriptor.Name}";
            }
        }
        catch (KeyNotFoundException e)
        {
            return e.Message;
        }
    }

    private static void SetOrigin(IMessage command, JobOrigin origin)
    {
        switch (command)
        {
            case StartBackup b: b.Origin = origin; break;
            case StartVerify v: v.Origin = origin; break;
            case StartCopy c: c.Origin = origin; break;
        }
    }

    /// <summary>A backup named after a defined set counts in that set's retention: only an operator may give it paths of its own choosing.</summary>
    private static string? DefinedSet(ManagerState state, string name) =>
        name != "" && state.BackupSets.ContainsKey(name)
            ? $"'{name}' is a defined backup set: run it with 'abk set run {name}' (a backup of other paths under its name takes an operator certificate)"
            : null;

    /// <summary>A client host's jobs queue at the default priority: putting them ahead of others is an operator's call (as `abk job priority` is).</summary>
    private static string NoPriority(CellIdentity caller) =>
        $"{caller} may not set a job's priority (its jobs queue at the default): that takes an operator certificate";

    private static Engine.Trees.SnapshotManifest Own(ManagerState state, string idOrPrefix, string client) =>
        state.FindSnapshotOf(client, idOrPrefix, $"client {client} has no snapshot yet: run a backup first", DateTimeOffset.UtcNow);
}
