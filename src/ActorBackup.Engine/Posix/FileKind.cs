using System.Runtime.InteropServices;
using System.Text;

namespace ActorBackup.Engine.Posix;

public enum FileKind { Unknown, Regular, Directory, Symlink, Fifo, CharDevice, BlockDevice, Socket }
