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
        },
        events: Vec::new(),
    }
}

impl IssueBuilder {
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

    pub fn build(self) -> Issue {
        Issue::new(self.facts, self.events)
    }
}
