//! Mutes: a policy, a channel or a project silenced until a time, for a
//! maintenance window or a known outage. Notices that fall due while
//! muted are recorded, not sent; clocks keep running (a mute silences, it
//! never pauses an SLA); when the mute ends, what happened meanwhile is
//! said once per channel. Mutes live in the store, so every replica and
//! every command sees the same ones.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::notice::Notice;

pub use crate::policy::maintenance::MuteScope;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mute {
    pub id: i64,
    pub scope: MuteScope,
    /// The policy's, channel's or project's name.
    pub target: String,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// When its end was summarised; none while it lasts.
    pub summarised_at: Option<DateTime<Utc>>,
    /// The maintenance window occurrence that opened it (see
    /// [`crate::policy::maintenance::Maintenance::origin`]); none for a
    /// mute added by hand.
    pub origin: Option<String>,
}

/// The mute a maintenance window's occurrence opens.
#[derive(Debug, Clone, Copy)]
pub struct WindowMute<'a> {
    pub scope: MuteScope,
    pub target: &'a str,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: &'a str,
    /// The occurrence's key: one mute per occurrence across replicas.
    pub origin: &'a str,
}

impl Mute {
    /// Whether it silences `notice` at `now`.
    pub fn covers(&self, notice: &Notice, now: DateTime<Utc>) -> bool {
        now < self.until
            && self.scope.covers(
                &self.target,
                &notice.policy.0,
                notice.slack.as_ref().map(|s| s.channel.as_str()),
                &notice.issue.project.0,
            )
    }

    /// `policy critical-bugs`, as people read it.
    pub fn describe(&self) -> String {
        format!("{} `{}`", self.scope.as_str(), self.target)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::engine::Firing;
    use crate::issue::{IssueIid, IssueRef, ProjectPath};
    use crate::notice::SlaFacts;
    use crate::policy::{PolicyName, SlackStep, StepId};

    fn mute(scope: MuteScope, target: &str, until: DateTime<Utc>) -> Mute {
        Mute {
            id: 3,
            scope,
            target: target.to_owned(),
            until,
            reason: "failover drill".to_owned(),
            created_at: until - TimeDelta::hours(2),
            summarised_at: None,
            origin: None,
        }
    }

    fn notice(at: DateTime<Utc>) -> Notice {
        Notice {
            issue: IssueRef {
                project: ProjectPath("acme/backend".into()),
                iid: IssueIid(7),
            },
            title: "Checkout fails".into(),
            url: "https://gitlab.example.com/acme/backend/-/issues/7".into(),
            confidential: false,
            labels: vec![],
            assignees: vec![],
            policy: PolicyName("critical".into()),
            firing: Firing {
                step: StepId("breach".into()),
                cycle: 1,
                occurrence: 1,
            },
            step_kind: "breach".into(),
            due_at: at,
            decided_at: at,
            late_by_ms: None,
            late_because: None,
            undelivered: None,
            status: "breached".into(),
            deadline: Some(at),
            sla: SlaFacts::default(),
            slack: Some(SlackStep {
                channel: "alerts".into(),
                mentions: vec![],
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

    #[test]
    fn a_mute_covers_its_policy_channel_or_project_until_it_ends() {
        let until = Utc.with_ymd_and_hms(2026, 11, 29, 16, 0, 0).unwrap();
        let before = until - TimeDelta::minutes(1);
        let notice = notice(before);
        assert!(mute(MuteScope::Policy, "critical", until).covers(&notice, before));
        assert!(mute(MuteScope::Channel, "alerts", until).covers(&notice, before));
        assert!(mute(MuteScope::Project, "acme/backend", until).covers(&notice, before));
        assert!(!mute(MuteScope::Policy, "triage-72h", until).covers(&notice, before));
        assert!(!mute(MuteScope::Channel, "triage", until).covers(&notice, before));
        assert!(!mute(MuteScope::Project, "acme/frontend", until).covers(&notice, before));
        assert!(
            !mute(MuteScope::Policy, "critical", until).covers(&notice, until),
            "over at its end"
        );
        let gitlab_only = Notice {
            slack: None,
            ..notice.clone()
        };
        assert!(!mute(MuteScope::Channel, "alerts", until).covers(&gitlab_only, before));
    }
}
