//! What is sent when a step fires, and the seam that sends it.
//!
//! A [`Notice`] carries everything a step's message needs (issue, policy,
//! clock facts, the step's Slack and GitLab parts), so that it can wait in
//! the outbox and be sent after a restart without looking anything up.
//! A [`Notifier`] sends one notice; the outbox worker retries it until the
//! notifier says it went out.
//!
//! [`LogNotifier`] writes each notice to the log, for running `serve`
//! before Slack is configured: chosen explicitly, never a silent default.

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::SlaStatus;
use crate::engine::{Action, Firing};
use crate::issue::{IssueFacts, IssueRef};
use crate::policy::duration::human;
use crate::policy::{GitLabStep, Mention, PolicyName, SlackStep};

/// How late an action may be before its message says so, at most: a
/// twentieth of the policy's target if that is less (a 2-second test
/// policy is late after 100 ms, a 24-hour one after 30 seconds).
pub const LATE_TOLERANCE: TimeDelta = TimeDelta::seconds(30);

/// The lateness that counts for a policy with this target.
pub fn late_tolerance(target: TimeDelta) -> TimeDelta {
    LATE_TOLERANCE.min(target / 20)
}

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
    /// The clock's status when the step fired, in words (`breached, 2h overdue`).
    pub status: String,
    pub deadline: Option<DateTime<Utc>>,
    pub slack: Option<SlackStep>,
    pub gitlab: Option<GitLabStep>,
}

/// The issue as the message shows it: facts plus what only GitLab's
/// payloads carry (title, link).
#[derive(Debug, Clone, Copy)]
pub struct IssueView<'a> {
    pub facts: &'a IssueFacts,
    pub title: &'a str,
    pub url: &'a str,
}

impl Notice {
    pub fn new(
        issue: IssueView<'_>,
        policy: &PolicyName,
        target: TimeDelta,
        action: &Action,
        status: &SlaStatus,
        deadline: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        Notice {
            issue: issue.facts.reference.clone(),
            title: issue.title.to_owned(),
            url: issue.url.to_owned(),
            confidential: issue.facts.confidential,
            labels: issue.facts.labels.clone(),
            assignees: issue.facts.assignees.clone(),
            policy: policy.clone(),
            firing: action.firing.clone(),
            step_kind: action.trigger.kind().to_owned(),
            due_at: action.due_at,
            decided_at: now,
            late_by_ms: action
                .late_by(now, late_tolerance(target))
                .map(|late| late.num_milliseconds()),
            status: status.to_string(),
            deadline,
            slack: action.slack.clone(),
            gitlab: action.gitlab.clone(),
        }
    }

    /// How late the step was decided, if later than the policy's tolerance.
    pub fn late_by(&self) -> Option<TimeDelta> {
        self.late_by_ms.map(TimeDelta::milliseconds)
    }

    /// A one-line plain-text summary: what the log notifier writes, and the
    /// fallback text of richer messages.
    pub fn summary(&self) -> String {
        let what = match self.step_kind.as_str() {
            "start" => "SLA clock started".to_owned(),
            "before_deadline" => "deadline approaching".to_owned(),
            "breach" => "SLA breached".to_owned(),
            "every" => format!(
                "still open past its deadline (reminder {})",
                self.firing.occurrence
            ),
            "resolved" => "resolved".to_owned(),
            "withdrawn" => "no longer matches the policy; escalation withdrawn".to_owned(),
            other => other.to_owned(),
        };
        let mut line = format!("{} [{}] {what}: {}", self.issue, self.policy, self.status);
        if let Some(deadline) = self.deadline {
            line.push_str(&format!(
                ", deadline {}",
                deadline.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        if let Some(late) = self.late_by() {
            line.push_str(&format!(
                " (sent {} late: labelwarden was not running)",
                human(late)
            ));
        }
        line
    }
}

/// Why a notice was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth trying again later (network, 5xx, rate limit).
    #[error("temporary failure: {message}")]
    Temporary {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// Will fail the same way every time (bad token, unknown channel).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Sends notices. Implementations must be safe to call concurrently.
pub trait Notifier: Send + Sync + 'static {
    fn send(&self, notice: &Notice) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// Writes every notice to the log at INFO, with its Slack channel, mentions
/// and GitLab actions. Titles of confidential issues are left out.
#[derive(Debug, Default, Clone)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    async fn send(&self, notice: &Notice) -> Result<(), NotifyError> {
        let slack = notice.slack.as_ref().map(|s| {
            let mentions: Vec<String> = s
                .mentions
                .iter()
                .map(|m| match m {
                    Mention::Group(group) => group.clone(),
                    Mention::Assignees => "assignees".to_owned(),
                })
                .collect();
            format!("channel={} mention=[{}]", s.channel, mentions.join(","))
        });
        let gitlab = notice.gitlab.as_ref().map(|g| {
            format!(
                "add_labels=[{}] remove_labels=[{}] comment={}",
                g.add_labels.join(","),
                g.remove_labels.join(","),
                g.comment
            )
        });
        let title = if notice.confidential {
            "(confidential)"
        } else {
            notice.title.as_str()
        };
        tracing::info!(
            issue = %notice.issue,
            policy = %notice.policy,
            step = %notice.firing.step,
            cycle = notice.firing.cycle,
            slack = slack.as_deref().unwrap_or("-"),
            gitlab = gitlab.as_deref().unwrap_or("-"),
            title,
            "notice: {}",
            notice.summary()
        );
        Ok(())
    }
}
