using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Posix;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Work;
using DotNet.Globbing;

namespace ActorBackup.Engine.Restore;

public sealed record RestoreResult(long Files, long Directories, long Links, long Other, long Bytes, IReadOnlyList<SnapshotError> Errors);
