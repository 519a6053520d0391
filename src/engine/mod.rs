//! The escalation engine: given where a clock stands and what was already
//! sent, which of the policy's steps are due now, and when to look again.
//!
//! Actions are plain data: the adapters render and send them, then record
//! each one's [`Firing`] in the [`Ledger`], so the next run does not repeat
//! it. Rules, for one clock cycle:
//! - `start`, `before_deadline` and `every` fire only while the cycle is live
//!   (running or paused). A late run fires every missed step once, in the
//!   order they came due; a `before_deadline` warning whose deadline already
//!   passed is skipped (the breach says more), and of several missed
//!   repetitions of an `every` step only the latest fires.
//! - `breach` fires once the deadline passes while the cycle is live, or
//!   late for a cycle that ended missed, if the cycle was announced.
//! - `resolved` fires each time the stop condition is reached (a reopened and
//!   closed-again issue gets a second one); `withdrawn` fires when the issue
//!   stops matching. Both only for cycles something was already sent about:
//!   nobody needs to hear that an issue they never heard of is over.
//!
//! Pure: no I/O, `now` comes from the reading.

pub mod due_date;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::{ClockReading, Phase};
use crate::policy::{Anchor, GitLabStep, Policy, SlackStep, StepId, Trigger};

/// One firing of one step: what the ledger records and the outbox keys on.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Firing {
    pub step: StepId,
    pub cycle: u32,
    /// 0 for steps that fire once per cycle; the repetition number for
    /// `every`; the resolution number for `resolved`.
    pub occurrence: u32,
}

/// The firings already done for one issue and policy, and the cycles
/// whose alert somebody acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    fired: Vec<Firing>,
    acknowledged: Vec<u32>,
}

impl Ledger {
    pub fn new(fired: Vec<Firing>) -> Self {
        Ledger {
            fired,
            acknowledged: Vec::new(),
        }
    }

    /// The same ledger, knowing which cycles were acknowledged.
    pub fn with_acknowledged(mut self, cycles: Vec<u32>) -> Self {
        self.acknowledged = cycles;
        self
    }

    /// Somebody acknowledged this cycle's alert.
    pub fn acknowledged(&self, cycle: u32) -> bool {
        self.acknowledged.contains(&cycle)
    }

    pub fn contains(&self, firing: &Firing) -> bool {
        self.fired.contains(firing)
    }

    pub fn record(&mut self, firing: Firing) {
        if !self.contains(&firing) {
            self.fired.push(firing);
        }
    }

    /// True when something was sent about this cycle.
    pub fn announced(&self, cycle: u32) -> bool {
        self.fired.iter().any(|f| f.cycle == cycle)
    }

    fn fired(&self, step: &StepId, cycle: u32, occurrence: u32) -> bool {
        self.fired
            .iter()
            .any(|f| f.cycle == cycle && f.occurrence == occurrence && &f.step == step)
    }

    /// The highest repetition of `step` fired in `cycle`, 0 if none.
    fn last_occurrence(&self, step: &StepId, cycle: u32) -> u32 {
        self.fired
            .iter()
            .filter(|f| f.cycle == cycle && &f.step == step)
            .map(|f| f.occurrence)
            .max()
            .unwrap_or(0)
    }

    pub fn firings(&self) -> &[Firing] {
        &self.fired
    }
}

/// A step that is due: what to do, and when it became due.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub firing: Firing,
    pub trigger: Trigger,
    /// When the step came due; earlier than the reading's `now` for a late run.
    pub due_at: DateTime<Utc>,
    /// It came due outside its step's quiet-hours calendar (`during:`) and
    /// waited for working hours.
    pub held_for_quiet_hours: bool,
    pub slack: Option<SlackStep>,
    pub gitlab: Option<GitLabStep>,
}

impl Action {
    /// How late the action is at `now`, if it is later than `tolerance`.
    pub fn late_by(&self, now: DateTime<Utc>, tolerance: TimeDelta) -> Option<TimeDelta> {
        let late = now - self.due_at;
        (late > tolerance).then_some(late)
    }
}

/// What the engine decided for one issue and policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Due now, in the order they came due.
    pub actions: Vec<Action>,
    /// When the next step comes due if nothing else happens to the issue;
    /// `None` when nothing is scheduled (held, ended, or nothing left).
    pub next_wake: Option<DateTime<Utc>>,
}

/// Decides which of `policy`'s steps are due, given the `reading` and the
/// `ledger` of what was already sent.
pub fn decide(policy: &Policy, reading: &ClockReading, ledger: &Ledger) -> Decision {
    let mut decision = Decision::default();
    if reading.phase == Phase::NotMatching || reading.cycle == 0 {
        // Not matching yet: an age condition may make it match later.
        decision.next_wake = reading.window_edge;
        return decision;
    }
    let cycle = reading.cycle;
    let live = reading.is_live();
    let announced = ledger.announced(cycle);
    let target = reading.target;
    let deadline_passed = reading.reached(target);

    let mut due: Vec<(DateTime<Utc>, u8, usize, u32)> = Vec::new();
    let mut wake: Option<DateTime<Utc>> = None;
    let mut wake_at = |threshold: TimeDelta| {
        if let Some(at) = reading.instant_at(threshold) {
            wake = Some(wake.map_or(at, |w: DateTime<Utc>| w.min(at)));
        }
    };

    for (index, step) in policy.steps.iter().enumerate() {
        let fired = |occurrence| ledger.fired(&step.id, cycle, occurrence);
        // Acknowledged: the step has nothing left to do in this cycle.
        if step.unless_acknowledged && ledger.acknowledged(cycle) {
            continue;
        }
        match step.trigger {
            Trigger::Start => {
                if live && !fired(0) {
                    let became_live = reading.live_since.unwrap_or(reading.started_at);
                    due.push((became_live, 0, index, 0));
                }
            }
            Trigger::BeforeDeadline(lead) => {
                let threshold = target - lead;
                if !live || fired(0) || deadline_passed {
                    continue;
                }
                if reading.reached(threshold) {
                    due.push((at_or_now(reading, threshold), 1, index, 0));
                } else {
                    wake_at(threshold);
                }
            }
            Trigger::AfterStart(after) => {
                if !live || fired(0) {
                    continue;
                }
                if reading.reached(after) {
                    due.push((at_or_now(reading, after), 1, index, 0));
                } else {
                    wake_at(after);
                }
            }
            Trigger::Act => {
                // A rule acts only while the issue still matches: a cycle
                // that ended within the grace was ended by a later event.
                if fired(0) || !live {
                    continue;
                }
                if deadline_passed {
                    due.push((at_or_now(reading, target), 2, index, 0));
                } else {
                    wake_at(target);
                }
            }
            Trigger::Breach => {
                if fired(0) {
                    continue;
                }
                if deadline_passed && (live || announced) {
                    due.push((at_or_now(reading, target), 2, index, 0));
                } else if live {
                    wake_at(target);
                }
            }
            Trigger::Every { interval, after } => {
                if !live {
                    continue;
                }
                let base = match after {
                    Anchor::Start => TimeDelta::zero(),
                    Anchor::Breach => target,
                };
                let last = ledger.last_occurrence(&step.id, cycle);
                let reached = repetitions_reached(reading, base, interval);
                if reached > last {
                    let threshold = base + interval * reached as i32;
                    due.push((at_or_now(reading, threshold), 3, index, reached));
                }
                wake_at(base + interval * (reached.max(last) + 1) as i32);
            }
            Trigger::Resolved => {
                let occurrence = reading.resolutions;
                if reading.phase == Phase::Stopped && announced && !fired(occurrence) {
                    due.push((reading.phase_since, 4, index, occurrence));
                }
            }
            Trigger::Withdrawn => {
                if reading.phase == Phase::Withdrawn && announced && !fired(0) {
                    due.push((reading.phase_since, 5, index, 0));
                }
            }
        }
    }

    if let Some(runs_out) = reading.pause_runs_out_at() {
        wake = Some(wake.map_or(runs_out, |w| w.min(runs_out)));
    }
    if let Some(edge) = reading.window_edge {
        wake = Some(wake.map_or(edge, |w| w.min(edge)));
    }
    // Quiet hours: a step due outside its calendar's working hours waits
    // for the next working minute.
    due.retain(|&(_, _, index, _)| {
        let Some(quiet) = &policy.steps[index].during else {
            return true;
        };
        match quiet.next_working(reading.now) {
            Some(opens) if opens == reading.now => true,
            Some(opens) => {
                wake = Some(wake.map_or(opens, |w| w.min(opens)));
                false
            }
            None => false,
        }
    });
    due.sort_unstable_by_key(|&(at, rank, index, _)| (at, rank, index));
    decision.actions = due
        .into_iter()
        .map(|(due_at, _, index, occurrence)| {
            let step = &policy.steps[index];
            Action {
                firing: Firing {
                    step: step.id.clone(),
                    cycle,
                    occurrence,
                },
                trigger: step.trigger,
                due_at,
                held_for_quiet_hours: step
                    .during
                    .as_ref()
                    .is_some_and(|quiet| !quiet.is_working(due_at)),
                slack: step.slack.clone(),
                gitlab: step.gitlab.clone().map(|mut gitlab| {
                    // Whoever is on call as it is decided.
                    if let Some((rotation, role)) = &step.assign_on_call {
                        gitlab.assign = vec![rotation.on_call(*role, reading.now).to_owned()];
                    }
                    gitlab
                }),
            }
        })
        .collect();
    decision.next_wake = wake;
    decision
}

/// How many repetitions of `interval` after `base` the clock has reached.
fn repetitions_reached(reading: &ClockReading, base: TimeDelta, interval: TimeDelta) -> u32 {
    if !reading.reached(base + interval) {
        return 0;
    }
    let mut count = ((reading.active - base).num_seconds() / interval.num_seconds()) as i32;
    if !reading.reached(base + interval * count) {
        count -= 1;
    }
    count as u32
}

/// When counted time reached `threshold`, or `now` if the clock cannot say
/// (it always can for a threshold already reached; this is a safe fallback).
fn at_or_now(reading: &ClockReading, threshold: TimeDelta) -> DateTime<Utc> {
    reading.instant_at(threshold).unwrap_or(reading.now)
}

#[cfg(test)]
mod tests;
