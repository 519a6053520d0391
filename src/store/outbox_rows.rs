//! The outbox as the store hands it out and takes it back: an entry
//! claimed to be sent, and what became of the attempt.

use chrono::{DateTime, Utc};

use super::ClaimToken;
use crate::engine::Firing;
use crate::issue::IssueRef;
use crate::notice::{Notice, Thread};
use crate::policy::PolicyName;

/// The outbox's key: one firing of one policy's step on one issue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutboxKey {
    pub issue: IssueRef,
    pub policy: PolicyName,
    pub firing: Firing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub key: OutboxKey,
    pub notice: Notice,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// The thread this notice's clock cycle has in its channel, if any.
    pub thread: Option<Thread>,
    /// Claimed before and never recorded: the process sending it died or
    /// stalled, and the notice may have gone out already.
    pub retaken: bool,
    /// Refused for good before and queued again since.
    pub resent: Option<crate::notice::Undelivered>,
    /// The claim this entry was handed out under: requests while sending
    /// it confirm it, and its outcome is recorded only under it.
    pub claim: ClaimToken,
}

impl OutboxEntry {
    /// Whether the notice may be out already: another process claimed it
    /// and never recorded it, or an earlier attempt failed in a way that
    /// can hide a success (a timeout after Slack posted it). A notifier
    /// that can look for it does so before sending it again.
    pub fn may_be_out(&self) -> bool {
        self.retaken || self.attempts > 0
    }
}

/// What became of one attempt to send a notice.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxOutcome {
    pub key: OutboxKey,
    /// The claim the attempt was made under.
    pub claim: ClaimToken,
    pub result: SendResult,
}

impl OutboxOutcome {
    /// What became of the attempt at `entry`.
    pub fn of(entry: &OutboxEntry, result: SendResult) -> Self {
        OutboxOutcome {
            key: entry.key.clone(),
            claim: entry.claim.clone(),
            result,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    /// Sent; later notices of the cycle in the same channel continue `thread`.
    Sent {
        at: DateTime<Utc>,
        thread: Option<Thread>,
    },
    /// Failed for now; try again at `retry_at`.
    Retry {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Not tried (a rate limit said to wait): try at `retry_at`, without
    /// counting an attempt.
    Deferred { retry_at: DateTime<Utc> },
    /// Failed for good; kept, counted and shown, never retried.
    Failed { error: String },
    /// Failed for good as [`SendResult::Failed`], and its channel's
    /// fallback route queued in the same write as a notice of its own:
    /// `instead`, under step `step`, for policy channel `channel` (none:
    /// a comment on the issue). Durable like any notice: retried if the
    /// route is busy, and taken over if this process dies.
    FellBack {
        error: String,
        instead: Box<Notice>,
        step: String,
        channel: Option<String>,
    },
    /// One message of several went out (a digest and its list): the rest
    /// follow from `retry_at`, in `thread`, without counting an attempt.
    Progress {
        thread: Option<Thread>,
        retry_at: DateTime<Utc>,
    },
    /// Not sent: mute `mute` silences it. Done, and said in the mute's
    /// summary when it ends.
    Muted { at: DateTime<Utc>, mute: i64 },
    /// Not sent, and not recorded: the claim was lost before a request
    /// could leave (this process froze past it, and another took the
    /// notice over). Its new owner sends and records it.
    ClaimLost { reason: String },
}
