//! [`Store`] on a SQL database through sqlx's `Any` driver: SQLite now (a
//! file, WAL mode, nothing to install), with SQL kept to what PostgreSQL
//! also speaks (`$n` parameters, `ON CONFLICT`, integer timestamps).

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::migrations::MIGRATIONS;
use super::{
    CommitOutcome, Delivery, IssueCommit, IssueRecord, OutboxEntry, OutboxKey, Recorded, Store,
    StoreError, StoreStats,
};
use crate::engine::Firing;
use crate::issue::{Event, IssueFacts, IssueIid, IssueRef, ProjectPath, TimedEvent};
use crate::policy::{PolicyName, StepId};

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn instant(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    }
}

fn event_columns(event: &Event) -> (&'static str, &str) {
    match event {
        Event::LabelAdded(label) => ("label_added", label),
        Event::LabelRemoved(label) => ("label_removed", label),
        Event::Closed => ("closed", ""),
        Event::Reopened => ("reopened", ""),
    }
}

fn event_from_columns(kind: &str, label: String) -> Result<Event, StoreError> {
    Ok(match kind {
        "label_added" => Event::LabelAdded(label),
        "label_removed" => Event::LabelRemoved(label),
        "closed" => Event::Closed,
        "reopened" => Event::Reopened,
        other => {
            return Err(StoreError::Corrupt {
                what: "issue event",
                message: format!("unknown kind `{other}`"),
            });
        }
    })
}

impl SqlStore {
    /// Opens (creating if needed) the database at `url` and brings its
    /// schema up to date. `sqlite://labelwarden.db` is a file in the
    /// working directory; `sqlite::memory:` is for tests.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, max_connections) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            if path == ":memory:" {
                // One connection: each in-memory connection is its own database.
                ("sqlite::memory:".to_owned(), 1)
            } else {
                let separator = if path.contains('?') { '&' } else { '?' };
                let with_mode = if path.contains("mode=") {
                    format!("sqlite://{path}")
                } else {
                    format!("sqlite://{path}{separator}mode=rwc")
                };
                (with_mode, 4)
            }
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    // WAL: readers never block the writer. NORMAL: a commit
                    // survives a crash of the process; only power loss can
                    // lose the last commits (documented in BENCHMARKS.md).
                    connection.execute("PRAGMA journal_mode = WAL").await?;
                    connection.execute("PRAGMA synchronous = NORMAL").await?;
                    connection.execute("PRAGMA busy_timeout = 5000").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let store = SqlStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS labelwarden_migrations (
                    version BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at BIGINT NOT NULL
                )",
            )
            .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM labelwarden_migrations")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let mut tx = self.pool.begin().await?;
            for statement in migration.statements {
                tx.execute(*statement).await?;
            }
            sqlx::query("INSERT INTO labelwarden_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(migration.version)
                .bind(migration.name)
                .bind(millis(Utc::now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "database migrated"
            );
        }
        Ok(())
    }
}

fn outbox_key(row: &AnyRow) -> Result<OutboxKey, StoreError> {
    Ok(OutboxKey {
        issue: IssueRef {
            project: ProjectPath(row.try_get("project")?),
            iid: IssueIid(row.try_get::<i64, _>("iid")? as u64),
        },
        policy: PolicyName(row.try_get("policy")?),
        firing: Firing {
            step: StepId(row.try_get("step")?),
            cycle: row.try_get::<i64, _>("cycle")? as u32,
            occurrence: row.try_get::<i64, _>("occurrence")? as u32,
        },
    })
}

impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        let result = sqlx::query(
            "INSERT INTO deliveries (key, kind, received_at, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&delivery.key)
        .bind(&delivery.kind)
        .bind(millis(delivery.received_at))
        .bind(&delivery.body)
        .execute(&self.pool)
        .await?;
        Ok(if result.rows_affected() == 1 {
            Recorded::New
        } else {
            Recorded::Duplicate
        })
    }

    async fn pending_deliveries(&self, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, kind, received_at, body FROM deliveries
             WHERE processed_at IS NULL ORDER BY received_at, key LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    key: row.try_get("key")?,
                    kind: row.try_get("kind")?,
                    received_at: instant(row.try_get("received_at")?),
                    body: row.try_get("body")?,
                })
            })
            .collect()
    }

    async fn reject_delivery(
        &self,
        key: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET processed_at = $1, error = $2 WHERE key = $3")
            .bind(millis(now))
            .bind(error)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_issue(&self, issue: &IssueRef) -> Result<Option<IssueRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT facts, title, url, updated_at FROM issues WHERE project = $1 AND iid = $2",
        )
        .bind(&issue.project.0)
        .bind(issue.iid.0 as i64)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let facts: IssueFacts = serde_json::from_str(&row.try_get::<String, _>("facts")?)
            .map_err(corrupt("issue facts"))?;
        let events =
            sqlx::query("SELECT at, kind, label FROM issue_events WHERE project = $1 AND iid = $2")
                .bind(&issue.project.0)
                .bind(issue.iid.0 as i64)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(TimedEvent {
                        at: instant(row.try_get("at")?),
                        event: event_from_columns(
                            &row.try_get::<String, _>("kind")?,
                            row.try_get("label")?,
                        )?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(IssueRecord {
            facts,
            title: row.try_get("title")?,
            url: row.try_get("url")?,
            updated_at: instant(row.try_get("updated_at")?),
            events,
        }))
    }

    async fn load_ledger(&self, issue: &IssueRef) -> Result<Vec<(PolicyName, Firing)>, StoreError> {
        let rows = sqlx::query(
            "SELECT policy, step, cycle, occurrence FROM ledger WHERE project = $1 AND iid = $2",
        )
        .bind(&issue.project.0)
        .bind(issue.iid.0 as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    PolicyName(row.try_get("policy")?),
                    Firing {
                        step: StepId(row.try_get("step")?),
                        cycle: row.try_get::<i64, _>("cycle")? as u32,
                        occurrence: row.try_get::<i64, _>("occurrence")? as u32,
                    },
                ))
            })
            .collect()
    }

    async fn commit(&self, commit: &IssueCommit) -> Result<CommitOutcome, StoreError> {
        let reference = &commit.facts.reference;
        let project = reference.project.0.as_str();
        let iid = reference.iid.0 as i64;
        let now = millis(commit.now);
        let facts = serde_json::to_string(&commit.facts).map_err(corrupt("issue facts"))?;

        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO issues (project, iid, facts, title, url, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (project, iid) DO UPDATE SET
                facts = excluded.facts, title = excluded.title, url = excluded.url, updated_at = excluded.updated_at
             WHERE excluded.updated_at >= issues.updated_at",
        )
        .bind(project)
        .bind(iid)
        .bind(&facts)
        .bind(&commit.title)
        .bind(&commit.url)
        .bind(millis(commit.updated_at))
        .execute(&mut *tx)
        .await?;
        for event in &commit.new_events {
            let (kind, label) = event_columns(&event.event);
            sqlx::query(
                "INSERT INTO issue_events (project, iid, at, kind, label) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )
            .bind(project)
            .bind(iid)
            .bind(millis(event.at))
            .bind(kind)
            .bind(label)
            .execute(&mut *tx)
            .await?;
        }
        for clock in &commit.clocks {
            if clock.status == "not_matching" {
                // Only clocks that ever ran are tracked.
                sqlx::query("DELETE FROM clocks WHERE project = $1 AND iid = $2 AND policy = $3")
                    .bind(project)
                    .bind(iid)
                    .bind(&clock.policy.0)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            sqlx::query(
                "INSERT INTO clocks (project, iid, policy, status, next_wake, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project, iid, policy) DO UPDATE SET
                    status = excluded.status, next_wake = excluded.next_wake, updated_at = excluded.updated_at",
            )
            .bind(project)
            .bind(iid)
            .bind(&clock.policy.0)
            .bind(clock.status)
            .bind(clock.next_wake.map(millis))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut outcome = CommitOutcome::default();
        for (position, fired) in commit.fired.iter().enumerate() {
            let firing = &fired.notice.firing;
            let inserted = sqlx::query(
                "INSERT INTO ledger (project, iid, policy, step, cycle, occurrence, fired_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(project)
            .bind(iid)
            .bind(&fired.policy.0)
            .bind(&firing.step.0)
            .bind(i64::from(firing.cycle))
            .bind(i64::from(firing.occurrence))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                // Another evaluation already fired this step: its notice is in the outbox.
                continue;
            }
            outcome.newly_fired += 1;
            let notice = serde_json::to_string(&fired.notice).map_err(corrupt("notice"))?;
            sqlx::query(
                "INSERT INTO outbox (project, iid, policy, step, cycle, occurrence, created_at, position, notice, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            )
            .bind(project)
            .bind(iid)
            .bind(&fired.policy.0)
            .bind(&firing.step.0)
            .bind(i64::from(firing.cycle))
            .bind(i64::from(firing.occurrence))
            .bind(now)
            .bind(position as i64)
            .bind(&notice)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(key) = &commit.delivery_key {
            sqlx::query("UPDATE deliveries SET processed_at = $1 WHERE key = $2")
                .bind(now)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn due_issues(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<IssueRef>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, iid, MIN(next_wake) AS wake FROM clocks
             WHERE next_wake IS NOT NULL AND next_wake <= $1
             GROUP BY project, iid ORDER BY wake LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(IssueRef {
                    project: ProjectPath(row.try_get("project")?),
                    iid: IssueIid(row.try_get::<i64, _>("iid")? as u64),
                })
            })
            .collect()
    }

    async fn earliest_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_wake) FROM clocks WHERE next_wake IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(instant))
    }

    async fn pending_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            // An unsent earlier notice of the same issue and policy holds the
            // later ones back: a thread is told in order.
            "SELECT project, iid, policy, step, cycle, occurrence, notice, attempts, created_at FROM outbox o
             WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1
               AND NOT EXISTS (
                 SELECT 1 FROM outbox e
                 WHERE e.project = o.project AND e.iid = o.iid AND e.policy = o.policy
                   AND e.sent_at IS NULL AND e.next_attempt_at IS NOT NULL
                   AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.position < o.position)))
             ORDER BY created_at, position LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxEntry {
                    key: outbox_key(row)?,
                    notice: serde_json::from_str(&row.try_get::<String, _>("notice")?)
                        .map_err(corrupt("outbox notice"))?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    created_at: instant(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(instant))
    }

    async fn outbox_sent(&self, key: &OutboxKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET sent_at = $1, attempts = attempts + 1, next_attempt_at = NULL
             WHERE project = $2 AND iid = $3 AND policy = $4 AND step = $5 AND cycle = $6 AND occurrence = $7",
        )
        .bind(millis(at))
        .bind(&key.issue.project.0)
        .bind(key.issue.iid.0 as i64)
        .bind(&key.policy.0)
        .bind(&key.firing.step.0)
        .bind(i64::from(key.firing.cycle))
        .bind(i64::from(key.firing.occurrence))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_failed(
        &self,
        key: &OutboxKey,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2
             WHERE project = $3 AND iid = $4 AND policy = $5 AND step = $6 AND cycle = $7 AND occurrence = $8",
        )
        .bind(error)
        .bind(retry_at.map(millis))
        .bind(&key.issue.project.0)
        .bind(key.issue.iid.0 as i64)
        .bind(&key.policy.0)
        .bind(&key.firing.step.0)
        .bind(i64::from(key.firing.cycle))
        .bind(i64::from(key.firing.occurrence))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        let clocks =
            sqlx::query("SELECT policy, status, COUNT(*) AS n FROM clocks GROUP BY policy, status")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get("policy")?,
                        row.try_get("status")?,
                        row.try_get("n")?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let outbox = sqlx::query(
            "SELECT
                COALESCE(SUM(CASE WHEN sent_at IS NULL AND next_attempt_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS pending,
                COALESCE(SUM(CASE WHEN sent_at IS NULL AND next_attempt_at IS NULL THEN 1 ELSE 0 END), 0) AS failed
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        let deliveries = sqlx::query("SELECT COUNT(*) FROM deliveries WHERE processed_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        let due = sqlx::query(
            "SELECT MIN(next_wake) FROM clocks WHERE next_wake IS NOT NULL AND next_wake <= $1",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreStats {
            clocks,
            outbox_pending: outbox.try_get("pending")?,
            outbox_failed: outbox.try_get("failed")?,
            deliveries_pending: deliveries.try_get(0)?,
            oldest_due_wake: due.try_get::<Option<i64>, _>(0)?.map(instant),
        })
    }
}
