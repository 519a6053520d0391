//! When labelwarden was not running: the enforcer beats while it holds its
//! lease, and when it starts holding it (a start, a restart, a takeover
//! from a replica that died) the time since the last beat, if any, is
//! recorded as a downtime. A step that fell due inside one was missed
//! because labelwarden was down, and says so; any other late step was late
//! because labelwarden learned of it late.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{SqlStore, instant, millis};
use crate::store::{Downtime, StoreError};

/// Shorter gaps between the last beat and a new start are not downtime:
/// a lease handed over on a clean stop, a quick restart.
const SHORTEST: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

pub(super) async fn beat(
    store: &SqlStore,
    name: &str,
    now: DateTime<Utc>,
    starting: bool,
) -> Result<Option<Downtime>, StoreError> {
    let mut tx = store.writer.begin().await?;
    let mut down = None;
    if starting {
        let last = sqlx::query("SELECT at FROM heartbeats WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get::<i64, _>("at"))
            .transpose()?
            .map(instant);
        if let Some(last) = last.filter(|last| now - *last > SHORTEST) {
            sqlx::query(
                "INSERT INTO downtimes (from_at, to_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(millis(last))
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            down = Some(Downtime {
                from: last,
                to: now,
            });
        }
    }
    sqlx::query(
        "INSERT INTO heartbeats (name, at) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET at = excluded.at",
    )
    .bind(name)
    .bind(millis(now))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(down)
}

pub(super) async fn downtimes(
    store: &SqlStore,
    since: DateTime<Utc>,
) -> Result<Vec<Downtime>, StoreError> {
    let rows =
        sqlx::query("SELECT from_at, to_at FROM downtimes WHERE to_at >= $1 ORDER BY from_at")
            .bind(millis(since))
            .fetch_all(&store.readers)
            .await?;
    rows.iter()
        .map(|row| {
            Ok(Downtime {
                from: instant(row.try_get("from_at")?),
                to: instant(row.try_get("to_at")?),
            })
        })
        .collect()
}
