//! Opening a store: the SQLite files (the main one and intake's) with
//! their settings, and the migrations both backends run at start.

use super::*;

/// `labelwarden.db` -> `labelwarden.intake.db`; any other name gets `.intake`.
pub(super) fn intake_file(path: &str) -> String {
    match path.strip_suffix(".db") {
        Some(stem) => format!("{stem}.intake.db"),
        None => format!("{path}.intake"),
    }
}

pub(super) async fn open_sqlite(url: &str, connections: u32) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(|connection, _| {
            Box::pin(async move {
                // WAL: readers never block the writer. NORMAL: a commit
                // survives a crash of the process; only power loss can
                // lose the last commits (documented in BENCHMARKS.md).
                connection.execute("PRAGMA journal_mode = WAL").await?;
                connection.execute("PRAGMA synchronous = NORMAL").await?;
                connection.execute("PRAGMA busy_timeout = 5000").await?;
                // A 32 MiB page cache per connection (SQLite's default is
                // 2 MiB): the store grows by about 4 KB per delivery under
                // load, and a pass reads pages all over it.
                connection.execute("PRAGMA cache_size = -32768").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Applies the migrations `pool` has not seen yet, each in a transaction,
/// recorded in `table`. On PostgreSQL an advisory lock keeps two replicas
/// starting at once from migrating together.
pub(super) async fn migrate(
    pool: &AnyPool,
    backend: Backend,
    table: &'static str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    if backend == Backend::Postgres {
        connection
            .execute("SELECT pg_advisory_lock(7262733816)")
            .await?;
    }
    let outcome = apply_migrations(&mut connection, table, migrations).await;
    if backend == Backend::Postgres {
        connection
            .execute("SELECT pg_advisory_unlock(7262733816)")
            .await?;
    }
    outcome
}

pub(super) async fn apply_migrations(
    connection: &mut sqlx::pool::PoolConnection<Any>,
    table: &'static str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    // The table name is one of two constants, never input.
    connection
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )"
        )))
        .await?;
    let applied: Vec<i64> =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut **connection)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let mut tx = connection.begin().await?;
        for statement in migration.statements {
            tx.execute(*statement).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, $3)"
        )))
        .bind(migration.version)
        .bind(migration.name)
        .bind(millis(Utc::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "database migrated"
        );
    }
    Ok(())
}
