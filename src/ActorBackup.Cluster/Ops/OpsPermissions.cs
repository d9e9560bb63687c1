using ActorBackup.Protocol;
using ActorBackup.Protocol.Trust;
using Google.Protobuf;

namespace ActorBackup.Cluster.Ops;

/// <summary>
/// What the holder of a certificate may ask of the operator endpoint, by the role its certificate carries (never
/// by anything the caller says): an operator everything; an integrator to look, and to start, watch and cancel
/// jobs, but not to delete, prune, change members, or define sets and policies (whose commands run on the cell's
/// nodes); a client host only its own client's data (narrowed by <see cref="OpsCommand"/> to that client); a node
/// certificate is no shell's.
/// </summary>
public static class OpsPermissions
{
    private static readonly HashSet<string> Looks =
    [
        GetClusterState.Descriptor.Name, GetShardStats.Descriptor.Name, ListClients.Descriptor.Name, ListLibraries.Descriptor.Name,
        ListJobs.Descriptor.Name, GetJob.Descriptor.Name, WatchJob.Descriptor.Name, ListSnapshots.Descriptor.Name, GetSnapshot.Descriptor.Name,
        ListSnapshotTree.Descriptor.Name, FindFiles.Descriptor.Name, ListBackupSets.Descriptor.Name, GetBackupSet.Descriptor.Name,
        ListPolicies.Descriptor.Name, GetPolicy.Descriptor.Name, ListVolumes.Descriptor.Name, ListDrives.Descriptor.Name, GetInventory.Descriptor.Name,
        ListRevocations.Descriptor.Name,
    ];

    private static readonly HashSet<string> Jobs =
    [
        StartBackup.Descriptor.Name, RunBackupSet.Descriptor.Name, StartRestore.Descriptor.Name, StartVerify.Descriptor.Name,
        StartCopy.Descriptor.Name, CancelJob.Descriptor.Name, SetJobPriority.Descriptor.Name,
    ];

    /// <summary>What a client host may ask; each about its own client only.</summary>
    private static readonly HashSet<string> ClientHost =
    [
        GetClusterState.Descriptor.Name, ListClients.Descriptor.Name, ListLibraries.Descriptor.Name, ListJobs.Descriptor.Name, GetJob.Descriptor.Name,
        WatchJob.Descriptor.Name, CancelJob.Descriptor.Name, ListSnapshots.Descriptor.Name, GetSnapshot.Descriptor.Name, ListSnapshotTree.Descriptor.Name,
        FindFiles.Descriptor.Name, StartBackup.Descriptor.Name, StartRestore.Descriptor.Name, StartVerify.Descriptor.Name,
    ];

    /// <summary>Why <paramref name="caller"/> may not send <paramref name="command"/>; null when it may (a client host: within its own data).</summary>
    public static string? Refusal(CellIdentity caller, IMessage command)
    {
        var name = command.Descriptor.Name;
        var allowed = caller.Role switch
        {
            CellRole.Operator => true,
            CellRole.Integrator => Looks.Contains(name) || Jobs.Contains(name),
            // Separation of duties: an auditor reads what the cell did and holds, and the trail of who did it; no file
            // trees (ls, find decrypt a client's data; the catalog's answers still name backed-up paths, sets' commands and
            // files a job could not read) and no command that changes, starts or restores anything.
            CellRole.Auditor => (Looks.Contains(name) && name != ListSnapshotTree.Descriptor.Name && name != FindFiles.Descriptor.Name) || name == ListAudit.Descriptor.Name,
            CellRole.Client => ClientHost.Contains(name),
            _ => false,
        };
        if (allowed) return null;
        return caller.Role == CellRole.Node
            ? $"{caller} presented a node certificate: a shell needs an operator, integrator, client or auditor certificate ('actorbackup ca issue --role operator ...')"
            : caller.Role == CellRole.Auditor ? $"{caller} may not {Verb(name)}: an auditor's certificate reads the catalog, the jobs, the definitions and the audit trail only"
            : $"{caller} may not {Verb(name)}: that takes an operator certificate";
    }

    /// <summary>Why a client host's <paramref name="caller"/> may not name <paramref name="client"/> (another client's); null for its own or none.</summary>
    public static string? NotOwn(CellIdentity caller, string client) =>
        client == "" || client == caller.Client ? null : $"{caller} may act for client {caller.Client} only, not {client}";

    /// <summary>Why a client host's <paramref name="caller"/> may not see or cancel <paramref name="job"/> of <paramref name="jobClient"/>; null for its own.</summary>
    public static string? NotOwnJob(CellIdentity caller, string job, string? jobClient) =>
        jobClient == caller.Client ? null : $"{caller} may see and cancel jobs of client {caller.Client} only: job {job} is not one of them";

    private static string Verb(string name) => name switch
    {
        nameof(DeleteSnapshots) => "delete snapshots",
        nameof(UndeleteSnapshots) => "bring deleted snapshots back",
        nameof(ClearSuspect) => "clear suspect snapshots (their sets' retention goes on)",
        nameof(StartPrune) => "prune",
        nameof(ChangeMember) => "make a node leave or go down",
        nameof(DefineBackupSet) or nameof(RemoveBackupSet) or nameof(EnableBackupSet) or nameof(DeferBackupSet) => "change backup sets (their commands run on the cell's nodes)",
        nameof(DefinePolicy) or nameof(RemovePolicy) => "change storage policies",
        nameof(ApplyFile) => "apply definitions",
        nameof(RebuildCatalog) => "rebuild the catalog",
        nameof(SetLibraryEnabled) => "disable or enable a library",
        nameof(ChangeTape) => "move tapes (import, export, label, mount, unmount, clean)",
        nameof(RemoveClient) => "remove a client",
        nameof(RevokeCertificate) => "revoke a certificate",
        nameof(ListAudit) => "read the audit trail",
        nameof(HoldSnapshots) => "hold snapshots",
        _ => "send " + name,
    };
}
