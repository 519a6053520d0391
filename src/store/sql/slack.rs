//! What Slack told `serve` (its Events API): events kept until acted on,
//! and the acknowledgements of alert threads, per person.

use super::*;

pub(super) async fn record_slack_event(
    store: &SqlStore,
    event_id: &str,
    event: &str,
    at: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let mut tx = store.writer.begin().await?;
    let row = sqlx::query(
        "INSERT INTO slack_events (event_id, received_at, event, next_attempt_at)
         VALUES ($1, $2, $3, $2)
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    )
    .bind(event_id)
    .bind(millis(at))
    .bind(event)
    .fetch_optional(&mut *tx)
    .await?;
    // Slack retries within minutes: a day of handled ids is plenty.
    sqlx::query("DELETE FROM slack_events WHERE handled_at IS NOT NULL AND received_at < $1")
        .bind(millis(at - SLACK_EVENTS_KEPT))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(if row.is_some() {
        Recorded::New
    } else {
        Recorded::Duplicate
    })
}

pub(super) async fn claim_slack_events(
    store: &SqlStore,
    now: DateTime<Utc>,
    limit: u32,
    lease: chrono::TimeDelta,
) -> Result<Vec<StoredSlackEvent>, StoreError> {
    // The claim is checked again on the row itself, so two processes
    // racing for one event cannot both take it.
    let claim = super::fence::new_claim_token(store);
    let rows = sqlx::query(
        "UPDATE slack_events SET claimed_until = $2, claim_token = $4
         WHERE handled_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $1)
           AND event_id IN (
             SELECT event_id FROM slack_events
             WHERE handled_at IS NULL AND next_attempt_at <= $1
               AND (claimed_until IS NULL OR claimed_until <= $1)
             ORDER BY received_at LIMIT $3)
         RETURNING event_id, event, attempts, received_at",
    )
    .bind(millis(now))
    .bind(millis(now + lease))
    .bind(i64::from(limit))
    .bind(claim.0.as_str())
    .fetch_all(&store.writer)
    .await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>("received_at")?,
                StoredSlackEvent {
                    event_id: row.try_get("event_id")?,
                    event: row
                        .try_get::<Option<String>, _>("event")?
                        .unwrap_or_default(),
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    claim: claim.clone(),
                },
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    claimed.sort_by_key(|(received, _)| *received);
    Ok(claimed.into_iter().map(|(_, event)| event).collect())
}

pub(super) async fn finish_slack_event(
    store: &SqlStore,
    event_id: &str,
    claim: &ClaimToken,
    outcome: &SlackEventOutcome,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (handled_at, next_attempt_at, error) = match outcome {
        SlackEventOutcome::Done => (Some(millis(now)), None, None),
        SlackEventOutcome::Retry { error, retry_at } => {
            (None, Some(millis(*retry_at)), Some(error.as_str()))
        }
        SlackEventOutcome::Failed { error } => (Some(millis(now)), None, Some(error.as_str())),
    };
    let recorded = sqlx::query(
        "UPDATE slack_events
         SET handled_at = $2, next_attempt_at = COALESCE($3, next_attempt_at), error = $4,
             attempts = attempts + 1, claimed_until = NULL, claim_token = NULL
         WHERE event_id = $1 AND claim_token = $5
         RETURNING event_id",
    )
    .bind(event_id)
    .bind(handled_at)
    .bind(next_attempt_at)
    .bind(error)
    .bind(claim.0.as_str())
    .fetch_optional(&store.writer)
    .await?;
    Ok(recorded.is_some())
}

pub(super) async fn next_slack_event(
    store: &SqlStore,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = sqlx::query(
        "SELECT MIN(CASE WHEN claimed_until > next_attempt_at THEN claimed_until
                         ELSE next_attempt_at END) AS due
         FROM slack_events WHERE handled_at IS NULL",
    )
    .fetch_one(&store.readers)
    .await?;
    Ok(row.try_get::<Option<i64>, _>("due")?.map(instant))
}

/// Records `user`'s acknowledgement of the clock cycle `alert`.
pub(super) async fn acknowledge(
    store: &SqlStore,
    alert: &AlertThread,
    user: &str,
    at: DateTime<Utc>,
) -> Result<Acknowledged, StoreError> {
    let mut tx = store.writer.begin().await?;
    let acknowledged = acknowledge_in(&mut tx, alert.clone(), user, at).await?;
    tx.commit().await?;
    Ok(acknowledged)
}

async fn acknowledge_in(
    tx: &mut Transaction<'_, Any>,
    alert: AlertThread,
    user: &str,
    at: DateTime<Utc>,
) -> Result<Acknowledged, StoreError> {
    let standing = bind_cycle(sqlx::query(FIRST_ACKNOWLEDGEMENT), &alert)
        .fetch_optional(&mut **tx)
        .await?;
    let inserted = bind_cycle(
        sqlx::query(
            "INSERT INTO acknowledgements (project, iid, policy, cycle, by_user, at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING by_user",
        ),
        &alert,
    )
    .bind(user)
    .bind(millis(at))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(Acknowledged {
        recorded: inserted.is_some(),
        first: inserted.is_some() && standing.is_none(),
        issue: alert.issue,
        policy: alert.policy,
        cycle: alert.cycle,
    })
}

pub(super) async fn alert_thread(
    store: &SqlStore,
    channel_id: &str,
    ts: &str,
) -> Result<Option<AlertThread>, StoreError> {
    sqlx::query(THREAD_BY_PARENT)
        .bind(channel_id)
        .bind(ts)
        .fetch_optional(&store.readers)
        .await?
        .map(|row| alert_thread_from(&row))
        .transpose()
        .map_err(StoreError::from)
}

/// Takes `user`'s acknowledgement of the clock cycle `alert` back.
pub(super) async fn withdraw_acknowledgement(
    store: &SqlStore,
    alert: &AlertThread,
    user: &str,
    now: DateTime<Utc>,
) -> Result<Withdrawal, StoreError> {
    let mut tx = store.writer.begin().await?;
    let withdrawal = withdraw_in(&mut tx, alert, user, now).await?;
    tx.commit().await?;
    Ok(withdrawal)
}

async fn withdraw_in(
    tx: &mut Transaction<'_, Any>,
    alert: &AlertThread,
    user: &str,
    now: DateTime<Utc>,
) -> Result<Withdrawal, StoreError> {
    let done = bind_cycle(
        sqlx::query(
            "DELETE FROM acknowledgements
             WHERE project = $1 AND iid = $2 AND policy = $3 AND cycle = $4 AND by_user = $5",
        ),
        alert,
    )
    .bind(user)
    .execute(&mut **tx)
    .await?;
    let removed = done.rows_affected() > 0;
    let still_acknowledged = bind_cycle(sqlx::query(FIRST_ACKNOWLEDGEMENT), alert)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if removed && !still_acknowledged {
        sqlx::query(
            "UPDATE clocks SET next_wake = $4
             WHERE project = $1 AND iid = $2 AND policy = $3
               AND status IN ('running', 'paused', 'breached')
               AND (next_wake IS NULL OR next_wake > $4)",
        )
        .bind(alert.issue.project.0.as_str())
        .bind(alert.issue.iid.0 as i64)
        .bind(alert.policy.0.as_str())
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(Withdrawal {
        removed,
        still_acknowledged,
    })
}

pub(super) async fn acknowledgement(
    store: &SqlStore,
    issue: &IssueRef,
    policy: &PolicyName,
    cycle: u32,
) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    let cycle = AlertThread {
        issue: issue.clone(),
        policy: policy.clone(),
        cycle,
    };
    let row = bind_cycle(sqlx::query(FIRST_ACKNOWLEDGEMENT), &cycle)
        .fetch_optional(&store.readers)
        .await?;
    row.map(|row| Ok((row.try_get("by_user")?, instant(row.try_get("at")?))))
        .transpose()
}

/// How long Slack event ids are remembered to recognise retries.
const SLACK_EVENTS_KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The alert thread whose parent is a message (`channel_id`, `ts`).
const THREAD_BY_PARENT: &str =
    "SELECT project, iid, policy, cycle FROM threads WHERE channel_id = $1 AND ts = $2";

/// The earliest acknowledgement standing on a clock cycle (bound with
/// [`bind_cycle`]).
const FIRST_ACKNOWLEDGEMENT: &str = "SELECT by_user, at FROM acknowledgements
     WHERE project = $1 AND iid = $2 AND policy = $3 AND cycle = $4
     ORDER BY at, by_user LIMIT 1";

fn alert_thread_from(row: &AnyRow) -> Result<AlertThread, sqlx::Error> {
    Ok(AlertThread {
        issue: issue_from(row)?,
        policy: PolicyName(row.try_get("policy")?),
        cycle: row.try_get::<i64, _>("cycle")? as u32,
    })
}

/// Binds a clock cycle's key to `$1`..`$4`: project, iid, policy, cycle.
pub(super) fn bind_cycle<'q>(query: SqlQuery<'q>, cycle: &'q AlertThread) -> SqlQuery<'q> {
    query
        .bind(cycle.issue.project.0.as_str())
        .bind(cycle.issue.iid.0 as i64)
        .bind(cycle.policy.0.as_str())
        .bind(i64::from(cycle.cycle))
}
