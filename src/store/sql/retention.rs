//! Letting go and measuring (see [`crate::store::retention`]): ended
//! issues forgotten in batches under the enforcer's fence, SQLite's free
//! pages given back, sizes counted, and a consistent copy for backups.

use std::path::{Path, PathBuf};

use super::identity::ISSUE_TABLES;
use super::*;
use crate::store::retention::StoreSize;

/// The main database's tables besides an issue's own ([`ISSUE_TABLES`]).
const OTHER_TABLES: &[&str] = &[
    "projects",
    "slack_events",
    "digests",
    "digest_members",
    "digest_notices",
    "mutes",
    "downtimes",
    "rejected_deliveries",
];

/// Forgets up to `batch` issues whose clocks all ended (or never ran),
/// or that are closed (a clock of a closed issue only holds), and that
/// nothing changed since before `before`, with nothing waiting to be sent
/// and in no digest still open then; with every row of theirs.
/// Returns how many issues it forgot.
pub(super) async fn forget_ended(
    store: &SqlStore,
    before: DateTime<Utc>,
    batch: u32,
    fence: Option<&LeaseFence>,
) -> Result<u64, StoreError> {
    let mut tx = super::fence::fenced_transaction(store, fence).await?;
    let cutoff = millis(before);
    let rows = sqlx::query(
        "SELECT i.project, i.iid FROM issues i
         WHERE i.updated_at < $1
           AND NOT EXISTS (SELECT 1 FROM clocks c WHERE c.project = i.project AND c.iid = i.iid
                 AND (c.updated_at >= $1 OR c.next_wake IS NOT NULL
                      OR (c.status IN ('running', 'paused', 'breached') AND COALESCE(i.open, 1) = 1)))
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.project = i.project AND o.iid = i.iid
                 AND (o.sent_at IS NULL OR o.created_at >= $1))
           AND NOT EXISTS (SELECT 1 FROM digest_members m JOIN digests d
                 ON d.kind = m.kind AND d.channel = m.channel AND d.policy = m.policy
                    AND d.opened_at = m.opened_at
                 WHERE m.project = i.project AND m.iid = i.iid AND d.closes_at >= $1)
         ORDER BY i.updated_at LIMIT $2",
    )
    .bind(cutoff)
    .bind(i64::from(batch))
    .fetch_all(&mut *tx)
    .await?;
    let issues: Vec<(String, i64)> = rows
        .iter()
        .map(|row| Ok((row.try_get("project")?, row.try_get("iid")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    if issues.is_empty() {
        return Ok(0);
    }
    let tables = ISSUE_TABLES
        .iter()
        .chain(&["digest_members", "digest_notices"]);
    for table in tables {
        for chunk in issues.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM {table} WHERE (project, iid) IN (VALUES {})",
                parameters(store.backend, chunk.len(), 2)
            );
            let mut query = multi_row(sql);
            for (project, iid) in chunk {
                query = query.bind(project.as_str()).bind(*iid);
            }
            query.execute(&mut *tx).await?;
        }
    }
    // Records of their own kind that age the same way.
    sqlx::query("DELETE FROM rejected_deliveries WHERE rejected_at < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM downtimes WHERE to_at < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(issues.len() as u64)
}

/// Gives SQLite's free pages back to the file system, `pages` at a time
/// so that the writer is never held long; PostgreSQL's autovacuum does
/// this there. Returns the pages given back.
pub(super) async fn compact(store: &SqlStore, pages: u32) -> Result<u64, StoreError> {
    if store.backend != Backend::Sqlite {
        return Ok(0);
    }
    let free = || async {
        sqlx::query("PRAGMA freelist_count")
            .fetch_one(&store.writer)
            .await?
            .try_get::<i64, _>(0)
    };
    let mut given_back = 0;
    let mut left = free().await?;
    while left > 0 {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA incremental_vacuum({pages})"
        )))
        .execute(&store.writer)
        .await?;
        let now_left = free().await?;
        if now_left >= left {
            // Not in incremental mode (an old file SQLite would not
            // convert): nothing to give back this way.
            break;
        }
        given_back += (left - now_left) as u64;
        left = now_left;
    }
    Ok(given_back)
}

/// Rows per table and the bytes the database takes.
pub(super) async fn size(store: &SqlStore) -> Result<StoreSize, StoreError> {
    let mut tables = Vec::with_capacity(ISSUE_TABLES.len() + OTHER_TABLES.len() + 1);
    for table in ISSUE_TABLES.iter().chain(OTHER_TABLES) {
        let rows: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&store.readers)
            .await?
            .try_get(0)?;
        tables.push(((*table).to_owned(), rows));
    }
    let deliveries: i64 = sqlx::query("SELECT COUNT(*) FROM deliveries")
        .fetch_one(&store.intake_readers)
        .await?
        .try_get(0)?;
    tables.push(("deliveries".to_owned(), deliveries));
    let bytes = match &store.path {
        Some(path) => sqlite_files(path)
            .iter()
            .chain(&sqlite_files(&intake_file(path)))
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum(),
        None => {
            let size: i64 = sqlx::query("SELECT pg_database_size(current_database())")
                .fetch_one(&store.readers)
                .await?
                .try_get(0)?;
            size.max(0) as u64
        }
    };
    Ok(StoreSize { tables, bytes })
}

/// A SQLite database's file and its write-ahead log.
fn sqlite_files(path: &str) -> [PathBuf; 2] {
    [PathBuf::from(path), PathBuf::from(format!("{path}-wal"))]
}

/// A consistent copy of a SQLite store while it runs (`VACUUM INTO`, one
/// read transaction per file): `to`, and intake beside it. Returns the
/// files written. PostgreSQL is backed up with its own tools.
pub(super) async fn backup(store: &SqlStore, to: &Path) -> Result<Vec<PathBuf>, StoreError> {
    if store.path.is_none() {
        return Err(StoreError::Backup(
            "a PostgreSQL store is backed up with pg_dump (see the book's operating chapter)"
                .to_owned(),
        ));
    }
    let main = to.to_path_buf();
    let intake = PathBuf::from(intake_file(&to.to_string_lossy()));
    for file in [&main, &intake] {
        if file.exists() {
            return Err(StoreError::Backup(format!(
                "{} exists already: back up into a new file",
                file.display()
            )));
        }
    }
    sqlx::query("VACUUM INTO $1")
        .bind(main.to_string_lossy().into_owned())
        .execute(&store.readers)
        .await?;
    sqlx::query("VACUUM INTO $1")
        .bind(intake.to_string_lossy().into_owned())
        .execute(&store.intake_readers)
        .await?;
    // The copy starts a life of its own: the leases this process (or a
    // replica) held are not held over it, so a restored `serve` enforces
    // at once instead of waiting for them to run out.
    let copy = open_sqlite(&format!("sqlite://{}", main.display()), 1).await?;
    copy.execute("DELETE FROM leases").await?;
    // One self-contained file again (no write-ahead log beside it).
    copy.execute("PRAGMA journal_mode = DELETE").await?;
    copy.close().await;
    Ok(vec![main, intake])
}
