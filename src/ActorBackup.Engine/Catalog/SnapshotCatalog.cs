using ActorBackup.Engine.Trees;
using Google.Protobuf;

namespace ActorBackup.Engine.Catalog;

/// <summary>
/// Snapshot manifests as files (snapshots/ID.snap), for the engine used on its own; in the cell the manager's
/// journal is the catalog. A manifest is written last, after the library committed: a snapshot that is
/// listed is a snapshot that restores.
/// </summary>
public sealed class SnapshotCatalog
{
    private readonly string _dir;

    public SnapshotCatalog(string dir)
    {
        _dir = dir;
        Directory.CreateDirectory(dir);
    }

    public void Save(SnapshotManifest manifest)
    {
        Posix.Posix.WriteFileDurably(Path.Combine(_dir, manifest.Id + ".snap"), manifest.WriteTo);
    }

    public IReadOnlyList<SnapshotManifest> List()
    {
        var list = new List<SnapshotManifest>();
        foreach (var file in Directory.EnumerateFiles(_dir, "*.snap"))
        {
            try
            {
                list.Add(SnapshotManifest.Parser.ParseFrom(File.ReadAllBytes(file)));
            }
            catch (InvalidProtocolBufferException)
            {
                // A damaged manifest is skipped here; verify reports it.
            }
        }
        list.Sort((a, b) => a.FinishedUnixMs.CompareTo(b.FinishedUnixMs));
        return list;
    }

    /// <summary>A snapshot by id or unique id prefix; "latest" for the newest.</summary>
    public SnapshotManifest Find(string idOrPrefix) => Find(List(), idOrPrefix, "list snapshots to see their ids");

    /// <summary>
    /// A snapshot of <paramref name="oldestFirst"/> by id or unique id prefix; "latest" (or nothing) for the
    /// newest. KeyNotFoundException says what went wrong and, with <paramref name="howToList"/>, what to do.
    /// </summary>
    public static SnapshotManifest Find(IReadOnlyList<SnapshotManifest> oldestFirst, string idOrPrefix, string howToList) =>
        Find(oldestFirst, s => s.Id, idOrPrefix, howToList);

    /// <summary>
    /// The same over any list of snapshots (a manager's SnapshotInfo, say): <paramref name="none"/> when it is empty,
    /// <paramref name="whose"/> (e.g. " of client web1") after the id when nothing matches.
    /// </summary>
    public static T Find<T>(IReadOnlyList<T> oldestFirst, Func<T, string> id, string idOrPrefix, string howToList,
        string none = "there is no snapshot yet: run a backup first", string whose = "")
    {
        if (idOrPrefix is "" or "latest")
            return oldestFirst.Count > 0 ? oldestFirst[^1] : throw new KeyNotFoundException(none);
        var matches = oldestFirst.Where(s => id(s).StartsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase)).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new KeyNotFoundException($"no snapshot '{idOrPrefix}'{whose}: {howToList}"),
            _ => throw new KeyNotFoundException($"'{idOrPrefix}' matches {matches.Count} snapshots: give more of the id"),
        };
    }

    /// <summary>
    /// The parent a backup of this level compares with: incremental, the newest snapshot of the same set and
    /// client; differential, the newest full one; full, none.
    /// </summary>
    public SnapshotManifest? ParentFor(string backupSet, string client, Level level) => ParentFor(List(), backupSet, client, level);

    public static SnapshotManifest? ParentFor(IEnumerable<SnapshotManifest> oldestFirst, string backupSet, string client, Level level) =>
        level == Level.Full ? null
            : oldestFirst.LastOrDefault(s => s.BackupSet == backupSet && s.Client == client && (level == Level.Incremental || s.Level == Level.Full));
}
