//! Leases with epochs and outbox claims with tokens, and the checks a
//! write under either makes in its own transaction or statement (see
//! [`crate::store::fence`]).

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::store::{ClaimToken, LeaseFence};

/// Claims made by this process so far, to make each claim's token unique.
static CLAIMS_MADE: AtomicU64 = AtomicU64::new(0);

/// A token for a new claim by this process: its owner name and a number.
pub(super) fn new_claim_token(store: &SqlStore) -> ClaimToken {
    let number = CLAIMS_MADE.fetch_add(1, Ordering::Relaxed) + 1;
    ClaimToken(format!("{}#{number}", store.owner))
}

pub(super) async fn hold_lease(
    store: &SqlStore,
    name: &str,
    now: DateTime<Utc>,
    lease: chrono::TimeDelta,
) -> Result<Option<LeaseFence>, StoreError> {
    // A renewal in time keeps the epoch; anything else (another owner, or
    // this one after its lease ran out) is a takeover and a new epoch.
    let row = sqlx::query(
        "INSERT INTO leases (name, owner, until_at, epoch) VALUES ($1, $2, $3, 1)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_at = excluded.until_at,
            epoch = CASE WHEN leases.owner = excluded.owner AND leases.until_at > $4
                         THEN leases.epoch ELSE leases.epoch + 1 END
         WHERE leases.owner = excluded.owner OR leases.until_at <= $4
         RETURNING epoch",
    )
    .bind(name)
    .bind(store.owner.as_str())
    .bind(millis(now + lease))
    .bind(millis(now))
    .fetch_optional(&store.writer)
    .await?;
    row.map(|row| {
        Ok(LeaseFence {
            name: name.to_owned(),
            epoch: row.try_get("epoch")?,
        })
    })
    .transpose()
}

/// The lock a fence check holds on the row it reads until its
/// transaction ends: PostgreSQL's `FOR SHARE`; SQLite has one writer.
fn share_lock(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "FOR SHARE",
        Backend::Sqlite => "",
    }
}

pub(super) async fn release_lease(store: &SqlStore, name: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE leases SET until_at = 0 WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(store.owner.as_str())
        .execute(&store.writer)
        .await?;
    Ok(())
}

/// Fails with [`StoreError::LeaseLost`] unless `fence` still holds as of
/// now: to be the first statement of a transaction written under it. On
/// PostgreSQL the lease's row stays locked until the transaction ends, so
/// a takeover waits for this write to be committed or rolled back, and a
/// survivor reads the store only as the write left it.
pub(super) async fn check_lease(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    owner: &str,
    fence: &LeaseFence,
) -> Result<(), StoreError> {
    let lock = share_lock(backend);
    let held = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT epoch FROM leases
         WHERE name = $1 AND owner = $2 AND epoch = $3 AND until_at > $4 {lock}"
    )))
    .bind(fence.name.as_str())
    .bind(owner)
    .bind(fence.epoch)
    .bind(millis(Utc::now()))
    .fetch_optional(&mut **tx)
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost(fence.name.clone())),
    }
}

/// Begins a transaction for a write under `fence`, checked first.
pub(super) async fn fenced_transaction<'s>(
    store: &'s SqlStore,
    fence: Option<&LeaseFence>,
) -> Result<Transaction<'s, Any>, StoreError> {
    let mut tx = store.writer.begin().await?;
    if let Some(fence) = fence {
        check_lease(&mut tx, store.backend, &store.owner, fence).await?;
    }
    Ok(tx)
}

pub(super) async fn confirm_claim(
    store: &SqlStore,
    key: &OutboxKey,
    claim: &ClaimToken,
    now: DateTime<Utc>,
    lease: chrono::TimeDelta,
) -> Result<bool, StoreError> {
    let confirmed = sqlx::query(
        "UPDATE outbox SET claimed_until = $7
         WHERE project = $1 AND iid = $2 AND policy = $3 AND step = $4 AND cycle = $5
           AND occurrence = $6 AND claim_token = $8 AND sent_at IS NULL
         RETURNING claims",
    );
    let row = bind_firing(
        confirmed,
        &key.issue.project.0,
        key.issue.iid.0 as i64,
        &key.policy.0,
        &key.firing,
    )
    .bind(millis(now + lease))
    .bind(claim.0.as_str())
    .fetch_optional(&store.writer)
    .await?;
    Ok(row.is_some())
}

pub(super) async fn confirm_slack_event_claim(
    store: &SqlStore,
    event_id: &str,
    claim: &ClaimToken,
    now: DateTime<Utc>,
    lease: chrono::TimeDelta,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "UPDATE slack_events SET claimed_until = $3
         WHERE event_id = $1 AND claim_token = $2 AND handled_at IS NULL
         RETURNING event_id",
    )
    .bind(event_id)
    .bind(claim.0.as_str())
    .bind(millis(now + lease))
    .fetch_optional(&store.writer)
    .await?;
    Ok(row.is_some())
}

/// Fails with [`StoreError::ClaimLost`] unless the outbox row `row` is
/// still claimed with `token` and unsent: to be the first statement of a
/// transaction written under the claim. On PostgreSQL the row stays
/// locked until the transaction ends, so a takeover's claim waits for it.
pub(super) async fn check_claim(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    row: &OutboxKey,
    token: &ClaimToken,
) -> Result<(), StoreError> {
    let lock = share_lock(backend);
    let held = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT claims FROM outbox
         WHERE project = $1 AND iid = $2 AND policy = $3 AND step = $4 AND cycle = $5
           AND occurrence = $6 AND claim_token = $7 AND sent_at IS NULL {lock}"
    )));
    let held = bind_firing(
        held,
        &row.issue.project.0,
        row.issue.iid.0 as i64,
        &row.policy.0,
        &row.firing,
    )
    .bind(token.0.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::ClaimLost(row.issue.to_string())),
    }
}
