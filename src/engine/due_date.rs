//! GitLab-native deadlines (`gitlab: { set_due_date: true }`): which due
//! date an issue should show, decided once per change, never on every
//! evaluation.
//!
//! From the moment a step with `set_due_date` fires in a clock cycle, the
//! issue's GitLab due date follows that cycle's deadline: its date in the
//! clock's time zone. A pause holds the date where it was (the deadline is
//! unknown until the clock runs again); resuming, or a calendar, moves it.
//! When several policies keep it, the earliest deadline wins. When no
//! clock keeps it any more while the issue is open (a triage label
//! stopped the clock, the issue stopped matching), labelwarden clears the
//! date it set; a closed issue keeps it as a record.
//!
//! Each write is a firing of its own in the ledger, under the step
//! `due=YYYY-MM-DD` (or `due=none` to clear), numbered in order: the
//! ledger, and the marker on the ledger note, say what labelwarden
//! set. A due date a person set is never overwritten: labelwarden writes
//! only while the issue shows no due date or one it set itself. All writes
//! of an issue go under one policy (the first in the files that sets due
//! dates), so the outbox sends them in the order they were decided.
//!
//! Pure: the enforcer and `audit --notify` call [`plan`] with the clocks
//! they read and the ledger they hold.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::Firing;
use crate::clock::ClockReading;
use crate::policy::{Policy, PolicyName, Step, StepId};

/// What the step of a due-date write begins with.
pub const STEP_PREFIX: &str = "due=";

/// The ledger step of a write of `date` (`None`: cleared).
pub fn step(date: Option<NaiveDate>) -> StepId {
    StepId(match date {
        Some(date) => format!("{STEP_PREFIX}{}", date.format("%Y-%m-%d")),
        None => format!("{STEP_PREFIX}none"),
    })
}

/// The date a due-date write's step set (`Some(None)`: cleared); `None`
/// for any other step.
pub fn written(step: &StepId) -> Option<Option<NaiveDate>> {
    let value = step.0.strip_prefix(STEP_PREFIX)?;
    if value == "none" {
        return Some(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok().map(Some)
}

/// A due date to write, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueDateWrite {
    /// The date the issue should show; `None` clears it.
    pub to: Option<NaiveDate>,
    /// Every date labelwarden set on the issue before: the due
    /// date is overwritten only while it is one of these, or empty.
    pub ours: Vec<NaiveDate>,
}

impl DueDateWrite {
    /// Whether the due date, `current`, may be replaced: empty, or
    /// one labelwarden set (a person's date is theirs).
    pub fn may_replace(&self, current: Option<NaiveDate>) -> bool {
        current.is_none_or(|date| self.ours.contains(&date))
    }
}

/// One write: under which policy's outbox lane, the ledger firing, and
/// what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePlan {
    pub policy: PolicyName,
    pub firing: Firing,
    pub write: DueDateWrite,
}

/// Whether `step` keeps the due date.
fn sets_due_date(step: &Step) -> bool {
    step.gitlab.as_ref().is_some_and(|g| g.set_due_date)
}

/// Whether `policy` keeps due dates at all: without one that does, an
/// evaluation has nothing to plan (and need not gather the ledger).
pub fn kept_by(policy: &Policy) -> bool {
    policy.steps.iter().any(sets_due_date)
}

/// The write the due date needs now, if any. `clocks` are every
/// policy's reading, in the order of the policy files; `fired` is the
/// issue's ledger with this evaluation's firings; `current` is the due
/// date GitLab shows; `open` whether the issue is open.
pub fn plan(
    clocks: &[(&Policy, &ClockReading)],
    fired: &[(PolicyName, Firing)],
    current: Option<NaiveDate>,
    open: bool,
) -> Option<DuePlan> {
    let lane = clocks.iter().find(|(policy, _)| kept_by(policy))?.0;
    let writes: Vec<(u32, Option<NaiveDate>)> = fired
        .iter()
        .filter_map(|(_, firing)| written(&firing.step).map(|date| (firing.occurrence, date)))
        .collect();
    let (last_number, last) = writes
        .iter()
        .max_by_key(|(number, _)| *number)
        .copied()
        .unwrap_or((0, None));

    let mut keeping = false;
    let mut wanted: Option<NaiveDate> = None;
    for (policy, reading) in clocks {
        let cycle = reading.cycle;
        let started = reading.is_live()
            && policy.steps.iter().filter(|s| sets_due_date(s)).any(|s| {
                fired
                    .iter()
                    .any(|(name, f)| name == &policy.name && f.step == s.id && f.cycle == cycle)
            });
        if !started {
            continue;
        }
        keeping = true;
        if let Some(deadline) = reading.deadline() {
            let date = deadline.with_timezone(&policy.clock.time_zone).date_naive();
            wanted = Some(wanted.map_or(date, |w| w.min(date)));
        }
    }
    let to = match (keeping, wanted) {
        (true, Some(date)) => Some(date),
        // Every clock that keeps it is paused: the date stays.
        (true, None) => return None,
        // Nobody keeps it: clear labelwarden's date from an open issue.
        (false, _) if open && last.is_some() => None,
        (false, _) => return None,
    };
    let ours: Vec<NaiveDate> = {
        let mut dates: Vec<NaiveDate> = writes.iter().filter_map(|(_, date)| *date).collect();
        dates.sort_unstable();
        dates.dedup();
        dates
    };
    let write = DueDateWrite { to, ours };
    if to == last || !write.may_replace(current) {
        return None;
    }
    Some(DuePlan {
        policy: lane.name.clone(),
        firing: Firing {
            step: step(to),
            // Not a clock cycle's: the issue has one due date.
            cycle: 0,
            occurrence: last_number + 1,
        },
        write,
    })
}

#[cfg(test)]
mod tests;
