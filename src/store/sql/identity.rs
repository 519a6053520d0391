//! Following an issue across GitLab's renames and transfers: a project is
//! recognised by its id, and its path (the key of every per-issue row, and
//! what messages show) is updated when a delivery names the same id under
//! another path. The rows move to the new path in one transaction, so the
//! clocks, ledgers, threads and acknowledgements go on as they were.
//!
//! An issue moved to another project is a new issue there (its own id and
//! number); the old one closes naming it (`moved_to_id`). Its rows move to
//! the new issue the same way, one issue at a time.
//!
//! A store written before this existed has no project ids: its rows are
//! keyed by the paths of the time, which is what the first delivery naming
//! each project's id records, so an upgraded store needs no rewriting.

use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};

use super::{ROWS_PER_STATEMENT, SqlStore, corrupt, issue_from, millis, multi_row};
use crate::issue::{IssueFacts, IssueIid, IssueRef, ProjectPath};
use crate::store::{Carried, FollowedProject, IssueLink, LeaseFence, StoreError};

/// Every table with rows per issue, keyed by `project`, `iid` and more.
pub(super) const ISSUE_TABLES: &[&str] = &[
    "issues",
    "issue_events",
    "clocks",
    "ledger",
    "outbox",
    "threads",
    "acknowledgements",
    "carried_starts",
    "raised",
];

pub(super) async fn follow_project(
    store: &SqlStore,
    project_id: u64,
    path: &ProjectPath,
    seen_at: DateTime<Utc>,
) -> Result<FollowedProject, StoreError> {
    let mut tx = store.writer.begin().await?;
    let known = sqlx::query("SELECT path, seen_at FROM projects WHERE project_id = $1")
        .bind(project_id as i64)
        .fetch_optional(&mut *tx)
        .await?;
    // What the store knows, unless this delivery is older than that.
    let known = match known {
        Some(row) => Some((
            row.try_get::<String, _>("path")?,
            row.try_get::<i64, _>("seen_at")?,
        )),
        None => None,
    };
    if let Some((known_path, known_at)) = &known
        && millis(seen_at) < *known_at
    {
        // An older delivery: the path the store knows is newer.
        return Ok(FollowedProject {
            path: ProjectPath(known_path.clone()),
            renamed_from: None,
        });
    }
    let renamed_from = known
        .map(|(known_path, _)| known_path)
        .filter(|known_path| *known_path != path.0);
    if let Some(known_path) = &renamed_from {
        refuse_while_sending(&mut tx, known_path, None, seen_at.max(Utc::now())).await?;
        move_project_rows(&mut tx, known_path, &path.0).await?;
    }
    sqlx::query(
        "INSERT INTO projects (project_id, path, seen_at) VALUES ($1, $2, $3)
         ON CONFLICT (project_id) DO UPDATE SET path = excluded.path, seen_at = excluded.seen_at",
    )
    .bind(project_id as i64)
    .bind(path.0.as_str())
    .bind(millis(seen_at))
    .execute(&mut *tx)
    .await?;
    let followed = FollowedProject {
        path: path.clone(),
        renamed_from: renamed_from.map(ProjectPath),
    };
    tx.commit().await?;
    Ok(followed)
}

/// Refuses to move the rows of `project` (or of one issue of it) while a
/// notice of theirs is claimed and unsent: the sender records its outcome
/// under the key it claimed, and a thread it starts must land where the
/// rest of the cycle is. Claims last seconds; the caller tries again.
async fn refuse_while_sending(
    tx: &mut Transaction<'_, Any>,
    project: &str,
    iid: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sending = sqlx::query(
        "SELECT 1 FROM outbox WHERE project = $1 AND ($2 < 0 OR iid = $2)
         AND sent_at IS NULL AND claimed_until IS NOT NULL AND claimed_until > $3 LIMIT 1",
    )
    .bind(project)
    .bind(iid.unwrap_or(-1))
    .bind(millis(now))
    .fetch_optional(&mut **tx)
    .await?;
    match sending {
        Some(_) => Err(StoreError::Sending(match iid {
            Some(iid) => format!("{project}#{iid}"),
            None => project.to_owned(),
        })),
        None => Ok(()),
    }
}

/// Moves every per-issue row of project path `from` to `to`, and the path
/// inside each issue's stored facts.
async fn move_project_rows(
    tx: &mut Transaction<'_, Any>,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    // Rows already under the new path for an issue the store knows under
    // the old one came from a delivery applied before the rename was known
    // (a fresh clock): the older story wins. All deletions come first,
    // while `issues` still names what the old path holds.
    for table in ISSUE_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE project = $2
             AND iid IN (SELECT iid FROM issues WHERE project = $1)"
        )))
        .bind(from)
        .bind(to)
        .execute(&mut **tx)
        .await?;
    }
    for table in ISSUE_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET project = $2 WHERE project = $1"
        )))
        .bind(from)
        .bind(to)
        .execute(&mut **tx)
        .await?;
    }
    let rows = sqlx::query("SELECT iid FROM issues WHERE project = $1")
        .bind(to)
        .fetch_all(&mut **tx)
        .await?;
    for row in rows {
        let moved = IssueRef {
            project: ProjectPath(to.to_owned()),
            iid: IssueIid(row.try_get::<i64, _>("iid")? as u64),
        };
        rewrite_reference(tx, &moved).await?;
    }
    Ok(())
}

/// Makes the stored facts of the issue kept under `issue` name it.
async fn rewrite_reference(
    tx: &mut Transaction<'_, Any>,
    issue: &IssueRef,
) -> Result<(), StoreError> {
    let (project, iid) = (issue.project.0.as_str(), issue.iid.0 as i64);
    let Some(row) = sqlx::query("SELECT facts FROM issues WHERE project = $1 AND iid = $2")
        .bind(project)
        .bind(iid)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(());
    };
    let mut facts: IssueFacts = serde_json::from_str(&row.try_get::<String, _>("facts")?)
        .map_err(corrupt("issue facts"))?;
    facts.reference = issue.clone();
    let facts = serde_json::to_string(&facts).map_err(corrupt("issue facts"))?;
    sqlx::query("UPDATE issues SET facts = $3 WHERE project = $1 AND iid = $2")
        .bind(project)
        .bind(iid)
        .bind(facts)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn issue_links(
    store: &SqlStore,
    issue_ids: &[u64],
) -> Result<Vec<IssueLink>, StoreError> {
    let mut links = Vec::new();
    for chunk in issue_ids.chunks(ROWS_PER_STATEMENT) {
        let among = (1..=chunk.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = multi_row(format!(
            "SELECT project, iid, issue_id, moved_to_id FROM issues
             WHERE issue_id IN ({among}) OR moved_to_id IN ({among})"
        ));
        for id in chunk {
            query = query.bind(*id as i64);
        }
        for row in query.fetch_all(&store.readers).await? {
            links.push(IssueLink {
                issue: issue_from(&row)?,
                issue_id: row
                    .try_get::<Option<i64>, _>("issue_id")?
                    .map(|id| id as u64),
                moved_to_id: row
                    .try_get::<Option<i64>, _>("moved_to_id")?
                    .map(|id| id as u64),
            });
        }
    }
    Ok(links)
}

pub(super) async fn move_issue(
    store: &SqlStore,
    from: &IssueRef,
    to: &IssueRef,
    fence: Option<&LeaseFence>,
) -> Result<(), StoreError> {
    let mut tx = super::fence::fenced_transaction(store, fence).await?;
    let (from_project, from_iid) = (from.project.0.as_str(), from.iid.0 as i64);
    refuse_while_sending(&mut tx, from_project, Some(from_iid), Utc::now()).await?;
    let (to_project, to_iid) = (to.project.0.as_str(), to.iid.0 as i64);
    // What the new issue had of its own (its hook came before the old
    // one's close) gives way to the story the old issue brings.
    for table in ISSUE_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE project = $1 AND iid = $2"
        )))
        .bind(to_project)
        .bind(to_iid)
        .execute(&mut *tx)
        .await?;
    }
    for table in ISSUE_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET project = $3, iid = $4 WHERE project = $1 AND iid = $2"
        )))
        .bind(from_project)
        .bind(from_iid)
        .bind(to_project)
        .bind(to_iid)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE issues SET moved_to_id = NULL, issue_id = NULL WHERE project = $1 AND iid = $2",
    )
    .bind(to_project)
    .bind(to_iid)
    .execute(&mut *tx)
    .await?;
    rewrite_reference(&mut tx, to).await?;
    tx.commit().await?;
    Ok(())
}

/// Records a clock start carried to an issue from its duplicate (the
/// earlier of two wins), and makes the issue due at once so that its clock
/// is read again with it.
pub(super) async fn carry_start(
    tx: &mut Transaction<'_, Any>,
    carried: &Carried,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (project, iid) = (carried.to.project.0.as_str(), carried.to.iid.0 as i64);
    sqlx::query(
        "INSERT INTO carried_starts (project, iid, policy, started_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (project, iid, policy) DO UPDATE SET started_at =
            CASE WHEN excluded.started_at < carried_starts.started_at
                 THEN excluded.started_at ELSE carried_starts.started_at END",
    )
    .bind(project)
    .bind(iid)
    .bind(carried.policy.0.as_str())
    .bind(millis(carried.started_at))
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE clocks SET next_wake = $3 WHERE project = $1 AND iid = $2")
        .bind(project)
        .bind(iid)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
