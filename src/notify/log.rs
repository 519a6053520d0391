//! Notices written to the log instead of sent: [`LogNotifier`], for
//! running `serve` before Slack is configured (chosen explicitly, never a
//! silent default), and the log lines of a digest.

use super::{Notifier, NotifyError};
use crate::notice::{Delivered, Notice, Thread, digest};
use crate::policy::{GitLabStep, Mention};

/// Writes a digest to the log: its summary and a line per issue not
/// written before (titles of confidential issues left out).
pub(super) fn log_digest(digest: &digest::Digest, thread: Option<&Thread>) -> digest::DigestSent {
    let now = chrono::Utc::now();
    let tally = digest.tally(now);
    tracing::info!(
        channel = %digest.key.channel,
        policy = %digest.key.policy,
        issues = tally.total,
        past_deadline = tally.overdue,
        running = tally.running,
        paused = tally.paused,
        kind = digest.key.kind.as_str(),
        "digest: several issues said at once (adopted: already open when labelwarden started tracking them, their missed steps recorded, not sent; alerts: a group alert; reminders: still past their SLA)"
    );
    let mut progress = digest.progress;
    while let Some(part) = digest.next_part(progress, now, usize::MAX) {
        for item in &part.items {
            let notice = &item.notice;
            let title = if notice.confidential {
                "(confidential)"
            } else {
                notice.title.as_str()
            };
            tracing::info!(issue = %notice.issue, status = %notice.status, title, "digest: {}", notice.url);
        }
        progress = part.after;
    }
    progress.summarised = digest.summary_version();
    for pending in digest.notices.iter().filter(|n| !n.posted) {
        tracing::info!(issue = %pending.notice.issue, step = %pending.notice.step_kind, "digest: {}", pending.notice.summary());
    }
    digest::DigestSent {
        listed: digest
            .items
            .iter()
            .map(|item| (item.notice.issue.clone(), item.notice.firing.clone()))
            .collect(),
        posted: digest
            .notices
            .iter()
            .filter(|n| !n.posted)
            .map(|n| (n.notice.issue.clone(), n.notice.firing.clone()))
            .collect(),
        thread: thread.cloned(),
        progress,
        done: true,
    }
}

/// A step's GitLab actions in one line, for the log.
pub fn describe_gitlab(step: &GitLabStep) -> String {
    let mut line = format!(
        "add_labels=[{}] remove_labels=[{}] comment={}",
        step.add_labels.join(","),
        step.remove_labels.join(","),
        step.comment
    );
    if step.set_due_date {
        line.push_str(" set_due_date=true");
    }
    line
}

/// Writes every notice to the log at INFO, with its Slack channel, mentions
/// and GitLab actions. Titles of confidential issues are left out.
#[derive(Debug, Default, Clone)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    async fn send(
        &self,
        notice: &Notice,
        _thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        let slack = notice.slack.as_ref().map(|s| {
            let mentions: Vec<String> = s.mentions.iter().map(Mention::to_string).collect();
            format!("channel={} mention=[{}]", s.channel, mentions.join(","))
        });
        let gitlab = notice.gitlab.as_ref().map(describe_gitlab).or_else(|| {
            let write = notice.due_date.as_ref()?;
            Some(match write.to {
                Some(date) => format!("due_date={}", date.format("%Y-%m-%d")),
                None => "due_date=none".to_owned(),
            })
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
        Ok(Delivered::default())
    }
}
