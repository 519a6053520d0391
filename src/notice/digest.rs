//! Digests: one message about many issues, for the day many move at once.
//!
//! When labelwarden learns of clocks only well after they started
//! (switched on over a backlog, a new policy matching old issues), the
//! steps those clocks missed are adopted (recorded as done) and said once,
//! in a digest per channel and policy: a summary message and, when the
//! list is long, the list in its thread, most urgent first, every issue
//! with its link. A digest is a storm window of one channel: the first
//! `group_after` issues of the window keep an alert each, the rest join
//! the digest, which the outbox posts once the window settles and updates
//! in place as more join.
//!
//! This module holds what renderers share (pure): the digest as the outbox
//! hands it over, its counts, and the order of its list.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Notice, SlaFacts};
use crate::engine::Firing;
use crate::issue::{IssueIid, IssueRef, ProjectPath};
use crate::policy::{PolicyName, SlackStep, StepId};

/// What a digest is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestKind {
    /// Clocks labelwarden started tracking well after they started.
    Adopted,
    /// New alerts beyond what a channel takes one thread each for: a
    /// group alert, whose thread carries its members' later steps.
    Alerts,
    /// Reminders (`every`) falling due together in a channel beyond what
    /// it takes one thread bump each for: one message lists them.
    Reminders,
}

impl DigestKind {
    /// Its thread carries the later steps of the cycles it lists (a
    /// reminder digest only says that they are still open).
    pub fn carries_later_steps(self) -> bool {
        matches!(self, DigestKind::Adopted | DigestKind::Alerts)
    }
}

impl DigestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestKind::Adopted => "adopted",
            DigestKind::Alerts => "alerts",
            DigestKind::Reminders => "reminders",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "adopted" => Some(DigestKind::Adopted),
            "alerts" => Some(DigestKind::Alerts),
            "reminders" => Some(DigestKind::Reminders),
            _ => None,
        }
    }
}

/// One digest: a channel's storm window for one policy and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DigestKey {
    pub kind: DigestKind,
    pub channel: String,
    pub policy: PolicyName,
    /// When the window opened (to the millisecond, as stored).
    pub opened_at: DateTime<Utc>,
}

/// Issues one message of a digest names at most.
pub const PER_MESSAGE: usize = 100;

/// The outbox keeps a digest's messages under this project prefix: no
/// GitLab path starts with `labelwarden:`.
const OUTBOX_PREFIX: &str = "labelwarden:digest:";
/// The step a digest's outbox rows carry.
pub const DIGEST_STEP: &str = "digest";

impl DigestKey {
    /// The name the outbox keeps this digest's messages under, in order:
    /// `labelwarden:digest:adopted:alerts#<opened_at ms>`.
    pub fn outbox_issue(&self) -> IssueRef {
        IssueRef {
            project: ProjectPath(format!(
                "{OUTBOX_PREFIX}{}:{}",
                self.kind.as_str(),
                self.channel
            )),
            iid: IssueIid(self.opened_at.timestamp_millis().max(0) as u64),
        }
    }

    /// The digest an outbox row is a message of, if it is one.
    pub fn from_outbox(issue: &IssueRef, policy: &PolicyName) -> Option<Self> {
        let rest = issue.project.0.strip_prefix(OUTBOX_PREFIX)?;
        let (kind, channel) = rest.split_once(':')?;
        Some(DigestKey {
            kind: DigestKind::parse(kind)?,
            channel: channel.to_owned(),
            policy: policy.clone(),
            opened_at: DateTime::from_timestamp_millis(issue.iid.0 as i64)?,
        })
    }

    /// The outbox row that sends (part of) this digest: it names the
    /// channel, so that the channel's pace and health apply.
    pub fn outbox_notice(&self, occurrence: u32, now: DateTime<Utc>) -> Notice {
        Notice {
            issue: self.outbox_issue(),
            title: String::new(),
            url: String::new(),
            confidential: false,
            labels: Vec::new(),
            assignees: Vec::new(),
            policy: self.policy.clone(),
            firing: Firing {
                step: StepId(DIGEST_STEP.to_owned()),
                cycle: 1,
                occurrence,
            },
            step_kind: DIGEST_STEP.to_owned(),
            due_at: now,
            decided_at: now,
            late_by_ms: None,
            late_because: None,
            undelivered: None,
            status: String::new(),
            deadline: None,
            sla: SlaFacts::default(),
            slack: Some(SlackStep {
                channel: self.channel.clone(),
                mentions: Vec::new(),
                broadcast: false,
                post: true,
                react: None,
                text: None,
            }),
            gitlab: None,
            due_date: None,
            comment: None,
        }
    }
}

/// One issue in a digest: its place in the window and the notice of its
/// latest adopted step (the clock's facts when it was adopted).
#[derive(Debug, Clone, PartialEq)]
pub struct DigestItem {
    pub seq: u32,
    pub notice: Notice,
}

/// A digest as the outbox hands it to a notifier: every item, and how far
/// earlier messages got.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub key: DigestKey,
    /// In the order they joined.
    pub items: Vec<DigestItem>,
    pub progress: DigestProgress,
    /// Later steps of its members, in the order they fell due; those
    /// posted already too (a resolution shows in the summary for good).
    pub notices: Vec<DigestNotice>,
}

/// A later step of a digest's member, said in the digest's thread
/// together with the same kind of step of other members.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestNotice {
    pub notice: Notice,
    pub posted: bool,
    /// The message it was chosen for, before that was posted: a send
    /// taken over from a process that died mid-send posts (or finds in
    /// Slack) exactly that message again.
    pub planned: Option<String>,
}

/// The next message of members' notices: one kind of step, and its key.
#[derive(Debug, Clone, PartialEq)]
pub struct StepMessage<'a> {
    pub kind: &'a str,
    pub notices: Vec<&'a Notice>,
    pub key: String,
    /// Chosen now, not recorded yet: record it before posting.
    pub new: bool,
}

/// How far a digest's messages got. The list goes out in batches: a batch
/// is the items that joined in `(batch_from, batch_through]`, most urgent
/// first, posted in parts; when one is done, the items that joined since
/// make the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestProgress {
    /// How many items the summary that is out counts; 0 before it is posted.
    pub summarised: u32,
    pub batch_from: u32,
    pub batch_through: u32,
    /// How many of the batch's items are posted.
    pub batch_posted: u32,
}

/// What one send of a digest did: notifiers send one message per call
/// (the channel's pace applies to each), and say whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestSent {
    /// The summary message, whose thread holds the list.
    pub thread: Option<super::Thread>,
    pub progress: DigestProgress,
    /// Nothing is left to post or update.
    pub done: bool,
    /// The members' notices this send posted: (issue, firing).
    pub posted: Vec<(IssueRef, Firing)>,
    /// The items this send listed, by the firing each is listed for.
    pub listed: Vec<(IssueRef, Firing)>,
}

/// The next part of a digest's list to post, and the progress once it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPart<'a> {
    pub items: Vec<&'a DigestItem>,
    /// How many items earlier parts listed (earlier batches and this
    /// one's), and how many the digest has: "issues 101–200 of 295".
    pub offset: usize,
    pub total: usize,
    pub after: DigestProgress,
}

/// Where an adopted clock stood, as of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Past its deadline by this much (the most overdue is the most urgent).
    Overdue(std::cmp::Reverse<TimeDelta>),
    /// Running, with this much left.
    Running(TimeDelta),
    /// Paused, with this much left when it resumes.
    Paused(TimeDelta),
}

impl Standing {
    /// Where `notice`'s clock stands at `now`: its facts, counted on since
    /// they were taken.
    pub fn of(notice: &Notice, now: DateTime<Utc>) -> Self {
        let sla = &notice.sla;
        if let Some(overdue) = sla.overdue_at(notice.decided_at, now) {
            return Standing::Overdue(std::cmp::Reverse(overdue));
        }
        let left = sla.remaining_at(notice.decided_at, now).unwrap_or_default();
        if sla.kind == "paused" {
            Standing::Paused(left)
        } else {
            Standing::Running(left)
        }
    }
}

/// The figures a digest's summary gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally<'a> {
    pub total: usize,
    pub overdue: usize,
    /// The most overdue, and by how much.
    pub oldest_overdue: Option<(TimeDelta, &'a Notice)>,
    pub running: usize,
    /// The running clock whose deadline comes first, and how soon.
    pub next_deadline: Option<(TimeDelta, &'a Notice)>,
    pub paused: usize,
}

impl Digest {
    /// The items, most urgent first: the most overdue, then running
    /// clocks by time left, then paused ones; ties in the order they joined.
    pub fn by_urgency(&self, now: DateTime<Utc>) -> Vec<&DigestItem> {
        let mut items: Vec<(&DigestItem, Standing)> = self
            .items
            .iter()
            .map(|item| (item, Standing::of(&item.notice, now)))
            .collect();
        items.sort_by_key(|(item, standing)| (*standing, item.seq));
        items.into_iter().map(|(item, _)| item).collect()
    }

    /// The summary's figures, as of `now`.
    pub fn tally(&self, now: DateTime<Utc>) -> Tally<'_> {
        let mut tally = Tally {
            total: self.items.len(),
            overdue: 0,
            oldest_overdue: None,
            running: 0,
            next_deadline: None,
            paused: 0,
        };
        for item in &self.items {
            match Standing::of(&item.notice, now) {
                Standing::Overdue(std::cmp::Reverse(by)) => {
                    tally.overdue += 1;
                    if tally.oldest_overdue.is_none_or(|(most, _)| by > most) {
                        tally.oldest_overdue = Some((by, &item.notice));
                    }
                }
                Standing::Running(left) => {
                    tally.running += 1;
                    if tally
                        .next_deadline
                        .is_none_or(|(soonest, _)| left < soonest)
                    {
                        tally.next_deadline = Some((left, &item.notice));
                    }
                }
                Standing::Paused(_) => tally.paused += 1,
            }
        }
        tally
    }

    /// What the summary shows, as a number that only grows: members, and
    /// members whose clock ended (resolved or withdrawn). A summary out
    /// with a smaller number is updated.
    pub fn summary_version(&self) -> u32 {
        (self.items.len() + self.ended().len()) as u32
    }

    /// Members whose clock ended, with the step that said so.
    pub fn ended(&self) -> Vec<&Notice> {
        self.notices
            .iter()
            .map(|n| &n.notice)
            .filter(|n| matches!(n.step_kind.as_str(), "resolved" | "withdrawn"))
            .collect()
    }

    /// The next message of members' notices: one planned before (exactly
    /// its notices), else the notices of the kind of step that fell due
    /// first, at most `most`, in the order they fell due.
    pub fn next_step(&self, most: usize) -> Option<StepMessage<'_>> {
        let pending: Vec<&DigestNotice> = self.notices.iter().filter(|n| !n.posted).collect();
        if let Some(key) = pending.iter().find_map(|n| n.planned.as_deref()) {
            let notices: Vec<&Notice> = pending
                .iter()
                .filter(|n| n.planned.as_deref() == Some(key))
                .map(|n| &n.notice)
                .collect();
            return Some(StepMessage {
                kind: notices[0].step_kind.as_str(),
                notices,
                key: key.to_owned(),
                new: false,
            });
        }
        let kind = pending.first()?.notice.step_kind.as_str();
        let notices: Vec<&Notice> = pending
            .iter()
            .filter(|n| n.notice.step_kind == kind)
            .take(most.max(1))
            .map(|n| &n.notice)
            .collect();
        let first = notices[0];
        let key = format!(
            "{kind}:{}:{}:{}:{}",
            first.issue,
            first.firing.cycle,
            first.firing.occurrence,
            notices.len()
        );
        Some(StepMessage {
            kind,
            notices,
            key,
            new: true,
        })
    }

    /// The notices not posted yet.
    pub fn pending(&self) -> usize {
        self.notices.iter().filter(|n| !n.posted).count()
    }

    /// `progress` with the next batch of the list begun, if the next part
    /// begins one: recorded before that part is posted, so that a send
    /// taken over lists the same batch.
    pub fn batch_begun(
        &self,
        progress: DigestProgress,
        now: DateTime<Utc>,
    ) -> Option<DigestProgress> {
        let part = self.next_part(progress, now, usize::MAX)?;
        (part.after.batch_through != progress.batch_through).then_some(DigestProgress {
            batch_posted: 0,
            ..part.after
        })
    }

    /// The last item's place, 0 for an empty digest.
    pub fn last_seq(&self) -> u32 {
        self.items.iter().map(|item| item.seq).max().unwrap_or(0)
    }

    /// The next part of the list after `progress` (the digest's own, or
    /// one a send just advanced), at most `most` items, if anything is
    /// left to list.
    pub fn next_part(
        &self,
        mut progress: DigestProgress,
        now: DateTime<Utc>,
        most: usize,
    ) -> Option<ListPart<'_>> {
        let batch = |from: u32, through: u32| -> Vec<&DigestItem> {
            self.by_urgency(now)
                .into_iter()
                .filter(|item| item.seq > from && item.seq <= through)
                .collect()
        };
        let mut items = batch(progress.batch_from, progress.batch_through);
        if progress.batch_posted as usize >= items.len() {
            // That batch is out: everything that joined since is the next.
            progress = DigestProgress {
                batch_from: progress.batch_through,
                batch_through: self.last_seq(),
                batch_posted: 0,
                ..progress
            };
            items = batch(progress.batch_from, progress.batch_through);
        }
        let posted = progress.batch_posted as usize;
        if posted >= items.len() {
            return None;
        }
        let before = self
            .items
            .iter()
            .filter(|item| item.seq <= progress.batch_from)
            .count();
        let part: Vec<&DigestItem> = items.into_iter().skip(posted).take(most.max(1)).collect();
        progress.batch_posted += part.len() as u32;
        Some(ListPart {
            items: part,
            offset: before + posted,
            total: self.items.len(),
            after: progress,
        })
    }
}

#[cfg(test)]
mod tests;
