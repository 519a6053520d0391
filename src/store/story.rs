//! One issue's stored story, as the store holds it: which steps fired
//! when, what became of each notice (sent, muted, failed, resent, still
//! waiting), what was said of it in group messages, and who acknowledged
//! its alerts. `labelwarden clock ISSUE` and the admin API read it, with
//! the events, to say what happened from the store alone.

use chrono::{DateTime, Utc};

use crate::engine::Firing;
use crate::policy::PolicyName;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredStory {
    pub fired: Vec<StoredFiring>,
    pub notices: Vec<StoredNotice>,
    pub grouped: Vec<GroupedNotice>,
    pub acknowledgements: Vec<StoredAcknowledgement>,
}

/// A step the enforcer fired (a ledger row).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFiring {
    pub policy: PolicyName,
    pub firing: Firing,
    pub at: DateTime<Utc>,
}

/// A notice of the issue's own in the outbox, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotice {
    pub policy: PolicyName,
    pub firing: Firing,
    pub step_kind: String,
    /// The policy channel; none for a GitLab-only step.
    pub channel: Option<String>,
    /// It also acts on GitLab (labels, a comment).
    pub acts_on_gitlab: bool,
    /// A fallback notice: the channel that refused the original for good.
    pub instead_of: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub attempts: u32,
    pub sent_at: Option<DateTime<Utc>>,
    /// The mute that held it (then `sent_at` is when it was recorded).
    pub muted_by: Option<i64>,
    pub failed_at: Option<DateTime<Utc>>,
    pub resent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Its number once refused for good (`outbox resend --id`).
    pub id: Option<i64>,
}

/// A step of the issue said in a group message's thread, or its alert
/// listed in a group alert.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedNotice {
    pub policy: PolicyName,
    pub channel: String,
    /// `start` for a listing in the group alert, else the step's kind.
    pub step_kind: String,
    pub cycle: u32,
    /// When it joined the group.
    pub at: DateTime<Utc>,
    /// When the message saying it was posted; none if not yet (or, for a
    /// listing, not tracked per issue).
    pub posted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAcknowledgement {
    pub policy: PolicyName,
    pub cycle: u32,
    /// The Slack user id.
    pub by: String,
    pub at: DateTime<Utc>,
}
