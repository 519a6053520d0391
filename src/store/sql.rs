//! [`Store`] on a SQL database through sqlx's `Any` driver: SQLite (a
//! file, WAL mode, nothing to install) or PostgreSQL (shared by several
//! replicas), with one set of SQL both speak (`$n` parameters,
//! `ON CONFLICT`, integer timestamps, `CASE` instead of two-argument
//! `MAX`); the few differences are marked where they are.

mod confidential;
mod downtime;
mod identity;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Acquire, Any, AnyPool, Executor, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::migrations::{
    INTAKE_MIGRATIONS, INTAKE_TABLE, MAIN_TABLE, MIGRATIONS, Migration, POSTGRES_INTAKE_MIGRATIONS,
};
use super::{
    Acknowledged, AlertThread, CommitOutcome, Delivery, Downtime, FollowedProject, Handled,
    IssueCommit, IssueLink, IssueRecord, Loaded, OutboxEntry, OutboxKey, OutboxOutcome, Recorded,
    SendResult, SlackEventOutcome, Store, StoreError, StoreStats, StoredSlackEvent, Withdrawal,
};
use crate::engine::Firing;
use crate::issue::{Event, GitLabIds, IssueFacts, IssueIid, IssueRef, ProjectPath, TimedEvent};
use crate::notify::{Notice, Thread};
use crate::policy::{PolicyName, StepId};

/// An outbox row that is due to be tried: unsent, not given up on, and
/// with no unsent, not-given-up notice before it in its thread (issue and
/// policy). Only these are handed out, and only their times wake the worker.
const HEAD_OF_THREAD: &str = "o.sent_at IS NULL AND o.next_attempt_at IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM outbox e
        WHERE e.project = o.project AND e.iid = o.iid AND e.policy = o.policy
          AND e.sent_at IS NULL AND e.next_attempt_at IS NOT NULL
          AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.position < o.position)))";

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
    deliveries: mpsc::Sender<PendingDelivery>,
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

/// A delivery waiting to be written, and who waits for the outcome.
type PendingDelivery = (Delivery, oneshot::Sender<Result<Recorded, String>>);

/// The most deliveries one group commit writes.
const DELIVERY_BATCH: usize = 512;

/// Writes queued deliveries, a batch per transaction, until the store is dropped.
async fn write_deliveries(
    writer: AnyPool,
    backend: Backend,
    mut queue: mpsc::Receiver<PendingDelivery>,
) {
    let mut batch = Vec::with_capacity(DELIVERY_BATCH);
    while queue.recv_many(&mut batch, DELIVERY_BATCH).await > 0 {
        match insert_deliveries(&writer, backend, &batch).await {
            Ok(recorded) => {
                for ((_, reply), outcome) in batch.drain(..).zip(recorded) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Inserts a batch with one statement per [`ROWS_PER_STATEMENT`] rows; the
/// keys the database returns are the new ones, the rest were seen before
/// (earlier, or twice in this batch).
async fn insert_deliveries(
    writer: &AnyPool,
    backend: Backend,
    batch: &[PendingDelivery],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut tx = writer.begin().await?;
    if backend == Backend::Postgres {
        // Several replicas insert at once: without this, a lower `seq` could
        // commit after a higher one and be passed over by the intake cursor.
        // SQLite has one writer already.
        tx.execute("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    let mut inserted = std::collections::HashSet::with_capacity(batch.len());
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO deliveries (key, kind, received_at, payload) VALUES {}
             ON CONFLICT (key) DO NOTHING RETURNING key",
            parameters(chunk.len(), 4)
        );
        let mut query = multi_row(sql);
        for (delivery, _) in chunk {
            query = query
                .bind(delivery.key.as_str())
                .bind(delivery.kind.as_str())
                .bind(millis(delivery.received_at))
                .bind(delivery.payload.as_str());
        }
        for row in query.fetch_all(&mut *tx).await? {
            inserted.insert(row.try_get::<String, _>(0)?);
        }
    }
    tx.commit().await?;
    // A key sent twice in one batch is new only the first time.
    Ok(batch
        .iter()
        .map(|(delivery, _)| {
            if inserted.remove(&delivery.key) {
                Recorded::New
            } else {
                Recorded::Duplicate
            }
        })
        .collect())
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

        let (deliveries, queue) = mpsc::channel(4 * DELIVERY_BATCH);
        tokio::spawn(write_deliveries(intake_writer, Backend::Sqlite, queue));
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
        let (deliveries, queue) = mpsc::channel(4 * DELIVERY_BATCH);
        tokio::spawn(write_deliveries(pool.clone(), Backend::Postgres, queue));
        Ok(SqlStore {
            readers: pool.clone(),
            writer: pool.clone(),
            intake_readers: pool,
            deliveries,
            backend: Backend::Postgres,
            owner: owner_id(),
        })
    }

    /// The threads of claimed entries' cycles in their channels, by
    /// (project, iid, policy, cycle, channel).
    async fn threads_of(
        &self,
        claimed: &[(OutboxEntry, i64, Option<String>)],
    ) -> Result<std::collections::HashMap<ThreadKey, Thread>, StoreError> {
        let with_channel: Vec<(&OutboxKey, &String)> = claimed
            .iter()
            .filter_map(|(entry, _, channel)| channel.as_ref().map(|c| (&entry.key, c)))
            .collect();
        let mut threads = std::collections::HashMap::new();
        for chunk in with_channel.chunks(ROWS_PER_STATEMENT) {
            let mut query = multi_row(format!(
                "SELECT project, iid, policy, cycle, channel, channel_id, ts FROM threads
                 WHERE (project, iid, policy, cycle, channel) IN (VALUES {})",
                parameters(chunk.len(), 5)
            ));
            for (key, channel) in chunk {
                query = query
                    .bind(key.issue.project.0.as_str())
                    .bind(key.issue.iid.0 as i64)
                    .bind(key.policy.0.as_str())
                    .bind(i64::from(key.firing.cycle))
                    .bind(channel.as_str());
            }
            for row in query.fetch_all(&self.readers).await? {
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

    /// How far intake has been processed: the last handled delivery's `seq`.
    async fn intake_cursor(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM intake_cursor")
            .fetch_one(&self.readers)
            .await?;
        Ok(row.try_get(0)?)
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
        let stopped = || StoreError::Unavailable("the delivery writer has stopped".into());
        let (reply, outcome) = oneshot::channel();
        self.deliveries
            .send((delivery.clone(), reply))
            .await
            .map_err(|_| stopped())?;
        outcome
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::Unavailable)
    }

    async fn pending_deliveries(&self, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let cursor = self.intake_cursor().await?;
        let rows = sqlx::query(
            "SELECT seq, key, kind, received_at, payload FROM deliveries WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(cursor)
        .bind(i64::from(limit))
        .fetch_all(&self.intake_readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    seq: row.try_get("seq")?,
                    key: row.try_get("key")?,
                    kind: row.try_get("kind")?,
                    received_at: instant(row.try_get("received_at")?),
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    async fn load_issues(&self, issues: &[IssueRef]) -> Result<Vec<Loaded>, StoreError> {
        let mut loaded = vec![Loaded::default(); issues.len()];
        let mut position = std::collections::HashMap::with_capacity(issues.len());
        for (index, issue) in issues.iter().enumerate() {
            position.insert((issue.project.0.clone(), issue.iid.0 as i64), index);
        }
        let slot = |row: &AnyRow| -> Result<usize, StoreError> {
            let key: (String, i64) = (row.try_get("project")?, row.try_get("iid")?);
            position.get(&key).copied().ok_or(StoreError::Corrupt {
                what: "issue lookup",
                message: format!("unexpected row for {}#{}", key.0, key.1),
            })
        };
        for chunk in issues.chunks(ROWS_PER_STATEMENT) {
            let among = parameters(chunk.len(), 2);
            let bind_all = |query| bind_issues(query, chunk);
            let rows = bind_all(multi_row(format!(
                "SELECT project, iid, facts, title, url, updated_at, issue_id, moved_to_id, duplicated_to_id,
                        duplicate_of_project, duplicate_of_iid
                 FROM issues WHERE (project, iid) IN (VALUES {among})"
            )))
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                let facts: IssueFacts = serde_json::from_str(&row.try_get::<String, _>("facts")?)
                    .map_err(corrupt("issue facts"))?;
                let id = |column: &str| -> Result<Option<u64>, sqlx::Error> {
                    Ok(row.try_get::<Option<i64>, _>(column)?.map(|id| id as u64))
                };
                loaded[slot(row)?].record = Some(IssueRecord {
                    facts,
                    title: row.try_get("title")?,
                    url: row.try_get("url")?,
                    updated_at: instant(row.try_get("updated_at")?),
                    events: Vec::new(),
                    ids: GitLabIds {
                        project_id: None,
                        issue_id: id("issue_id")?,
                        moved_to_id: id("moved_to_id")?,
                        duplicated_to_id: id("duplicated_to_id")?,
                        duplicate_of: id("duplicate_of_project")?.zip(id("duplicate_of_iid")?),
                    },
                });
            }
            let rows = bind_all(multi_row(format!(
                "SELECT project, iid, policy, started_at FROM carried_starts WHERE (project, iid) IN (VALUES {among})"
            )))
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                loaded[slot(row)?].carried.push((
                    PolicyName(row.try_get("policy")?),
                    instant(row.try_get("started_at")?),
                ));
            }
            let rows = bind_all(multi_row(format!(
                "SELECT project, iid, at, kind, label FROM issue_events WHERE (project, iid) IN (VALUES {among})"
            )))
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                let event = TimedEvent {
                    at: instant(row.try_get("at")?),
                    event: event_from_columns(
                        &row.try_get::<String, _>("kind")?,
                        row.try_get("label")?,
                    )?,
                };
                if let Some(record) = &mut loaded[slot(row)?].record {
                    record.events.push(event);
                }
            }
            let rows = bind_all(multi_row(format!(
                "SELECT project, iid, policy, step, cycle, occurrence FROM ledger WHERE (project, iid) IN (VALUES {among})"
            )))
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                let firing = firing_from(row)?;
                loaded[slot(row)?]
                    .ledger
                    .push((PolicyName(row.try_get("policy")?), firing));
            }
            let rows = bind_all(multi_row(format!(
                "SELECT DISTINCT project, iid, policy, cycle FROM acknowledgements WHERE (project, iid) IN (VALUES {among})"
            )))
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                let cycle = row.try_get::<i64, _>("cycle")? as u32;
                loaded[slot(row)?]
                    .acknowledged
                    .push((PolicyName(row.try_get("policy")?), cycle));
            }
            let rows = bind_all(multi_row(format!(
                "SELECT project, iid, policy, status FROM clocks WHERE (project, iid) IN (VALUES {among})"
            )))
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                loaded[slot(row)?]
                    .statuses
                    .push((PolicyName(row.try_get("policy")?), row.try_get("status")?));
            }
        }
        Ok(loaded)
    }

    async fn commit(
        &self,
        commits: &[IssueCommit],
        handled: &[Handled],
    ) -> Result<CommitOutcome, StoreError> {
        let mut tx = self.writer.begin().await?;
        let newly_fired = write_commits(&mut tx, commits).await?;
        for commit in commits.iter().filter(|c| c.became_confidential) {
            confidential::redact_waiting(&mut tx, &commit.facts.reference).await?;
        }
        for carried in commits.iter().flat_map(|c| &c.carried) {
            identity::carry_start(&mut tx, carried, Utc::now()).await?;
        }
        for delivery in handled {
            if let Some(error) = &delivery.rejected {
                sqlx::query(
                    "INSERT INTO rejected_deliveries (key, seq, error, rejected_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&delivery.key)
                .bind(delivery.seq)
                .bind(error)
                .bind(millis(Utc::now()))
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(last) = handled.iter().map(|d| d.seq).max() {
            sqlx::query(
                "INSERT INTO intake_cursor (id, seq) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET seq =
                    CASE WHEN excluded.seq > intake_cursor.seq THEN excluded.seq ELSE intake_cursor.seq END",
            )
            .bind(last)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CommitOutcome { newly_fired })
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
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(|row| Ok(issue_from(row)?)).collect()
    }

    async fn follow_project(
        &self,
        project_id: u64,
        path: &ProjectPath,
        seen_at: DateTime<Utc>,
    ) -> Result<FollowedProject, StoreError> {
        self.follow_project_path(project_id, path, seen_at).await
    }

    async fn issue_links(&self, issue_ids: &[u64]) -> Result<Vec<IssueLink>, StoreError> {
        self.issue_links(issue_ids).await
    }

    async fn move_issue(&self, from: &IssueRef, to: &IssueRef) -> Result<(), StoreError> {
        self.move_issue_rows(from, to).await
    }

    async fn sent_notices(
        &self,
        issue: &IssueRef,
        policy: &PolicyName,
        cycle: u32,
        channel: &str,
    ) -> Result<Vec<Notice>, StoreError> {
        self.notices_sent_to(issue, policy, cycle, channel).await
    }

    async fn beat(
        &self,
        name: &str,
        now: DateTime<Utc>,
        starting: bool,
    ) -> Result<Option<Downtime>, StoreError> {
        self.beat_now(name, now, starting).await
    }

    async fn downtimes(&self, since: DateTime<Utc>) -> Result<Vec<Downtime>, StoreError> {
        self.downtimes_since(since).await
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
        let rows = sqlx::query(
            "SELECT DISTINCT i.project, p.project_id FROM issues i
             LEFT JOIN projects p ON p.path = i.project ORDER BY i.project",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let id: Option<i64> = row.try_get(1)?;
                Ok((row.try_get::<String, _>(0)?, id.map(|id| id as u64)))
            })
            .collect()
    }

    async fn live_issues(&self, project: &str) -> Result<Vec<IssueRef>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT project, iid FROM clocks
             WHERE project = $1 AND status IN ('running', 'paused', 'breached')
             ORDER BY iid",
        )
        .bind(project)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(|row| Ok(issue_from(row)?)).collect()
    }

    async fn earliest_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_wake) FROM clocks WHERE next_wake IS NOT NULL")
            .fetch_one(&self.readers)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(instant))
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        // PostgreSQL: rows another replica is claiming right now are
        // skipped, not waited for. SQLite has one writer already.
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET claimed_until = $1, claims = claims + 1
             WHERE (project, iid, policy, step, cycle, occurrence) IN (
                SELECT o.project, o.iid, o.policy, o.step, o.cycle, o.occurrence FROM outbox o
                WHERE o.next_attempt_at <= $2 AND (o.claimed_until IS NULL OR o.claimed_until <= $2)
                  AND {HEAD_OF_THREAD}
                ORDER BY o.created_at, o.position LIMIT $3 {lock})
             RETURNING project, iid, policy, step, cycle, occurrence, notice, attempts, created_at,
                position, channel, claims"
        )))
        .bind(millis(now + lease))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
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
            };
            let position: i64 = row.try_get("position")?;
            let channel: Option<String> = row.try_get("channel")?;
            claimed.push((entry, position, channel));
        }
        claimed.sort_by_key(|(entry, position, _)| (entry.created_at, *position));
        let threads = self.threads_of(&claimed).await?;
        Ok(claimed
            .into_iter()
            .map(|(mut entry, _, channel)| {
                if let Some(channel) = channel {
                    let key = &entry.key;
                    entry.thread = threads
                        .get(&(
                            key.issue.project.0.clone(),
                            key.issue.iid.0 as i64,
                            key.policy.0.clone(),
                            i64::from(key.firing.cycle),
                            channel,
                        ))
                        .cloned();
                }
                entry
            })
            .collect())
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
        let mut tx = self.writer.begin().await?;
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

    async fn claim_slack_events(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<StoredSlackEvent>, StoreError> {
        // The claim is checked again on the row itself, so two processes
        // racing for one event cannot both take it.
        let rows = sqlx::query(
            "UPDATE slack_events SET claimed_until = $2
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
        .fetch_all(&self.writer)
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
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|(received, _)| *received);
        Ok(claimed.into_iter().map(|(_, event)| event).collect())
    }

    async fn finish_slack_event(
        &self,
        event_id: &str,
        outcome: &SlackEventOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (handled_at, next_attempt_at, error) = match outcome {
            SlackEventOutcome::Done => (Some(millis(now)), None, None),
            SlackEventOutcome::Retry { error, retry_at } => {
                (None, Some(millis(*retry_at)), Some(error.as_str()))
            }
            SlackEventOutcome::Failed { error } => (Some(millis(now)), None, Some(error.as_str())),
        };
        sqlx::query(
            "UPDATE slack_events
             SET handled_at = $2, next_attempt_at = COALESCE($3, next_attempt_at), error = $4,
                 attempts = attempts + 1, claimed_until = NULL
             WHERE event_id = $1",
        )
        .bind(event_id)
        .bind(handled_at)
        .bind(next_attempt_at)
        .bind(error)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn next_slack_event(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN claimed_until > next_attempt_at THEN claimed_until
                             ELSE next_attempt_at END) AS due
             FROM slack_events WHERE handled_at IS NULL",
        )
        .fetch_one(&self.readers)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?.map(instant))
    }

    async fn acknowledge(
        &self,
        channel_id: &str,
        ts: &str,
        user: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Acknowledged>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let Some(thread) = sqlx::query(THREAD_BY_PARENT)
            .bind(channel_id)
            .bind(ts)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let alert = alert_thread_from(&thread)?;
        let standing = bind_cycle(sqlx::query(FIRST_ACKNOWLEDGEMENT), &alert)
            .fetch_optional(&mut *tx)
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
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Acknowledged {
            recorded: inserted.is_some(),
            first: inserted.is_some() && standing.is_none(),
            issue: alert.issue,
            policy: alert.policy,
            cycle: alert.cycle,
        }))
    }

    async fn alert_thread(
        &self,
        channel_id: &str,
        ts: &str,
    ) -> Result<Option<AlertThread>, StoreError> {
        sqlx::query(THREAD_BY_PARENT)
            .bind(channel_id)
            .bind(ts)
            .fetch_optional(&self.readers)
            .await?
            .map(|row| alert_thread_from(&row))
            .transpose()
            .map_err(StoreError::from)
    }

    async fn withdraw_acknowledgement(
        &self,
        channel_id: &str,
        ts: &str,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError> {
        let mut tx = self.writer.begin().await?;
        let Some(thread) = sqlx::query(THREAD_BY_PARENT)
            .bind(channel_id)
            .bind(ts)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Withdrawal {
                removed: false,
                still_acknowledged: false,
            });
        };
        let alert = alert_thread_from(&thread)?;
        let done = bind_cycle(
            sqlx::query(
                "DELETE FROM acknowledgements
                 WHERE project = $1 AND iid = $2 AND policy = $3 AND cycle = $4 AND by_user = $5",
            ),
            &alert,
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        let removed = done.rows_affected() > 0;
        let still_acknowledged = bind_cycle(sqlx::query(FIRST_ACKNOWLEDGEMENT), &alert)
            .fetch_optional(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Withdrawal {
            removed,
            still_acknowledged,
        })
    }

    async fn acknowledgement(
        &self,
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
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| Ok((row.try_get("by_user")?, instant(row.try_get("at")?))))
            .transpose()
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
        // A row another process claimed is due again when its claim runs out.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(CASE WHEN o.claimed_until > o.next_attempt_at THEN o.claimed_until
                             ELSE o.next_attempt_at END)
             FROM outbox o WHERE {HEAD_OF_THREAD}"
        )))
        .fetch_one(&self.readers)
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(instant))
    }

    async fn record_outbox(&self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for chunk in outcomes.chunks(ROWS_PER_STATEMENT) {
            // VALUES columns are column1..column10 in SQLite and PostgreSQL alike.
            let sql = format!(
                "UPDATE outbox SET sent_at = v.column7, last_error = COALESCE(v.column8, outbox.last_error),
                    next_attempt_at = v.column9, attempts = outbox.attempts + v.column10,
                    claimed_until = NULL, claims = 0
                 FROM (VALUES {}) AS v
                 WHERE outbox.project = v.column1 AND outbox.iid = v.column2 AND outbox.policy = v.column3
                   AND outbox.step = v.column4 AND outbox.cycle = v.column5 AND outbox.occurrence = v.column6",
                parameters(chunk.len(), 10)
            );
            let mut query = multi_row(sql);
            for outcome in chunk {
                let (sent_at, error, retry_at, attempt) = match &outcome.result {
                    SendResult::Sent { at, .. } => (Some(millis(*at)), None, None, 1i64),
                    SendResult::Retry { error, retry_at } => {
                        (None, Some(error.as_str()), Some(millis(*retry_at)), 1)
                    }
                    SendResult::Deferred { retry_at } => (None, None, Some(millis(*retry_at)), 0),
                    SendResult::Failed { error } => (None, Some(error.as_str()), None, 1),
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
                .bind(attempt);
            }
            query.execute(&mut *tx).await?;
        }
        let threads: Vec<(&OutboxKey, &Thread, i64)> = outcomes
            .iter()
            .filter_map(|outcome| match &outcome.result {
                SendResult::Sent {
                    at,
                    thread: Some(thread),
                } => Some((&outcome.key, thread, millis(*at))),
                _ => None,
            })
            .collect();
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
                parameters(chunk.len(), 9)
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
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        let clocks =
            sqlx::query("SELECT policy, status, COUNT(*) AS n FROM clocks GROUP BY policy, status")
                .fetch_all(&self.readers)
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
                COUNT(CASE WHEN sent_at IS NULL AND next_attempt_at IS NOT NULL THEN 1 END) AS pending,
                COUNT(CASE WHEN sent_at IS NULL AND next_attempt_at IS NULL THEN 1 END) AS failed
             FROM outbox",
        )
        .fetch_one(&self.readers)
        .await?;
        let cursor = self.intake_cursor().await?;
        let deliveries = sqlx::query("SELECT COUNT(*) FROM deliveries WHERE seq > $1")
            .bind(cursor)
            .fetch_one(&self.intake_readers)
            .await?;
        let due = sqlx::query(
            "SELECT MIN(next_wake) FROM clocks WHERE next_wake IS NOT NULL AND next_wake <= $1",
        )
        .bind(millis(now))
        .fetch_one(&self.readers)
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

/// `($1, $2), ($3, $4)`: bind parameters for `rows` rows of `columns` values.
fn parameters(rows: usize, columns: usize) -> String {
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
            text.push_str(&format!("${}", row * columns + column + 1));
        }
        text.push(')');
    }
    text
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

/// Binds a clock cycle's key to `$1`..`$4`: project, iid, policy, cycle.
fn bind_cycle<'q>(query: SqlQuery<'q>, cycle: &'q AlertThread) -> SqlQuery<'q> {
    query
        .bind(cycle.issue.project.0.as_str())
        .bind(cycle.issue.iid.0 as i64)
        .bind(cycle.policy.0.as_str())
        .bind(i64::from(cycle.cycle))
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

/// Writes evaluations inside `tx` with a few multi-row statements (one
/// round trip each, whatever the number of issues); returns how many fired
/// steps were new. Each issue appears at most once in `commits`.
async fn write_commits(
    tx: &mut Transaction<'_, Any>,
    commits: &[IssueCommit],
) -> Result<usize, StoreError> {
    debug_assert!(
        {
            let mut issues: Vec<_> = commits.iter().map(|c| &c.facts.reference).collect();
            issues.sort();
            issues.windows(2).all(|w| w[0] != w[1])
        },
        "one commit per issue and pass"
    );
    let facts = commits
        .iter()
        .map(|c| serde_json::to_string(&c.facts))
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt("issue facts"))?;

    for chunk in commits
        .iter()
        .zip(&facts)
        .collect::<Vec<_>>()
        .chunks(ROWS_PER_STATEMENT)
    {
        let sql = format!(
            "INSERT INTO issues (project, iid, facts, title, url, updated_at, issue_id, moved_to_id,
                                 duplicated_to_id, duplicate_of_project, duplicate_of_iid) VALUES {}
             ON CONFLICT (project, iid) DO UPDATE SET
                facts = excluded.facts, title = excluded.title, url = excluded.url, updated_at = excluded.updated_at,
                issue_id = COALESCE(excluded.issue_id, issues.issue_id),
                moved_to_id = COALESCE(excluded.moved_to_id, issues.moved_to_id),
                duplicated_to_id = COALESCE(excluded.duplicated_to_id, issues.duplicated_to_id),
                duplicate_of_project = COALESCE(excluded.duplicate_of_project, issues.duplicate_of_project),
                duplicate_of_iid = COALESCE(excluded.duplicate_of_iid, issues.duplicate_of_iid)
             WHERE excluded.updated_at >= issues.updated_at",
            parameters(chunk.len(), 11)
        );
        let mut query = multi_row(sql);
        for (commit, facts) in chunk {
            let (project, iid) = issue_key(commit);
            let id = |id: Option<u64>| id.map(|id| id as i64);
            query = query
                .bind(project)
                .bind(iid)
                .bind(facts.as_str())
                .bind(commit.title.as_str())
                .bind(commit.url.as_str())
                .bind(millis(commit.updated_at))
                .bind(id(commit.ids.issue_id))
                .bind(id(commit.ids.moved_to_id))
                .bind(id(commit.ids.duplicated_to_id))
                .bind(id(commit.ids.duplicate_of.map(|(project, _)| project)))
                .bind(id(commit.ids.duplicate_of.map(|(_, iid)| iid)));
        }
        query.execute(&mut **tx).await?;
    }

    let events: Vec<_> = commits
        .iter()
        .flat_map(|c| c.new_events.iter().map(move |e| (issue_key(c), e)))
        .collect();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO issue_events (project, iid, at, kind, label) VALUES {} ON CONFLICT DO NOTHING",
            parameters(chunk.len(), 5)
        );
        let mut query = multi_row(sql);
        for ((project, iid), event) in chunk {
            let (kind, label) = event_columns(&event.event);
            query = query
                .bind(*project)
                .bind(*iid)
                .bind(millis(event.at))
                .bind(kind)
                .bind(label);
        }
        query.execute(&mut **tx).await?;
    }

    let (untracked, tracked): (Vec<_>, Vec<_>) = commits
        .iter()
        .flat_map(|c| {
            c.clocks
                .iter()
                .map(move |clock| (issue_key(c), c.now, clock))
        })
        .partition(|(_, _, clock)| clock.status == "not_matching" && clock.next_wake.is_none());
    for chunk in tracked.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO clocks (project, iid, policy, status, next_wake, updated_at) VALUES {}
             ON CONFLICT (project, iid, policy) DO UPDATE SET
                status = excluded.status, next_wake = excluded.next_wake, updated_at = excluded.updated_at",
            parameters(chunk.len(), 6)
        );
        let mut query = multi_row(sql);
        for ((project, iid), now, clock) in chunk {
            query = query
                .bind(*project)
                .bind(*iid)
                .bind(clock.policy.0.as_str())
                .bind(clock.status)
                .bind(clock.next_wake.map(millis))
                .bind(millis(*now));
        }
        query.execute(&mut **tx).await?;
    }
    // Only clocks that ever ran, or wait for an event still ahead, are
    // tracked: a policy that no longer matches (or never did) has no row.
    for chunk in untracked.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM clocks WHERE (project, iid, policy) IN (VALUES {})",
            parameters(chunk.len(), 3)
        );
        let mut query = multi_row(sql);
        for ((project, iid), _, clock) in chunk {
            query = query
                .bind(*project)
                .bind(*iid)
                .bind(clock.policy.0.as_str());
        }
        query.execute(&mut **tx).await?;
    }

    let fired: Vec<_> = commits
        .iter()
        .flat_map(|c| {
            c.fired
                .iter()
                .enumerate()
                .map(move |(position, f)| (issue_key(c), c.now, position, f))
        })
        .collect();
    let mut new_firings: std::collections::HashSet<FiringKey> = std::collections::HashSet::new();
    for chunk in fired.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO ledger (project, iid, policy, step, cycle, occurrence, fired_at) VALUES {}
             ON CONFLICT DO NOTHING RETURNING project, iid, policy, step, cycle, occurrence",
            parameters(chunk.len(), 7)
        );
        let mut query = multi_row(sql);
        for ((project, iid), now, _, fired) in chunk {
            query = bind_firing(query, project, *iid, &fired.policy.0, &fired.notice.firing)
                .bind(millis(*now));
        }
        for row in query.fetch_all(&mut **tx).await? {
            new_firings.insert((
                row.try_get("project")?,
                row.try_get("iid")?,
                row.try_get("policy")?,
                row.try_get("step")?,
                row.try_get("cycle")?,
                row.try_get("occurrence")?,
            ));
        }
    }
    // A firing another evaluation already recorded has its notice in the outbox.
    let notices = fired
        .iter()
        .filter(|((project, iid), _, _, fired)| {
            let firing = &fired.notice.firing;
            new_firings.contains(&(
                (*project).to_owned(),
                *iid,
                fired.policy.0.clone(),
                firing.step.0.clone(),
                i64::from(firing.cycle),
                i64::from(firing.occurrence),
            ))
        })
        .map(|(key, now, position, fired)| {
            serde_json::to_string(&fired.notice)
                .map(|notice| (*key, *now, *position, *fired, notice))
                .map_err(corrupt("notice"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in notices.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO outbox (project, iid, policy, step, cycle, occurrence, created_at, position, notice, next_attempt_at, channel)
             VALUES {} ON CONFLICT DO NOTHING",
            parameters(chunk.len(), 11)
        );
        let mut query = multi_row(sql);
        for ((project, iid), now, position, fired, notice) in chunk {
            query = bind_firing(query, project, *iid, &fired.policy.0, &fired.notice.firing)
                .bind(millis(*now))
                .bind(*position as i64)
                .bind(notice.as_str())
                .bind(millis(*now))
                .bind(
                    fired
                        .notice
                        .slack
                        .as_ref()
                        .map(|slack| slack.channel.as_str()),
                );
        }
        query.execute(&mut **tx).await?;
    }

    Ok(notices.len())
}
