using Npgsql;

namespace ActorBackup.Tests.Shared;

/// <summary>
/// A test that needs PostgreSQL. scripts/test.sh starts a private server and puts its connection string in
/// ABK_TEST_POSTGRES (CI always has one); without it the test is reported as skipped, with the reason.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (TestPostgres.Server is null)
            Skip = "no PostgreSQL server for the tests: run them with scripts/test.sh (it starts one when PostgreSQL is installed) or set ABK_TEST_POSTGRES";
    }
}

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
