using ActorBackup.Cluster.DataPlane;
using ActorBackup.Engine.Index;
using ActorBackup.Engine.Library;
using ActorBackup.Protocol;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Google.Protobuf;

namespace ActorBackup.Cluster.Media;

/// <summary>A library this node can reach, as its HOCON declares it.</summary>
public sealed record LibraryDeclaration(string Id, string Path, long VolumeCapacity);
