//! Opening a store: [`SqlStore::connect`], the SQLite files (the main one
//! and intake's) with their settings, and the migrations both backends
//! run at start.

use super::*;

impl SqlStore {
    /// Opens the database and brings its schema up to date:
    /// `sqlite://FILE` (created if needed; deliveries live beside it in a
    /// file of their own, `labelwarden.db` with `labelwarden.intake.db`) or
    /// `postgres://…` (one database shared by every replica).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::connect_postgres(url).await;
        }
        let path = url
            .strip_prefix("sqlite:")
            .map(|rest| rest.trim_start_matches("//"))
            .filter(|path| !path.is_empty() && !path.starts_with(':') && !path.contains('?'))
            .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        let main = format!("sqlite://{path}?mode=rwc");
        let intake = format!("sqlite://{}?mode=rwc", intake_file(path));

        let writer = open_sqlite(&main, 1).await?;
        incremental_vacuum(&writer).await?;
        migrate(&writer, Backend::Sqlite, MAIN_TABLE, MIGRATIONS).await?;
        let readers = open_sqlite(&main, 3).await?;
        let intake_writer = open_sqlite(&intake, 1).await?;
        incremental_vacuum(&intake_writer).await?;
        migrate(
            &intake_writer,
            Backend::Sqlite,
            MAIN_TABLE,
            INTAKE_MIGRATIONS,
        )
        .await?;
        let intake_readers = open_sqlite(&intake, 2).await?;

        let (deliveries, queue) = mpsc::channel(4 * intake::DELIVERY_BATCH);
        tokio::spawn(intake::write_deliveries(
            intake_writer,
            Backend::Sqlite,
            queue,
        ));
        Ok(SqlStore {
            readers,
            writer,
            intake_readers,
            deliveries,
            backend: Backend::Sqlite,
            owner: owner_id(),
            path: Some(path.to_owned()),
        })
    }

    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        migrate(&pool, Backend::Postgres, MAIN_TABLE, MIGRATIONS).await?;
        migrate(
            &pool,
            Backend::Postgres,
            INTAKE_TABLE,
            POSTGRES_INTAKE_MIGRATIONS,
        )
        .await?;
        let (deliveries, queue) = mpsc::channel(4 * intake::DELIVERY_BATCH);
        tokio::spawn(intake::write_deliveries(
            pool.clone(),
            Backend::Postgres,
            queue,
        ));
        Ok(SqlStore {
            readers: pool.clone(),
            writer: pool.clone(),
            intake_readers: pool,
            deliveries,
            backend: Backend::Postgres,
            owner: owner_id(),
            path: None,
        })
    }
}

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

/// Makes a SQLite file give freed pages back on request (`PRAGMA
/// incremental_vacuum`, which retention runs): set on a new file, and
/// once on a file made before, which the `VACUUM` that goes with it
/// rewrites (a long moment for a large store, logged).
pub(super) async fn incremental_vacuum(writer: &AnyPool) -> Result<(), sqlx::Error> {
    const INCREMENTAL: i64 = 2;
    let mode = || async {
        sqlx::query("PRAGMA auto_vacuum")
            .fetch_one(writer)
            .await?
            .try_get::<i64, _>(0)
    };
    if mode().await? == INCREMENTAL {
        return Ok(());
    }
    let tables: i64 = sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(writer)
        .await?
        .try_get(0)?;
    if tables > 0 {
        tracing::info!("rewriting the SQLite store once so that it can give space back (VACUUM)");
    }
    // The write-ahead log has written the file's header already, so even
    // a new file takes the mode only through a VACUUM (instant when empty).
    writer.execute("PRAGMA auto_vacuum = INCREMENTAL").await?;
    writer.execute("VACUUM").await?;
    if mode().await? != INCREMENTAL {
        tracing::warn!("SQLite kept its auto_vacuum mode: the store will not give space back");
    }
    Ok(())
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

/// How far a database's schema is, read without changing anything (for
/// `labelwarden doctor`): `None` for a SQLite file not created yet.
pub async fn schema_version(url: &str) -> Result<Option<SchemaVersion>, StoreError> {
    sqlx::any::install_default_drivers();
    let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?
    } else {
        let path = url
            .strip_prefix("sqlite:")
            .map(|rest| rest.trim_start_matches("//"))
            .filter(|path| !path.is_empty() && !path.starts_with(':') && !path.contains('?'))
            .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        if !std::path::Path::new(path).exists() {
            return Ok(None);
        }
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{path}?mode=ro"))
            .await?
    };
    let current = match sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(version), 0) FROM {MAIN_TABLE}"
    )))
    .fetch_one(&pool)
    .await
    {
        Ok(row) => row.try_get::<i64, _>(0)?,
        // No migrations table: nothing was ever migrated here.
        Err(sqlx::Error::Database(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    pool.close().await;
    Ok(Some(SchemaVersion { current, latest }))
}

/// A database's schema version, and the one this build migrates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    pub current: i64,
    pub latest: i64,
}

/// A database URL fit for a log or a report: its password replaced by `***`.
pub fn without_password(database: &str) -> String {
    match url::Url::parse(database) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => database.to_owned(),
    }
}
