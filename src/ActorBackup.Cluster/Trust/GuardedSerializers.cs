using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Remote.Serialization;
using Akka.Serialization;

namespace ActorBackup.Cluster.Trust;

/// <summary>
/// Stands where Akka.Remote's MiscMessageSerializer (id 16) would: everything it carries, as it does, but a
/// <see cref="Status.Failure"/> from the wire. Akka reads a failure's exception by the type name the peer wrote
/// (Type.GetType) and calls that type's (SerializationInfo, StreamingContext) constructor, whatever the type: any peer
/// holding a certificate of the cell could have a node instantiate a type of its choosing. A failure from another
/// node comes as a <see cref="RemoteFailureException"/> instead, which names no type of the peer's and runs none.
/// </summary>
public sealed class GuardedMiscSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public GuardedMiscSerializer(ExtendedActorSystem system, Akka.Configuration.Config _) : this(system) { }

    /// <summary>Akka's own id for the serializer this one stands for: the peers' payloads of that id come here.</summary>
    public const int SerializerId = 16;
    private const string FailureManifest = "STF";
    private readonly MiscMessageSerializer _inner = new(system);

    public override int Identifier => SerializerId;
    public override byte[] ToBinary(object obj) => _inner.ToBinary(obj);
    public override string Manifest(object o) => _inner.Manifest(o);

    public override object FromBinary(byte[] bytes, string manifest) =>
        manifest == FailureManifest ? new Status.Failure(new RemoteFailureException()) : _inner.FromBinary(bytes, manifest);
}

/// <summary>
/// Stands where Akka.Remote's SystemMessageSerializer (id 22) would, refusing the system messages that carry an
/// exception (Failed, Create, Recreate, Resume: read as <see cref="GuardedMiscSerializer"/> says Akka reads one).
/// They come from a remote node only for an actor deployed there, which this cell never does (untrusted mode); the
/// death watch the cluster needs (Watch, Unwatch, DeathWatchNotification, ...) passes as before.
/// </summary>
public sealed class GuardedSystemMessageSerializer(ExtendedActorSystem system) : Serializer(system)
{
    public GuardedSystemMessageSerializer(ExtendedActorSystem system, Akka.Configuration.Config _) : this(system) { }

    public const int SerializerId = 22;
    private static readonly HashSet<Type> Refused =
        [typeof(Akka.Dispatch.SysMsg.Failed), typeof(Akka.Dispatch.SysMsg.Create), typeof(Akka.Dispatch.SysMsg.Recreate), typeof(Akka.Dispatch.SysMsg.Resume)];
    private readonly SystemMessageSerializer _inner = new(system);

    public override int Identifier => SerializerId;
    public override bool IncludeManifest => _inner.IncludeManifest;
    public override byte[] ToBinary(object obj) => _inner.ToBinary(obj);

    public override object FromBinary(byte[] bytes, Type type) =>
        type is null || Refused.Contains(type)
            ? throw new SerializationException($"refused a system message from another node that carries an exception ({type?.Name ?? "no type"}): no actor is deployed across nodes")
            : _inner.FromBinary(bytes, type);
}

/// <summary>A failure another node replied with (its exception is not rebuilt here: see <see cref="GuardedMiscSerializer"/>).</summary>
public sealed class RemoteFailureException() : Exception("another node answered with a failure (its exception is not rebuilt from the wire)");
