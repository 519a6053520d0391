//! A drill's summary: how it ended, who acknowledged and how soon (in real
//! time and on the policy's clock), whether the escalation reached the
//! on-call secondary, the steps said, and the GitLab parts left undone.
//! Printed by `labelwarden drill` and posted in the drill's thread.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Drill, Outcome};
use crate::policy::{People, Role, StepId, duration};

/// People named at most in the list of who replied.
const MOST_NAMED: usize = 20;
/// The most characters Slack takes in a section block's text.
const SECTION_CHARS: usize = 3_000;

/// Whether the escalation reached the on-call secondary.
#[derive(Debug, Clone, PartialEq)]
pub enum Secondary {
    /// The policy has no step that tags a rotation's secondary.
    NoStep,
    /// A step tagged them: when (after the start), and who was secondary.
    Tagged {
        step: StepId,
        after: TimeDelta,
        rotation: String,
        person: String,
        slack_id: Option<String>,
    },
    /// Its step never fired: somebody acknowledged first, or the drill
    /// ended before it fell due.
    NotNeeded { step: StepId, acknowledged: bool },
}

/// A drill's outcome, as people read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub policy: String,
    pub speed: u32,
    pub target: TimeDelta,
    pub compressed: TimeDelta,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// Who acknowledged first (Slack user id, GitLab username if mapped),
    /// and after how long in real time.
    pub acknowledged: Option<(String, Option<String>, TimeDelta)>,
    /// Who resolved it, after how long.
    pub resolved: Option<(String, TimeDelta)>,
    pub secondary: Secondary,
    /// Each step said, with how long after the start.
    pub steps: Vec<(StepId, TimeDelta)>,
    pub gitlab_skipped: Vec<(StepId, String)>,
    /// People who replied in the drill's thread (Slack user ids).
    pub replied: Vec<String>,
}

impl Summary {
    /// The summary of `drill`, ended at `now` with `outcome`.
    pub fn of(
        drill: &Drill,
        people: &People,
        outcome: Outcome,
        replied: Vec<String>,
        now: DateTime<Utc>,
    ) -> Summary {
        let since_start = |at: DateTime<Utc>| at - drill.started_at;
        let secondary = match drill.secondary_step() {
            None => Secondary::NoStep,
            Some((step, rotation)) => match drill.said.iter().find(|s| &s.step == step) {
                Some(said) => {
                    let person = people
                        .rotations
                        .get(rotation)
                        .map(|r| r.on_call(Role::Secondary, said.at).to_owned())
                        .unwrap_or_default();
                    Secondary::Tagged {
                        step: said.step.clone(),
                        after: since_start(said.at),
                        rotation: rotation.to_owned(),
                        slack_id: people.gitlab_users.get(&person).cloned(),
                        person,
                    }
                }
                None => Secondary::NotNeeded {
                    step: step.clone(),
                    acknowledged: drill.acknowledged.is_some(),
                },
            },
        };
        Summary {
            policy: drill.original.name.0.clone(),
            speed: drill.speed,
            target: drill.original.clock.target,
            compressed: drill.policy.clock.target,
            started_at: drill.started_at,
            ended_at: now,
            outcome,
            acknowledged: drill.acknowledged.as_ref().map(|a| {
                (
                    a.user.clone(),
                    people.gitlab_username(&a.user).map(str::to_owned),
                    since_start(a.at),
                )
            }),
            resolved: drill
                .resolved
                .as_ref()
                .map(|r| (r.user.clone(), since_start(r.at))),
            secondary,
            steps: drill
                .said
                .iter()
                .map(|s| (s.step.clone(), since_start(s.at)))
                .collect(),
            gitlab_skipped: drill.gitlab_skipped.clone(),
            replied,
        }
    }

    /// A span of real time, and what it is on the policy's clock.
    fn both(&self, real: TimeDelta) -> String {
        let seconds = TimeDelta::seconds((real.num_milliseconds() + 500).div_euclid(1000));
        format!(
            "{} ({} on the policy's clock)",
            duration::human(seconds),
            duration::human(seconds * self.speed as i32)
        )
    }

    /// The lines of the summary; `person` writes a Slack user id (a tag
    /// in Slack, the id in a terminal).
    fn lines(&self, person: &dyn Fn(&str) -> String) -> Vec<String> {
        let ended = match (self.outcome, &self.resolved) {
            (Outcome::Resolved, Some((user, after))) => {
                let within = if *after <= self.compressed {
                    "within the SLA"
                } else {
                    "after the deadline"
                };
                format!(
                    "resolved by {} after {}, {within}",
                    person(user),
                    self.both(*after)
                )
            }
            (Outcome::Resolved, None) => "resolved".to_owned(),
            (Outcome::Breached, _) => "the deadline passed and the breach was said".to_owned(),
            (Outcome::Stopped, _) => "stopped before it was resolved or breached".to_owned(),
        };
        let mut lines = vec![format!(
            "Drill of `{}` at {}× speed ({} became {}): {ended}.",
            self.policy,
            self.speed,
            duration::human(self.target),
            duration::human(self.compressed)
        )];
        lines.push(match &self.acknowledged {
            Some((user, gitlab, after)) => format!(
                "Acknowledged by {}{} after {}.",
                person(user),
                gitlab
                    .as_ref()
                    .map(|g| format!(" (GitLab `{g}`)"))
                    .unwrap_or_default(),
                self.both(*after)
            ),
            None => "Nobody acknowledged the alert.".to_owned(),
        });
        lines.push(match &self.secondary {
            Secondary::NoStep => "On-call secondary: no step of the policy tags one.".to_owned(),
            Secondary::Tagged {
                step,
                after,
                rotation,
                person: who,
                slack_id,
            } => format!(
                "On-call secondary reached: step `{step}` tagged `{rotation}`'s secondary, {} after {}.",
                match slack_id {
                    Some(id) => format!("{who} ({})", person(id)),
                    None => format!("{who} (no Slack id under `people.gitlab_users`: not tagged)"),
                },
                self.both(*after)
            ),
            Secondary::NotNeeded {
                step,
                acknowledged: true,
            } => format!(
                "On-call secondary not needed: the alert was acknowledged before step `{step}` fell due."
            ),
            Secondary::NotNeeded {
                step,
                acknowledged: false,
            } => format!("On-call secondary not reached: the drill ended before step `{step}` fell due."),
        });
        if !self.steps.is_empty() {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|(step, after)| format!("`{step}` +{}", duration::human(*after)))
                .collect();
            lines.push(format!("Steps said: {}.", steps.join(", ")));
        }
        if !self.replied.is_empty() {
            let mut people: Vec<String> = self
                .replied
                .iter()
                .take(MOST_NAMED)
                .map(|u| person(u))
                .collect();
            if self.replied.len() > MOST_NAMED {
                people.push(format!("and {} more", self.replied.len() - MOST_NAMED));
            }
            lines.push(format!("Replied in the thread: {}.", people.join(", ")));
        }
        if !self.gitlab_skipped.is_empty() {
            let skipped: Vec<String> = self
                .gitlab_skipped
                .iter()
                .map(|(step, what)| format!("`{step}`: {what}"))
                .collect();
            lines.push(format!(
                "Not done, as there is no real issue: {}.",
                skipped.join("; ")
            ));
        }
        lines
    }

    /// For a terminal or a CI log.
    pub fn text(&self) -> String {
        let mut text = self.lines(&|user| user.to_owned()).join("\n");
        text.push('\n');
        text
    }

    /// For Slack (mrkdwn), people shown as Slack shows them: a section
    /// each, within Slack's 3000 characters a section's text may have.
    pub fn mrkdwn(&self) -> Vec<String> {
        let mut lines = vec![":clipboard: *Drill summary*".to_owned()];
        lines.extend(
            self.lines(&|user| format!("<@{user}>"))
                .into_iter()
                .map(|line| {
                    let line = format!("• {line}");
                    if line.chars().count() <= SECTION_CHARS {
                        line
                    } else {
                        let cut: String = line.chars().take(SECTION_CHARS - 1).collect();
                        format!("{cut}…")
                    }
                }),
        );
        lines
    }

    /// Whether the drill showed the path works: somebody acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.acknowledged.is_some()
    }
}
