using ActorBackup.Engine.Codec;
using ActorBackup.Engine.Hashing;
using ActorBackup.Engine.Posix;
using ActorBackup.Engine.Trees;
using ActorBackup.Engine.Work;
using DotNet.Globbing;

namespace ActorBackup.Engine.Restore;

public sealed record RestoreProgress(long FilesDone, long FilesTotal, long BytesDone, long BytesTotal);
