//! One issue's stored story (see [`crate::store::story`]): ledger, outbox,
//! group messages and acknowledgements of one issue, oldest first.

use super::*;
use crate::store::story::{
    GroupedNotice, StoredAcknowledgement, StoredFiring, StoredNotice, StoredStory,
};

const OF_ISSUE: &str = "project = $1 AND iid = $2";

pub(super) async fn issue_story(
    store: &SqlStore,
    issue: &IssueRef,
) -> Result<StoredStory, StoreError> {
    let project = issue.project.0.as_str();
    let iid = issue.iid.0 as i64;
    let of_issue = |sql: String| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(iid)
    };

    let rows = of_issue(format!(
        "SELECT policy, step, cycle, occurrence, fired_at FROM ledger WHERE {OF_ISSUE}
         ORDER BY fired_at, policy, step"
    ))
    .fetch_all(&store.readers)
    .await?;
    let fired = rows
        .iter()
        .map(|row| {
            Ok(StoredFiring {
                policy: PolicyName(row.try_get("policy")?),
                firing: firing_from(row)?,
                at: instant(row.try_get("fired_at")?),
            })
        })
        .collect::<Result<_, StoreError>>()?;

    let rows = of_issue(format!(
        "SELECT id, policy, step, cycle, occurrence, notice, channel, created_at, attempts,
            sent_at, muted_by, failed_at, resent_at, next_attempt_at, last_error
         FROM outbox WHERE {OF_ISSUE} ORDER BY created_at, position"
    ))
    .fetch_all(&store.readers)
    .await?;
    let notices = rows
        .iter()
        .map(|row| {
            let notice: Notice = serde_json::from_str(&row.try_get::<String, _>("notice")?)
                .map_err(corrupt("outbox notice"))?;
            let at = |column: &str| -> Result<Option<DateTime<Utc>>, sqlx::Error> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(instant))
            };
            Ok(StoredNotice {
                policy: PolicyName(row.try_get("policy")?),
                firing: firing_from(row)?,
                step_kind: notice.step_kind,
                channel: row.try_get("channel")?,
                acts_on_gitlab: notice.gitlab.is_some(),
                instead_of: notice
                    .undelivered
                    .filter(|u| u.route == crate::notice::UndeliveredRoute::Fallback)
                    .map(|u| u.channel),
                queued_at: instant(row.try_get("created_at")?),
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                sent_at: at("sent_at")?,
                muted_by: row.try_get("muted_by")?,
                failed_at: at("failed_at")?,
                resent_at: at("resent_at")?,
                next_attempt_at: at("next_attempt_at")?,
                error: row.try_get("last_error")?,
                id: row.try_get("id")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;

    let mut grouped = Vec::new();
    // Alerts listed in a group alert (members without one of their own).
    let rows = of_issue(format!(
        "SELECT policy, channel, opened_at, cycle FROM digest_members
         WHERE {OF_ISSUE} AND notice IS NOT NULL ORDER BY opened_at"
    ))
    .fetch_all(&store.readers)
    .await?;
    for row in &rows {
        grouped.push(GroupedNotice {
            policy: PolicyName(row.try_get("policy")?),
            channel: row.try_get("channel")?,
            step_kind: "start".to_owned(),
            cycle: row.try_get::<i64, _>("cycle")? as u32,
            at: instant(row.try_get("opened_at")?),
            posted_at: None,
        });
    }
    let rows = of_issue(format!(
        "SELECT policy, channel, cycle, notice, joined_at, posted_at FROM digest_notices
         WHERE {OF_ISSUE} ORDER BY joined_at"
    ))
    .fetch_all(&store.readers)
    .await?;
    for row in &rows {
        let notice: Notice = serde_json::from_str(&row.try_get::<String, _>("notice")?)
            .map_err(corrupt("digest notice"))?;
        grouped.push(GroupedNotice {
            policy: PolicyName(row.try_get("policy")?),
            channel: row.try_get("channel")?,
            step_kind: notice.step_kind,
            cycle: row.try_get::<i64, _>("cycle")? as u32,
            at: instant(row.try_get("joined_at")?),
            posted_at: row.try_get::<Option<i64>, _>("posted_at")?.map(instant),
        });
    }

    let rows = of_issue(format!(
        "SELECT policy, cycle, by_user, at FROM acknowledgements WHERE {OF_ISSUE} ORDER BY at"
    ))
    .fetch_all(&store.readers)
    .await?;
    let acknowledgements = rows
        .iter()
        .map(|row| {
            Ok(StoredAcknowledgement {
                policy: PolicyName(row.try_get("policy")?),
                cycle: row.try_get::<i64, _>("cycle")? as u32,
                by: row.try_get("by_user")?,
                at: instant(row.try_get("at")?),
            })
        })
        .collect::<Result<_, StoreError>>()?;

    Ok(StoredStory {
        fired,
        notices,
        grouped,
        acknowledgements,
    })
}
