//! Mutes in the store (see [`crate::store::mutes`]): added, ended, listed,
//! and an ended one's summary claimed by exactly one replica.

use super::*;
use crate::store::mutes::{Mute, MuteScope, WindowMute};

const COLUMNS: &str = "id, scope, target, until_at, reason, created_at, summarised_at, origin";

fn mute_from(row: &AnyRow) -> Result<Mute, StoreError> {
    let scope: String = row.try_get("scope")?;
    Ok(Mute {
        id: row.try_get("id")?,
        scope: MuteScope::parse(&scope).ok_or(StoreError::Corrupt {
            what: "mute scope",
            message: scope.clone(),
        })?,
        target: row.try_get("target")?,
        until: instant(row.try_get("until_at")?),
        reason: row.try_get("reason")?,
        created_at: instant(row.try_get("created_at")?),
        summarised_at: row.try_get::<Option<i64>, _>("summarised_at")?.map(instant),
        origin: row.try_get("origin")?,
    })
}

pub(super) async fn add_mute(
    store: &SqlStore,
    scope: MuteScope,
    target: &str,
    until: DateTime<Utc>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Mute, StoreError> {
    let mut tx = store.writer.begin().await?;
    let id: i64 = sqlx::query("UPDATE mute_ids SET last = last + 1 WHERE one = 1 RETURNING last")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO mutes (id, scope, target, until_at, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(scope.as_str())
    .bind(target)
    .bind(millis(until))
    .bind(reason)
    .bind(millis(now))
    .fetch_one(&mut *tx)
    .await?;
    let mute = mute_from(&row)?;
    tx.commit().await?;
    Ok(mute)
}

/// Opens the mute of a maintenance window's occurrence, keyed by
/// `origin`; none if it was opened before (by this or another replica).
pub(super) async fn open_window_mute(
    store: &SqlStore,
    window: &WindowMute<'_>,
) -> Result<Option<Mute>, StoreError> {
    let mut tx = store.writer.begin().await?;
    let opened = sqlx::query("SELECT 1 FROM mutes WHERE origin = $1")
        .bind(window.origin)
        .fetch_optional(&mut *tx)
        .await?;
    if opened.is_some() {
        return Ok(None);
    }
    let id: i64 = sqlx::query("UPDATE mute_ids SET last = last + 1 WHERE one = 1 RETURNING last")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    // Another replica may have opened it since the look above.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO mutes (id, scope, target, until_at, reason, created_at, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (origin) DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(window.scope.as_str())
    .bind(window.target)
    .bind(millis(window.until))
    .bind(window.reason)
    .bind(millis(window.from))
    .bind(window.origin)
    .fetch_optional(&mut *tx)
    .await?;
    let mute = row.as_ref().map(mute_from).transpose()?;
    tx.commit().await?;
    Ok(mute)
}

/// Ends a mute now (its summary follows); false if there is no such mute
/// still going.
pub(super) async fn end_mute(
    store: &SqlStore,
    id: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let ended = sqlx::query("UPDATE mutes SET until_at = $2 WHERE id = $1 AND until_at > $2")
        .bind(id)
        .bind(millis(now))
        .execute(&store.writer)
        .await?
        .rows_affected();
    Ok(ended == 1)
}

/// Mutes still going or not yet summarised, soonest to end first.
pub(super) async fn mutes(store: &SqlStore, now: DateTime<Utc>) -> Result<Vec<Mute>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM mutes WHERE until_at > $1 OR summarised_at IS NULL
         ORDER BY until_at, id"
    )))
    .bind(millis(now))
    .fetch_all(&store.readers)
    .await?;
    rows.iter().map(mute_from).collect()
}

/// Claims the summary of one mute that ended by `now`, with the notices
/// it silenced (oldest first): the claim is one update, so one replica
/// says it.
pub(super) async fn claim_ended_mute(
    store: &SqlStore,
    now: DateTime<Utc>,
) -> Result<Option<(Mute, Vec<Notice>)>, StoreError> {
    let mut tx = store.writer.begin().await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE mutes SET summarised_at = $1
         WHERE id = (SELECT id FROM mutes WHERE until_at <= $1 AND summarised_at IS NULL
                     ORDER BY until_at, id LIMIT 1)
           AND summarised_at IS NULL
         RETURNING {COLUMNS}"
    )))
    .bind(millis(now))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mute = mute_from(&row)?;
    let rows =
        sqlx::query("SELECT notice FROM outbox WHERE muted_by = $1 ORDER BY created_at, position")
            .bind(mute.id)
            .fetch_all(&mut *tx)
            .await?;
    let notices = rows
        .iter()
        .map(|row| {
            serde_json::from_str(&row.try_get::<String, _>("notice")?)
                .map_err(corrupt("outbox notice"))
        })
        .collect::<Result<Vec<Notice>, StoreError>>()?;
    tx.commit().await?;
    Ok(Some((mute, notices)))
}
