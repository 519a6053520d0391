//! What a fired step says, pure: a [`Notice`] carries everything a
//! step's message needs (issue, policy, clock facts, the step's Slack and
//! GitLab parts), so that it can wait in the outbox and be sent after a
//! restart without looking anything up; the [`Thread`] a clock cycle's
//! messages continue; what became of a notice its channel refused
//! ([`Undelivered`]); and how many notices are said as one ([`digest`]).
//! Notifiers (the port, [`crate::notify`]) send these; the store keeps
//! them.

pub mod digest;
mod undelivered;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{ClockReading, SlaStatus};
use crate::engine::due_date::{DueDateWrite, DuePlan};
use crate::engine::{Action, Firing};
use crate::issue::{IssueFacts, IssueRef};
use crate::policy::duration::human;
use crate::policy::{GitLabStep, PolicyName, SlackStep};

pub use undelivered::{Undelivered, UndeliveredRoute};

/// How late an action may be before its message says so, at most: a
/// twentieth of the policy's target if that is less (a 2-second test
/// policy is late after 100 ms, a 24-hour one after 30 seconds).
pub const LATE_TOLERANCE: TimeDelta = TimeDelta::seconds(30);

/// The lateness that counts for a policy with this target.
pub fn late_tolerance(target: TimeDelta) -> TimeDelta {
    LATE_TOLERANCE.min(target / 20)
}

/// Why a step was decided after it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lateness {
    /// labelwarden was not running when it was due (its own record says).
    Down,
    /// labelwarden learned of the issue, or of what made it due, only then:
    /// it started tracking it, a webhook was lost, or a scheduled audit.
    Learned,
    /// labelwarden was running and knew, but was behind with its work.
    Behind,
    /// labelwarden learned of the clock only well after it started, and
    /// adopted it: what it missed before is recorded, not sent.
    Adopted,
    /// It came due outside the working hours of its step's quiet-hours
    /// calendar (`during:`) and waited for them.
    QuietHours,
}

/// The kind of a notice that writes the issue's due date.
pub const DUE_DATE_KIND: &str = "due_date";

/// One fired step, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub issue: IssueRef,
    pub title: String,
    pub url: String,
    pub confidential: bool,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub policy: PolicyName,
    pub firing: Firing,
    /// `start`, `before_deadline`, `breach`, `every`, `resolved`, `withdrawn`.
    pub step_kind: String,
    pub due_at: DateTime<Utc>,
    /// When the enforcer decided to send it; later than `due_at` for a late run.
    pub decided_at: DateTime<Utc>,
    /// How late it was decided, in milliseconds, when beyond the policy's tolerance.
    pub late_by_ms: Option<i64>,
    /// Why it is late, when it is. Notices stored before this was known
    /// have none, and read as [`Lateness::Down`], as they were written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_because: Option<Lateness>,
    /// Set when the notice's channel refused it for good and it goes out
    /// again or elsewhere: its message says so. Not stored with the
    /// notice; the outbox worker sets it as it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelivered: Option<Undelivered>,
    /// The clock's status when the step fired, in words (`breached, 2h overdue`).
    pub status: String,
    pub deadline: Option<DateTime<Utc>>,
    /// The same status as numbers, for messages that show it as of sending.
    #[serde(default)]
    pub sla: SlaFacts,
    pub slack: Option<SlackStep>,
    pub gitlab: Option<GitLabStep>,
    /// A due date to write on the issue (see [`crate::engine::due_date`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<DueDateWrite>,
    /// A GitLab comment carried to the alert thread ([`COMMENT_KIND`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentFacts>,
}

/// The kind of a notice that carries a comment on the issue to its alert
/// thread (a policy's `from_gitlab.mirror_comments`).
pub const COMMENT_KIND: &str = "comment";

/// Longest excerpt of a comment said in Slack, in characters.
pub const COMMENT_EXCERPT: usize = 500;

/// Who commented on the issue, the start of what they said, and its link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentFacts {
    pub username: String,
    pub name: String,
    /// At most [`COMMENT_EXCERPT`] characters, cut at a word with `…`.
    pub excerpt: String,
    pub url: String,
}

impl CommentFacts {
    pub fn new(username: &str, name: &str, body: &str, url: &str) -> Self {
        let body = body.trim();
        let excerpt = if body.chars().count() <= COMMENT_EXCERPT {
            body.to_owned()
        } else {
            let cut: String = body.chars().take(COMMENT_EXCERPT).collect();
            let at_word = cut
                .rfind(char::is_whitespace)
                .filter(|at| *at > COMMENT_EXCERPT / 2);
            format!("{}…", cut[..at_word.unwrap_or(cut.len())].trim_end())
        };
        CommentFacts {
            username: username.to_owned(),
            name: name.to_owned(),
            excerpt,
            url: url.to_owned(),
        }
    }
}

/// The issue as the message shows it: facts plus what only GitLab's
/// payloads carry (title, link).
#[derive(Debug, Clone, Copy)]
pub struct IssueView<'a> {
    pub facts: &'a IssueFacts,
    pub title: &'a str,
    pub url: &'a str,
}

/// The clock's facts as numbers, taken when the step fired. A message sent
/// later shows them as of sending: a running clock's time left shrinks and
/// its overdue time grows while the message waits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlaFacts {
    /// [`SlaStatus::kind`].
    pub kind: String,
    pub target_ms: i64,
    /// When this cycle's clock started.
    pub started_at: Option<DateTime<Utc>>,
    /// Counted time left (running or paused); negative if a pause began
    /// past the deadline.
    pub remaining_ms: Option<i64>,
    /// Time past the deadline (breached, missed, withdrawn late).
    pub overdue_ms: Option<i64>,
    /// Counted time from start to resolution (met or missed).
    pub took_ms: Option<i64>,
    /// When the stop condition was reached.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The business-hours calendar whose working time the clock counts,
    /// if any: the durations above are working time then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
}

impl SlaFacts {
    pub fn new(reading: &ClockReading, status: &SlaStatus) -> Self {
        let ms = |d: TimeDelta| Some(d.num_milliseconds());
        let mut facts = SlaFacts {
            kind: status.kind().to_owned(),
            target_ms: reading.target.num_milliseconds(),
            started_at: (reading.cycle > 0).then_some(reading.started_at),
            calendar: reading.calendar.as_ref().map(|c| c.name.clone()),
            ..SlaFacts::default()
        };
        match *status {
            SlaStatus::NotMatching => {}
            SlaStatus::Running { remaining, .. } | SlaStatus::Paused { remaining, .. } => {
                facts.remaining_ms = ms(remaining);
            }
            SlaStatus::Breached { overdue, .. } => facts.overdue_ms = ms(overdue),
            SlaStatus::Met { stopped_at, took } => {
                facts.took_ms = ms(took);
                facts.stopped_at = Some(stopped_at);
            }
            SlaStatus::Missed {
                stopped_at,
                late_by,
                ..
            } => {
                facts.overdue_ms = ms(late_by);
                facts.took_ms = ms(reading.active);
                facts.stopped_at = Some(stopped_at);
            }
            SlaStatus::Withdrawn { overdue, .. } => facts.overdue_ms = overdue.and_then(ms),
        }
        facts
    }

    /// The clock counts on while the message waits (running or breached).
    fn counting(&self) -> bool {
        matches!(self.kind.as_str(), "running" | "breached")
    }

    /// How much the clock counted between deciding and sending: nothing
    /// for a held clock, and nothing within the policy's late tolerance (a
    /// 6-hour warning sent 50 ms after it was decided still says `6h left`).
    fn counted_since(&self, decided_at: DateTime<Utc>, at: DateTime<Utc>) -> TimeDelta {
        let waited = (at - decided_at).max(TimeDelta::zero());
        // On a calendar the wait may have been outside working hours: the
        // figures stay as decided.
        if self.calendar.is_none() && self.counting() && waited > late_tolerance(self.target()) {
            waited
        } else {
            TimeDelta::zero()
        }
    }

    /// Time left as of `at`, for a message decided at `decided_at`.
    pub fn remaining_at(&self, decided_at: DateTime<Utc>, at: DateTime<Utc>) -> Option<TimeDelta> {
        let remaining = TimeDelta::milliseconds(self.remaining_ms?);
        Some(remaining - self.counted_since(decided_at, at))
    }

    /// Time past the deadline as of `at`, if it has passed.
    pub fn overdue_at(&self, decided_at: DateTime<Utc>, at: DateTime<Utc>) -> Option<TimeDelta> {
        if let Some(overdue) = self.overdue_ms {
            return Some(TimeDelta::milliseconds(overdue) + self.counted_since(decided_at, at));
        }
        self.remaining_at(decided_at, at)
            .filter(|left| *left < TimeDelta::zero())
            .map(|left| -left)
    }

    pub fn took(&self) -> Option<TimeDelta> {
        self.took_ms.map(TimeDelta::milliseconds)
    }

    pub fn target(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.target_ms)
    }

    /// A duration of this clock as people read it: `6h`, or `6h of
    /// working time` on a calendar.
    pub fn span(&self, counted: TimeDelta) -> String {
        match &self.calendar {
            // Working days vary in length: hours, not days.
            Some(_) => format!(
                "{} of working time",
                crate::policy::calendar::hours(counted)
            ),
            None => human(counted),
        }
    }
}

impl Notice {
    /// It has something to send: a Slack part or a GitLab part. One
    /// without (adopted, or said in a digest) is only recorded.
    pub fn has_actions(&self) -> bool {
        self.slack.is_some() || self.gitlab.is_some() || self.due_date.is_some()
    }

    /// A notice about the issue of `issue`, decided at `now`, that says
    /// and does nothing yet: the constructors fill in the rest.
    fn about(
        issue: IssueView<'_>,
        policy: PolicyName,
        firing: Firing,
        step_kind: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Notice {
            issue: issue.facts.reference.clone(),
            title: issue.title.to_owned(),
            url: issue.url.to_owned(),
            confidential: issue.facts.confidential,
            labels: issue.facts.labels.clone(),
            assignees: issue.facts.assignees.clone(),
            policy,
            firing,
            step_kind: step_kind.to_owned(),
            due_at: now,
            decided_at: now,
            late_by_ms: None,
            late_because: None,
            undelivered: None,
            status: String::new(),
            deadline: None,
            sla: SlaFacts::default(),
            slack: None,
            gitlab: None,
            due_date: None,
            comment: None,
        }
    }

    /// The notice that says `comment` in `channel`'s alert thread of
    /// `policy`'s cycle `cycle`, keyed by the comment so that it is said
    /// once however often GitLab delivers it.
    pub fn comment(
        issue: IssueView<'_>,
        policy: PolicyName,
        cycle: u32,
        channel: &str,
        comment: CommentFacts,
        note_id: u64,
        now: DateTime<Utc>,
    ) -> Self {
        let firing = Firing {
            step: crate::policy::StepId(format!("{COMMENT_KIND}:{note_id}")),
            cycle,
            occurrence: 0,
        };
        Notice {
            slack: Some(SlackStep {
                channel: channel.to_owned(),
                mentions: Vec::new(),
                broadcast: false,
                post: true,
                react: None,
                text: None,
            }),
            comment: Some(comment),
            ..Notice::about(issue, policy, firing, COMMENT_KIND, now)
        }
    }

    /// The notice for `action`, fired on `reading` of `policy`'s clock at `now`.
    pub fn new(
        issue: IssueView<'_>,
        policy: &PolicyName,
        action: &Action,
        reading: &ClockReading,
        now: DateTime<Utc>,
    ) -> Self {
        let status = reading.status();
        let late = action.late_by(now, late_tolerance(reading.target));
        Notice {
            due_at: action.due_at,
            late_by_ms: late.map(|late| late.num_milliseconds()),
            // The enforcer knows when labelwarden was down; anyone else
            // deciding late (a scheduled audit) learned of it late.
            late_because: late.map(|_| {
                if action.held_for_quiet_hours {
                    Lateness::QuietHours
                } else {
                    Lateness::Learned
                }
            }),
            status: status.to_string(),
            deadline: reading.deadline(),
            sla: SlaFacts::new(reading, &status),
            slack: action.slack.clone(),
            gitlab: action.gitlab.clone(),
            ..Notice::about(
                issue,
                policy.clone(),
                action.firing.clone(),
                action.trigger.kind(),
                now,
            )
        }
    }

    /// The notice that writes `planned`'s due date on the issue of `issue`:
    /// nothing for Slack, only the date for GitLab.
    pub fn due_date_write(issue: IssueView<'_>, planned: DuePlan, now: DateTime<Utc>) -> Self {
        let status = match planned.write.to {
            Some(date) => format!("due date {}", date.format("%Y-%m-%d")),
            None => "due date cleared".to_owned(),
        };
        Notice {
            status,
            due_date: Some(planned.write),
            ..Notice::about(issue, planned.policy, planned.firing, DUE_DATE_KIND, now)
        }
    }

    /// How late the step was decided, if later than the policy's tolerance
    /// and by a second or more (a message never says "0s late").
    pub fn late_by(&self) -> Option<TimeDelta> {
        self.late_by_ms
            .map(TimeDelta::milliseconds)
            .filter(|late| *late >= TimeDelta::seconds(1))
    }

    /// How long the clock had run when the step was decided: what an
    /// adopted clock's message says ("its clock started 26d ago").
    pub fn clock_age(&self) -> TimeDelta {
        self.decided_at - self.sla.started_at.unwrap_or(self.due_at)
    }

    /// Why it is late, if it is.
    pub fn lateness(&self) -> Option<Lateness> {
        self.late_by()
            .map(|_| self.late_because.unwrap_or(Lateness::Down))
    }

    /// A one-line plain-text summary: what the log notifier writes, and the
    /// fallback text of richer messages.
    pub fn summary(&self) -> String {
        let what = match self.step_kind.as_str() {
            "start" => "SLA clock started".to_owned(),
            "before_deadline" => "deadline approaching".to_owned(),
            "after_start" => "not acknowledged yet".to_owned(),
            "breach" => "SLA breached".to_owned(),
            "every" => format!(
                "still open past its deadline (reminder {})",
                self.firing.occurrence
            ),
            "resolved" => "resolved".to_owned(),
            "withdrawn" => "no longer matches the policy; escalation withdrawn".to_owned(),
            "redact" => "made confidential; earlier messages redacted".to_owned(),
            "gone" => "deleted or no longer visible; its clock ends".to_owned(),
            "moved" => "moved to another project; its clock goes on there".to_owned(),
            "duplicate" => "closed as a duplicate".to_owned(),
            "rule" => "rule acted".to_owned(),
            DUE_DATE_KIND => "GitLab due date kept at the deadline".to_owned(),
            other => other.to_owned(),
        };
        let mut line = format!("{} [{}] {what}: {}", self.issue, self.policy, self.status);
        if let Some(deadline) = self.deadline {
            line.push_str(&format!(
                ", deadline {}",
                deadline.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        match (self.late_by(), self.lateness()) {
            (Some(late), Some(Lateness::Down)) => line.push_str(&format!(
                " (sent {} late: labelwarden was not running)",
                human(late)
            )),
            (Some(late), Some(Lateness::Behind)) => line.push_str(&format!(
                " (sent {} late: labelwarden was behind)",
                human(late)
            )),
            (Some(late), Some(Lateness::QuietHours)) => {
                line.push_str(&format!(" (held {} for quiet hours)", human(late)))
            }
            (Some(_), Some(Lateness::Adopted)) => line.push_str(&format!(
                " (labelwarden started tracking it now; its clock started {} ago)",
                human(self.clock_age())
            )),
            (Some(late), _) if self.step_kind == "start" => line.push_str(&format!(
                " (labelwarden started tracking it now; its clock started {} ago)",
                human(late)
            )),
            (Some(late), _) => line.push_str(&format!(
                " (sent {} after it was due: labelwarden learned of it late)",
                human(late)
            )),
            _ => {}
        }
        line
    }
}

/// A conversation a notifier started for a clock cycle (a Slack thread):
/// kept by the store so that later steps of the cycle continue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// Where the conversation is (a Slack channel id, `C0123ABCD`).
    pub channel_id: String,
    /// Its first message (a Slack `ts`, `1700000000.000100`).
    pub ts: String,
}

/// What a successful send leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The thread later steps of this cycle continue: the one passed in,
    /// or a new one if the notice started it (or its parent was gone).
    pub thread: Option<Thread>,
}

/// A template's `{variables}` filled in one pass by `variable`: what a
/// value says is never read as a variable itself. Names `variable` does
/// not know (validation refuses them) and an unclosed `{` stay as written.
pub fn fill_template(template: &str, variable: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        match variable(&after[..close]) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: &str, remaining_ms: Option<i64>, overdue_ms: Option<i64>) -> SlaFacts {
        SlaFacts {
            kind: kind.to_owned(),
            target_ms: 24 * 3_600_000,
            remaining_ms,
            overdue_ms,
            ..SlaFacts::default()
        }
    }

    #[test]
    fn a_template_is_filled_in_one_pass_so_a_value_s_braces_stay_as_written() {
        let variable = |name: &str| match name {
            "issue.title" => Some("Crash when {policy} is empty".to_owned()),
            "policy" => Some("critical-bugs".to_owned()),
            _ => None,
        };
        assert_eq!(
            fill_template("{issue.title} ({policy}), {unknown} and {open", variable),
            "Crash when {policy} is empty (critical-bugs), {unknown} and {open"
        );
    }

    #[test]
    fn a_running_clock_counts_on_while_the_message_waits() {
        let decided = Utc::now();
        let sent = decided + TimeDelta::minutes(10);
        let running = facts("running", Some(6 * 3_600_000), None);
        assert_eq!(
            running.remaining_at(decided, sent),
            Some(TimeDelta::minutes(350))
        );
        assert_eq!(running.overdue_at(decided, sent), None);

        let breached = facts("breached", None, Some(60_000));
        assert_eq!(
            breached.overdue_at(decided, sent),
            Some(TimeDelta::minutes(11))
        );
    }

    #[test]
    fn a_message_sent_within_the_late_tolerance_shows_the_decided_figures() {
        let decided = Utc::now();
        let running = facts("running", Some(6 * 3_600_000), None);
        assert_eq!(
            running.remaining_at(decided, decided + TimeDelta::seconds(20)),
            Some(TimeDelta::hours(6))
        );
    }

    #[test]
    fn a_held_clock_does_not() {
        let decided = Utc::now();
        let sent = decided + TimeDelta::hours(2);
        let paused = facts("paused", Some(3_600_000), None);
        assert_eq!(
            paused.remaining_at(decided, sent),
            Some(TimeDelta::hours(1))
        );
        let paused_late = facts("paused", Some(-60_000), None);
        assert_eq!(
            paused_late.overdue_at(decided, sent),
            Some(TimeDelta::minutes(1))
        );
        let missed = facts("missed", None, Some(60_000));
        assert_eq!(
            missed.overdue_at(decided, sent),
            Some(TimeDelta::minutes(1))
        );
    }
}
