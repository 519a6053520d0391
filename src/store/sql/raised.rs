//! Messages raised in Slack: a person's message that became (or is
//! becoming) an issue, claimed before the issue is created so that it is
//! created once, and kept as that issue's alert thread in its channel.

use super::*;
use crate::notice::Thread;
use crate::store::Raised;

/// Claims the message `channel_id`/`ts` for an issue in `project`: the
/// first claim, or one left pending since before `stale_before` (its
/// process died between claiming and recording), is this caller's.
pub(super) async fn claim_raised(
    store: &SqlStore,
    message: &Thread,
    channel: &str,
    project: &str,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<Raised, StoreError> {
    let mut tx = store.writer.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO raised (channel_id, ts, channel, project, iid, claimed_at)
         VALUES ($1, $2, $3, $4, NULL, $5) ON CONFLICT DO NOTHING",
    )
    .bind(message.channel_id.as_str())
    .bind(message.ts.as_str())
    .bind(channel)
    .bind(project)
    .bind(millis(now))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let raised = if inserted == 1 {
        Raised::Claimed
    } else {
        let retaken = sqlx::query(
            "UPDATE raised SET claimed_at = $3
             WHERE channel_id = $1 AND ts = $2 AND iid IS NULL AND claimed_at < $4",
        )
        .bind(message.channel_id.as_str())
        .bind(message.ts.as_str())
        .bind(millis(now))
        .bind(millis(stale_before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if retaken == 1 {
            Raised::Claimed
        } else {
            let row =
                sqlx::query("SELECT project, iid FROM raised WHERE channel_id = $1 AND ts = $2")
                    .bind(message.channel_id.as_str())
                    .bind(message.ts.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            match row.try_get::<Option<i64>, _>("iid")? {
                Some(_) => Raised::Issue(issue_from(&row)?),
                None => Raised::Pending,
            }
        }
    };
    tx.commit().await?;
    Ok(raised)
}

/// Records the issue the claimed message became.
pub(super) async fn record_raised(
    store: &SqlStore,
    message: &Thread,
    issue: &IssueRef,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE raised SET project = $3, iid = $4 WHERE channel_id = $1 AND ts = $2")
        .bind(message.channel_id.as_str())
        .bind(message.ts.as_str())
        .bind(issue.project.0.as_str())
        .bind(issue.iid.0 as i64)
        .execute(&store.writer)
        .await?;
    Ok(())
}

/// The raised messages of `wanted` (project, iid, channel): the threads
/// their issues' notices in those channels go to.
pub(super) async fn raised_threads(
    store: &SqlStore,
    wanted: &[(String, i64, String)],
) -> Result<std::collections::HashMap<(String, i64, String), Thread>, StoreError> {
    let mut found = std::collections::HashMap::new();
    for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(format!(
            "SELECT t.project, t.iid, t.channel, t.channel_id, t.ts FROM {}",
            join_values(
                "raised",
                &["project", "iid", "channel"],
                &parameters(store.backend, chunk.len(), 3)
            )
        ));
        for (project, iid, channel) in chunk {
            query = query
                .bind(project.as_str())
                .bind(*iid)
                .bind(channel.as_str());
        }
        for row in query.fetch_all(&store.readers).await? {
            found.insert(
                (
                    row.try_get("project")?,
                    row.try_get("iid")?,
                    row.try_get("channel")?,
                ),
                Thread {
                    channel_id: row.try_get("channel_id")?,
                    ts: row.try_get("ts")?,
                },
            );
        }
    }
    Ok(found)
}
