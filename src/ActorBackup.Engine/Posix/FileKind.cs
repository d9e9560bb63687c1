namespace ActorBackup.Engine.Posix;

public enum FileKind { Unknown, Regular, Directory, Symlink, Fifo, CharDevice, BlockDevice, Socket }
