//! Following an issue across GitLab's renames and transfers: a project is
//! recognised by its id, and its path (the key of every per-issue row, and
//! what messages show) is updated when a delivery names the same id under
//! another path. The rows move to the new path in one transaction, so the
//! clocks, ledgers, threads and acknowledgements go on as they were.
//!
//! A store written before this existed has no project ids: its rows are
//! keyed by the paths of the time, which is what the first delivery naming
//! each project's id records, so an upgraded store needs no rewriting.

use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};

use super::{SqlStore, corrupt, millis};
use crate::issue::{IssueFacts, ProjectPath};
use crate::store::{FollowedProject, StoreError};

/// Every table with rows per issue, keyed by `project`, `iid` and more.
const ISSUE_TABLES: &[&str] = &[
    "issues",
    "issue_events",
    "clocks",
    "ledger",
    "outbox",
    "threads",
    "acknowledgements",
];

impl SqlStore {
    pub(super) async fn follow_project_path(
        &self,
        project_id: u64,
        path: &ProjectPath,
        seen_at: DateTime<Utc>,
    ) -> Result<FollowedProject, StoreError> {
        let mut tx = self.writer.begin().await?;
        let known = sqlx::query("SELECT path, seen_at FROM projects WHERE project_id = $1")
            .bind(project_id as i64)
            .fetch_optional(&mut *tx)
            .await?;
        let followed = match known {
            None => {
                sqlx::query("INSERT INTO projects (project_id, path, seen_at) VALUES ($1, $2, $3)")
                    .bind(project_id as i64)
                    .bind(path.0.as_str())
                    .bind(millis(seen_at))
                    .execute(&mut *tx)
                    .await?;
                FollowedProject {
                    path: path.clone(),
                    renamed_from: None,
                }
            }
            Some(row) => {
                let known_path: String = row.try_get("path")?;
                let known_at: i64 = row.try_get("seen_at")?;
                if millis(seen_at) < known_at {
                    // An older delivery: the path the store knows is newer.
                    FollowedProject {
                        path: ProjectPath(known_path),
                        renamed_from: None,
                    }
                } else {
                    let renamed = known_path != path.0;
                    if renamed {
                        move_project_rows(&mut tx, &known_path, &path.0).await?;
                    }
                    sqlx::query(
                        "UPDATE projects SET path = $2, seen_at = $3 WHERE project_id = $1",
                    )
                    .bind(project_id as i64)
                    .bind(path.0.as_str())
                    .bind(millis(seen_at))
                    .execute(&mut *tx)
                    .await?;
                    FollowedProject {
                        path: path.clone(),
                        renamed_from: renamed.then_some(ProjectPath(known_path)),
                    }
                }
            }
        };
        tx.commit().await?;
        Ok(followed)
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
    let rows = sqlx::query("SELECT iid, facts FROM issues WHERE project = $1")
        .bind(to)
        .fetch_all(&mut **tx)
        .await?;
    for row in rows {
        let mut facts: IssueFacts = serde_json::from_str(&row.try_get::<String, _>("facts")?)
            .map_err(corrupt("issue facts"))?;
        facts.reference.project = ProjectPath(to.to_owned());
        let facts = serde_json::to_string(&facts).map_err(corrupt("issue facts"))?;
        sqlx::query("UPDATE issues SET facts = $3 WHERE project = $1 AND iid = $2")
            .bind(to)
            .bind(row.try_get::<i64, _>("iid")?)
            .bind(facts)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
