//! What one evaluation of an issue reads from the store ([`Loaded`]) and
//! writes back in the pass's transaction ([`IssueCommit`]): the issue,
//! its clocks, the steps that fired with their notices, and its places in
//! storm windows.

use chrono::{DateTime, Utc};

use crate::engine::Firing;
use crate::issue::{GitLabIds, Issue, IssueFacts, IssueRef, TimedEvent};
use crate::notice::Notice;
use crate::notice::digest::DigestKey;
use crate::policy::PolicyName;

/// An issue as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueRecord {
    pub facts: IssueFacts,
    pub title: String,
    pub url: String,
    /// GitLab's `updated_at` of the delivery the facts came from: older
    /// deliveries arriving late add their events but do not roll facts back.
    pub updated_at: DateTime<Utc>,
    pub events: Vec<TimedEvent>,
    /// GitLab's ids, as far as deliveries told them.
    pub ids: GitLabIds,
}

impl IssueRecord {
    /// The core's issue from what the store holds: its timeline, whether
    /// it was closed as a duplicate, and the starts its duplicates carried
    /// to it.
    pub fn issue(&self, carried: &[(PolicyName, DateTime<Utc>)]) -> Issue {
        let mut facts = self.facts.clone();
        // Facts stored before they kept the last update: the record's.
        facts.details.updated_at.get_or_insert(self.updated_at);
        let mut issue = Issue::new(facts, self.events.clone());
        if self.ids.is_duplicate() {
            issue = issue.closed_as_duplicate();
        }
        for (policy, started_at) in carried {
            issue = issue.with_carried_start(&policy.0, *started_at);
        }
        issue
    }
}

/// One issue as loaded for an evaluation: its record, if the store has
/// one, and every firing recorded for it, by policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub record: Option<IssueRecord>,
    pub ledger: Vec<(PolicyName, Firing)>,
    /// The clock cycles, by policy, whose alert somebody acknowledged.
    pub acknowledged: Vec<(PolicyName, u32)>,
    /// Each policy's clock status as stored ([`crate::clock::SlaStatus::kind`]).
    pub statuses: Vec<(PolicyName, String)>,
    /// Set by the enforcer: the issue this one's rows just came from, moved.
    pub moved_from: Option<IssueRef>,
    /// Clock starts carried here from issues closed as duplicates of this
    /// one, by policy.
    pub carried: Vec<(PolicyName, DateTime<Utc>)>,
    /// Set by the enforcer for an issue closed as a duplicate: the issue
    /// it duplicates, if the store knows it, and the policies whose clocks
    /// run on it.
    pub duplicate_of: Option<Canonical>,
    /// The digests (group alerts, adoptions) that list one of its clock
    /// cycles, with the cycle: later steps of that cycle in the digest's
    /// channel are said in its thread.
    pub digests: Vec<(DigestKey, u32)>,
}

impl Loaded {
    /// `policy`'s clock was live (running, paused or breached) as stored.
    pub fn was_live(&self, policy: &PolicyName) -> bool {
        self.statuses.iter().any(|(name, status)| {
            name == policy && matches!(status.as_str(), "running" | "paused" | "breached")
        })
    }
}

/// The issue another was closed as a duplicate of, as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    pub issue: IssueRef,
    /// The policies it matches now (a live clock): those clocks go on.
    pub matching: Vec<PolicyName>,
}

/// A clock start carried to `to` under `policy`, from a duplicate of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    pub to: IssueRef,
    pub policy: PolicyName,
    pub started_at: DateTime<Utc>,
}

/// Where one policy's clock stands on one issue after an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockState {
    pub policy: PolicyName,
    /// [`crate::clock::SlaStatus::kind`].
    pub status: &'static str,
    pub next_wake: Option<DateTime<Utc>>,
}

/// A step that fired, with its notice for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub policy: PolicyName,
    pub notice: Notice,
}

/// Everything one evaluation of one issue changes, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueCommit {
    /// The facts to keep, unless the store holds facts from a later update.
    pub facts: IssueFacts,
    pub title: String,
    pub url: String,
    pub updated_at: DateTime<Utc>,
    /// Timeline events learnt in this evaluation; known ones are ignored.
    pub new_events: Vec<TimedEvent>,
    pub clocks: Vec<ClockState>,
    pub fired: Vec<Fired>,
    pub now: DateTime<Utc>,
    /// The issue became confidential in this evaluation: notices of it
    /// still waiting in the outbox are sent redacted.
    pub became_confidential: bool,
    /// GitLab's ids as the deliveries said (kept where absent): the issue's
    /// own id, and the one a close moved it to.
    pub ids: GitLabIds,
    /// Clock starts this issue, closed as a duplicate, carries to its
    /// canonical issue (which is looked at again at once).
    pub carried: Vec<Carried>,
    /// Its clocks admitted into a channel's storm window.
    pub digests: Vec<DigestEntry>,
    /// Later steps of its cycles listed in a digest, said in the digest's
    /// thread instead of one by one.
    pub digest_notices: Vec<(DigestKey, Notice)>,
}

/// A channel's storm window that is still open, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDigest {
    pub key: DigestKey,
    pub closes_at: DateTime<Utc>,
    /// The place of the last issue admitted (those with an alert of
    /// their own and those listed count alike; a digest that goes on from
    /// a full one begins after its `group_after`).
    pub members: u32,
}

/// An issue admitted into a channel's storm window by a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEntry {
    pub key: DigestKey,
    pub closes_at: DateTime<Utc>,
    /// Its place in the window, from 1.
    pub seq: u32,
    pub issue: IssueRef,
    /// The clock cycle admitted.
    pub cycle: u32,
    /// What the digest lists for it; `None` when it is one of the first
    /// few, which keep an alert of their own.
    pub notice: Option<Notice>,
}

/// An issue the store holds, with the GitLab ids that link it to another:
/// its own, and the one a close moved it to.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueLink {
    pub issue: IssueRef,
    pub issue_id: Option<u64>,
    pub moved_to_id: Option<u64>,
}

/// A delivery a pass dealt with: applied to its issue, or set aside as
/// unreadable (with the reason). Marked done in the pass's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub key: String,
    pub seq: i64,
    pub rejected: Option<String>,
}

/// What a commit changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Fired steps that were new; a step another evaluation already recorded is not counted.
    pub newly_fired: usize,
}
