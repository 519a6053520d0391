//! What the store does for an issue made confidential: notices of it still
//! waiting in the outbox are rewritten as confidential (so they are posted
//! redacted), and the notices already sent to a thread are handed back for
//! the notifier to redact where it posted them.

use sqlx::{Any, Row, Transaction};

use super::{SqlStore, corrupt};
use crate::issue::IssueRef;
use crate::notice::Notice;
use crate::policy::PolicyName;
use crate::store::StoreError;

/// Marks every unsent notice of `issue` confidential.
pub(super) async fn redact_waiting(
    tx: &mut Transaction<'_, Any>,
    issue: &IssueRef,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT policy, step, cycle, occurrence, notice FROM outbox
         WHERE project = $1 AND iid = $2 AND sent_at IS NULL",
    )
    .bind(issue.project.0.as_str())
    .bind(issue.iid.0 as i64)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let mut notice: Notice = serde_json::from_str(&row.try_get::<String, _>("notice")?)
            .map_err(corrupt("outbox notice"))?;
        if notice.confidential {
            continue;
        }
        notice.confidential = true;
        let notice = serde_json::to_string(&notice).map_err(corrupt("outbox notice"))?;
        sqlx::query(
            "UPDATE outbox SET notice = $7 WHERE project = $1 AND iid = $2 AND policy = $3
             AND step = $4 AND cycle = $5 AND occurrence = $6",
        )
        .bind(issue.project.0.as_str())
        .bind(issue.iid.0 as i64)
        .bind(row.try_get::<String, _>("policy")?)
        .bind(row.try_get::<String, _>("step")?)
        .bind(row.try_get::<i64, _>("cycle")?)
        .bind(row.try_get::<i64, _>("occurrence")?)
        .bind(notice)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn sent_notices(
    store: &SqlStore,
    issue: &IssueRef,
    policy: &PolicyName,
    cycle: u32,
    channel: &str,
) -> Result<Vec<Notice>, StoreError> {
    let rows = sqlx::query(
        "SELECT notice FROM outbox
         WHERE project = $1 AND iid = $2 AND policy = $3 AND cycle = $4 AND channel = $5
           AND sent_at IS NOT NULL AND step NOT LIKE 'redact:%'
         ORDER BY created_at, position",
    )
    .bind(issue.project.0.as_str())
    .bind(issue.iid.0 as i64)
    .bind(policy.0.as_str())
    .bind(i64::from(cycle))
    .bind(channel)
    .fetch_all(&store.readers)
    .await?;
    rows.iter()
        .map(|row| {
            serde_json::from_str(&row.try_get::<String, _>("notice")?)
                .map_err(corrupt("outbox notice"))
        })
        .collect()
}
