//! Runs one case's story through the same clock and engine as `serve` and
//! `audit`, as if labelwarden had watched the issue from its creation and
//! never missed a beat: at every instant something happens or a step
//! falls due, every policy's clock is read, the engine says which steps
//! are due, and each is "sent" (recorded, with the Slack message rendered
//! as the Slack notifier would render it). Labels a step adds or removes
//! in GitLab change the issue at that instant, as they would in GitLab.
//!
//! Pure: no I/O, and time is the case's.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::compile::{Case, Happening};
use crate::clock::{self, ClockReading};
use crate::engine::{self, Ledger};
use crate::issue::{
    Event, Issue, IssueDetails, IssueFacts, IssueIid, IssueRef, IssueState, Milestone, ProjectPath,
    TimedEvent,
};
use crate::notice::{IssueView, Notice};
use crate::policy::{Audience, Mention, PolicyKind, PolicyName, PolicySet, SlackStep};
use crate::slack::message::{Message, Rendering};

/// The project test issues belong to, as messages show it.
pub const TEST_PROJECT: &str = "policy-tests/example";

/// One step as it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub at: DateTime<Utc>,
    pub policy: PolicyName,
    /// Carried out by an instant rule, not a clock policy's step.
    pub by_rule: bool,
    pub step: String,
    /// `None` for a step with no Slack part.
    pub channel: Option<String>,
    /// People groups by name, GitLab users as `@username`.
    pub mentions: Vec<String>,
    pub labels_added: Vec<String>,
    /// GitLab users it assigned, as `@username`.
    pub assigned: Vec<String>,
    pub labels_removed: Vec<String>,
    pub comment: bool,
    pub react: Option<String>,
    /// What the Slack message says (its fallback text and every text of
    /// its blocks); without one, a rule's comment as filled in; else empty.
    pub message: String,
    /// How long it waited for its quiet-hours calendar (`during:`), if it did.
    pub held_for_quiet_hours: Option<chrono::TimeDelta>,
}

/// Where the case's policy stood at one checkpoint.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub reading: ClockReading,
}

/// What happened over a whole case.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every step sent, in order.
    pub sent: Vec<Sent>,
    /// The case policy's clock at each checkpoint, in the checkpoints'
    /// order; empty when the case names no policy.
    pub snapshots: Vec<Snapshot>,
    /// Whether the case's policy is an instant rule; `None` when the case
    /// names none. A case about a rule checks the rules' actions, a case
    /// about a clock the clocks' steps.
    pub case_is_rule: Option<bool>,
}

/// The issue as it changes over the story.
struct Story<'a> {
    case: &'a Case,
    labels: Vec<String>,
    open: bool,
    assignees: Vec<String>,
    closed_at: Option<DateTime<Utc>>,
    events: Vec<TimedEvent>,
    /// When something last happened to the issue (`updated` conditions).
    updated_at: DateTime<Utc>,
}

impl Story<'_> {
    fn facts(&self) -> IssueFacts {
        IssueFacts {
            reference: IssueRef {
                project: ProjectPath(TEST_PROJECT.to_owned()),
                iid: IssueIid(1),
            },
            created_at: self.case.issue.created_at,
            state: if self.open {
                IssueState::Opened
            } else {
                IssueState::Closed
            },
            closed_at: self.closed_at,
            labels: self.labels.clone(),
            confidential: self.case.issue.confidential,
            issue_type: self.case.issue.issue_type.clone(),
            assignees: self.assignees.clone(),
            due_date: None,
            details: IssueDetails {
                author: self.case.issue.author.clone(),
                author_id: None,
                milestone: self.case.issue.milestone.clone().map(|title| Milestone {
                    id: Some(1),
                    title: Some(title),
                }),
                weight: self.case.issue.weight,
                updated_at: Some(self.updated_at),
            },
        }
    }

    fn issue(&self) -> Issue {
        Issue::new(self.facts(), self.events.clone())
    }

    fn add_label(&mut self, at: DateTime<Utc>, label: &str) {
        if !self.labels.iter().any(|l| l == label) {
            self.labels.push(label.to_owned());
            self.events.push(TimedEvent {
                at,
                event: Event::LabelAdded(label.to_owned()),
            });
        }
    }

    fn remove_label(&mut self, at: DateTime<Utc>, label: &str) {
        if self.labels.iter().any(|l| l == label) {
            self.labels.retain(|l| l != label);
            self.events.push(TimedEvent {
                at,
                event: Event::LabelRemoved(label.to_owned()),
            });
        }
    }

    /// Applies what the history says happens now.
    fn happen(&mut self, happening: &Happening) {
        let at = happening.at;
        self.updated_at = self.updated_at.max(at);
        for label in &happening.remove {
            self.remove_label(at, label);
        }
        for label in &happening.add {
            self.add_label(at, label);
        }
        if happening.close && self.open {
            self.open = false;
            self.closed_at = Some(at);
            self.events.push(TimedEvent {
                at,
                event: Event::Closed,
            });
        }
        if happening.reopen && !self.open {
            self.open = true;
            self.events.push(TimedEvent {
                at,
                event: Event::Reopened,
            });
        }
        self.assignees.retain(|a| !happening.unassign.contains(a));
        for user in &happening.assign {
            if !self.assignees.contains(user) {
                self.assignees.push(user.clone());
            }
        }
    }
}

/// Runs `case` under `set` up to its last checkpoint.
pub fn run(case: &Case, set: &PolicySet) -> Outcome {
    let mut story = Story {
        case,
        labels: case.issue.labels.clone(),
        open: true,
        assignees: case.issue.assignees.clone(),
        closed_at: None,
        events: Vec::new(),
        updated_at: case.issue.created_at,
    };
    let end = case
        .checkpoints
        .iter()
        .map(|c| c.at)
        .max()
        .unwrap_or(case.issue.created_at);
    let mut instants: BTreeSet<DateTime<Utc>> = case
        .history
        .iter()
        .map(|h| h.at)
        .chain(case.checkpoints.iter().map(|c| c.at))
        .collect();
    instants.insert(case.issue.created_at);
    let mut ledgers: BTreeMap<PolicyName, Ledger> = BTreeMap::new();
    let mut acknowledged: BTreeMap<PolicyName, Vec<u32>> = BTreeMap::new();
    // The thread each (policy, cycle, channel) has: its first message.
    let mut threads: BTreeSet<(PolicyName, u32, String)> = BTreeSet::new();
    let mut outcome = Outcome {
        case_is_rule: case
            .policy
            .as_ref()
            .and_then(|name| set.get(name))
            .map(|policy| policy.kind == PolicyKind::Rule),
        ..Outcome::default()
    };

    while let Some(now) = instants.pop_first() {
        if now > end {
            break;
        }
        for happening in case.history.iter().filter(|h| h.at == now) {
            story.happen(happening);
            if happening.acknowledge {
                let issue = story.issue();
                for policy in &set.policies {
                    let reading = clock::read(&issue, policy, now);
                    if reading.cycle > 0 && reading.is_live() {
                        acknowledged
                            .entry(policy.name.clone())
                            .or_default()
                            .push(reading.cycle);
                    }
                }
            }
        }
        // Labels a step changes can make other steps due at once; a few
        // rounds settle it (a policy set that never settles is cut short).
        for _round in 0..8 {
            let issue = story.issue();
            let mut label_changes = Vec::new();
            let mut assigned_any = false;
            for policy in &set.policies {
                let reading = clock::read(&issue, policy, now);
                let ledger = ledgers.entry(policy.name.clone()).or_default();
                let acks = acknowledged.get(&policy.name).cloned().unwrap_or_default();
                let decision =
                    engine::decide(policy, &reading, &ledger.clone().with_acknowledged(acks));
                if let Some(wake) = decision.next_wake.filter(|wake| *wake > now) {
                    instants.insert(wake);
                }
                for action in decision.actions {
                    ledger.record(action.firing.clone());
                    let view = IssueView {
                        facts: issue.facts(),
                        title: &case.issue.title,
                        url: &format!("https://gitlab.example.com/{TEST_PROJECT}/-/issues/1"),
                    };
                    let notice = Notice::new(view, &policy.name, &action, &reading, now);
                    let (channel, message) = match &action.slack {
                        Some(step) => {
                            let key = (policy.name.clone(), reading.cycle, step.channel.clone());
                            let threaded = !threads.insert(key);
                            (
                                Some(step.channel.clone()),
                                render(set, step, &notice, threaded, now),
                            )
                        }
                        // A rule's comment is what it says.
                        None => (
                            None,
                            action
                                .gitlab
                                .as_ref()
                                .and_then(|step| step.comment_text.as_deref())
                                .map(|text| crate::gitlab::actions::fill_comment(text, &notice))
                                .unwrap_or_default(),
                        ),
                    };
                    let gitlab = action.gitlab.clone().unwrap_or_default();
                    // As GitLab would: only an issue nobody owns is assigned.
                    let assigned = if story.assignees.is_empty() {
                        gitlab.assign.clone()
                    } else {
                        Vec::new()
                    };
                    story.assignees.extend(assigned.iter().cloned());
                    assigned_any |= !assigned.is_empty();
                    label_changes.push(gitlab.clone());
                    outcome.sent.push(Sent {
                        at: now,
                        policy: policy.name.clone(),
                        by_rule: policy.kind == PolicyKind::Rule,
                        step: action.firing.step.0.clone(),
                        channel,
                        mentions: action
                            .slack
                            .as_ref()
                            .map(|step| mentions(set, step, &story.assignees, now))
                            .unwrap_or_default(),
                        labels_added: gitlab.add_labels,
                        assigned: assigned.iter().map(|u| format!("@{u}")).collect(),
                        labels_removed: gitlab.remove_labels,
                        comment: gitlab.comment,
                        react: action.slack.as_ref().and_then(|s| s.react.clone()),
                        message,
                        held_for_quiet_hours: action
                            .held_for_quiet_hours
                            .then(|| now - action.due_at),
                    });
                }
            }
            let changed = label_changes
                .iter()
                .any(|g| !g.add_labels.is_empty() || !g.remove_labels.is_empty());
            for change in label_changes {
                for label in &change.remove_labels {
                    story.remove_label(now, label);
                }
                for label in &change.add_labels {
                    story.add_label(now, label);
                }
            }
            if !changed && !assigned_any {
                break;
            }
        }
        if let Some(policy) = case.policy.as_ref().and_then(|name| set.get(name)) {
            let issue = story.issue();
            for _ in case.checkpoints.iter().filter(|c| c.at == now) {
                outcome.snapshots.push(Snapshot {
                    reading: clock::read(&issue, policy, now),
                });
            }
        }
    }
    outcome
}

/// Who a Slack step tags, as a test names them: people groups by name,
/// GitLab users (assignees, whoever is on call at `now`) as `@username`.
/// A users' channel tags nobody.
fn mentions(
    set: &PolicySet,
    step: &SlackStep,
    assignees: &[String],
    now: DateTime<Utc>,
) -> Vec<String> {
    let users_channel = set
        .channels
        .get(&step.channel)
        .is_some_and(|c| c.audience == Audience::Users);
    if users_channel {
        return Vec::new();
    }
    let mut tagged: Vec<String> = Vec::new();
    for mention in &step.mentions {
        match mention {
            Mention::Group(group) => tagged.push(group.clone()),
            Mention::Assignees if assignees.is_empty() => {
                tagged.push("(nobody assigned)".to_owned())
            }
            Mention::Assignees => tagged.extend(assignees.iter().map(|a| format!("@{a}"))),
            Mention::OnCall { rotation, role } => {
                if let Some(rotation) = set.people.rotations.get(rotation) {
                    tagged.push(format!("@{}", rotation.on_call(*role, now)));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    tagged.retain(|tag| seen.insert(tag.clone()));
    tagged
}

/// The Slack message as the notifier renders it: a thread's first
/// message, a reply in it, or (a resolution that only reacts) the first
/// message rewritten as resolved.
fn render(
    set: &PolicySet,
    step: &SlackStep,
    notice: &Notice,
    threaded: bool,
    now: DateTime<Utc>,
) -> String {
    let Some(channel) = set.channels.get(&step.channel) else {
        return String::new();
    };
    let rendering = Rendering {
        notice,
        channel,
        people: &set.people,
        now,
    };
    let mut said = Vec::new();
    if threaded && notice.step_kind == "resolved" {
        said.push(rendering.resolved_parent());
    }
    if step.post || !threaded {
        said.push(if threaded {
            rendering.reply().message
        } else {
            rendering.parent().message
        });
    }
    said.iter().map(message_text).collect::<Vec<_>>().join("\n")
}

/// A message's fallback text and every text in its blocks.
fn message_text(message: &Message) -> String {
    fn texts(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        Value::String(text) if key == "text" => into.push(text.clone()),
                        other => texts(other, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| texts(item, into)),
            _ => {}
        }
    }
    let mut all = vec![message.text.clone()];
    message
        .blocks
        .iter()
        .for_each(|block| texts(block, &mut all));
    all.join("\n")
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::scenario::compile::{Checkpoint, TestIssue, default_created_at};
    use crate::test_support::policy_set;

    const POLICIES: &str = r#"
channels:
  alerts: { slack_channel: "C0ALERTS01" }
people:
  contacts: ["<@U0CONTACT1>"]
policies:
  - name: critical
    match: { labels_any: ["p1"] }
    clock: { target: 2h, stops: closed }
    escalation:
      - on: start
        slack: { channel: alerts, mention: [contacts] }
      - on: { after_start: 30m, unless: acknowledged }
        slack: { channel: alerts, mention: [assignees] }
      - on: breach
        gitlab: { add_labels: ["missed::SLA"] }
  # Matches once the breach label is on: fires in the same instant.
  - name: missed
    match: { labels_any: ["missed::SLA"] }
    clock: { target: 1d }
    escalation:
      - on: start
        slack: { channel: alerts }
"#;

    fn case(history: Vec<Happening>, until: TimeDelta) -> Case {
        let created = default_created_at();
        Case {
            name: "story".into(),
            at: crate::policy::SourceLocation {
                file: std::sync::Arc::new("t.yml".into()),
                line: 1,
                column: 1,
            },
            policy: Some(PolicyName("critical".into())),
            issue: TestIssue {
                labels: vec!["p1".into()],
                issue_type: "issue".into(),
                confidential: false,
                assignees: vec![],
                created_at: created,
                title: "Broken".into(),
                author: None,
                milestone: None,
                weight: None,
            },
            history,
            checkpoints: vec![Checkpoint {
                at: created + until,
                written: "end".into(),
                line: 1,
                status: None,
                deadline: None,
                remaining: None,
                overdue: None,
                sent: None,
            }],
        }
    }

    fn steps(outcome: &Outcome) -> Vec<(i64, &str, &str)> {
        let created = default_created_at();
        outcome
            .sent
            .iter()
            .map(|s| {
                (
                    (s.at - created).num_minutes(),
                    s.policy.0.as_str(),
                    s.step.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn steps_fire_at_their_instants_and_a_label_a_step_adds_changes_the_issue() {
        let set = policy_set(POLICIES);
        let outcome = run(&case(Vec::new(), TimeDelta::hours(3)), &set);
        assert_eq!(
            steps(&outcome),
            [
                (0, "critical", "start"),
                (30, "critical", "after_start:30m:unless:acknowledged"),
                (120, "critical", "breach"),
                (120, "missed", "start"),
            ]
        );
        assert_eq!(outcome.sent[2].labels_added, ["missed::SLA"]);
        assert_eq!(outcome.sent[1].mentions, ["(nobody assigned)"]);
        assert_eq!(outcome.snapshots.len(), 1);
        assert_eq!(outcome.snapshots[0].reading.status().kind(), "breached");
    }

    #[test]
    fn conditions_beyond_labels_follow_the_story_s_assignees_and_age() {
        let set = policy_set(concat!(
            "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
            "policies:\n",
            "  - name: critical\n",
            "    match: { labels_any: [\"p1\"], assignees: none }\n",
            "    clock: { target: 15m }\n",
            "    escalation:\n      - on: breach\n        slack: { channel: alerts }\n",
            "  - name: old\n",
            "    match: { labels_any: [\"p1\"], created: { older_than: 1h } }\n",
            "    clock: { target: 1h }\n",
            "    escalation:\n      - on: start\n        slack: { channel: alerts }\n",
        ));
        let unowned = run(&case(Vec::new(), TimeDelta::hours(2)), &set);
        assert_eq!(
            steps(&unowned),
            [(15, "critical", "breach"), (60, "old", "start")]
        );
        let assigned = Happening {
            at: default_created_at() + TimeDelta::minutes(10),
            assign: vec!["ada".into()],
            ..Happening::default()
        };
        let owned = run(&case(vec![assigned], TimeDelta::hours(2)), &set);
        assert_eq!(steps(&owned), [(60, "old", "start")]);
    }

    #[test]
    fn an_acknowledgement_holds_back_the_unless_acknowledged_step() {
        let set = policy_set(POLICIES);
        let acknowledged = Happening {
            at: default_created_at() + TimeDelta::minutes(10),
            acknowledge: true,
            ..Happening::default()
        };
        let outcome = run(&case(vec![acknowledged], TimeDelta::hours(1)), &set);
        assert_eq!(steps(&outcome), [(0, "critical", "start")]);
    }

    #[test]
    fn the_message_is_rendered_as_slack_shows_it() {
        let set = policy_set(POLICIES);
        let outcome = run(&case(Vec::new(), TimeDelta::minutes(1)), &set);
        let start = &outcome.sent[0];
        assert!(start.message.contains("Broken"), "{}", start.message);
        assert!(start.message.contains("<@U0CONTACT1>"), "{}", start.message);
        assert_eq!(start.mentions, ["contacts"]);
    }
}
