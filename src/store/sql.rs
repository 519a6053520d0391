//! [`Store`] on a SQL database through sqlx's `Any` driver: SQLite (a
//! file, WAL mode, nothing to install) or PostgreSQL (shared by several
//! replicas), with one set of SQL both speak (`$n` parameters, `?` for
//! SQLite's long lists, `ON CONFLICT`, integer timestamps, `CASE` instead
//! of two-argument `MAX`); the few differences are marked where they are.
//!
//! `open` opens the database and migrates it, `statements` holds what the
//! rooms' SQL shares, and this file implements [`Store`] by
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
mod fence;
mod identity;
mod inspect;
mod intake;
mod issues;
mod mutes;
mod open;
mod outbox;
mod queued;
mod raised;
mod retention;
mod slack;
mod statements;
mod story;

use open::*;
pub use open::{SchemaVersion, schema_version, without_password};
use statements::*;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Acquire, Any, AnyPool, Executor, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::migrations::{
    INTAKE_MIGRATIONS, INTAKE_TABLE, MAIN_TABLE, MIGRATIONS, Migration, POSTGRES_INTAKE_MIGRATIONS,
};
use super::{
    Acknowledged, AlertThread, ClaimToken, CommitOutcome, CycleThread, Delivery, Downtime,
    FollowedProject, Handled, IssueCommit, IssueLink, IssueRecord, LeaseFence, Loaded, OpenDigest,
    OutboxEntry, OutboxKey, OutboxOutcome, Recorded, SlackEventOutcome, Store, StoreError,
    StoreStats, StoredSlackEvent, Withdrawal,
};
use crate::engine::Firing;
use crate::issue::{Event, GitLabIds, IssueFacts, IssueIid, IssueRef, ProjectPath, TimedEvent};
use crate::notice::Notice;
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
    deliveries: mpsc::Sender<intake::IntakeWork>,
    backend: Backend,
    /// Who this process is in claims and leases: unique per start.
    owner: String,
    /// The main SQLite file; `None` on PostgreSQL.
    path: Option<String>,
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

impl SqlStore {
    /// A consistent copy of a SQLite store while it runs: `to`, and its
    /// intake file beside it. Returns the files written.
    pub async fn backup(
        &self,
        to: &std::path::Path,
    ) -> Result<Vec<std::path::PathBuf>, StoreError> {
        retention::backup(self, to).await
    }
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
        fence: Option<&LeaseFence>,
    ) -> Result<CommitOutcome, StoreError> {
        issues::commit(self, commits, handled, fence).await
    }

    async fn open_digests(&self, now: DateTime<Utc>) -> Result<Vec<OpenDigest>, StoreError> {
        digests::open_digests(self, now).await
    }

    async fn digest(
        &self,
        key: &crate::notice::digest::DigestKey,
    ) -> Result<Option<crate::notice::digest::Digest>, StoreError> {
        digests::digest(self, key).await
    }

    async fn record_digest(
        &self,
        key: &crate::notice::digest::DigestKey,
        progress: &crate::notice::digest::DigestProgress,
        posted: &[(IssueRef, Firing)],
        thread: Option<&crate::notice::Thread>,
        claim: Option<(&OutboxKey, &ClaimToken)>,
    ) -> Result<(), StoreError> {
        digests::record_digest(self, key, progress, posted, thread, claim).await
    }

    async fn plan_digest_message(
        &self,
        key: &crate::notice::digest::DigestKey,
        message: &str,
        notices: &[(IssueRef, Firing)],
        claim: Option<(&OutboxKey, &ClaimToken)>,
    ) -> Result<(), StoreError> {
        digests::plan_digest_message(self, key, message, notices, claim).await
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

    async fn move_issue(
        &self,
        from: &IssueRef,
        to: &IssueRef,
        fence: Option<&LeaseFence>,
    ) -> Result<(), StoreError> {
        identity::move_issue(self, from, to, fence).await
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
    ) -> Result<Option<LeaseFence>, StoreError> {
        fence::hold_lease(self, name, now, lease).await
    }

    async fn confirm_claim(
        &self,
        key: &OutboxKey,
        claim: &ClaimToken,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        fence::confirm_claim(self, key, claim, now, lease).await
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
        claim: &ClaimToken,
        outcome: &SlackEventOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        slack::finish_slack_event(self, event_id, claim, outcome, now).await
    }

    async fn confirm_slack_event_claim(
        &self,
        event_id: &str,
        claim: &ClaimToken,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        fence::confirm_slack_event_claim(self, event_id, claim, now, lease).await
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
        fence::release_lease(self, name).await
    }

    async fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        outbox::next_outbox_attempt(self).await
    }

    async fn record_outbox(
        &self,
        outcomes: &[OutboxOutcome],
    ) -> Result<Vec<OutboxKey>, StoreError> {
        outbox::record_outbox(self, outcomes).await
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        issues::stats(self, now).await
    }

    async fn forget_ended(
        &self,
        before: DateTime<Utc>,
        batch: u32,
        fence: Option<&LeaseFence>,
    ) -> Result<u64, StoreError> {
        retention::forget_ended(self, before, batch, fence).await
    }

    async fn prune_deliveries(
        &self,
        keys_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let applied_through = intake::intake_cursor(self).await?;
        let prune = intake::Prune {
            applied_through,
            keys_before,
            batch,
        };
        intake::prune(self, prune).await
    }

    async fn compact(&self, pages: u32) -> Result<u64, StoreError> {
        retention::compact(self, pages).await
    }

    async fn size(&self) -> Result<crate::store::retention::StoreSize, StoreError> {
        retention::size(self).await
    }

    async fn queued_notices(
        &self,
        filter: &super::queued::QueueFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::queued::QueuedNotice>, StoreError> {
        queued::queued_notices(self, filter, now).await
    }

    async fn resend(
        &self,
        selection: &super::queued::ResendSelection,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        queued::resend(self, selection, now).await
    }

    async fn stored_clocks(
        &self,
        policy: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<(IssueRef, PolicyName, String)>, StoreError> {
        inspect::stored_clocks(self, policy, status).await
    }

    async fn board_clocks(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(IssueRef, PolicyName, String)>, StoreError> {
        inspect::board_clocks(self, since).await
    }

    async fn queue_notices(
        &self,
        notices: &[Notice],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        outbox::queue_notices(self, notices, now).await
    }

    async fn claim_raised(
        &self,
        message: &crate::notice::Thread,
        channel: &str,
        project: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<super::Raised, StoreError> {
        raised::claim_raised(self, message, channel, project, now, stale_before).await
    }

    async fn record_raised(
        &self,
        message: &crate::notice::Thread,
        issue: &IssueRef,
    ) -> Result<(), StoreError> {
        raised::record_raised(self, message, issue).await
    }

    async fn cycle_channels(
        &self,
        cycles: &[AlertThread],
    ) -> Result<Vec<(AlertThread, String)>, StoreError> {
        inspect::cycle_channels(self, cycles).await
    }

    async fn cycle_threads(&self, cycles: &[AlertThread]) -> Result<Vec<CycleThread>, StoreError> {
        inspect::cycle_threads(self, cycles).await
    }

    async fn add_mute(
        &self,
        scope: super::mutes::MuteScope,
        target: &str,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<super::mutes::Mute, StoreError> {
        mutes::add_mute(self, scope, target, until, reason, now).await
    }

    async fn issue_story(&self, issue: &IssueRef) -> Result<super::story::StoredStory, StoreError> {
        story::issue_story(self, issue).await
    }

    async fn open_window_mute(
        &self,
        window: &super::mutes::WindowMute<'_>,
    ) -> Result<Option<super::mutes::Mute>, StoreError> {
        mutes::open_window_mute(self, window).await
    }

    async fn end_mute(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        mutes::end_mute(self, id, now).await
    }

    async fn mutes(&self, now: DateTime<Utc>) -> Result<Vec<super::mutes::Mute>, StoreError> {
        mutes::mutes(self, now).await
    }

    async fn claim_ended_mute(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<(super::mutes::Mute, Vec<Notice>)>, StoreError> {
        mutes::claim_ended_mute(self, now).await
    }

    async fn failed_channels(&self) -> Result<Vec<super::queued::FailedChannel>, StoreError> {
        queued::failed_channels(self).await
    }
}
