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

impl<S: Notifier> Notifier for Escalation<S> {
    async fn send(
        &self,
        notice: &Notice,
        thread: Option<&Thread>,
    ) -> Result<Delivered, NotifyError> {
        if notice.gitlab.is_some()
            && let Err(error) = self.gitlab.apply(notice).await
        {
            tracing::warn!(error = %error, "GitLab action failed");
            metrics::counter!("labelwarden_gitlab_actions_failed_total", "policy" => notice.policy.0.clone())
                .increment(1);
            return Err(if error.is_temporary() {
                NotifyError::Temporary {
                    message: format!("GitLab: {error}"),
                    retry_after: None,
                }
            } else {
                NotifyError::Permanent(format!("GitLab: {error}"))
            });
        }
        let slack_part = Notice {
            gitlab: None,
            ..notice.clone()
        };
        self.slack.send(&slack_part, thread).await
    }

    fn health(&self) -> Option<Arc<DestinationHealth>> {
        self.slack.health()
    }
}
