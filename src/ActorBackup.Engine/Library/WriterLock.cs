using System.Buffers.Binary;

namespace ActorBackup.Engine.Library;

/// <summary>
/// A library has one writer. Whoever opens it (a media agent, the engine CLI, a rebuild) takes an exclusive lock on
/// ROOT/writer.lock (flock, released by the kernel when the process dies, so a crash never leaves it held) for as long
/// as it has the library open, and a fencing token: the number in that file, one more than the last holder's. Each
/// commit first checks that the file still carries its token: a holder that lost the library (its lock file
/// replaced, a second agent on shared storage) stops writing instead of committing into another writer's library.
/// </summary>
internal sealed class WriterLock : IDisposable
{
    public const string FileName = "writer.lock";
    private readonly FileStream _file;
    private readonly string _path;
    private readonly Posix.FileStat? _identity;
    public long Token { get; }

    private WriterLock(FileStream file, string path, long token)
    {
        _file = file;
        _path = path;
        Token = token;
        _identity = Posix.Posix.LStat(path);
    }

    public static WriterLock Take(string root, string id)
    {
        var path = Path.Combine(root, FileName);
        FileStream file;
        try
        {
            file = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        // Only the lock taken (flock's EWOULDBLOCK, the HResult .NET gives it on Linux): a read-only remount (EROFS) or
        // out of file handles (EMFILE) goes out as itself, not as "another writer".
        catch (IOException e) when (e.HResult == Posix.Posix.EWOULDBLOCK && File.Exists(path))
        {
            throw new LibraryLockedException($"library {id} at {root} has another writer (a media agent, a node, or an 'actorbackup engine' command " +
                                             $"holds {path}): a library has one writer; stop the other one first ({e.Message})");
        }
        try
        {
            Span<byte> bytes = stackalloc byte[8];
            var last = file.Length >= 8 && file.Read(bytes) == 8 ? BinaryPrimitives.ReadInt64LittleEndian(bytes) : 0;
            var token = Math.Max(0, last) + 1;
            BinaryPrimitives.WriteInt64LittleEndian(bytes, token);
            file.Position = 0;
            file.Write(bytes);
            file.SetLength(8);
            file.Flush(true);
            return new WriterLock(file, path, token);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Throws when another writer has taken the library since this one did.</summary>
    public void CheckStillHeld(string id)
    {
        // The file at the path must still be the one this writer locked (not removed or replaced), carrying its token.
        var at = Posix.Posix.LStat(_path);
        long now = -1;
        if (at is { } s && _identity is { } mine && s.Inode == mine.Inode && s.Device == mine.Device)
        {
            Span<byte> bytes = stackalloc byte[8];
            if (RandomAccess.Read(_file.SafeFileHandle, bytes, 0) == 8) now = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        }
        if (now != Token)
            throw new LibraryLockedException($"library {id}: another writer took it (fencing token {now}, this writer's {Token}): this one stops writing; nothing more is committed by it");
    }

    public void Dispose() => _file.Dispose();
}

/// <summary>The library is another writer's.</summary>
public sealed class LibraryLockedException(string message) : IOException(message);
