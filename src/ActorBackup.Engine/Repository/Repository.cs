using System.Text.Json;
using ActorBackup.Engine.Catalog;
using ActorBackup.Engine.Crypto;
using ActorBackup.Engine.Library;
using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Archive;
using ActorBackup.Engine.Trees;

namespace ActorBackup.Engine.Repository;

/// <summary>
/// The engine on its own, without a cell: a master key, one disk library and a snapshot catalog in one
/// folder (like a restic repository). The benchmark and `actorbackup engine` use it; the cell splits the same
/// parts between client, media agent and manager.
/// <code>
/// repository.json   chunking and compression policy
/// keys/master.json  the wrapped master key
/// library/          the disk library (volumes, index)
/// snapshots/        snapshot manifests
/// </code>
/// </summary>
public sealed class Repository : IDisposable
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string Root { get; }
    public RepositoryConfig Config { get; }
    /// <summary>The repository's master key: every client's keys.</summary>
    public KeyRing Ring { get; }
    /// <summary>The keys of this host's snapshots (the default client: the machine's name).</summary>
    public CellKeys Keys => Ring.For(Environment.MachineName);
    public DiskLibrary Library { get; }
    public SnapshotCatalog Catalog { get; }
    /// <summary>The backups' <see cref="BackupOptions.RereadChangedWithin"/> (tests: 0, their files are made right before).</summary>
    public TimeSpan RereadChangedWithin { get; set; } = BackupOptions.DefaultRereadChangedWithin;

    private Repository(string root, RepositoryConfig config, MasterKey key, DiskLibrary library)
    {
        Root = root;
        Config = config;
        Ring = new KeyRing(key);
        Library = library;
        Catalog = new SnapshotCatalog(Path.Combine(root, "snapshots"));
    }

    public static Repository Init(string root, KeySource key, RepositoryConfig? config = null, KeyStore.Argon2Parameters? argon = null)
    {
        config ??= new RepositoryConfig();
        config.Chunker.Validate();
        if (File.Exists(Path.Combine(root, "repository.json"))) throw new IOException($"{root} already holds a repository: use it, or choose an empty folder");
        Directory.CreateDirectory(root);
        var master = MasterKey.Generate();
        KeyStore.Save(key.Wrap(master, argon), Path.Combine(root, "keys", "master.json"));
        Posix.Posix.WriteFileDurably(Path.Combine(root, "repository.json"), JsonSerializer.SerializeToUtf8Bytes(config, Json), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var library = DiskLibrary.Create(Path.Combine(root, "library"), config.Library, config.VolumeCapacity);
        var repository = new Repository(root, config, master, library); // makes snapshots/
        Posix.Posix.SyncDirectory(root); // keys/, library/ and snapshots/ are there by name
        return repository;
    }

    public static Repository Open(string root, KeySource key)
    {
        var configPath = Path.Combine(root, "repository.json");
        if (!File.Exists(configPath)) throw new DirectoryNotFoundException($"{root} is not an ActorBackup repository: initialise it first (actorbackup engine init --repo {root})");
        var config = ReadConfig(configPath);
        var master = key.Unwrap(KeyStore.Load(Path.Combine(root, "keys", "master.json")));
        return new Repository(root, config, master, DiskLibrary.Open(Path.Combine(root, "library")));
    }

    /// <summary>repository.json, every value checked: a damaged file is an error naming it, never a stack trace later.</summary>
    private static RepositoryConfig ReadConfig(string path)
    {
        RepositoryConfig config;
        try
        {
            config = JsonSerializer.Deserialize<RepositoryConfig>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} is empty");
            config.Chunker.Validate();
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new InvalidDataException($"{path} is not a valid repository configuration: {e.Message}", e);
        }
        if (config.CompressionLevel is < 1 or > 22) throw new InvalidDataException($"{path}: compression_level {config.CompressionLevel} is not 1-22");
        if (config.VolumeCapacity is < 1024 * 1024 or > Index.ChunkLocation.MaxOffset)
            throw new InvalidDataException($"{path}: volume_capacity {config.VolumeCapacity} is not between 1 MiB and 1 TiB");
        if (string.IsNullOrEmpty(config.Library) || config.Library.Length > 128) throw new InvalidDataException($"{path}: library id '{config.Library}' is not valid");
        return config;
    }

    public static string DefaultSetName(IEnumerable<string> paths) =>
        string.Join(",", paths.Select(Path.GetFullPath).Order(StringComparer.Ordinal));

    public SnapshotManifest Backup(BackupSet set, Level level, IProgress<BackupProgress>? progress = null, CancellationToken cancel = default, string? client = null)
    {
        client ??= Environment.MachineName;
        // A changed parent would make this backup skip files (refused); one from before manifests were sealed is none.
        var keys = Ring.For(client);
        var parent = ManifestSeal.Parent(Ring, keys, Catalog.ParentFor(set.Name, client, level));
        // Like Bacula: an incremental or differential with nothing to compare with is a full backup.
        if (parent is null) level = Level.Full;
        var options = new BackupOptions
        {
            Level = level, Chunker = Config.Chunker, CompressionLevel = Config.CompressionLevel, Library = Library.Id, Client = client,
            Commit = false, // committed with the manifest (StoredManifests.Store)
            RereadChangedWithin = RereadChangedWithin,
        };
        var manifest = new Archiver(keys, Library, Library, parent?.Keys).Run(set, options, parent?.Manifest, progress, cancel);
        StoredManifests.Store(Ring, keys, Library, manifest, Config.CompressionLevel); // the catalog comes back from the library alone; the commit of both
        Catalog.Save(manifest);
        return manifest;
    }

    public RestoreResult Restore(string snapshot, string target, IReadOnlyList<string>? include = null, IProgress<RestoreProgress>? progress = null,
        CancellationToken cancel = default, bool force = false, bool numericOwner = false) =>
        Restore(snapshot, target, new RestoreOptions { Include = include ?? [], Force = force, NumericOwner = numericOwner }, progress, cancel);

    public RestoreResult Restore(string snapshot, string target, RestoreOptions options, IProgress<RestoreProgress>? progress = null, CancellationToken cancel = default)
    {
        var manifest = Snapshot(snapshot);
        return new Restorer(Ring.For(manifest), Library).Run(manifest, target, options, progress, cancel);
    }

    /// <summary>A snapshot of the catalog by id, prefix or "latest", its seal checked (ManifestSeal).</summary>
    public SnapshotManifest Snapshot(string idOrPrefix)
    {
        var manifest = Catalog.Find(idOrPrefix);
        ManifestSeal.Check(Ring.For(manifest), manifest);
        return manifest;
    }

    public void Dispose() => Library.Dispose();
}
