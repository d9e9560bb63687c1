using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;

namespace ActorBackup.Engine.Find;

/// <summary>
/// The file indexes a node keeps, one file per snapshot (SNAPSHOT.fidx) in a private folder. A projection: a
/// missing or damaged index is built again from the snapshot's trees, an index of a snapshot the catalog no
/// longer has is deleted. Index files are written whole under a temporary name and renamed, read through a
/// memory map (the page cache is the cache), and checked whole the first time this process reads them.
/// </summary>
public sealed class FileIndexStore
{
    private readonly string _dir;
    /// <summary>Index files checked whole (checksum), by path, with the length and mtime they had then.</summary>
    private readonly ConcurrentDictionary<string, (long Length, DateTime Mtime)> _checked = new();

    public FileIndexStore(string dir)
    {
        _dir = dir;
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string Folder => _dir;

    public delegate T Reader<out T>(FileIndex.View index);
    private delegate T FileReader<out T>(ReadOnlySpan<byte> file);

    private string PathOf(string snapshot)
    {
        if (snapshot.Length is 0 or > 128 || !snapshot.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new ArgumentException($"'{snapshot}' is not a snapshot id");
        return Path.Combine(_dir, snapshot + ".fidx");
    }

    /// <summary>Whether the snapshot has an index that reads whole (a damaged one is deleted: it is built again).</summary>
    public bool Has(string snapshot)
    {
        try
        {
            return Read(snapshot, _ => true);
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads a snapshot's index through <paramref name="read"/>. False when there is none.
    /// </summary>
    /// <exception cref="InvalidDataException">the index is damaged (it is deleted, to be built again)</exception>
    public bool Read<T>(string snapshot, Reader<T> read, out T result) => Read(snapshot, file => read(FileIndex.Open(file)), out result);

    /// <summary>The same, with the index file's bytes (checked whole, of the snapshot asked for).</summary>
    private bool Read<T>(string snapshot, FileReader<T> read, out T result)
    {
        var path = PathOf(snapshot);
        result = default!;
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1);
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        try
        {
            using (file)
            {
                var length = file.Length;
                if (length > FileIndex.MaxFileBytes || length < 1) throw new InvalidDataException($"{length} bytes, not an index");
                using var map = MemoryMappedFile.CreateFromFile(file, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
                using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
                result = Use(view, length, path, snapshot, read);
                return true;
            }
        }
        catch (InvalidDataException)
        {
            _checked.TryRemove(path, out _);
            File.Delete(path);
            throw;
        }
    }

    private T Use<T>(MemoryMappedViewAccessor view, long length, string path, string snapshot, FileReader<T> read)
    {
        unsafe
        {
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            try
            {
                var bytes = new ReadOnlySpan<byte>(pointer + view.PointerOffset, (int)length);
                var stamp = (length, File.GetLastWriteTimeUtc(path));
                if (!_checked.TryGetValue(path, out var seen) || seen != stamp)
                {
                    FileIndex.Check(bytes);
                    _checked[path] = stamp;
                }
                var index = FileIndex.Open(bytes);
                if (index.Header.Snapshot != snapshot) throw new InvalidDataException($"it indexes snapshot {index.Header.Snapshot}");
                return read(bytes);
            }
            finally
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }
    }

    private bool Read(string snapshot, Reader<bool> read) => Read(snapshot, read, out var ok) && ok;

    /// <summary>
    /// Writes <paramref name="snapshot"/>'s index from the index of snapshot <paramref name="from"/> when that one
    /// projects the same root tree (an unchanged backup and its parent: FileIndex.Rewrite, no tree read). False when
    /// <paramref name="from"/> has no index here, a damaged one (then deleted), or one of another tree.
    /// </summary>
    public bool WriteFrom(string from, Trees.SnapshotManifest snapshot)
    {
        if (snapshot.RootTree.IsEmpty) return false;
        try
        {
            return Read(from, file =>
            {
                var root = FileIndex.Open(file).Header.Root;
                if (!root.AsSpan().SequenceEqual(snapshot.RootTree.Span)) return false;
                Write(snapshot.Id, file, static (output, _, source, s) => FileIndex.Rewrite(source, s, output), snapshot);
                return true;
            }, out var written) && written;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>Writes a snapshot's index through <paramref name="write"/> (given the file and a scratch file), replacing any it had.</summary>
    public void Write(string snapshot, Action<Stream, Stream> write) => Write(snapshot, default, (file, scratch, _, w) => w(file, scratch), write);

    private delegate void SpanWriter<in TState>(Stream file, Stream scratch, ReadOnlySpan<byte> source, TState state);

    private void Write<TState>(string snapshot, ReadOnlySpan<byte> source, SpanWriter<TState> write, TState state)
    {
        var path = PathOf(snapshot);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, BufferSize = 1 << 16, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        };
        try
        {
            using (var file = new FileStream(temp, options))
            using (var scratch = new FileStream(temp + ".rows", new FileStreamOptions
                   {
                       Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, BufferSize = 1 << 16, Options = FileOptions.DeleteOnClose,
                       UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                   }))
                write(file, scratch, source, state);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>
    /// Deletes the indexes of snapshots not in <paramref name="live"/>, and temporary files a crash left (an hour old:
    /// younger ones may be being written); answers how many indexes went.
    /// </summary>
    public int Retain(IReadOnlySet<string> live) => Drop((file, id) => !live.Contains(id));

    /// <summary>
    /// Deletes the indexes of <paramref name="client"/>'s snapshots that ended before <paramref name="asOfUnixMs"/> and are not in
    /// <paramref name="live"/> (the catalog's snapshots of that client as of then: a snapshot made since is in no list), and
    /// scratch files an hour old; the indexes of other clients' snapshots (built for a find on this node) stay. A client
    /// calls it after each backup, so that the indexes of snapshots retention deleted do not pile up (one a backup).
    /// </summary>
    public int RetainOf(string client, IReadOnlySet<string> live, long asOfUnixMs) => Drop((file, id) =>
    {
        if (live.Contains(id)) return false;
        Span<byte> start = stackalloc byte[512];
        int read;
        try
        {
            using var handle = File.OpenHandle(file);
            read = RandomAccess.Read(handle, start, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        return FileIndex.Owner(start[..read]) is { } owner && owner.Client == client && owner.FinishedUnixMs < asOfUnixMs;
    });

    private int Drop(Func<string, string, bool> drop)
    {
        var dropped = 0;
        foreach (var file in Directory.EnumerateFiles(_dir))
        {
            var name = Path.GetFileName(file);
            if (!name.EndsWith(".fidx", StringComparison.Ordinal))
            {
                if (File.GetLastWriteTimeUtc(file) < DateTime.UtcNow.AddHours(-1)) File.Delete(file);
                continue;
            }
            if (!drop(file, name[..^5])) continue;
            _checked.TryRemove(file, out _);
            File.Delete(file);
            dropped++;
        }
        return dropped;
    }
}
