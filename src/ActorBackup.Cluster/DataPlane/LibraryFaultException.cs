namespace ActorBackup.Cluster.DataPlane;

/// <summary>
/// The library refused or failed a job's session (out of space, could not be opened, a commit it could not
/// make): another library of the job's storage policy may take the job, the same one would fail again.
/// </summary>
public sealed class LibraryFaultException(string message) : IOException(message), Engine.Codec.ISourceFault;
