//! The flow from a Slack alert thread to its GitLab issue: a resolve or
//! false-positive reaction, an acknowledgement (and its withdrawal) and,
//! where a policy asks, every reply, read from Slack and written on the
//! issue as notes ([`crate::gitlab::from_slack`] says how they read), with
//! the label or the close the policy asks for. It joins the two adapters:
//! it reads through [`crate::slack::api`] and writes through
//! [`crate::gitlab::actions`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::gitlab::GitLabError;
use crate::gitlab::actions::IssueWriter;
use crate::gitlab::from_slack::{Said, SlackMarker, note};
use crate::notice::Thread;
use crate::policy::PolicySet;
use crate::slack::SlackError;
use crate::slack::api::{ThreadReply, WebApi};
use crate::store::AlertThread;

#[derive(Debug, thiserror::Error)]
pub enum FromSlackError {
    #[error("reading the Slack thread: {0}")]
    Slack(#[from] SlackError),
    #[error(transparent)]
    GitLab(#[from] GitLabError),
}

impl FromSlackError {
    /// Worth trying again later.
    pub fn is_temporary(&self) -> bool {
        match self {
            FromSlackError::Slack(e) => e.is_temporary(),
            FromSlackError::GitLab(e) => e.is_temporary(),
        }
    }
}

/// What `user` said on `alert`'s thread, with no reply or time yet.
fn marker_of(said: Said, alert: &AlertThread, parent: &Thread, user: &str) -> SlackMarker {
    SlackMarker {
        said,
        policy: alert.policy.clone(),
        cycle: alert.cycle,
        thread: parent.clone(),
        by: user.to_owned(),
        reply: None,
        at: None,
    }
}

/// What came of acting on a reaction or reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The note was written (and the label added, the issue closed, as asked).
    Written,
    /// A note with the same marker was already there.
    AlreadyWritten,
    /// The policy does not ask for this.
    NotWanted,
    /// The thread's policy is no longer in the policy files.
    UnknownPolicy,
}

/// Reads the Slack thread and writes on the GitLab issue.
#[derive(Clone)]
pub struct SlackToGitLab {
    pub slack: WebApi,
    pub gitlab: IssueWriter,
    pub policies: Arc<PolicySet>,
}

impl SlackToGitLab {
    /// The resolve or false-positive reaction by `user` on the parent of
    /// `alert`'s thread: the note with their last reply, then the label
    /// or the close the policy asks for. Safe to repeat.
    pub async fn reaction(
        &self,
        alert: &AlertThread,
        parent: &Thread,
        said: Said,
        user: &str,
    ) -> Result<Outcome, FromSlackError> {
        let Some(policy) = self.policies.get(&alert.policy) else {
            return Ok(Outcome::UnknownPolicy);
        };
        let last_reply: Option<ThreadReply> = self
            .slack
            .replies(parent)
            .await?
            .into_iter()
            .filter(|reply| reply.user == user)
            .max_by(|a, b| slack_ts_order(&a.ts, &b.ts));
        let marker = SlackMarker {
            reply: last_reply.as_ref().map(|r| r.ts.clone()),
            ..marker_of(said, alert, parent, user)
        };
        let comment = last_reply.as_ref().map(|r| r.text.as_str());
        let outcome = self.write_once(alert, &marker, comment).await?;
        match said {
            Said::FalsePositive => {
                if let Some(label) = &policy.from_slack.false_positive_label {
                    self.gitlab
                        .edit_labels(&alert.issue, std::slice::from_ref(label), &[])
                        .await?;
                }
            }
            Said::Resolved if policy.from_slack.close_on_resolve => {
                self.gitlab.close(&alert.issue).await?;
            }
            Said::Resolved | Said::Reply | Said::Acknowledged | Said::Unacknowledged => {}
        }
        Ok(outcome)
    }

    /// A reply in `alert`'s thread, as an internal note if the policy
    /// mirrors replies. Safe to repeat.
    pub async fn reply(
        &self,
        alert: &AlertThread,
        parent: &Thread,
        user: &str,
        ts: &str,
        text: &str,
    ) -> Result<Outcome, FromSlackError> {
        let Some(policy) = self.policies.get(&alert.policy) else {
            return Ok(Outcome::UnknownPolicy);
        };
        if !policy.from_slack.mirror_replies {
            return Ok(Outcome::NotWanted);
        }
        let marker = SlackMarker {
            reply: Some(ts.to_owned()),
            ..marker_of(Said::Reply, alert, parent, user)
        };
        Ok(self.write_once(alert, &marker, Some(text)).await?)
    }

    /// The acknowledgement reaction added (`Said::Acknowledged`) or taken
    /// back (`Said::Unacknowledged`) by `user` at `at`. Safe to repeat.
    pub async fn acknowledgement(
        &self,
        alert: &AlertThread,
        parent: &Thread,
        said: Said,
        user: &str,
        at: DateTime<Utc>,
    ) -> Result<Outcome, FromSlackError> {
        let marker = SlackMarker {
            at: Some(at),
            ..marker_of(said, alert, parent, user)
        };
        Ok(self.write_once(alert, &marker, None).await?)
    }

    /// Writes the note unless one with the same marker is there already.
    async fn write_once(
        &self,
        alert: &AlertThread,
        marker: &SlackMarker,
        comment: Option<&str>,
    ) -> Result<Outcome, GitLabError> {
        let notes = self.gitlab.notes(&alert.issue).await?;
        if notes
            .iter()
            .any(|n| SlackMarker::find_all(&n.body).contains(marker))
        {
            return Ok(Outcome::AlreadyWritten);
        }
        let body = note(&self.policies.people, marker, comment);
        // Internal: what responders write in Slack stays with the team.
        self.gitlab.create_note(&alert.issue, &body, true).await?;
        Ok(Outcome::Written)
    }
}

/// Orders Slack `ts` values (`seconds.micros`) numerically.
fn slack_ts_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |ts: &str| {
        let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
        // Slack writes six digits; a shorter fraction is read as a decimal.
        let micros = format!("{fraction:0<6}");
        (
            seconds.parse::<u64>().unwrap_or(0),
            micros
                .get(..6)
                .and_then(|m| m.parse::<u64>().ok())
                .unwrap_or(0),
        )
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_timestamps_order_as_numbers() {
        // As strings, "999999999.…" (September 2001) sorts after
        // "1764000009.…"; as a pair of integers, "….5" before "….000100".
        let mut stamps = vec![
            "1764000010.000001",
            "999999999.999999",
            "1764000009.999999",
            "1764000010.000100",
            "1764000010.5",
        ];
        stamps.sort_by(|a, b| slack_ts_order(a, b));
        assert_eq!(
            stamps,
            vec![
                "999999999.999999",
                "1764000009.999999",
                "1764000010.000001",
                "1764000010.000100",
                "1764000010.5",
            ]
        );
    }
}
