//! [`Store`] on a SQL database through sqlx's `Any` driver: SQLite (a
//! file, WAL mode, nothing to install) or PostgreSQL (shared by several
//! replicas), with one set of SQL both speak (`$n` parameters,
//! `ON CONFLICT`, integer timestamps, `CASE` instead of two-argument
//! `MAX`); the few differences are marked where they are.
//!
//! This file opens the database, migrates it and implements [`Store`] by
//! handing each method to the room for what it stores: deliveries as they
//! arrive (`intake`), issues, clocks and what an evaluation commits
//! (`issues`), the outbox and its threads (`outbox`), Slack events and
//! acknowledgements (`slack`), projects and issues followed to new paths
//! (`identity`), confidentiality changes (`confidential`), the
//! enforcer's heartbeat and downtimes (`downtime`), and storm windows
//! with their digests (`digests`). Leases are here.

mod confidential;
mod digests;
mod downtime;
mod identity;
mod intake;
mod issues;
mod outbox;
mod slack;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Acquire, Any, AnyPool, Executor, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::migrations::{
    INTAKE_MIGRATIONS, INTAKE_TABLE, MAIN_TABLE, MIGRATIONS, Migration, POSTGRES_INTAKE_MIGRATIONS,
};
use super::{
    Acknowledged, AlertThread, CommitOutcome, Delivery, Downtime, FollowedProject, Handled,
    IssueCommit, IssueLink, IssueRecord, Loaded, OpenDigest, OutboxEntry, OutboxKey, OutboxOutcome,
    Recorded, SlackEventOutcome, Store, StoreError, StoreStats, StoredSlackEvent, Withdrawal,
};
use crate::engine::Firing;
use crate::issue::{Event, GitLabIds, IssueFacts, IssueIid, IssueRef, ProjectPath, TimedEvent};
use crate::notify::Notice;
use crate::policy::{PolicyName, StepId};

/// Two SQLite files: the main database, and intake (webhook deliveries as
/// they arrive), so that acknowledging a webhook never waits behind the
/// enforcer's writes. In each, reads share a small pool and every write
/// goes through one connection, so writers queue here in order instead of
/// meeting SQLite's busy handler, which sleeps up to 100 ms between tries.
/// Deliveries are written by a task of their own that commits everything
/// waiting in one transaction (group commit): under load, one commit
/// acknowledges hundreds of requests.
#[derive(Debug, Clone)]
pub struct SqlStore {
    readers: AnyPool,
    writer: AnyPool,
    intake_readers: AnyPool,
    deliveries: mpsc::Sender<intake::PendingDelivery>,
    backend: Backend,
    /// Who this process is in claims and leases: unique per start.
    owner: String,
}

/// A name for this process in claims and leases: host, process id and
/// start time, unique across replicas and restarts.
fn owner_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    )
}

/// Which database a store talks to, where their SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
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
    /// Opens the database and brings its schema up to date:
    /// `sqlite://FILE` (created if needed; deliveries live beside it in a
    /// file of their own, `labelwarden.db` with `labelwarden.intake.db`) or
    /// `postgres://…` (one database shared by every replica).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::connect_postgres(url).await;
        }
        let path = url
            .strip_prefix("sqlite:")
            .map(|rest| rest.trim_start_matches("//"))
            .filter(|path| !path.is_empty() && !path.starts_with(':') && !path.contains('?'))
            .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        let main = format!("sqlite://{path}?mode=rwc");
        let intake = format!("sqlite://{}?mode=rwc", intake_file(path));

        let writer = open_sqlite(&main, 1).await?;
        migrate(&writer, Backend::Sqlite, MAIN_TABLE, MIGRATIONS).await?;
        let readers = open_sqlite(&main, 3).await?;
        let intake_writer = open_sqlite(&intake, 1).await?;
        migrate(
            &intake_writer,
            Backend::Sqlite,
            MAIN_TABLE,
            INTAKE_MIGRATIONS,
        )
        .await?;
        let intake_readers = open_sqlite(&intake, 2).await?;

        let (deliveries, queue) = mpsc::channel(4 * intake::DELIVERY_BATCH);
        tokio::spawn(intake::write_deliveries(
            intake_writer,
            Backend::Sqlite,
            queue,
        ));
        Ok(SqlStore {
            readers,
            writer,
            intake_readers,
            deliveries,
            backend: Backend::Sqlite,
            owner: owner_id(),
        })
    }

    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        migrate(&pool, Backend::Postgres, MAIN_TABLE, MIGRATIONS).await?;
        migrate(
            &pool,
            Backend::Postgres,
            INTAKE_TABLE,
            POSTGRES_INTAKE_MIGRATIONS,
        )
        .await?;
        let (deliveries, queue) = mpsc::channel(4 * intake::DELIVERY_BATCH);
        tokio::spawn(intake::write_deliveries(
            pool.clone(),
            Backend::Postgres,
            queue,
        ));
        Ok(SqlStore {
            readers: pool.clone(),
            writer: pool.clone(),
            intake_readers: pool,
            deliveries,
            backend: Backend::Postgres,
            owner: owner_id(),
        })
    }
}

/// `labelwarden.db` -> `labelwarden.intake.db`; any other name gets `.intake`.
fn intake_file(path: &str) -> String {
    match path.strip_suffix(".db") {
        Some(stem) => format!("{stem}.intake.db"),
        None => format!("{path}.intake"),
    }
}

async fn open_sqlite(url: &str, connections: u32) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(|connection, _| {
            Box::pin(async move {
                // WAL: readers never block the writer. NORMAL: a commit
                // survives a crash of the process; only power loss can
                // lose the last commits (documented in BENCHMARKS.md).
                connection.execute("PRAGMA journal_mode = WAL").await?;
                connection.execute("PRAGMA synchronous = NORMAL").await?;
                connection.execute("PRAGMA busy_timeout = 5000").await?;
                // A 32 MiB page cache per connection (SQLite's default is
                // 2 MiB): the store grows by about 4 KB per delivery under
                // load, and a pass reads pages all over it.
                connection.execute("PRAGMA cache_size = -32768").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Applies the migrations `pool` has not seen yet, each in a transaction,
/// recorded in `table`. On PostgreSQL an advisory lock keeps two replicas
/// starting at once from migrating together.
async fn migrate(
    pool: &AnyPool,
    backend: Backend,
    table: &'static str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    if backend == Backend::Postgres {
        connection
            .execute("SELECT pg_advisory_lock(7262733816)")
            .await?;
    }
    let outcome = apply_migrations(&mut connection, table, migrations).await;
    if backend == Backend::Postgres {
        connection
            .execute("SELECT pg_advisory_unlock(7262733816)")
            .await?;
    }
    outcome
}

async fn apply_migrations(
    connection: &mut sqlx::pool::PoolConnection<Any>,
    table: &'static str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    // The table name is one of two constants, never input.
    connection
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )"
        )))
        .await?;
    let applied: Vec<i64> =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut **connection)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let mut tx = connection.begin().await?;
        for statement in migration.statements {
            tx.execute(*statement).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, $3)"
        )))
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

/// An issue from a row's `project` and `iid` columns.
fn issue_from(row: &AnyRow) -> Result<IssueRef, sqlx::Error> {
    Ok(IssueRef {
        project: ProjectPath(row.try_get("project")?),
        iid: IssueIid(row.try_get::<i64, _>("iid")? as u64),
    })
}

/// A firing from a row's `step`, `cycle` and `occurrence` columns.
fn firing_from(row: &AnyRow) -> Result<Firing, sqlx::Error> {
    Ok(Firing {
        step: StepId(row.try_get("step")?),
        cycle: row.try_get::<i64, _>("cycle")? as u32,
        occurrence: row.try_get::<i64, _>("occurrence")? as u32,
    })
}

fn outbox_key(row: &AnyRow) -> Result<OutboxKey, StoreError> {
    Ok(OutboxKey {
        issue: issue_from(row)?,
        policy: PolicyName(row.try_get("policy")?),
        firing: firing_from(row)?,
    })
}

impl Store for SqlStore {
    fn shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        intake::record_delivery(self, delivery).await
    }

    async fn pending_deliveries(&self, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        intake::pending_deliveries(self, limit).await
    }

    async fn load_issues(&self, issues: &[IssueRef]) -> Result<Vec<Loaded>, StoreError> {
        issues::load_issues(self, issues).await
    }

    async fn commit(
        &self,
        commits: &[IssueCommit],
        handled: &[Handled],
    ) -> Result<CommitOutcome, StoreError> {
        issues::commit(self, commits, handled).await
    }

    async fn open_digests(&self, now: DateTime<Utc>) -> Result<Vec<OpenDigest>, StoreError> {
        digests::open_digests(self, now).await
    }

    async fn digest(
        &self,
        key: &crate::notify::digest::DigestKey,
    ) -> Result<Option<crate::notify::digest::Digest>, StoreError> {
        digests::digest(self, key).await
    }

    async fn record_digest(
        &self,
        key: &crate::notify::digest::DigestKey,
        progress: &crate::notify::digest::DigestProgress,
        posted: &[(IssueRef, Firing)],
    ) -> Result<(), StoreError> {
        digests::record_digest(self, key, progress, posted).await
    }

    async fn plan_digest_message(
        &self,
        key: &crate::notify::digest::DigestKey,
        message: &str,
        notices: &[(IssueRef, Firing)],
    ) -> Result<(), StoreError> {
        digests::plan_digest_message(self, key, message, notices).await
    }

    async fn due_issues(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<IssueRef>, StoreError> {
        issues::due_issues(self, now, limit).await
    }

    async fn follow_project(
        &self,
        project_id: u64,
        path: &ProjectPath,
        seen_at: DateTime<Utc>,
    ) -> Result<FollowedProject, StoreError> {
        identity::follow_project(self, project_id, path, seen_at).await
    }

    async fn issue_links(&self, issue_ids: &[u64]) -> Result<Vec<IssueLink>, StoreError> {
        identity::issue_links(self, issue_ids).await
    }

    async fn move_issue(&self, from: &IssueRef, to: &IssueRef) -> Result<(), StoreError> {
        identity::move_issue(self, from, to).await
    }

    async fn sent_notices(
        &self,
        issue: &IssueRef,
        policy: &PolicyName,
        cycle: u32,
        channel: &str,
    ) -> Result<Vec<Notice>, StoreError> {
        confidential::sent_notices(self, issue, policy, cycle, channel).await
    }

    async fn beat(
        &self,
        name: &str,
        now: DateTime<Utc>,
        starting: bool,
    ) -> Result<Option<Downtime>, StoreError> {
        downtime::beat(self, name, now, starting).await
    }

    async fn downtimes(&self, since: DateTime<Utc>) -> Result<Vec<Downtime>, StoreError> {
        downtime::downtimes(self, since).await
    }

    async fn project_at(&self, project_id: u64) -> Result<Option<ProjectPath>, StoreError> {
        let row = sqlx::query("SELECT path FROM projects WHERE project_id = $1")
            .bind(project_id as i64)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row
            .map(|row| row.try_get::<String, _>("path"))
            .transpose()?
            .map(ProjectPath))
    }

    async fn known_projects(&self) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        issues::known_projects(self).await
    }

    async fn live_issues(&self, project: &str) -> Result<Vec<IssueRef>, StoreError> {
        issues::live_issues(self, project).await
    }

    async fn earliest_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        issues::earliest_wake(self).await
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        outbox::claim_outbox(self, now, limit, lease).await
    }

    async fn hold_lease(
        &self,
        name: &str,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "INSERT INTO leases (name, owner, until_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_at = excluded.until_at
             WHERE leases.owner = excluded.owner OR leases.until_at <= $4
             RETURNING owner",
        )
        .bind(name)
        .bind(self.owner.as_str())
        .bind(millis(now + lease))
        .bind(millis(now))
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.is_some())
    }

    async fn record_slack_event(
        &self,
        event_id: &str,
        event: &str,
        at: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        slack::record_slack_event(self, event_id, event, at).await
    }

    async fn claim_slack_events(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<StoredSlackEvent>, StoreError> {
        slack::claim_slack_events(self, now, limit, lease).await
    }

    async fn finish_slack_event(
        &self,
        event_id: &str,
        outcome: &SlackEventOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        slack::finish_slack_event(self, event_id, outcome, now).await
    }

    async fn next_slack_event(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        slack::next_slack_event(self).await
    }

    async fn acknowledge(
        &self,
        alert: &AlertThread,
        user: &str,
        at: DateTime<Utc>,
    ) -> Result<Acknowledged, StoreError> {
        slack::acknowledge(self, alert, user, at).await
    }

    async fn withdraw_acknowledgement(
        &self,
        alert: &AlertThread,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError> {
        slack::withdraw_acknowledgement(self, alert, user, now).await
    }

    async fn alert_thread(
        &self,
        channel_id: &str,
        ts: &str,
    ) -> Result<Option<AlertThread>, StoreError> {
        slack::alert_thread(self, channel_id, ts).await
    }

    async fn acknowledgement(
        &self,
        issue: &IssueRef,
        policy: &PolicyName,
        cycle: u32,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        slack::acknowledgement(self, issue, policy, cycle).await
    }

    async fn release_lease(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(self.owner.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        outbox::next_outbox_attempt(self).await
    }

    async fn record_outbox(&self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        outbox::record_outbox(self, outcomes).await
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        issues::stats(self, now).await
    }
}

/// `($1, $2), ($3, $4)`: bind parameters for `rows` rows of `columns`
/// values, in order. SQLite gets anonymous `?` parameters: sqlx looks each
/// named one up by number in a list SQLite scans from the start, which
/// makes binding a statement of many `$n` quadratic.
fn parameters(backend: Backend, rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            match backend {
                Backend::Sqlite => text.push('?'),
                Backend::Postgres => text.push_str(&format!("${}", row * columns + column + 1)),
            }
        }
        text.push(')');
    }
    text
}

/// The columns that name an issue, in every table keyed by issue.
const ISSUE_KEY: &[&str] = &["project", "iid"];

/// `(…) AS v JOIN {table} t ON t.{key1} = v.column1 AND …`: the rows of
/// `table` whose `keys` are among the rows of `values` (from
/// [`parameters`]), each found through the table's index. A row-value
/// `IN (VALUES …)` is not: SQLite matches it on the first column only
/// and reads every row of the project.
fn join_values(table: &str, keys: &[&str], values: &str) -> String {
    let columns: Vec<String> = (1..=keys.len()).map(|i| format!("column{i}")).collect();
    let on: Vec<String> = keys
        .iter()
        .zip(&columns)
        .map(|(key, column)| format!("t.{key} = v.{column}"))
        .collect();
    format!(
        "(SELECT DISTINCT {} FROM (VALUES {values}) AS l) AS v JOIN {table} t ON {}",
        columns.join(", "),
        on.join(" AND ")
    )
}

/// A statement whose only dynamic part is its list of `$n` parameters
/// (from [`parameters`]): no value is ever formatted into SQL.
fn multi_row<'q>(sql: String) -> SqlQuery<'q> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
}

/// A query with a statement type spelled once.
type SqlQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Binds a firing's key in the column order every table uses:
/// project, iid, policy, step, cycle, occurrence.
fn bind_firing<'q>(
    query: SqlQuery<'q>,
    project: &'q str,
    iid: i64,
    policy: &'q str,
    firing: &'q Firing,
) -> SqlQuery<'q> {
    query
        .bind(project)
        .bind(iid)
        .bind(policy)
        .bind(firing.step.0.as_str())
        .bind(i64::from(firing.cycle))
        .bind(i64::from(firing.occurrence))
}

/// Binds each issue's key (project, iid), in order.
fn bind_issues<'q>(mut query: SqlQuery<'q>, issues: &[IssueRef]) -> SqlQuery<'q> {
    for issue in issues {
        query = query.bind(issue.project.0.clone()).bind(issue.iid.0 as i64);
    }
    query
}

/// An issue's primary key columns.
fn issue_key(commit: &IssueCommit) -> (&str, i64) {
    let reference = &commit.facts.reference;
    (reference.project.0.as_str(), reference.iid.0 as i64)
}

/// Rows per statement: far below SQLite's and PostgreSQL's limits on bound
/// values even for the widest table.
const ROWS_PER_STATEMENT: usize = 200;

/// A thread's key: project, iid, policy, cycle, channel.
type ThreadKey = (String, i64, String, i64, String);

/// A firing's identity in the ledger and the outbox.
type FiringKey = (String, i64, String, String, i64, i64);
