//! The clocks the store holds, for people to look at (`labelwarden
//! clocks`, the admin API): which issue, which policy, what status.

use super::slack::bind_cycle;
use super::*;

/// Most clocks listed at once.
pub(super) const CLOCKS_LIMIT: i64 = 5_000;

/// Stored clocks, by issue then policy, filtered by policy and status
/// kind ([`crate::clock::SlaStatus::kind`]) when given.
pub(super) async fn stored_clocks(
    store: &SqlStore,
    policy: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<(IssueRef, PolicyName, String)>, StoreError> {
    let mut conditions = vec!["1 = 1".to_owned()];
    let mut values = Vec::new();
    for (column, value) in [("policy", policy), ("status", status)] {
        if let Some(value) = value {
            values.push(value.to_owned());
            conditions.push(format!("{column} = ${}", values.len()));
        }
    }
    let sql = format!(
        "SELECT project, iid, policy, status FROM clocks WHERE {}
         ORDER BY project, iid, policy LIMIT {CLOCKS_LIMIT}",
        conditions.join(" AND ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in &values {
        query = query.bind(value.as_str());
    }
    let rows = query.fetch_all(&store.readers).await?;
    rows.iter().map(clock_row).collect()
}

/// A clock as listed: its issue, policy and status kind.
fn clock_row(row: &AnyRow) -> Result<(IssueRef, PolicyName, String), StoreError> {
    Ok((
        issue_from(row)?,
        PolicyName(row.try_get("policy")?),
        row.try_get("status")?,
    ))
}

/// Most clocks a status page reads at once.
pub(super) const BOARD_LIMIT: i64 = 50_000;

/// The clocks a status page shows: every live one (running, paused,
/// breached), and every other whose status changed at or after `since`.
pub(super) async fn board_clocks(
    store: &SqlStore,
    since: DateTime<Utc>,
) -> Result<Vec<(IssueRef, PolicyName, String)>, StoreError> {
    let sql = format!(
        "SELECT project, iid, policy, status FROM clocks
         WHERE status IN ('running', 'paused', 'breached') OR updated_at >= $1
         ORDER BY project, iid, policy LIMIT {BOARD_LIMIT}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(millis(since))
        .fetch_all(&store.readers)
        .await?;
    rows.iter().map(clock_row).collect()
}

/// The Slack threads of `cycles`, in every channel each has one in.
pub(super) async fn cycle_threads(
    store: &SqlStore,
    cycles: &[AlertThread],
) -> Result<Vec<CycleThread>, StoreError> {
    let mut threads = Vec::new();
    for chunk in cycles.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(format!(
            "SELECT t.project, t.iid, t.policy, t.cycle, t.channel, t.channel_id, t.ts FROM {}
             ORDER BY t.project, t.iid, t.policy, t.cycle, t.channel",
            join_values(
                "threads",
                &["project", "iid", "policy", "cycle"],
                &parameters(store.backend, chunk.len(), 4)
            )
        ));
        for cycle in chunk {
            query = bind_cycle(query, cycle);
        }
        for row in query.fetch_all(&store.readers).await? {
            threads.push(CycleThread {
                cycle: AlertThread {
                    issue: issue_from(&row)?,
                    policy: PolicyName(row.try_get("policy")?),
                    cycle: row.try_get::<i64, _>("cycle")? as u32,
                },
                channel: row.try_get("channel")?,
                channel_id: row.try_get("channel_id")?,
                ts: row.try_get("ts")?,
            });
        }
    }
    Ok(threads)
}

/// The channels each of `cycles` posted or is to post in (its threads, and
/// its outbox entries sent or waiting), once each.
pub(super) async fn cycle_channels(
    store: &SqlStore,
    cycles: &[AlertThread],
) -> Result<Vec<(AlertThread, String)>, StoreError> {
    let mut found = std::collections::BTreeSet::new();
    for table in ["threads", "outbox"] {
        for chunk in cycles.chunks(ROWS_PER_STATEMENT) {
            let mut query = multi_row(format!(
                "SELECT DISTINCT t.project, t.iid, t.policy, t.cycle, t.channel FROM {}
                 WHERE t.channel IS NOT NULL",
                join_values(
                    table,
                    &["project", "iid", "policy", "cycle"],
                    &parameters(store.backend, chunk.len(), 4)
                )
            ));
            for cycle in chunk {
                query = bind_cycle(query, cycle);
            }
            for row in query.fetch_all(&store.readers).await? {
                let issue = issue_from(&row)?;
                found.insert((
                    issue.project.0,
                    issue.iid.0,
                    row.try_get::<String, _>("policy")?,
                    row.try_get::<i64, _>("cycle")? as u32,
                    row.try_get::<String, _>("channel")?,
                ));
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|(project, iid, policy, cycle, channel)| {
            (
                AlertThread {
                    issue: IssueRef {
                        project: ProjectPath(project),
                        iid: IssueIid(iid),
                    },
                    policy: PolicyName(policy),
                    cycle,
                },
                channel,
            )
        })
        .collect())
}
