//! What operators see of the outbox and do with it: the notices waiting or
//! refused for good (each refused one with a number to type), which of
//! them to send again, and which channels work again after refusing some.
//! `labelwarden outbox`, `/readyz`, the admin API and `serve
//! --resend-when-healthy` read and act through these.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::issue::IssueRef;
use crate::policy::PolicyName;

/// One notice in the outbox, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedNotice {
    /// Set once the notice was refused for good: what `--id` takes.
    pub id: Option<i64>,
    #[serde(serialize_with = "crate::issue::as_reference")]
    pub issue: IssueRef,
    pub policy: PolicyName,
    /// The step's id in the policy, and its kind (`start`, `breach`, …).
    pub step: String,
    pub step_kind: String,
    pub cycle: u32,
    /// The policy channel it is for; none for GitLab-only steps.
    pub channel: Option<String>,
    /// Confidential issues' titles are left out by whoever shows this
    /// where a non-private audience may read.
    pub title: String,
    pub confidential: bool,
    pub queued_at: DateTime<Utc>,
    pub attempts: u32,
    pub state: QueuedState,
    /// The last error met, if any.
    pub error: Option<String>,
    /// When it was last queued again by hand or on recovery.
    pub resent_at: Option<DateTime<Utc>>,
}

impl QueuedNotice {
    /// As any JSON answer shows it: a confidential issue's title left
    /// empty (`confidential` says why), as the clocks and stories do.
    pub fn redacted(self) -> Self {
        if self.confidential {
            QueuedNotice {
                title: String::new(),
                ..self
            }
        } else {
            self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum QueuedState {
    /// To be tried at this time.
    Waiting { next_attempt_at: DateTime<Utc> },
    /// Refused for good at this time; kept until resent.
    Failed { failed_at: DateTime<Utc> },
}

/// Which notices `outbox list` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub failed_only: bool,
    pub channel: Option<String>,
    pub policy: Option<String>,
}

/// Which failed notices to queue again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendSelection {
    /// Every failed notice for this policy channel.
    Channel(String),
    /// The failed notice with this number.
    Id(i64),
    /// Every failed notice.
    AllFailed,
}

/// Failed notices of one channel, and whether the channel has taken a
/// notice since the last of them failed (it works again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedChannel {
    pub channel: String,
    pub failed: i64,
    pub last_failed_at: DateTime<Utc>,
    pub works_again: bool,
}

impl FailedChannel {
    /// The command that queues this channel's failed notices again.
    pub fn resend_command(&self) -> String {
        format!("labelwarden outbox resend --channel {}", self.channel)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::issue::{IssueIid, ProjectPath};

    #[test]
    fn a_confidential_notice_s_title_is_left_out_of_answers() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 16, 0, 0).unwrap();
        let notice = QueuedNotice {
            id: Some(3),
            issue: IssueRef {
                project: ProjectPath("acme/backend".into()),
                iid: IssueIid(8),
            },
            policy: PolicyName("critical".into()),
            step: "start".into(),
            step_kind: "start".into(),
            cycle: 1,
            channel: Some("alerts".into()),
            title: "Token leak in billing".into(),
            confidential: true,
            queued_at: at,
            attempts: 1,
            state: QueuedState::Failed { failed_at: at },
            error: Some("is_archived".into()),
            resent_at: None,
        };
        let json = serde_json::to_string(&notice.clone().redacted()).unwrap();
        assert!(!json.contains("Token leak"), "{json}");
        assert!(json.contains("\"confidential\":true"), "{json}");
        let open = QueuedNotice {
            confidential: false,
            ..notice
        };
        assert_eq!(open.clone().redacted().title, "Token leak in billing");
    }
}
