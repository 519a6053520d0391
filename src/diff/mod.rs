//! `labelwarden diff`: what a change to the policy files would do to the
//! issues open now. The same issues, read once, are evaluated at the same
//! instant under the policies before (the base) and after the change:
//! policies added, removed, renamed (same match and clock under another
//! name) or changed; clocks that start or end; deadlines that move;
//! statuses that change, breaches first; and the steps that would fire at
//! once when the change is deployed, with the Slack messages they make
//! per channel once grouped as a run groups them.
//!
//! "At once" assumes labelwarden ran under the base policies until now:
//! what they would have sent by now (replayed through the clock and
//! engine, like a late run that missed nothing) is what the changed
//! policies find already done. A step of a policy that is new, or whose
//! id changed, has no such history: it fires. This is what a scheduled
//! `audit --notify` would send; `serve` adopts clocks it learns of late
//! (a new policy over old issues) and says them in one digest instead.
//!
//! Pure: the issues and `now` are given; [`base`] reads the base policies.

pub mod base;
pub mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::audit::notify::{self, RunPreview};
use crate::clock::{self, ClockReading, SlaStatus};
use crate::engine::{self, Firing, Ledger};
use crate::gitlab::actions::IssueLedger;
use crate::gitlab::history::FetchedIssue;
use crate::gitlab::markers::Marker;
use crate::issue::Issue;
use crate::policy::maintenance::Maintenance;
use crate::policy::{Policy, PolicyName, PolicySet};

/// How a policy changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PolicyChange {
    Added {
        name: String,
        #[serde(skip_serializing_if = "is_false")]
        rule: bool,
    },
    Removed {
        name: String,
        #[serde(skip_serializing_if = "is_false")]
        rule: bool,
    },
    /// The same match and clock under another name; `parts` says what
    /// else changed.
    Renamed {
        from: String,
        name: String,
        parts: Vec<&'static str>,
        #[serde(skip_serializing_if = "is_false")]
        rule: bool,
    },
    Changed {
        name: String,
        parts: Vec<&'static str>,
        #[serde(skip_serializing_if = "is_false")]
        rule: bool,
    },
}

/// `rule: true` is written for instant rules only: a policy's change
/// reads as before.
fn is_false(value: &bool) -> bool {
    !*value
}

/// An instant rule (`rules:`), not a clock policy.
fn is_rule(policy: &Policy) -> bool {
    policy.kind == crate::policy::PolicyKind::Rule
}

/// How a maintenance window changed: each side as people read it (what
/// it silences, when, why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum WindowChange {
    Added {
        name: String,
        window: String,
    },
    Removed {
        name: String,
        window: String,
    },
    Changed {
        name: String,
        before: String,
        after: String,
    },
}

/// What happened to one clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockChangeKind {
    /// Not breached before, breached (or missed) after.
    BreachAppears,
    /// Breached before, not after.
    BreachDisappears,
    /// Its status changes otherwise (running to paused, met to withdrawn).
    StatusChanges,
    /// The issue starts to match a policy.
    Starts,
    /// The issue no longer matches the policy.
    Ends,
    /// Same status, another deadline.
    DeadlineMoves,
}

/// One clock as one policy set sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockSide {
    /// [`SlaStatus::kind`].
    pub kind: &'static str,
    /// As people read it: `running, 4h left`.
    pub status: String,
    pub deadline: Option<DateTime<Utc>>,
    pub breach: bool,
}

/// One clock that the change changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockChange {
    pub issue: String,
    pub url: String,
    /// Never shown for a confidential issue.
    pub title: String,
    pub confidential: bool,
    /// The policy's name after the change (before, if it is removed).
    pub policy: String,
    pub change: ClockChangeKind,
    pub before: Option<ClockSide>,
    pub after: Option<ClockSide>,
    /// How far the deadline moves (later is positive).
    #[serde(serialize_with = "seconds")]
    pub deadline_moves_by: Option<TimeDelta>,
}

fn seconds<S: serde::Serializer>(delta: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
    match delta {
        Some(delta) => s.serialize_some(&delta.num_seconds()),
        None => s.serialize_none(),
    }
}

/// Everything a change does.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub now: DateTime<Utc>,
    pub issues_read: usize,
    pub policies: Vec<PolicyChange>,
    /// Maintenance windows added, removed or changed.
    pub maintenance: Vec<WindowChange>,
    pub clocks: Vec<ClockChange>,
    /// Steps due at once after the change, and the messages they make.
    pub at_once: RunPreview,
}

impl Diff {
    /// Nothing would change.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
            && self.maintenance.is_empty()
            && self.clocks.is_empty()
            && self.at_once.steps.is_empty()
    }

    /// Clocks that become breached.
    pub fn breaches_appearing(&self) -> usize {
        self.clocks
            .iter()
            .filter(|c| c.change == ClockChangeKind::BreachAppears)
            .count()
    }

    /// Slack messages the change would post at once, over all channels.
    pub fn messages(&self) -> usize {
        self.at_once.messages.values().sum()
    }
}

/// What `before` and `after` make of `issues` at `now`.
pub fn compare(
    issues: &[FetchedIssue],
    before: &PolicySet,
    after: &PolicySet,
    now: DateTime<Utc>,
) -> Diff {
    let policies = policy_changes(before, after);
    // The base policy each policy after the change continues, by name.
    let continues: BTreeMap<&PolicyName, &Policy> = after
        .policies
        .iter()
        .filter_map(|policy| {
            let from = policies.iter().find_map(|change| match change {
                PolicyChange::Renamed { from, name, .. } if name == &policy.name.0 => {
                    Some(from.as_str())
                }
                _ => None,
            });
            let base_name = PolicyName(from.unwrap_or(&policy.name.0).to_owned());
            before.get(&base_name).map(|base| (&policy.name, base))
        })
        .collect();
    let removed: Vec<&Policy> = before
        .policies
        .iter()
        .filter(|base| !continues.values().any(|p| p.name == base.name))
        .collect();

    let mut clocks = Vec::new();
    let mut ledgers = Vec::with_capacity(issues.len());
    for fetched in issues {
        let issue = &fetched.issue;
        let mut markers = Vec::new();
        for policy in &after.policies {
            let base = continues.get(&policy.name).copied();
            let old = base.map(|base| clock::read(issue, base, now));
            let new = clock::read(issue, policy, now);
            if let Some(change) = clock_change(fetched, &policy.name.0, old.as_ref(), Some(&new)) {
                clocks.push(change);
            }
            if let Some(base) = base {
                markers.extend(fired_by(issue, base, now).into_iter().map(|firing| Marker {
                    policy: policy.name.clone(),
                    firing,
                    channel: None,
                    thread: None,
                }));
            }
        }
        for base in &removed {
            let old = clock::read(issue, base, now);
            if let Some(change) = clock_change(fetched, &base.name.0, Some(&old), None) {
                clocks.push(change);
            }
        }
        ledgers.push(IssueLedger {
            markers,
            ..IssueLedger::default()
        });
    }
    clocks.sort_by(|a, b| (a.change, &a.issue, &a.policy).cmp(&(b.change, &b.issue, &b.policy)));
    Diff {
        now,
        issues_read: issues.len(),
        policies,
        maintenance: window_changes(before, after),
        clocks,
        at_once: notify::preview(issues, ledgers, after, now),
    }
}

/// Maintenance windows added, removed and changed, by name, in that order.
pub fn window_changes(before: &PolicySet, after: &PolicySet) -> Vec<WindowChange> {
    let described = |window: &Maintenance| {
        format!(
            "silences {} `{}`, {} ({})",
            window.scope.as_str(),
            window.target,
            window.schedule(),
            window.reason
        )
    };
    let find = |set: &'_ PolicySet, name: &str| -> Option<String> {
        set.maintenance
            .iter()
            .find(|w| w.name == name)
            .map(&described)
    };
    let added = after
        .maintenance
        .iter()
        .filter(|new| find(before, &new.name).is_none())
        .map(|new| WindowChange::Added {
            name: new.name.clone(),
            window: described(new),
        });
    let removed = before
        .maintenance
        .iter()
        .filter(|old| find(after, &old.name).is_none())
        .map(|old| WindowChange::Removed {
            name: old.name.clone(),
            window: described(old),
        });
    let changed = after.maintenance.iter().filter_map(|new| {
        let before = find(before, &new.name)?;
        let after = described(new);
        (before != after).then(|| WindowChange::Changed {
            name: new.name.clone(),
            before,
            after,
        })
    });
    added.chain(removed).chain(changed).collect()
}

fn side(reading: &ClockReading) -> ClockSide {
    let status = reading.status();
    ClockSide {
        kind: status.kind(),
        status: status.to_string(),
        deadline: reading.deadline().or(match status {
            SlaStatus::Breached { deadline, .. } | SlaStatus::Missed { deadline, .. } => {
                Some(deadline)
            }
            _ => None,
        }),
        breach: status.is_breach(),
    }
}

/// What the change does to one clock, if anything.
fn clock_change(
    fetched: &FetchedIssue,
    policy: &str,
    before: Option<&ClockReading>,
    after: Option<&ClockReading>,
) -> Option<ClockChange> {
    let matching = |reading: Option<&ClockReading>| {
        reading
            .filter(|r| r.status() != SlaStatus::NotMatching)
            .map(side)
    };
    let (before, after) = (matching(before), matching(after));
    let change = match (&before, &after) {
        (None, None) => return None,
        (None, Some(_)) => ClockChangeKind::Starts,
        (Some(_), None) => ClockChangeKind::Ends,
        (Some(old), Some(new)) if !old.breach && new.breach => ClockChangeKind::BreachAppears,
        (Some(old), Some(new)) if old.breach && !new.breach => ClockChangeKind::BreachDisappears,
        (Some(old), Some(new)) if old.kind != new.kind => ClockChangeKind::StatusChanges,
        (Some(old), Some(new)) if old.deadline != new.deadline => ClockChangeKind::DeadlineMoves,
        (Some(_), Some(_)) => return None,
    };
    let deadline_moves_by = match (&before, &after) {
        (Some(old), Some(new)) => match (old.deadline, new.deadline) {
            (Some(old), Some(new)) if old != new => Some(new - old),
            _ => None,
        },
        _ => None,
    };
    let facts = fetched.issue.facts();
    Some(ClockChange {
        issue: facts.reference.to_string(),
        url: fetched.url.clone(),
        title: fetched.title.clone(),
        confidential: facts.confidential,
        policy: policy.to_owned(),
        change,
        before,
        after,
        deadline_moves_by,
    })
}

/// Every step `policy` would have fired on `issue` by `now`, had
/// labelwarden watched it all along: the engine run at each instant
/// something happened or a step fell due.
pub fn fired_by(issue: &Issue, policy: &Policy, now: DateTime<Utc>) -> Vec<Firing> {
    let mut ledger = Ledger::default();
    let created = issue.facts().created_at;
    let mut instants: std::collections::BTreeSet<DateTime<Utc>> = issue
        .timeline()
        .events()
        .iter()
        .map(|e| e.at.max(created))
        .filter(|at| *at <= now)
        .collect();
    instants.insert(created.min(now));
    instants.insert(now);
    while let Some(at) = instants.pop_first() {
        let reading = clock::read(issue, policy, at);
        let decision = engine::decide(policy, &reading, &ledger);
        for action in decision.actions {
            ledger.record(action.firing);
        }
        if let Some(wake) = decision.next_wake.filter(|w| *w > at && *w <= now) {
            instants.insert(wake);
        }
    }
    ledger.firings().to_vec()
}

/// Added, removed, renamed and changed policies, in that order.
pub fn policy_changes(before: &PolicySet, after: &PolicySet) -> Vec<PolicyChange> {
    let mut added: Vec<&Policy> = after
        .policies
        .iter()
        .filter(|p| before.get(&p.name).is_none())
        .collect();
    let mut removed: Vec<&Policy> = before
        .policies
        .iter()
        .filter(|p| after.get(&p.name).is_none())
        .collect();
    let mut renamed = Vec::new();
    removed.retain(|old| {
        let Some(index) = added.iter().position(|new| same_match_and_clock(old, new)) else {
            return true;
        };
        let new = added.remove(index);
        renamed.push(PolicyChange::Renamed {
            from: old.name.0.clone(),
            name: new.name.0.clone(),
            parts: changed_parts(old, new),
            rule: is_rule(new),
        });
        false
    });
    let changed = after.policies.iter().filter_map(|new| {
        let old = before.get(&new.name)?;
        let parts = changed_parts(old, new);
        (!parts.is_empty()).then(|| PolicyChange::Changed {
            name: new.name.0.clone(),
            parts,
            rule: is_rule(new),
        })
    });
    added
        .into_iter()
        .map(|p| PolicyChange::Added {
            name: p.name.0.clone(),
            rule: is_rule(p),
        })
        .chain(removed.into_iter().map(|p| PolicyChange::Removed {
            name: p.name.0.clone(),
            rule: is_rule(p),
        }))
        .chain(renamed)
        .chain(changed)
        .collect()
}

fn same_match_and_clock(old: &Policy, new: &Policy) -> bool {
    format!("{:?}", old.selector) == format!("{:?}", new.selector)
        && format!("{:?}", old.clock) == format!("{:?}", new.clock)
}

/// Which parts of a policy differ: `match`, `clock`, `escalation`, ...;
/// of a rule, as its file names them: `match` (with `unless`), `after`,
/// `actions`.
fn changed_parts(old: &Policy, new: &Policy) -> Vec<&'static str> {
    let differs = |a: String, b: String| a != b;
    let rule = is_rule(new);
    let mut parts = Vec::new();
    if is_rule(old) != rule {
        parts.push(if rule { "now a rule" } else { "now a policy" });
    }
    if differs(format!("{:?}", old.selector), format!("{:?}", new.selector)) {
        parts.push("match");
    }
    if differs(format!("{:?}", old.clock), format!("{:?}", new.clock)) {
        parts.push(if rule { "after" } else { "clock" });
    }
    if differs(format!("{:?}", old.steps), format!("{:?}", new.steps)) {
        parts.push(if rule { "actions" } else { "escalation" });
    }
    if differs(
        format!("{:?}", old.from_slack),
        format!("{:?}", new.from_slack),
    ) {
        parts.push("from_slack");
    }
    if differs(format!("{:?}", old.adoption), format!("{:?}", new.adoption)) {
        parts.push("adopt");
    }
    if old.reported != new.reported {
        parts.push("report");
    }
    if old.description != new.description {
        parts.push("description");
    }
    parts
}

#[cfg(test)]
mod tests;
