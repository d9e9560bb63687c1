using ActorBackup.Cluster.DataPlane;
using ActorBackup.Cluster.Manager;
using ActorBackup.Engine.Chunking;
using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Trees;
using ActorBackup.Protocol;
using Akka;
using Akka.Actor;
using Akka.Event;
using Google.Protobuf;

namespace ActorBackup.Cluster.Client;

/// <param name="BackupRateLimit">bytes read per second by each backup, averaged over the job; 0: no limit</param>
public sealed record ClientSettings(string ClientId, ChunkerOptions Chunker, int CompressionLevel, long BackupRateLimit = 0);
