using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;

namespace ActorBackup.Protocol.Trust;

/// <summary>
/// The commands the manager takes only as their caller signed them. Operator-only: delete snapshots, prune, define,
/// change or defer backup sets and storage policies (a set's commands run on the cell's nodes), apply a definitions
/// file, restore onto another host's folders (the manager decides). Job commands (<see cref="Jobs"/>): an operator, an
/// integrator or a client host signs them, and the manager narrows them by the signer's role. Each goes inside a
/// <see cref="CallerSigned"/> (<see cref="Sign"/>; abk does it), fresh and not seen before: a node or an integrator
/// that can reach the manager, or a node that relays a shell's command, cannot give one in another's name.
/// </summary>
public static class OperatorCommands
{
    /// <summary>How far the time a command was signed may be from the manager's clock.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    public const int NonceSize = 16;

    /// <summary>The commands only an operator may give (by their protobuf names).</summary>
    public static readonly IReadOnlySet<string> OperatorOnly = new HashSet<string>
    {
        DeleteSnapshots.Descriptor.Name, StartPrune.Descriptor.Name, DefineBackupSet.Descriptor.Name, RemoveBackupSet.Descriptor.Name,
        EnableBackupSet.Descriptor.Name, DeferBackupSet.Descriptor.Name, DefinePolicy.Descriptor.Name, RemovePolicy.Descriptor.Name,
        ApplyFile.Descriptor.Name, ApplyDefinitions.Descriptor.Name, ChangeTape.Descriptor.Name, SetLibraryEnabled.Descriptor.Name,
        RemoveClient.Descriptor.Name, RevokeCertificate.Descriptor.Name, UndeleteSnapshots.Descriptor.Name, ClearSuspect.Descriptor.Name,
        ListAudit.Descriptor.Name, HoldSnapshots.Descriptor.Name,
    };

    /// <summary>
    /// The commands that start, steer or stop jobs: an operator, an integrator or a client host may give them (each as
    /// its certificate's role allows: Ops/OpsPermissions, narrowed by the manager's Manager/JobCallers), and the
    /// manager takes them only signed by that certificate, so that who asks is never what a node says.
    /// </summary>
    public static readonly IReadOnlySet<string> Jobs = new HashSet<string>
    {
        StartBackup.Descriptor.Name, RunBackupSet.Descriptor.Name, StartRestore.Descriptor.Name, StartVerify.Descriptor.Name,
        StartCopy.Descriptor.Name, CancelJob.Descriptor.Name, SetJobPriority.Descriptor.Name,
    };

    /// <summary>
    /// The manager's looks at its catalog (jobs, snapshots, backup sets, policies): answered only for a caller whose
    /// certificate signed them (an operator, an integrator, a client host: its own client's), never to a node that
    /// asks in its own name. A program signs the look in a CallerSigned; a node relaying a shell's command sends its looks in a
    /// CatalogLook with the command as the shell signed it.
    /// </summary>
    public static readonly IReadOnlySet<string> CatalogLooks = new HashSet<string>
    {
        ListJobs.Descriptor.Name, GetJob.Descriptor.Name, WatchJob.Descriptor.Name, ListSnapshots.Descriptor.Name, GetSnapshot.Descriptor.Name,
        ListBackupSets.Descriptor.Name, GetBackupSet.Descriptor.Name, ListPolicies.Descriptor.Name, GetPolicy.Descriptor.Name,
        ListDrives.Descriptor.Name, // the jobs and clients holding drives
    };

    /// <summary>
    /// <paramref name="look"/> as a node sends it to the manager for the caller who signed <paramref name="proof"/>: a
    /// look at the catalog inside a CatalogLook with it; anything else (or without a proof: a test without trust) as it is.
    /// </summary>
    public static object For(CallerSigned? proof, IMessage look) =>
        proof is not null && CatalogLooks.Contains(look.Descriptor.Name)
            ? new CatalogLook { Caller = proof, Type = look.Descriptor.Name, Body = look.ToByteString() }
            : look;

    /// <summary>How old the shell's signed command in a CatalogLook may be: a find that builds indexes asks for manifests as it goes.</summary>
    public static readonly TimeSpan LookWindow = TimeSpan.FromHours(1);

    /// <summary>What an auditor's certificate may sign for the manager: the looks at the catalog and the audit trail.</summary>
    public static readonly IReadOnlySet<string> AuditorReads = CatalogLooks.Append(ListAudit.Descriptor.Name).ToHashSet();

    /// <summary>The commands the manager takes only inside a CallerSigned (by their protobuf names).</summary>
    public static readonly IReadOnlySet<string> Signed = OperatorOnly.Concat(Jobs).ToHashSet();

    /// <summary>What a caller other than an operator may sign for the manager: job commands and looks (its role narrows them).</summary>
    public static readonly IReadOnlySet<string> NotOnlyOperators = Jobs.Concat(CatalogLooks).ToHashSet();

    /// <summary>
    /// Looks whose answer is a client's decrypted data (ls, find) and the catalog rebuild: the shell signs them too,
    /// and the client node that answers checks who asked (an operator, an integrator, or that client's own host).
    /// </summary>
    public static readonly IReadOnlySet<string> Looks = new HashSet<string>
    {
        ListSnapshotTree.Descriptor.Name, FindFiles.Descriptor.Name, RebuildCatalog.Descriptor.Name,
    };

    /// <summary>Whether a shell signs a command of this type.</summary>
    public static bool ShellSigns(string type) => Signed.Contains(type) || Looks.Contains(type) || CatalogLooks.Contains(type);

    /// <summary><paramref name="command"/> signed now with <paramref name="certificate"/> (which holds its private key).</summary>
    public static CallerSigned Sign(IMessage command, X509Certificate2 certificate, DateTimeOffset now) =>
        SignedMessages.Sign(new CallerSigned
        {
            Type = command.Descriptor.Name, Body = command.ToByteString(), UnixMs = now.ToUnixTimeMilliseconds(),
            Nonce = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(NonceSize)),
        }, certificate);
}
