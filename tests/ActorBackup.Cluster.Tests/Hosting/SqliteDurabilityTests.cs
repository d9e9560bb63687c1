using Microsoft.Data.Sqlite;

namespace ActorBackup.Cluster.Tests.Hosting;

/// <summary>
/// The embedded journal loses no acknowledged event to a power cut only if every connection the persistence plugin
/// opens syncs each commit (synchronous=FULL). The node sets it on one connection at start (CellHosting); the plugin's
/// own connections take the SQLite build's default for WAL databases, which the bundled e_sqlite3 makes FULL. A package
/// update whose build syncs only at checkpoints (NORMAL) fails here, not silently in a power cut.
/// </summary>
public sealed class SqliteDurabilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("abk-sqlite-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_new_connection_to_a_WAL_journal_syncs_every_commit()
    {
        var source = new SqliteConnectionStringBuilder { DataSource = Path.Combine(_dir, "journal.db"), Pooling = false }.ToString();
        using (var first = new SqliteConnection(source))
        {
            first.Open();
            using var cmd = first.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER);";
            cmd.ExecuteNonQuery();
        }
        using var later = new SqliteConnection(source); // as the plugin's: nothing set on it
        later.Open();
        using var read = later.CreateCommand();
        read.CommandText = "SELECT count(*) FROM t";
        read.ExecuteScalar(); // the WAL opened
        read.CommandText = "PRAGMA synchronous";
        Assert.Equal(2L, (long)read.ExecuteScalar()!); // FULL
    }
}
