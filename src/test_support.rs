//! Builders shared by the core's unit tests: policies written as YAML (the
//! way users write them) and issues with a timeline in minutes from a fixed
//! origin, so a test reads like the story it checks.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use crate::issue::{
    Event, Issue, IssueFacts, IssueIid, IssueRef, IssueState, ProjectPath, TimedEvent,
};
use crate::policy::validate::ParsedFile;
use crate::policy::{Policy, PolicySet, file, validate};

/// Channels and people that test policies may refer to.
const SHARED: &str = r#"
channels:
  alerts: { slack_channel: "C0ALERTS01" }
people:
  contacts: ["<@U0CONTACT1>"]
"#;

/// The instant `minutes` after the tests' origin.
pub fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + chrono::TimeDelta::minutes(minutes)
}

/// Parses and validates a whole policy file, panicking with the errors.
pub fn policy_set(yaml: &str) -> PolicySet {
    let path = Path::new("test.yml");
    let content = file::parse(path, yaml).unwrap_or_else(|e| panic!("{e}"));
    validate(vec![ParsedFile {
        path: Arc::new(path.to_owned()),
        content,
    }])
    .unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// One policy from the YAML of a list item under `policies:` (indented by
/// two spaces), with the shared channels and people available.
pub fn policy(item: &str) -> Policy {
    let yaml = format!("{SHARED}policies:\n{item}");
    policy_set(&yaml).policies.remove(0)
}

#[derive(Clone)]
pub struct IssueBuilder {
    facts: IssueFacts,
    events: Vec<TimedEvent>,
}

/// An open, non-confidential issue created at `t(0)` with these labels;
/// the events added later change its labels and state as GitLab would.
pub fn issue(labels: &[&str]) -> IssueBuilder {
    IssueBuilder {
        facts: IssueFacts {
            reference: IssueRef {
                project: ProjectPath("acme/app".into()),
                iid: IssueIid(42),
            },
            created_at: t(0),
            state: IssueState::Opened,
            closed_at: None,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            confidential: false,
            issue_type: "issue".into(),
            assignees: vec!["jdoe".into()],
            due_date: None,
            details: Default::default(),
        },
        events: Vec::new(),
    }
}

impl IssueBuilder {
    pub fn iid(mut self, iid: u64) -> Self {
        self.facts.reference.iid = IssueIid(iid);
        self
    }

    pub fn added(mut self, minute: i64, label: &str) -> Self {
        self.facts.labels.push(label.into());
        self.events.push(TimedEvent {
            at: t(minute),
            event: Event::LabelAdded(label.into()),
        });
        self
    }

    pub fn removed(mut self, minute: i64, label: &str) -> Self {
        self.facts.labels.retain(|l| l != label);
        self.events.push(TimedEvent {
            at: t(minute),
            event: Event::LabelRemoved(label.into()),
        });
        self
    }

    /// Closed at `minute`; events must be given in time order.
    pub fn closed(mut self, minute: i64) -> Self {
        self.events.push(TimedEvent {
            at: t(minute),
            event: Event::Closed,
        });
        self.facts.state = IssueState::Closed;
        self
    }

    pub fn reopened(mut self, minute: i64) -> Self {
        self.events.push(TimedEvent {
            at: t(minute),
            event: Event::Reopened,
        });
        self.facts.state = IssueState::Opened;
        self
    }

    pub fn confidential(mut self) -> Self {
        self.facts.confidential = true;
        self
    }

    /// Assigned to these GitLab users now (`[]`: nobody).
    pub fn assigned(mut self, users: &[&str]) -> Self {
        self.facts.assignees = users.iter().map(|u| u.to_string()).collect();
        self
    }

    pub fn author(mut self, username: &str) -> Self {
        self.facts.details.author = Some(username.into());
        self
    }

    /// In the milestone of this title (id 1).
    pub fn milestone(mut self, title: &str) -> Self {
        self.facts.details.milestone = Some(crate::issue::Milestone {
            id: Some(1),
            title: Some(title.into()),
        });
        self
    }

    pub fn weight(mut self, weight: u32) -> Self {
        self.facts.details.weight = Some(weight);
        self
    }

    /// Last updated at `minute`.
    pub fn updated(mut self, minute: i64) -> Self {
        self.facts.details.updated_at = Some(t(minute));
        self
    }

    pub fn build(self) -> Issue {
        Issue::new(self.facts, self.events)
    }
}

/// An issue as `audit` reads it from GitLab.
pub fn fetched(issue: Issue) -> crate::gitlab::history::FetchedIssue {
    crate::gitlab::history::FetchedIssue {
        issue,
        title: "Checkout broken".into(),
        url: "https://gitlab.example.com/acme/app/-/issues/42".into(),
        updated_at: t(0),
        ids: Default::default(),
    }
}

/// The marker of policy `critical`'s start step in cycle 1, as labelwarden
/// leaves it on an issue.
pub fn start_marker() -> crate::gitlab::markers::Marker {
    crate::gitlab::markers::Marker {
        policy: crate::policy::PolicyName("critical".into()),
        firing: crate::engine::Firing {
            step: crate::policy::StepId("start".into()),
            cycle: 1,
            occurrence: 1,
        },
        channel: None,
        thread: None,
    }
}

/// Random histories for property tests: one label that matches the test
/// policies, one that pauses them, one that does neither.
pub mod histories {
    use proptest::prelude::*;

    use super::{IssueBuilder, issue};

    pub const MATCHING: &str = "priority::highest";
    pub const PAUSING: &str = "blocked::upstream";
    pub const OTHER: &str = "frontend";

    #[derive(Debug, Clone, Copy)]
    pub enum Change {
        Add(&'static str),
        Remove(&'static str),
        Close,
        Reopen,
    }

    pub fn change() -> impl Strategy<Value = Change> {
        let label = || prop::sample::select(vec![MATCHING, PAUSING, OTHER]);
        prop_oneof![
            3 => label().prop_map(Change::Add),
            2 => label().prop_map(Change::Remove),
            1 => Just(Change::Close),
            1 => Just(Change::Reopen),
        ]
    }

    /// Up to a dozen changes, at least a minute apart, from minute 1 on.
    pub fn history() -> impl Strategy<Value = Vec<(i64, Change)>> {
        prop::collection::vec((1i64..120, change()), 0..12).prop_map(|raw| {
            let mut minute = 0;
            raw.into_iter()
                .map(|(gap, change)| {
                    minute += gap;
                    (minute, change)
                })
                .collect()
        })
    }

    pub fn initial_labels() -> impl Strategy<Value = Vec<&'static str>> {
        prop::sample::subsequence(vec![MATCHING, PAUSING, OTHER], 0..=3)
    }

    /// An issue built from a history, and the labels and state it ends with.
    /// Changes that make no sense at their point (closing a closed issue,
    /// adding a label it has) are dropped, as GitLab would record nothing.
    pub struct Applied {
        pub builder: IssueBuilder,
        pub labels: Vec<&'static str>,
        pub open: bool,
    }

    pub fn apply(initial: &[&'static str], history: &[(i64, Change)]) -> Applied {
        let mut applied = Applied {
            builder: issue(initial),
            labels: initial.to_vec(),
            open: true,
        };
        for &(minute, change) in history {
            let Applied {
                builder,
                labels,
                open,
            } = &mut applied;
            let next = std::mem::replace(builder, issue(&[]));
            *builder = match change {
                Change::Add(l) if !labels.contains(&l) => {
                    labels.push(l);
                    next.added(minute, l)
                }
                Change::Remove(l) if labels.contains(&l) => {
                    labels.retain(|x| *x != l);
                    next.removed(minute, l)
                }
                Change::Close if *open => {
                    *open = false;
                    next.closed(minute)
                }
                Change::Reopen if !*open => {
                    *open = true;
                    next.reopened(minute)
                }
                _ => next,
            };
        }
        applied
    }
}

/// The kinds of the fired steps that still have a Slack message of their
/// own (not adopted or grouped away), in order.
pub fn slack_steps(fired: &[crate::store::Fired]) -> Vec<String> {
    fired
        .iter()
        .filter(|f| f.notice.slack.is_some())
        .map(|f| f.notice.step_kind.clone())
        .collect()
}
