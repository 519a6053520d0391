//! Slack's side as the store keeps it: alert threads and their
//! acknowledgements, and the Slack events waiting to be acted on.

use chrono::{DateTime, Utc};

use super::ClaimToken;
use crate::issue::IssueRef;
use crate::policy::PolicyName;

/// The clock cycle an alert thread labelwarden started is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertThread {
    pub issue: IssueRef,
    pub policy: PolicyName,
    pub cycle: u32,
}

/// What the store says of a message raised in Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// This caller claimed it: it creates (or finds) the issue and records it.
    Claimed,
    /// It became this issue already.
    Issue(IssueRef),
    /// Another claim is at work on it.
    Pending,
}

/// One Slack thread a clock cycle's notices went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleThread {
    pub cycle: AlertThread,
    /// The policy file's name for the channel.
    pub channel: String,
    /// Slack's id of the channel, and the thread's parent message.
    pub channel_id: String,
    pub ts: String,
}

/// An alert thread's clock cycle, as the acknowledgement of it found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub issue: IssueRef,
    pub policy: PolicyName,
    pub cycle: u32,
    /// This person's acknowledgement is new (not a repeat of theirs).
    pub recorded: bool,
    /// It is the cycle's first: nobody else's stands.
    pub first: bool,
}

/// A Slack event waiting to be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSlackEvent {
    pub event_id: String,
    /// What to act on, as JSON.
    pub event: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The claim it was handed out under (see [`super::fence`]).
    pub claim: ClaimToken,
}

/// What became of acting on a Slack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackEventOutcome {
    Done,
    /// Failed for now: again at `retry_at`.
    Retry {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Failed for good: kept with its error, never retried.
    Failed {
        error: String,
    },
}

/// What taking an acknowledgement back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withdrawal {
    /// The person had acknowledged the cycle, and no longer has.
    pub removed: bool,
    /// Somebody else's acknowledgement still stands.
    pub still_acknowledged: bool,
}
