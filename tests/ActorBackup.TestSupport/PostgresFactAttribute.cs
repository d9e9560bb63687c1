using Xunit;

namespace ActorBackup.TestSupport;

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
