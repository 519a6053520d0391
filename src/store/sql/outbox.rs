//! The outbox: notices waiting to be sent, handed out one per thread at a
//! time, claimed so that replicas never send one twice, and recorded as
//! sent (with the thread they started), retried or failed.

use super::*;
use crate::notice::{Thread, Undelivered, UndeliveredRoute};
use crate::store::SendResult;

pub(super) async fn claim_outbox(
    store: &SqlStore,
    now: DateTime<Utc>,
    limit: u32,
    lease: chrono::TimeDelta,
) -> Result<Vec<OutboxEntry>, StoreError> {
    // PostgreSQL: rows another replica is claiming right now are
    // skipped, not waited for. SQLite has one writer already.
    let lock = match store.backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let claim = super::fence::new_claim_token(store);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET claimed_until = $1, claims = claims + 1, claim_token = $4
         WHERE (project, iid, policy, step, cycle, occurrence) IN (
            SELECT o.project, o.iid, o.policy, o.step, o.cycle, o.occurrence FROM outbox o
            WHERE o.next_attempt_at <= $2 AND (o.claimed_until IS NULL OR o.claimed_until <= $2)
              AND {HEAD_OF_THREAD}
            ORDER BY o.created_at, o.position LIMIT $3 {lock})
         RETURNING project, iid, policy, step, cycle, occurrence, notice, attempts, created_at,
            position, channel, claims, resent_at, failed_at, last_error"
    )))
    .bind(millis(now + lease))
    .bind(millis(now))
    .bind(i64::from(limit))
    .bind(claim.0.as_str())
    .fetch_all(&store.writer)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let entry = OutboxEntry {
            key: outbox_key(row)?,
            notice: serde_json::from_str(&row.try_get::<String, _>("notice")?)
                .map_err(corrupt("outbox notice"))?,
            attempts: row.try_get::<i64, _>("attempts")? as u32,
            created_at: instant(row.try_get("created_at")?),
            thread: None,
            retaken: row.try_get::<i64, _>("claims")? > 1,
            resent: resent_from(row)?,
            claim: claim.clone(),
        };
        let position: i64 = row.try_get("position")?;
        let channel: Option<String> = row.try_get("channel")?;
        claimed.push((entry, position, channel));
    }
    claimed.sort_by_key(|(entry, position, _)| (entry.created_at, *position));
    let threads = threads_of(store, &claimed).await?;
    let mut entries: Vec<(OutboxEntry, Option<String>)> = claimed
        .into_iter()
        .map(|(mut entry, _, channel)| {
            if let Some(channel) = &channel {
                let key = &entry.key;
                entry.thread = threads
                    .get(&(
                        key.issue.project.0.clone(),
                        key.issue.iid.0 as i64,
                        key.policy.0.clone(),
                        i64::from(key.firing.cycle),
                        channel.clone(),
                    ))
                    .cloned();
            }
            (entry, channel)
        })
        .collect();
    // A cycle without a thread of its own in a channel where its issue was
    // raised from a person's message: that message is its thread.
    let raised_key = |key: &OutboxKey, channel: &str| {
        (
            key.issue.project.0.clone(),
            key.issue.iid.0 as i64,
            channel.to_owned(),
        )
    };
    let unthreaded: Vec<(String, i64, String)> = entries
        .iter()
        .filter(|(entry, _)| entry.thread.is_none())
        .filter_map(|(entry, channel)| Some(raised_key(&entry.key, channel.as_deref()?)))
        .collect();
    if !unthreaded.is_empty() {
        let raised = super::raised::raised_threads(store, &unthreaded).await?;
        for (entry, channel) in &mut entries {
            if let (None, Some(channel)) = (&entry.thread, channel.as_deref()) {
                entry.thread = raised.get(&raised_key(&entry.key, channel)).cloned();
            }
        }
    }
    Ok(entries.into_iter().map(|(entry, _)| entry).collect())
}

/// What a resent row says of its refusal: the channel, the error, when.
fn resent_from(row: &AnyRow) -> Result<Option<Undelivered>, StoreError> {
    let Some(_) = row.try_get::<Option<i64>, _>("resent_at")? else {
        return Ok(None);
    };
    let channel: Option<String> = row.try_get("channel")?;
    let error: Option<String> = row.try_get("last_error")?;
    let failed_at: Option<i64> = row.try_get("failed_at")?;
    Ok(Some(Undelivered {
        channel: channel.unwrap_or_default(),
        error: error.unwrap_or_default(),
        failed_at: failed_at.map(instant).unwrap_or_else(|| instant(0)),
        route: UndeliveredRoute::Resent,
    }))
}

pub(super) async fn next_outbox_attempt(
    store: &SqlStore,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    // A row another process claimed is due again when its claim runs out.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT MIN(CASE WHEN o.claimed_until > o.next_attempt_at THEN o.claimed_until
                         ELSE o.next_attempt_at END)
         FROM outbox o WHERE {HEAD_OF_THREAD}"
    )))
    .fetch_one(&store.readers)
    .await?;
    Ok(row.try_get::<Option<i64>, _>(0)?.map(instant))
}

/// Queues the fallback notice of each notice refused for good that has
/// a route, due at once, after everything its issue queued before.
async fn queue_fallbacks(
    tx: &mut Transaction<'_, Any>,
    outcomes: &[&OutboxOutcome],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for outcome in outcomes {
        let SendResult::FellBack {
            instead,
            step,
            channel,
            ..
        } = &outcome.result
        else {
            continue;
        };
        let key = &outcome.key;
        let notice = serde_json::to_string(instead).map_err(corrupt("fallback notice"))?;
        let fallback = Firing {
            step: StepId(step.clone()),
            ..key.firing.clone()
        };
        queue_one(
            tx,
            &key.issue,
            &key.policy,
            &fallback,
            &notice,
            channel.as_deref(),
            now,
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn record_outbox(
    store: &SqlStore,
    outcomes: &[OutboxOutcome],
) -> Result<Vec<OutboxKey>, StoreError> {
    let now = Utc::now();
    let mut tx = store.writer.begin().await?;
    // A lost claim has nothing to record; the rest are recorded only
    // under the claim they were made with, checked row by row below.
    let attempted: Vec<&OutboxOutcome> = outcomes
        .iter()
        .filter(|o| !matches!(o.result, SendResult::ClaimLost { .. }))
        .collect();
    let mut recorded: std::collections::HashSet<OutboxKey> = std::collections::HashSet::new();
    for chunk in attempted.chunks(ROWS_PER_STATEMENT) {
        // VALUES columns are column1..column12 in SQLite and PostgreSQL alike.
        let sql = format!(
            "UPDATE outbox SET sent_at = v.column7, last_error = COALESCE(v.column8, outbox.last_error),
                next_attempt_at = v.column9, attempts = outbox.attempts + v.column10,
                claimed_until = NULL, claims = 0, claim_token = NULL,
                muted_by = COALESCE(v.column11, outbox.muted_by),
                failed_at = CASE WHEN v.column7 IS NULL AND v.column9 IS NULL THEN {now}
                                 ELSE outbox.failed_at END
             FROM (VALUES {}) AS v
             WHERE outbox.project = v.column1 AND outbox.iid = v.column2 AND outbox.policy = v.column3
               AND outbox.step = v.column4 AND outbox.cycle = v.column5 AND outbox.occurrence = v.column6
               AND outbox.claim_token = v.column12
             RETURNING outbox.project AS project, outbox.iid AS iid, outbox.policy AS policy,
                outbox.step AS step, outbox.cycle AS cycle, outbox.occurrence AS occurrence",
            parameters(store.backend, chunk.len(), 12),
            now = millis(now),
        );
        let mut query = multi_row(sql);
        for outcome in chunk {
            let muted_by = match &outcome.result {
                SendResult::Muted { mute, .. } => Some(*mute),
                _ => None,
            };
            let (sent_at, error, retry_at, attempt) = match &outcome.result {
                SendResult::Sent { at, .. } => (Some(millis(*at)), None, None, 1i64),
                SendResult::Muted { at, .. } => (Some(millis(*at)), None, None, 0),
                SendResult::Retry { error, retry_at } => {
                    (None, Some(error.as_str()), Some(millis(*retry_at)), 1)
                }
                SendResult::Deferred { retry_at } => (None, None, Some(millis(*retry_at)), 0),
                SendResult::Failed { error } | SendResult::FellBack { error, .. } => {
                    (None, Some(error.as_str()), None, 1)
                }
                SendResult::Progress { retry_at, .. } => (None, None, Some(millis(*retry_at)), 0),
                SendResult::ClaimLost { .. } => unreachable!("lost claims are left out above"),
            };
            let key = &outcome.key;
            query = bind_firing(
                query,
                &key.issue.project.0,
                key.issue.iid.0 as i64,
                &key.policy.0,
                &key.firing,
            )
            .bind(sent_at)
            .bind(error)
            .bind(retry_at)
            .bind(attempt)
            .bind(muted_by)
            .bind(outcome.claim.0.as_str());
        }
        for row in query.fetch_all(&mut *tx).await? {
            recorded.insert(outbox_key(&row)?);
        }
    }
    let (outcomes, lost): (Vec<&OutboxOutcome>, Vec<&OutboxOutcome>) = outcomes
        .iter()
        .partition(|outcome| recorded.contains(&outcome.key));
    queue_fallbacks(&mut tx, &outcomes, now).await?;
    if outcomes.iter().any(|o| {
        matches!(
            o.result,
            SendResult::Failed { .. } | SendResult::FellBack { .. }
        )
    }) {
        super::queued::number_failed(&mut tx, now).await?;
    }
    let threads: Vec<(&OutboxKey, &Thread, i64)> = outcomes
        .iter()
        .filter_map(|outcome| match &outcome.result {
            SendResult::Sent {
                at,
                thread: Some(thread),
            } => Some((&outcome.key, thread, millis(*at))),
            SendResult::Progress {
                retry_at,
                thread: Some(thread),
            } => Some((&outcome.key, thread, millis(*retry_at))),
            _ => None,
        })
        .collect();
    remember_threads(&mut tx, store.backend, &threads).await?;
    tx.commit().await?;
    Ok(lost
        .into_iter()
        .map(|outcome| outcome.key.clone())
        .collect())
}

/// Writes the thread each outbox row's message started (or a digest's
/// summary is), for the row's cycle and channel.
pub(super) async fn remember_threads(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    threads: &[(&OutboxKey, &Thread, i64)],
) -> Result<(), StoreError> {
    for chunk in threads.chunks(ROWS_PER_STATEMENT) {
        // The thread belongs to the outbox row's cycle and channel.
        let sql = format!(
            "INSERT INTO threads (project, iid, policy, cycle, channel, channel_id, ts, updated_at)
             SELECT o.project, o.iid, o.policy, o.cycle, o.channel, v.column7, v.column8, v.column9
             FROM (VALUES {}) AS v
             JOIN outbox o ON o.project = v.column1 AND o.iid = v.column2 AND o.policy = v.column3
               AND o.step = v.column4 AND o.cycle = v.column5 AND o.occurrence = v.column6
             WHERE o.channel IS NOT NULL
             ON CONFLICT (project, iid, policy, cycle, channel)
             DO UPDATE SET channel_id = excluded.channel_id, ts = excluded.ts, updated_at = excluded.updated_at",
            parameters(backend, chunk.len(), 9)
        );
        let mut query = multi_row(sql);
        for (key, thread, at) in chunk {
            query = bind_firing(
                query,
                &key.issue.project.0,
                key.issue.iid.0 as i64,
                &key.policy.0,
                &key.firing,
            )
            .bind(thread.channel_id.as_str())
            .bind(thread.ts.as_str())
            .bind(*at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An outbox row that is due to be tried: unsent, not given up on, and
/// with no unsent, not-given-up notice before it in its thread (issue and
/// policy). Only these are handed out, and only their times wake the worker.
const HEAD_OF_THREAD: &str = "o.sent_at IS NULL AND o.next_attempt_at IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM outbox e
        WHERE e.project = o.project AND e.iid = o.iid AND e.policy = o.policy
          AND e.sent_at IS NULL AND e.next_attempt_at IS NOT NULL
          AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.position < o.position)))";

/// The threads of claimed entries' cycles in their channels, by
/// (project, iid, policy, cycle, channel).
pub(super) async fn threads_of(
    store: &SqlStore,
    claimed: &[(OutboxEntry, i64, Option<String>)],
) -> Result<std::collections::HashMap<ThreadKey, Thread>, StoreError> {
    let with_channel: Vec<(&OutboxKey, &String)> = claimed
        .iter()
        .filter_map(|(entry, _, channel)| channel.as_ref().map(|c| (&entry.key, c)))
        .collect();
    let mut threads = std::collections::HashMap::new();
    for chunk in with_channel.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(format!(
            "SELECT t.project, t.iid, t.policy, t.cycle, t.channel, t.channel_id, t.ts FROM {}",
            join_values(
                "threads",
                &["project", "iid", "policy", "cycle", "channel"],
                &parameters(store.backend, chunk.len(), 5)
            )
        ));
        for (key, channel) in chunk {
            query = query
                .bind(key.issue.project.0.as_str())
                .bind(key.issue.iid.0 as i64)
                .bind(key.policy.0.as_str())
                .bind(i64::from(key.firing.cycle))
                .bind(channel.as_str());
        }
        for row in query.fetch_all(&store.readers).await? {
            threads.insert(
                (
                    row.try_get("project")?,
                    row.try_get("iid")?,
                    row.try_get("policy")?,
                    row.try_get("cycle")?,
                    row.try_get("channel")?,
                ),
                Thread {
                    channel_id: row.try_get("channel_id")?,
                    ts: row.try_get("ts")?,
                },
            );
        }
    }
    Ok(threads)
}

/// Queues one notice (as stored, `payload`) for `channel`, due at `now`,
/// in the outbox and the ledger (where it went is where a later
/// redaction, move or deletion of the issue must be said), once: a key
/// queued already is left as it is. Returns whether it was new.
async fn queue_one(
    tx: &mut Transaction<'_, Any>,
    issue: &IssueRef,
    policy: &PolicyName,
    firing: &Firing,
    payload: &str,
    channel: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (project, iid, policy) = (
        issue.project.0.as_str(),
        issue.iid.0 as i64,
        policy.0.as_str(),
    );
    let queued = sqlx::query(
        "INSERT INTO outbox (project, iid, policy, step, cycle, occurrence, created_at, position,
            notice, next_attempt_at, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $7, $9) ON CONFLICT DO NOTHING",
    );
    let new = bind_firing(queued, project, iid, policy, firing)
        .bind(millis(now))
        .bind(payload)
        .bind(channel)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    let recorded = sqlx::query(
        "INSERT INTO ledger (project, iid, policy, step, cycle, occurrence, fired_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    );
    bind_firing(recorded, project, iid, policy, firing)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    Ok(new)
}

/// Queues `notices` (each with a Slack part) due at `now`, in the outbox
/// and the ledger, once each: a notice whose key is there already is left
/// as it is. Returns how many were new.
pub(super) async fn queue_notices(
    store: &SqlStore,
    notices: &[Notice],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut tx = store.writer.begin().await?;
    let mut queued = 0;
    for notice in notices {
        let payload = serde_json::to_string(notice).map_err(corrupt("queued notice"))?;
        let channel = notice.slack.as_ref().map(|slack| slack.channel.as_str());
        if queue_one(
            &mut tx,
            &notice.issue,
            &notice.policy,
            &notice.firing,
            &payload,
            channel,
            now,
        )
        .await?
        {
            queued += 1;
        }
    }
    tx.commit().await?;
    Ok(queued)
}
