using ActorBackup.Protocol;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// A job's result is signed by the node that ran it (<see cref="MessageSignature"/>), and the manager takes it only
/// from the node the job belongs to: a client job (backup, restore, verify of a snapshot) from a node with the client
/// role and that job's client id; a media job (prune, copy, library check) from a media node that serves the job's
/// library. A node holding another host's valid certificate cannot end, or forge the snapshot of, a job that is not
/// its own.
/// </summary>
public static class JobSignature
{
    /// <summary>Signs <paramref name="f"/> in place with this node's key; unchanged in an ActorSystem without trust (tests of one actor).</summary>
    public static JobFinished Sign(JobFinished f, NodeTrust? trust) => MessageSignature.Sign(f, trust);

    /// <summary>
    /// Why the manager must not take <paramref name="f"/> (a <see cref="JobFinished"/> or a <see cref="JobProgress"/>)
    /// as <paramref name="job"/>'s; null when it may.
    /// </summary>
    public static string? Refusal(NodeTrust trust, JobInfo job, Google.Protobuf.IMessage f)
    {
        var id = MessageSignature.Signer(trust, f, out var refusal);
        if (id is null) return refusal == "it is not signed" ? "it is not signed by the node that ran it" : refusal;
        var mediaJob = job.Kind is JobKind.Prune or JobKind.Copy || job is { Kind: JobKind.Verify, Snapshot: "" };
        var allowed = mediaJob ? MessageSignature.IsMediaNode(id, job.Library) : MessageSignature.IsClientNode(id, job.Client);
        return allowed ? null : $"it is signed by {id}, not by " + (mediaJob ? $"the media node of library {job.Library}" : $"client {job.Client}, whose job it is");
    }
}
