//! The notifier `serve --notifier slack` sends with: a step's GitLab part
//! (labels, comment) through the GitLab API, then its Slack part through
//! the Slack notifier.
//!
//! The GitLab part goes first because it is safe to repeat (labels are
//! set, not toggled; a comment is skipped when a note already carries the
//! step's marker). The Slack post, which is not, goes last: a retry after
//! any failure never posts twice.

use std::sync::Arc;

use super::{Delivered, DestinationHealth, Notice, Notifier, NotifyError, Thread};
use crate::gitlab::actions::IssueWriter;

pub struct Escalation<S> {
    slack: S,
    gitlab: IssueWriter,
}

impl<S: Notifier> Escalation<S> {
    pub fn new(slack: S, gitlab: IssueWriter) -> Self {
        Escalation { slack, gitlab }
    }
}

impl<S: Notifier> Escalation<S> {
    /// The GitLab part, safe to repeat.
    async fn apply_gitlab(&self, notice: &Notice) -> Result<(), NotifyError> {
        if notice.gitlab.is_none() {
            return Ok(());
        }
        self.gitlab.apply(notice).await.map_err(|error| {
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
        self.slack.send(&slack_part(notice), thread).await
    }

    async fn send_retaken(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        self.apply_gitlab(notice).await?;
        self.slack.send_retaken(&slack_part(notice), thread).await
    }

    async fn send_digest(
        &self,
        digest: &super::digest::Digest,
        thread: Option<&Thread>,
        retaken: bool,
    ) -> Result<super::digest::DigestSent, NotifyError> {
        self.slack.send_digest(digest, thread, retaken).await
    }

    fn health(&self) -> Option<Arc<DestinationHealth>> {
        self.slack.health()
    }
}
