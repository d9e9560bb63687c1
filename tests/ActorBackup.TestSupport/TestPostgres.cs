using Npgsql;

namespace ActorBackup.TestSupport;

/// <summary>A database of its own on the test server, dropped at the end.</summary>
public sealed class TestPostgres : IDisposable
{
    public static string? Server => Environment.GetEnvironmentVariable("ABK_TEST_POSTGRES") is { Length: > 0 } s ? s : null;

    public string Database { get; }
    public string ConnectionString { get; }

    public TestPostgres()
    {
        var server = Server ?? throw new InvalidOperationException("ABK_TEST_POSTGRES is not set");
        Database = "abk_test_" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6));
        Execute(server, $"CREATE DATABASE {Database}");
        ConnectionString = new NpgsqlConnectionStringBuilder(server) { Database = Database, Pooling = false }.ConnectionString;
    }

    private static void Execute(string connectionString, string sql)
    {
        using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        try
        {
            Execute(Server!, $"DROP DATABASE IF EXISTS {Database} WITH (FORCE)");
        }
        catch (NpgsqlException)
        {
            // The server is going away with the test run; the database goes with its folder.
        }
    }
}
