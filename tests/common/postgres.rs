//! PostgreSQL for the tests: a fresh database per test on the server named
//! by `LABELWARDEN_TEST_POSTGRES_URL` (`.ci/run` starts the machine's
//! server and sets it). Without it the PostgreSQL tests say they were
//! skipped and pass, on a developer's machine only: under CI (`CI` set, as
//! every CI service sets it) a missing server fails them, so a CI that lost
//! its database cannot report them green.

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

pub const URL_ENV: &str = "LABELWARDEN_TEST_POSTGRES_URL";

/// A database made for one test.
pub struct Database {
    /// The server URL with this database's name.
    pub url: String,
    server: String,
    name: String,
}

/// Creates a database with a unique name, or `None` (and a note on
/// stderr) when no server is configured.
pub async fn fresh_database() -> Option<Database> {
    let Ok(server) = std::env::var(URL_ENV) else {
        if std::env::var_os("CI").is_some_and(|ci| !ci.is_empty() && ci != "false") {
            panic!(
                "CI is set but {URL_ENV} is not: the PostgreSQL tests would be skipped, not run. \
                 Set it to postgres://USER@HOST:5432/DATABASE (.ci/run does)."
            );
        }
        // Written past the test harness's capture, once per test binary, so
        // that a passing run still says what it did not run.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: PostgreSQL tests skipped in this binary: set {URL_ENV}=postgres://USER@HOST:5432/DATABASE to run them (.ci/run does)"
            );
        });
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!(
        "labelwarden_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&server)
        .await
        .unwrap_or_else(|e| panic!("{URL_ENV}={server}: cannot connect: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await;
    let url = match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("{URL_ENV} must end in /DATABASE"),
    };
    Some(Database { url, server, name })
}

impl Database {
    /// Drops the database (after the test's connections are gone).
    pub async fn drop(self) {
        if let Ok(admin) = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.server)
            .await
        {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .await;
        }
    }
}

impl Database {
    /// A connection to this database, for a test to read what the
    /// replicas wrote.
    async fn reader(&self) -> sqlx::AnyPool {
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .unwrap()
    }

    /// The process id of the replica holding lease `name` now, from the
    /// `leases` table: its owner is `HOST-PID-STARTED`.
    pub async fn lease_holder(&self, name: &str) -> Option<u32> {
        use sqlx::Row;
        let now = chrono::Utc::now().timestamp_millis();
        let pool = self.reader().await;
        let row = sqlx::query("SELECT owner FROM leases WHERE name = $1 AND until_at > $2")
            .bind(name)
            .bind(now)
            .fetch_optional(&pool)
            .await
            .unwrap();
        pool.close().await;
        let owner: String = row?.try_get("owner").unwrap();
        let mut parts = owner.rsplitn(3, '-');
        let _started = parts.next();
        parts.next()?.parse().ok()
    }

    /// The lease's holder, waiting up to `within` for one: a replica that
    /// answers on its port may not have taken the lease yet, and a busy
    /// machine may renew it a moment late.
    pub async fn wait_for_lease_holder(
        &self,
        name: &str,
        within: std::time::Duration,
    ) -> Option<u32> {
        let until = std::time::Instant::now() + within;
        loop {
            if let Some(holder) = self.lease_holder(name).await {
                return Some(holder);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every step the ledger says fired, as (issue iid, step), in no
    /// particular order.
    pub async fn fired_steps(&self) -> Vec<(u64, String)> {
        use sqlx::Row;
        let pool = self.reader().await;
        let rows = sqlx::query("SELECT iid, step FROM ledger")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter()
            .map(|row| {
                (
                    row.try_get::<i64, _>("iid").unwrap() as u64,
                    row.try_get::<String, _>("step").unwrap(),
                )
            })
            .collect()
    }
}
