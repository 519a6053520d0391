//! The notifier `serve --notifier slack` sends with when it has a GitLab
//! token, a flow that joins the two adapters: a step's GitLab part
//! (labels, comment) through the GitLab API, then its Slack part through
//! the Slack notifier.
//!
//! The GitLab part goes first because it is safe to repeat (labels are
//! set, not toggled; a comment is skipped when a note already carries the
//! step's marker). The Slack post, which is not, goes last: a retry after
//! any failure never posts twice. Once a step is out, its marker (with the
//! Slack thread) is listed on the issue's ledger note, batched, so that a
//! scheduled `audit --notify` knows what `serve` did.

use std::sync::Arc;

use crate::engine::Firing;
use crate::gitlab::actions::IssueWriter;
use crate::gitlab::ledger_writer::LedgerWriter;
use crate::gitlab::markers::Marker;
use crate::issue::IssueRef;
use crate::notice::{Delivered, Notice, Thread};
use crate::notify::{DestinationHealth, Notifier, NotifyError};
use crate::policy::PolicyName;

pub struct Escalation<S> {
    slack: S,
    gitlab: IssueWriter,
    ledger: LedgerWriter,
}

impl<S: Notifier> Escalation<S> {
    /// Starts the ledger writer too (within a Tokio runtime).
    pub fn new(slack: S, gitlab: IssueWriter) -> Self {
        let ledger = LedgerWriter::start(gitlab.clone());
        Escalation {
            slack,
            gitlab,
            ledger,
        }
    }

    /// Lists a step that is out on its issue's ledger note.
    fn record(
        &self,
        issue: &IssueRef,
        policy: &PolicyName,
        firing: &Firing,
        channel: Option<&str>,
        thread: Option<&Thread>,
    ) {
        self.ledger.record(
            issue.clone(),
            Marker {
                policy: policy.clone(),
                firing: firing.clone(),
                channel: channel.map(str::to_owned),
                thread: thread.cloned(),
            },
        );
    }

    /// Records a notice that went out. A comment carried to the thread is
    /// no step of the policy: it stays off the ledger note (which would
    /// otherwise grow by a line per comment).
    fn sent(&self, notice: &Notice, delivered: &Delivered) {
        if notice.comment.is_some() {
            return;
        }
        let channel = notice.slack.as_ref().map(|s| s.channel.as_str());
        let thread = channel.and(delivered.thread.as_ref());
        self.record(
            &notice.issue,
            &notice.policy,
            &notice.firing,
            channel,
            thread,
        );
    }
}

impl<S: Notifier> Escalation<S> {
    /// The GitLab part, safe to repeat.
    async fn apply_gitlab(&self, notice: &Notice) -> Result<(), NotifyError> {
        if notice.gitlab.is_none() && notice.due_date.is_none() {
            return Ok(());
        }
        self.gitlab.apply(notice).await.map_err(|error| {
            if let Some(lost) = error.claim_lost() {
                return NotifyError::ClaimLost(lost.clone());
            }
            tracing::warn!(error = %error, "GitLab action failed");
            metrics::counter!("labelwarden_gitlab_actions_failed_total", "policy" => notice.policy.0.clone())
                .increment(1);
            if error.is_temporary() {
                NotifyError::Temporary {
                    message: format!("GitLab: {error}"),
                    retry_after: None,
                }
            } else {
                NotifyError::Permanent(format!("GitLab: {error}"))
            }
        })
    }
}

/// The notice without its GitLab part, for the Slack notifier.
fn slack_part(notice: &Notice) -> Notice {
    Notice {
        gitlab: None,
        ..notice.clone()
    }
}

impl<S: Notifier> Notifier for Escalation<S> {
    async fn send(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        self.apply_gitlab(notice).await?;
        let delivered = self.slack.send(&slack_part(notice), thread).await?;
        self.sent(notice, &delivered);
        Ok(delivered)
    }

    async fn send_retaken(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        self.apply_gitlab(notice).await?;
        let delivered = self.slack.send_retaken(&slack_part(notice), thread).await?;
        self.sent(notice, &delivered);
        Ok(delivered)
    }

    async fn send_digest(
        &self,
        digest: &crate::notice::digest::Digest,
        thread: Option<&Thread>,
        retaken: bool,
    ) -> Result<crate::notice::digest::DigestSent, NotifyError> {
        let sent = self.slack.send_digest(digest, thread, retaken).await?;
        // What the digest said for each issue. A group alert's thread is
        // its members' thread from now on; a reminder digest only lists
        // them, so their markers keep pointing at their own threads.
        let key = &digest.key;
        let members_thread = if key.kind.carries_later_steps() {
            sent.thread.as_ref()
        } else {
            None
        };
        for (issue, firing) in sent.listed.iter().chain(&sent.posted) {
            self.record(
                issue,
                &key.policy,
                firing,
                Some(&key.channel),
                members_thread,
            );
        }
        Ok(sent)
    }

    async fn send_summary(&self, channel: &str, text: &str, key: &str) -> Result<(), NotifyError> {
        self.slack.send_summary(channel, text, key).await
    }

    async fn comment_instead(&self, notice: &Notice) -> Result<(), NotifyError> {
        let note = notice
            .undelivered
            .as_ref()
            .map(|u| u.describe(String::new()))
            .unwrap_or_default();
        let body = format!("**labelwarden**: {}\n\n{note}", notice.summary());
        self.gitlab
            .create_note(&notice.issue, &body, true)
            .await
            .map(|_| ())
            .map_err(|error| match error.claim_lost() {
                Some(lost) => NotifyError::ClaimLost(lost.clone()),
                None => NotifyError::Permanent(format!("GitLab: {error}")),
            })
    }

    async fn flush(&self) {
        self.ledger.flush().await;
    }

    fn record_done(&self, notice: &Notice) {
        self.record(&notice.issue, &notice.policy, &notice.firing, None, None);
    }

    fn health(&self) -> Option<Arc<DestinationHealth>> {
        self.slack.health()
    }
}
