//! Throwaway PostgreSQL databases for the tests that run against a real server: the server
//! is `TRIBUNAL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`;
//! `.ci/run` starts one), and each database is created fresh and dropped afterwards.

use sqlx::Connection;

/// A database of its own on the test server.
pub struct TestDatabase {
    /// Its URL, for [`crate::Store::open`].
    pub url: String,
    name: String,
    admin: String,
}

/// The test server's URL.
pub fn admin_url() -> String {
    std::env::var("TRIBUNAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl TestDatabase {
    /// Creates `PREFIX_<pid>_<nanos>`; the error says which server was needed.
    pub async fn create(prefix: &str) -> Result<TestDatabase, String> {
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .map_err(|e| format!("PostgreSQL at {admin} is needed for this test: {e}"))?;
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("creating database {name}: {e}"))?;
        let i = admin
            .rfind('/')
            .ok_or_else(|| format!("database URL without a path: {admin}"))?;
        Ok(TestDatabase {
            url: format!("{}/{name}", &admin[..i]),
            name,
            admin,
        })
    }

    /// Closes every connection to the database and refuses new ones (`allow` undoes it):
    /// a store whose server went away.
    pub async fn cut_off(&self) -> Result<(), String> {
        self.admin_sql(&format!(
            "ALTER DATABASE {0} WITH ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
            self.name
        ))
        .await
    }

    /// Accepts connections again after [`TestDatabase::cut_off`].
    pub async fn allow(&self) -> Result<(), String> {
        self.admin_sql(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ))
        .await
    }

    /// Sets the database's default for a setting (`ALTER DATABASE … SET`), as an operator's
    /// tuning would: connections opened afterwards start with it.
    pub async fn set_default(&self, setting: &str, value: &str) -> Result<(), String> {
        self.admin_sql(&format!(
            "ALTER DATABASE {} SET {setting} = {value}",
            self.name
        ))
        .await
    }

    async fn admin_sql(&self, sql: &str) -> Result<(), String> {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        Ok(())
    }

    /// Drops the database, closing what is still connected to it.
    pub async fn drop(self) -> Result<(), String> {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("dropping database {}: {e}", self.name))?;
        Ok(())
    }
}

/// Makes every write of a decision-log entry fail, from any connection to the database,
/// until `DROP TRIGGER fail_log_writes`.
pub const FAIL_LOG_WRITES: &str = "CREATE TRIGGER fail_log_writes BEFORE INSERT ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'the test makes decision-log writes fail'); END";

/// A SQLite file's write lock, held by a connection of its own (`BEGIN IMMEDIATE`) until
/// [`WriteLock::release`]: every other writer of the file waits meanwhile.
pub struct WriteLock(sqlx::SqliteConnection);

impl WriteLock {
    /// Takes the write lock of the SQLite file at `path`.
    pub async fn take(path: &std::path::Path) -> Result<WriteLock, String> {
        use sqlx::sqlite::SqliteConnectOptions;
        let mut conn =
            sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
                .await
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .map_err(|e| format!("cannot take the write lock of {}: {e}", path.display()))?;
        Ok(WriteLock(conn))
    }

    /// Lets other writers go on.
    pub async fn release(mut self) -> Result<(), String> {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .map_err(|e| format!("cannot release the write lock: {e}"))?;
        self.0.close().await.map_err(|e| e.to_string())
    }
}

/// The value of a PostgreSQL setting on a connection of `store`'s pool.
pub async fn setting(store: &crate::Store, name: &str) -> Result<String, crate::StoreError> {
    use sqlx::Row;
    let row = sqlx::query("SELECT current_setting($1) AS v")
        .bind(name)
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get("v")?)
}
