//! What the enforcer remembers: webhook deliveries (for dedup and so that an
//! acknowledged delivery is never lost), each issue's facts and timeline,
//! each clock's next wake-up, the escalation ledger, the outbox of
//! notices to send, and the notifier threads each clock cycle started.
//!
//! The [`Store`] trait is the seam; [`sql::SqlStore`] implements it on
//! SQLite (the embedded default) through sqlx's `Any` driver, so that
//! PostgreSQL can share the same SQL. The rule that makes escalation
//! exactly-once: a step's ledger row and its outbox row are written in the
//! same transaction, both keyed by the firing, and a second writer of the
//! same firing changes nothing.

mod evaluation;
pub mod fence;
pub mod migrations;
pub mod mutes;
mod outbox_rows;
pub mod queued;
pub mod retention;
mod slack_rows;
pub mod sql;
pub mod story;

pub use evaluation::*;
pub use fence::{ClaimToken, LeaseFence};
pub use outbox_rows::*;
pub use slack_rows::*;

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::engine::Firing;
use crate::issue::{IssueRef, ProjectPath};
use crate::notice::Notice;
use crate::notice::digest::{Digest, DigestKey, DigestProgress};
use crate::policy::PolicyName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "database URL `{0}` is not supported: use sqlite://FILE or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
    #[error("database writer unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is unreadable ({what}): {message}")]
    Corrupt { what: &'static str, message: String },
    /// Rows cannot move to a new path yet: a notice of theirs is being
    /// sent, and its outcome is recorded under the path it was claimed at.
    #[error("{0} has a notice being sent; moving its rows waits for it")]
    Sending(String),
    /// A write under a lease found the lease lost (taken over, or run
    /// out while this process was stalled): nothing was written.
    #[error("the `{0}` lease is no longer this process's; nothing was written")]
    LeaseLost(String),
    /// A write under an outbox claim found the claim lost (claimed by
    /// another process since): nothing was written.
    #[error("the claim on {0} is no longer this process's; nothing was written")]
    ClaimLost(String),
    /// A backup that cannot be taken as asked.
    #[error("{0}")]
    Backup(String),
}

/// A webhook delivery as received, before it is processed.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Its place in the order of arrival, given by the store (0 before).
    pub seq: i64,
    /// `X-Gitlab-Event-UUID` or `Idempotency-Key`; a hash of the body without either.
    pub key: String,
    /// `X-Gitlab-Event`, e.g. `Issue Hook`.
    pub kind: String,
    pub received_at: DateTime<Utc>,
    /// What the delivery said, as read at the edge (JSON of
    /// [`crate::gitlab::webhook::IssueDelivery`]): a few hundred bytes
    /// instead of GitLab's whole payload.
    pub payload: String,
}

/// A stretch of time nobody ran the enforcer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downtime {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Downtime {
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at <= self.to
    }
}

/// Where a project is now, after [`Store::follow_project`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedProject {
    /// The path its rows are kept under.
    pub path: ProjectPath,
    /// The path they were under until this call moved them.
    pub renamed_from: Option<ProjectPath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// Counts for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// (policy, status, count) for every tracked clock.
    pub clocks: Vec<(String, String, i64)>,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    pub deliveries_pending: i64,
    /// The earliest wake-up that is already due: how far the scheduler lags.
    pub oldest_due_wake: Option<DateTime<Utc>>,
}

/// The enforcer's memory. Every method is one short transaction.
pub trait Store: Clone + Send + Sync + 'static {
    /// The database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Other processes may write to the same database (PostgreSQL shared by
    /// replicas): what they store is found by looking, not by being told.
    fn shared(&self) -> bool {
        false
    }

    /// Keeps a delivery unless one with the same key was seen before.
    fn record_delivery(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Deliveries not yet processed, oldest first.
    fn pending_deliveries(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    /// What the store knows of these issues, in the same order: few
    /// queries for a whole pass, whatever its size.
    fn load_issues(
        &self,
        issues: &[IssueRef],
    ) -> impl Future<Output = Result<Vec<Loaded>, StoreError>> + Send;

    /// Writes a pass: evaluations (facts, new events, clocks, ledger and
    /// outbox) and the deliveries it dealt with, all in one transaction.
    /// Deliveries are handed out in order and marked in order: a pass
    /// handles a prefix of what is pending.
    ///
    /// With a `fence` (the enforcer's), the pass is written only while the
    /// lease is still this process's at the fence's epoch and has not run
    /// out, checked in the same transaction; otherwise nothing is written
    /// and the answer is [`StoreError::LeaseLost`]. `None` is for one
    /// process alone (tests, tools).
    fn commit(
        &self,
        commits: &[IssueCommit],
        handled: &[Handled],
        fence: Option<&LeaseFence>,
    ) -> impl Future<Output = Result<CommitOutcome, StoreError>> + Send;

    /// Issues with a clock whose wake-up is at or before `now`.
    fn due_issues(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<IssueRef>, StoreError>> + Send;

    fn earliest_wake(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Records that project `project_id` is at `path`, as a delivery
    /// updated at `seen_at` says. When the store knew it under another path
    /// (a rename or transfer), every row of the old path moves to the new
    /// one first, so its clocks, ledgers and threads go on. An older
    /// delivery changes nothing. Returns the path the project is at now.
    fn follow_project(
        &self,
        project_id: u64,
        path: &ProjectPath,
        seen_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<FollowedProject, StoreError>> + Send;

    /// The issues whose own id or `moved_to_id` is among `issue_ids`.
    fn issue_links(
        &self,
        issue_ids: &[u64],
    ) -> impl Future<Output = Result<Vec<IssueLink>, StoreError>> + Send;

    /// Moves every row of issue `from` to issue `to` (a move to another
    /// project): its clocks, ledger, timeline, threads and acknowledgements
    /// go on there. What `to` held before gives way. Fenced as
    /// [`Store::commit`] is.
    fn move_issue(
        &self,
        from: &IssueRef,
        to: &IssueRef,
        fence: Option<&LeaseFence>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The notices sent for one clock cycle of `issue` under `policy` to
    /// `channel`, oldest first (redactions left out): what a redaction
    /// rewrites.
    fn sent_notices(
        &self,
        issue: &IssueRef,
        policy: &PolicyName,
        cycle: u32,
        channel: &str,
    ) -> impl Future<Output = Result<Vec<Notice>, StoreError>> + Send;

    /// Records that `name` (the enforcer) is running at `now`. When it is
    /// `starting` to (a start, a restart, a takeover), the time since the
    /// last beat is recorded as a downtime, and returned.
    fn beat(
        &self,
        name: &str,
        now: DateTime<Utc>,
        starting: bool,
    ) -> impl Future<Output = Result<Option<Downtime>, StoreError>> + Send;

    /// The downtimes that ended at `since` or later, oldest first.
    fn downtimes(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Downtime>, StoreError>> + Send;

    /// The path the store keeps project `project_id`'s rows under, if a
    /// delivery named that id.
    fn project_at(
        &self,
        project_id: u64,
    ) -> impl Future<Output = Result<Option<ProjectPath>, StoreError>> + Send;

    /// Every project the store has issues of: the path its rows are kept
    /// under, and its GitLab id once a delivery named it.
    fn known_projects(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, Option<u64>)>, StoreError>> + Send;

    /// Issues of `project` with a clock still going (running, paused,
    /// breached): what a missed webhook could leave wrongly open.
    fn live_issues(
        &self,
        project: &str,
    ) -> impl Future<Output = Result<Vec<IssueRef>, StoreError>> + Send;

    /// Claims up to `limit` outbox entries due at `now` for this process
    /// until `now + lease`, oldest first: another process (a replica
    /// sharing the database) skips them until they are recorded or the
    /// claim runs out. Entries another process holds are skipped, not
    /// waited for. Each entry carries the claim's token.
    fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreError>> + Send;

    /// Takes or renews the lease `name` for this process until
    /// `now + lease`, with the fence that proves it; `None` while another
    /// process holds it. The fence's epoch grows each time the lease
    /// changes hands or is taken again after it ran out; a renewal in
    /// time keeps it.
    fn hold_lease(
        &self,
        name: &str,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> impl Future<Output = Result<Option<LeaseFence>, StoreError>> + Send;

    /// Gives the lease `name` up, if this process holds it: it runs out
    /// at once (its epoch is kept, so it only grows).
    fn release_lease(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Confirms that this process's claim `claim` on the outbox entry
    /// `key` still stands (nobody claimed the entry since, and it is not
    /// recorded sent), and makes it last until `now + lease`. False when
    /// it is lost.
    fn confirm_claim(
        &self,
        key: &OutboxKey,
        claim: &ClaimToken,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps a Slack event (`event`: what to act on, JSON) to be acted on
    /// at once; `Duplicate` for a retry of a seen one. Ids are remembered
    /// for a day after the event was handled.
    fn record_slack_event(
        &self,
        event_id: &str,
        event: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Claims up to `limit` Slack events due at `now` for this process
    /// until `now + lease`, oldest first.
    fn claim_slack_events(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> impl Future<Output = Result<Vec<StoredSlackEvent>, StoreError>> + Send;

    /// Records what became of acting on a claimed Slack event, under the
    /// claim it was handed out with; false (nothing recorded) when that
    /// claim was lost meanwhile.
    fn finish_slack_event(
        &self,
        event_id: &str,
        claim: &ClaimToken,
        outcome: &SlackEventOutcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Confirms this process's claim on Slack event `event_id` still
    /// stands and makes it last until `now + lease`, as
    /// [`Store::confirm_claim`] does for the outbox.
    fn confirm_slack_event_claim(
        &self,
        event_id: &str,
        claim: &ClaimToken,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// When the next Slack event waiting for a retry is due.
    fn next_slack_event(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Records `user`'s acknowledgement of one clock cycle (its alert
    /// thread's, or a group alert's member's).
    fn acknowledge(
        &self,
        alert: &AlertThread,
        user: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Acknowledged, StoreError>> + Send;

    /// Takes `user`'s acknowledgement of one clock cycle back, if they had
    /// given one. When nobody else's stands, the cycle's clock is made due
    /// at `now`: a step held back by the acknowledgement may be due already.
    fn withdraw_acknowledgement(
        &self,
        alert: &AlertThread,
        user: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Withdrawal, StoreError>> + Send;

    /// The clock cycle of the alert thread whose parent is the message `ts`
    /// in `channel_id`; `None` if labelwarden did not post that message.
    fn alert_thread(
        &self,
        channel_id: &str,
        ts: &str,
    ) -> impl Future<Output = Result<Option<AlertThread>, StoreError>> + Send;

    /// Who acknowledged a clock cycle first among those whose
    /// acknowledgement stands, and when.
    fn acknowledgement(
        &self,
        issue: &IssueRef,
        policy: &PolicyName,
        cycle: u32,
    ) -> impl Future<Output = Result<Option<(String, DateTime<Utc>)>, StoreError>> + Send;

    /// When the next outbox entry waiting for a retry becomes due.
    fn next_outbox_attempt(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Records what became of sent or attempted notices, and the threads
    /// sent ones started, in one transaction. Each outcome is recorded
    /// only under the claim its entry was handed out with: an outcome
    /// whose claim was lost meanwhile (another process claimed the entry
    /// since) changes nothing, and its key is returned.
    fn record_outbox(
        &self,
        outcomes: &[OutboxOutcome],
    ) -> impl Future<Output = Result<Vec<OutboxKey>, StoreError>> + Send;

    fn stats(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<StoreStats, StoreError>> + Send;

    /// Forgets up to `batch` issues whose clocks all ended (or never
    /// ran) before `before`, with every row of theirs; fenced by the
    /// enforcer's lease. Returns how many it forgot.
    fn forget_ended(
        &self,
        before: DateTime<Utc>,
        batch: u32,
        fence: Option<&LeaseFence>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Drops applied deliveries' payloads, and their keys once received
    /// before `keys_before`: at most `batch` rows each. Returns the rows changed.
    fn prune_deliveries(
        &self,
        keys_before: DateTime<Utc>,
        batch: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Gives free space back to the file system (SQLite), `pages` at a time.
    fn compact(&self, pages: u32) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Rows per table and bytes on disk.
    fn size(&self) -> impl Future<Output = Result<retention::StoreSize, StoreError>> + Send;

    /// Unsent notices `filter` picks, oldest first (failed ones numbered).
    fn queued_notices(
        &self,
        filter: &queued::QueueFilter,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<queued::QueuedNotice>, StoreError>> + Send;

    /// Queues the failed notices `selection` picks again, due at `now`;
    /// returns how many.
    fn resend(
        &self,
        selection: &queued::ResendSelection,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The clocks the store holds (issue, policy, status kind), by issue,
    /// filtered by policy and status when given.
    fn stored_clocks(
        &self,
        policy: Option<&str>,
        status: Option<&str>,
    ) -> impl Future<Output = Result<Vec<(IssueRef, PolicyName, String)>, StoreError>> + Send;

    /// The clocks a status page shows (issue, policy, status kind), by
    /// issue: every live one, and every other whose status changed at or
    /// after `since`.
    fn board_clocks(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(IssueRef, PolicyName, String)>, StoreError>> + Send;

    /// Queues `notices` (each with a Slack part) due at `now`, once each
    /// (a notice whose key is queued or sent already is left alone), and
    /// records them in the ledger; returns how many were new.
    fn queue_notices(
        &self,
        notices: &[Notice],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Claims a person's message raised in Slack for an issue in
    /// `project` (see [`Raised`]); a claim left pending since before
    /// `stale_before` is taken over.
    fn claim_raised(
        &self,
        message: &crate::notice::Thread,
        channel: &str,
        project: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> impl Future<Output = Result<Raised, StoreError>> + Send;

    /// Records the issue a claimed message became: from now on its
    /// notices in that channel go to the message's thread.
    fn record_raised(
        &self,
        message: &crate::notice::Thread,
        issue: &IssueRef,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The channels each of `cycles` posted or is to post in: its threads,
    /// and its outbox entries sent or waiting.
    fn cycle_channels(
        &self,
        cycles: &[AlertThread],
    ) -> impl Future<Output = Result<Vec<(AlertThread, String)>, StoreError>> + Send;

    /// The Slack threads `cycles` have, in every channel each has one in.
    fn cycle_threads(
        &self,
        cycles: &[AlertThread],
    ) -> impl Future<Output = Result<Vec<CycleThread>, StoreError>> + Send;

    /// Adds a mute of `target` until `until`; returns it with its number.
    fn add_mute(
        &self,
        scope: mutes::MuteScope,
        target: &str,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<mutes::Mute, StoreError>> + Send;

    /// One issue's stored story: ledger, outbox, group messages and
    /// acknowledgements, oldest first.
    fn issue_story(
        &self,
        issue: &IssueRef,
    ) -> impl Future<Output = Result<story::StoredStory, StoreError>> + Send;

    /// Opens the mute of a maintenance window's occurrence unless one
    /// with its origin exists; returns it when this call opened it.
    fn open_window_mute(
        &self,
        window: &mutes::WindowMute<'_>,
    ) -> impl Future<Output = Result<Option<mutes::Mute>, StoreError>> + Send;

    /// Ends mute `id` now; false if no such mute is still going.
    fn end_mute(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Mutes still going, or ended and not yet summarised.
    fn mutes(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<mutes::Mute>, StoreError>> + Send;

    /// Claims the summary of a mute that ended, with the notices it held.
    fn claim_ended_mute(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<(mutes::Mute, Vec<Notice>)>, StoreError>> + Send;

    /// Channels with failed notices, and whether each works again.
    fn failed_channels(
        &self,
    ) -> impl Future<Output = Result<Vec<queued::FailedChannel>, StoreError>> + Send;

    /// The storm windows still open at `now`, with how many issues each
    /// admitted: what the enforcer goes on counting from.
    fn open_digests(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<OpenDigest>, StoreError>> + Send;

    /// A digest with every item it lists, and how far its messages got.
    fn digest(
        &self,
        key: &DigestKey,
    ) -> impl Future<Output = Result<Option<Digest>, StoreError>> + Send;

    /// Chooses members' notices for a digest's next message before it is
    /// posted, so that a send taken over posts (or finds) the same one.
    /// Under `claim` (the digest's outbox row and the token it was
    /// claimed with), written only while that claim stands, else
    /// [`StoreError::ClaimLost`].
    fn plan_digest_message(
        &self,
        key: &DigestKey,
        message: &str,
        notices: &[(IssueRef, Firing)],
        claim: Option<(&OutboxKey, &ClaimToken)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records how far a digest's messages got, which of its members'
    /// notices are out and, under `claim`, the summary's `thread` for the
    /// digest's outbox row, in one write; fenced by `claim` as
    /// [`Store::plan_digest_message`] is.
    fn record_digest(
        &self,
        key: &DigestKey,
        progress: &DigestProgress,
        posted: &[(IssueRef, Firing)],
        thread: Option<&crate::notice::Thread>,
        claim: Option<(&OutboxKey, &ClaimToken)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
