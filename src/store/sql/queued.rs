//! The outbox as operators see it: notices waiting or refused for good,
//! numbered, queued again by hand or on recovery, and counted by channel
//! (see [`crate::store::queued`]).

use super::*;
use crate::store::queued::{
    FailedChannel, QueueFilter, QueuedNotice, QueuedState, ResendSelection,
};

/// A notice refused for good: unsent, with no next attempt.
const FAILED: &str = "sent_at IS NULL AND next_attempt_at IS NULL";

/// Most notices `outbox list` shows at once.
pub(super) const LIST_LIMIT: i64 = 1_000;

/// Gives each failed notice without a number the next one from the shared
/// counter, and the time it failed if it has none: within `tx`, so that
/// replicas never hand out one number twice.
pub(super) async fn number_failed(
    tx: &mut Transaction<'_, Any>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let unnumbered = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT project, iid, policy, step, cycle, occurrence FROM outbox
         WHERE {FAILED} AND id IS NULL ORDER BY created_at, position"
    )))
    .fetch_all(&mut **tx)
    .await?;
    for row in &unnumbered {
        let key = outbox_key(row)?;
        let number: i64 =
            sqlx::query("UPDATE outbox_ids SET last = last + 1 WHERE one = 1 RETURNING last")
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        let numbered = sqlx::query(
            "UPDATE outbox SET id = $7, failed_at = COALESCE(failed_at, $8)
             WHERE project = $1 AND iid = $2 AND policy = $3 AND step = $4 AND cycle = $5
               AND occurrence = $6",
        );
        bind_firing(
            numbered,
            &key.issue.project.0,
            key.issue.iid.0 as i64,
            &key.policy.0,
            &key.firing,
        )
        .bind(number)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The notices `filter` picks, oldest first, at most [`LIST_LIMIT`].
pub(super) async fn queued_notices(
    store: &SqlStore,
    filter: &QueueFilter,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedNotice>, StoreError> {
    // Numbers first, so that a failed notice listed can be resent by it.
    // Failures are numbered as they are recorded; only rows that failed
    // before numbers existed lack one, so listing rarely writes.
    let unnumbered = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM outbox WHERE {FAILED} AND id IS NULL LIMIT 1"
    )))
    .fetch_optional(&store.readers)
    .await?;
    if unnumbered.is_some() {
        let mut tx = store.writer.begin().await?;
        number_failed(&mut tx, now).await?;
        tx.commit().await?;
    }
    let mut conditions = vec![if filter.failed_only {
        FAILED.to_owned()
    } else {
        "sent_at IS NULL".to_owned()
    }];
    let mut values = Vec::new();
    if let Some(channel) = &filter.channel {
        values.push(channel.clone());
        conditions.push(format!("channel = ${}", values.len()));
    }
    if let Some(policy) = &filter.policy {
        values.push(policy.clone());
        conditions.push(format!("policy = ${}", values.len()));
    }
    let sql = format!(
        "SELECT id, project, iid, policy, step, cycle, occurrence, notice, attempts, created_at,
            channel, next_attempt_at, failed_at, last_error, resent_at
         FROM outbox WHERE {} ORDER BY created_at, position LIMIT {LIST_LIMIT}",
        conditions.join(" AND ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in &values {
        query = query.bind(value.as_str());
    }
    let rows = query.fetch_all(&store.readers).await?;
    rows.iter().map(queued_notice).collect()
}

fn queued_notice(row: &AnyRow) -> Result<QueuedNotice, StoreError> {
    let notice: Notice = serde_json::from_str(&row.try_get::<String, _>("notice")?)
        .map_err(corrupt("outbox notice"))?;
    let key = outbox_key(row)?;
    let next_attempt_at: Option<i64> = row.try_get("next_attempt_at")?;
    let failed_at: Option<i64> = row.try_get("failed_at")?;
    let queued_at = instant(row.try_get("created_at")?);
    let state = match next_attempt_at {
        Some(at) => QueuedState::Waiting {
            next_attempt_at: instant(at),
        },
        None => QueuedState::Failed {
            failed_at: failed_at.map(instant).unwrap_or(queued_at),
        },
    };
    Ok(QueuedNotice {
        id: row.try_get("id")?,
        issue: key.issue,
        policy: key.policy,
        step: key.firing.step.0,
        step_kind: notice.step_kind,
        cycle: key.firing.cycle,
        channel: row.try_get("channel")?,
        title: notice.title,
        confidential: notice.confidential,
        queued_at,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        state,
        error: row.try_get("last_error")?,
        resent_at: row.try_get::<Option<i64>, _>("resent_at")?.map(instant),
    })
}

/// Queues the failed notices `selection` picks again, due at `now`: each
/// goes out in its thread's order, once (the update is one statement, so
/// two replicas or two operators resending at once queue each notice
/// once). Returns how many were queued.
pub(super) async fn resend(
    store: &SqlStore,
    selection: &ResendSelection,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut tx = store.writer.begin().await?;
    number_failed(&mut tx, now).await?;
    let condition = match selection {
        ResendSelection::Channel(_) => "channel = $2",
        ResendSelection::Id(_) => "id = $2",
        ResendSelection::AllFailed => "1 = 1",
    };
    let sql = format!(
        "UPDATE outbox SET next_attempt_at = $1, resent_at = $1, attempts = 0, claims = 0,
            claimed_until = NULL
         WHERE {FAILED} AND {condition}"
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(millis(now));
    let query = match selection {
        ResendSelection::Channel(channel) => query.bind(channel.as_str()),
        ResendSelection::Id(id) => query.bind(*id),
        ResendSelection::AllFailed => query,
    };
    let queued = query.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(queued)
}

/// Channels with failed notices, each with whether it has taken a notice
/// since the last of them failed.
pub(super) async fn failed_channels(store: &SqlStore) -> Result<Vec<FailedChannel>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT g.channel, g.failed, g.last_failed_at,
            CASE WHEN EXISTS (
                SELECT 1 FROM outbox s WHERE s.channel = g.channel AND s.sent_at > g.last_failed_at
            ) THEN 1 ELSE 0 END AS works_again
         FROM (SELECT channel, COUNT(*) AS failed,
                 MAX(COALESCE(failed_at, created_at)) AS last_failed_at
               FROM outbox WHERE {FAILED} AND channel IS NOT NULL GROUP BY channel) g
         ORDER BY g.channel"
    )))
    .fetch_all(&store.readers)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(FailedChannel {
                channel: row.try_get("channel")?,
                failed: row.try_get("failed")?,
                last_failed_at: instant(row.try_get("last_failed_at")?),
                works_again: row.try_get::<i64, _>("works_again")? == 1,
            })
        })
        .collect()
}
