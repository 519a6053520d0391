//! Drills: a synthetic incident run through a policy's real escalation on
//! a compressed clock, so that the team can rehearse the path (the alert,
//! the acknowledgement, the on-call escalation, the resolution) without a
//! real incident. `labelwarden drill` runs it; this module is its pure
//! part: the policy as the drill runs it, the synthetic issue, which steps
//! are due, and what the summary says.
//!
//! A drill's policy is the policy with every duration divided by the
//! speed (its target, `before_deadline`, `after_start` and `every`), its
//! Slack steps in the channels the team reads, and nothing for GitLab:
//! there is no issue to write on, and the summary lists what the GitLab
//! parts would have done. Working-hours calendars and quiet hours are not
//! applied: a compressed working day means nothing. The incident ends
//! when somebody reacts with the resolve reaction on its alert, whatever
//! the policy's stop condition, or once its breach is said.

pub mod run;
mod summary;

use chrono::{DateTime, TimeDelta, Utc};

pub use summary::{Secondary, Summary};

use crate::clock::{self, Phase};
use crate::engine::{self, Ledger};
use crate::issue::{
    Event, Issue, IssueFacts, IssueIid, IssueRef, IssueState, ProjectPath, TimedEvent,
};
use crate::notice::{IssueView, Notice};
use crate::policy::selector::Selector;
use crate::policy::{
    Audience, ClockRule, Mention, Pattern, Policy, PolicyKind, PolicySet, Role, StepId, StopRule,
    Trigger, duration,
};

/// The label the synthetic issue carries, and the only thing the drill's
/// policy matches on.
pub const DRILL_LABEL: &str = "labelwarden::drill";
/// A compressed target shorter than this leaves nobody time to react.
pub const SHORTEST_TARGET: TimeDelta = TimeDelta::seconds(10);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DrillError {
    #[error("no policy named `{name}`; the policies are: {known}")]
    UnknownPolicy { name: String, known: String },
    #[error("`{0}` is a rule, which has no clock to rehearse; drill one of the policies")]
    Rule(String),
    #[error("--speed must be at least 1")]
    Speed,
    #[error(
        "at --speed {speed} the {target} target of `{policy}` lasts {compressed}: too short to react in (at least {shortest}); use a lower --speed"
    )]
    TooFast {
        policy: String,
        speed: u32,
        target: String,
        compressed: String,
        shortest: String,
    },
    #[error(
        "`{0}` posts nothing in a channel the team reads (users' channels are left out of drills, so that users never hear of a bug that does not exist)"
    )]
    NothingToPost(String),
}

/// A step the drill said: which, when, where, and whom it tagged.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub step: StepId,
    pub kind: &'static str,
    pub at: DateTime<Utc>,
    pub channel: Option<String>,
    pub mentions: Vec<Mention>,
}

/// Somebody's reaction on the alert: who (a Slack user id) and when it
/// was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Reacted {
    pub user: String,
    pub at: DateTime<Utc>,
}

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Somebody reacted with the resolve reaction, and the policy's
    /// resolution step (if any) was said.
    Resolved,
    /// The compressed deadline passed and its breach was said.
    Breached,
    /// Stopped before either (interrupted, or Slack refused the alert).
    Stopped,
}

/// One drill: the compressed policy, the synthetic issue's story so far,
/// what was said and who reacted.
#[derive(Debug, Clone)]
pub struct Drill {
    /// The policy as written, for names and real durations.
    pub original: Policy,
    /// The policy as the drill runs it.
    pub policy: Policy,
    pub speed: u32,
    pub started_at: DateTime<Utc>,
    facts: IssueFacts,
    title: String,
    url: String,
    ledger: Ledger,
    pub said: Vec<Said>,
    pub acknowledged: Option<Reacted>,
    pub resolved: Option<Reacted>,
    /// The GitLab parts the policy's steps have, which the drill did not
    /// carry out: (step, what it would have done).
    pub gitlab_skipped: Vec<(StepId, String)>,
}

/// `name`'s policy in `set`, or why a drill cannot rehearse it.
pub fn find<'a>(set: &'a PolicySet, name: &str) -> Result<&'a Policy, DrillError> {
    let policy = set
        .policies
        .iter()
        .find(|p| p.name.0 == name)
        .ok_or_else(|| DrillError::UnknownPolicy {
            name: name.to_owned(),
            known: set
                .policies
                .iter()
                .filter(|p| p.kind == PolicyKind::Clock)
                .map(|p| format!("`{}`", p.name))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if policy.kind == PolicyKind::Rule {
        return Err(DrillError::Rule(name.to_owned()));
    }
    Ok(policy)
}

/// `policy` as a drill at `speed` runs it (see the module's docs).
pub fn compress(policy: &Policy, set: &PolicySet, speed: u32) -> Result<Policy, DrillError> {
    let factor = i32::try_from(speed)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or(DrillError::Speed)?;
    let scale = |d: TimeDelta| d / factor;
    let target = scale(policy.clock.target);
    if target < SHORTEST_TARGET {
        return Err(DrillError::TooFast {
            policy: policy.name.0.clone(),
            speed,
            target: duration::human(policy.clock.target),
            compressed: duration::human(target),
            shortest: duration::human(SHORTEST_TARGET),
        });
    }
    let team_reads = |channel: &str| {
        set.channels
            .get(channel)
            .is_some_and(|c| c.audience == Audience::Team)
    };
    let steps: Vec<_> = policy
        .steps
        .iter()
        .filter_map(|step| {
            let slack = step.slack.clone().filter(|s| team_reads(&s.channel))?;
            let trigger = match step.trigger {
                Trigger::BeforeDeadline(d) => Trigger::BeforeDeadline(scale(d)),
                Trigger::AfterStart(d) => Trigger::AfterStart(scale(d)),
                Trigger::Every { interval, after } => Trigger::Every {
                    interval: scale(interval),
                    after,
                },
                other => other,
            };
            Some(crate::policy::Step {
                id: step.id.clone(),
                trigger,
                unless_acknowledged: step.unless_acknowledged,
                during: None,
                slack: Some(slack),
                gitlab: None,
                assign_on_call: None,
            })
        })
        .collect();
    if !steps
        .iter()
        .any(|s| s.slack.as_ref().is_some_and(|s| s.post))
    {
        return Err(DrillError::NothingToPost(policy.name.0.clone()));
    }
    let label = Pattern::parse(DRILL_LABEL).expect("the drill's label is a plain label");
    Ok(Policy {
        selector: Selector {
            labels_any: vec![label],
            ..Selector::default()
        },
        clock: ClockRule {
            target,
            starts: crate::policy::StartRule::Matched,
            stops: StopRule::Closed,
            pauses_while_labeled: Vec::new(),
            max_pause: None,
            time_zone: policy.clock.time_zone,
            calendar: None,
            duplicates: policy.clock.duplicates,
        },
        steps,
        ..policy.clone()
    })
}

impl Drill {
    /// A drill of `policy` at `speed`, starting at `now`; `number` tells
    /// drills apart (`drill/POLICY#number`).
    pub fn new(
        policy: &Policy,
        set: &PolicySet,
        speed: u32,
        number: u64,
        now: DateTime<Utc>,
    ) -> Result<Drill, DrillError> {
        let compressed = compress(policy, set, speed)?;
        let name = &policy.name.0;
        let reference = IssueRef {
            project: ProjectPath(format!("drill/{name}")),
            iid: IssueIid(number),
        };
        let gitlab_skipped = policy
            .steps
            .iter()
            .filter_map(|step| Some((step.id.clone(), describe_gitlab(step.gitlab.as_ref()?)?)))
            .collect();
        Ok(Drill {
            original: policy.clone(),
            policy: compressed,
            speed,
            started_at: now,
            facts: IssueFacts {
                reference,
                created_at: now,
                state: IssueState::Opened,
                closed_at: None,
                labels: vec![DRILL_LABEL.to_owned()],
                confidential: false,
                issue_type: "issue".to_owned(),
                assignees: Vec::new(),
                due_date: None,
                details: Default::default(),
            },
            title: format!(
                "DRILL, nothing is broken: a practice incident for `{name}` at {speed}× speed ({} becomes {})",
                duration::human(policy.clock.target),
                duration::human(policy.clock.target / speed as i32)
            ),
            // Reserved for examples (RFC 2606): plainly not a real issue.
            url: format!("https://drill.invalid/{name}/{number}"),
            ledger: Ledger::default(),
            said: Vec::new(),
            acknowledged: None,
            resolved: None,
            gitlab_skipped,
        })
    }

    /// The synthetic issue as of now: labelled at the start, closed when
    /// somebody resolved it.
    fn issue(&self) -> Issue {
        let mut facts = self.facts.clone();
        let mut events = vec![TimedEvent {
            at: self.started_at,
            event: Event::LabelAdded(DRILL_LABEL.to_owned()),
        }];
        if let Some(resolved) = &self.resolved {
            facts.state = IssueState::Closed;
            facts.closed_at = Some(resolved.at);
            events.push(TimedEvent {
                at: resolved.at,
                event: Event::Closed,
            });
        }
        Issue::new(facts, events)
    }

    fn decision(&self, now: DateTime<Utc>) -> (engine::Decision, clock::ClockReading) {
        let reading = clock::read(&self.issue(), &self.policy, now);
        let acknowledged = if self.acknowledged.is_some() {
            vec![reading.cycle]
        } else {
            Vec::new()
        };
        let ledger = self.ledger.clone().with_acknowledged(acknowledged);
        (engine::decide(&self.policy, &reading, &ledger), reading)
    }

    /// The notices due at `now`, in order; each is recorded with
    /// [`Drill::record`] once it is out.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<Notice> {
        let (decision, reading) = self.decision(now);
        let view = IssueView {
            facts: &self.facts,
            title: &self.title,
            url: &self.url,
        };
        decision
            .actions
            .iter()
            .map(|action| Notice::new(view, &self.policy.name, action, &reading, now))
            .collect()
    }

    /// When the next step falls due if nothing happens, if any.
    pub fn next_wake(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.decision(now).0.next_wake
    }

    /// `notice` is out (said at `at`).
    pub fn record(&mut self, notice: &Notice, at: DateTime<Utc>) {
        self.ledger.record(notice.firing.clone());
        let step = self
            .policy
            .steps
            .iter()
            .find(|s| s.id == notice.firing.step);
        self.said.push(Said {
            step: notice.firing.step.clone(),
            kind: step.map_or("step", |s| s.trigger.kind()),
            at,
            channel: notice.slack.as_ref().map(|s| s.channel.clone()),
            mentions: notice
                .slack
                .as_ref()
                .map(|s| s.mentions.clone())
                .unwrap_or_default(),
        });
    }

    /// Somebody acknowledged the alert; the first one counts.
    pub fn acknowledge(&mut self, user: &str, at: DateTime<Utc>) {
        if self.acknowledged.is_none() {
            self.acknowledged = Some(Reacted {
                user: user.to_owned(),
                at,
            });
        }
    }

    /// Somebody resolved the incident: the synthetic issue closes.
    pub fn resolve(&mut self, user: &str, at: DateTime<Utc>) {
        if self.resolved.is_none() {
            self.resolved = Some(Reacted {
                user: user.to_owned(),
                at,
            });
        }
    }

    /// How the drill ended, if it did: resolved, or breached, once
    /// nothing is left to say about it.
    pub fn outcome(&self, now: DateTime<Utc>) -> Option<Outcome> {
        let (decision, reading) = self.decision(now);
        if !decision.actions.is_empty() {
            return None;
        }
        if self.resolved.is_some() {
            return Some(Outcome::Resolved);
        }
        let breached = reading.phase == Phase::Running && reading.active >= reading.target;
        breached.then_some(Outcome::Breached)
    }

    /// The policy set as the drill's notifier sees it: the compressed
    /// policy alone, and only the channels it posts in, so that a channel
    /// the drill never uses needs no secret (an incoming webhook's URL).
    pub fn policy_set(&self, set: &PolicySet) -> PolicySet {
        let used: Vec<&str> = self
            .policy
            .steps
            .iter()
            .filter_map(|s| Some(s.slack.as_ref()?.channel.as_str()))
            .collect();
        PolicySet {
            channels: set
                .channels
                .iter()
                .filter(|(name, _)| used.contains(&name.as_str()))
                .map(|(name, channel)| (name.clone(), channel.clone()))
                .collect(),
            policies: vec![self.policy.clone()],
            maintenance: Vec::new(),
            warnings: Vec::new(),
            ..set.clone()
        }
    }

    /// The thread title and link every message of the drill carries.
    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn reference(&self) -> &IssueRef {
        &self.facts.reference
    }

    /// A span of the drill's real time as the policy's time (× speed).
    pub fn policy_time(&self, real: TimeDelta) -> TimeDelta {
        real * self.speed as i32
    }

    /// The first of the drill's steps that tags a rotation's secondary,
    /// with the rotation, if one does.
    pub fn secondary_step(&self) -> Option<(&StepId, &str)> {
        self.policy.steps.iter().find_map(|step| {
            let slack = step.slack.as_ref()?;
            slack.mentions.iter().find_map(|m| match m {
                Mention::OnCall {
                    rotation,
                    role: Role::Secondary,
                } => Some((&step.id, rotation.as_str())),
                _ => None,
            })
        })
    }
}

/// A step's GitLab part in words, as the summary lists it.
fn describe_gitlab(step: &crate::policy::GitLabStep) -> Option<String> {
    let mut parts = Vec::new();
    if !step.add_labels.is_empty() {
        parts.push(format!("add {}", step.add_labels.join(", ")));
    }
    if !step.remove_labels.is_empty() {
        parts.push(format!("remove {}", step.remove_labels.join(", ")));
    }
    if step.comment {
        parts.push("comment".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests;
