//! The SLA status people read in reports, messages and `explain`, derived
//! from a [`ClockReading`].

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::{ClockReading, Phase};
use crate::policy::duration::human;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// The n-th pattern of the policy's `pauses_while_labeled` matched.
    Label(usize),
    /// The issue is closed but the policy stops on a label, not on closing.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaStatus {
    NotMatching,
    Running {
        deadline: DateTime<Utc>,
        remaining: TimeDelta,
    },
    /// Held by a pause label or closing. `remaining` is negative if the
    /// deadline had already passed when the hold began.
    Paused {
        reason: PauseReason,
        since: DateTime<Utc>,
        remaining: TimeDelta,
    },
    Breached {
        deadline: DateTime<Utc>,
        overdue: TimeDelta,
    },
    Met {
        stopped_at: DateTime<Utc>,
        took: TimeDelta,
    },
    Missed {
        deadline: DateTime<Utc>,
        stopped_at: DateTime<Utc>,
        late_by: TimeDelta,
    },
    /// The issue stopped matching while its clock ran. `overdue` is set when
    /// that happened after the deadline: a downgrade never hides a breach.
    Withdrawn {
        at: DateTime<Utc>,
        overdue: Option<TimeDelta>,
    },
}

impl SlaStatus {
    /// Short machine-friendly name, stable for JSON and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SlaStatus::NotMatching => "not_matching",
            SlaStatus::Running { .. } => "running",
            SlaStatus::Paused { .. } => "paused",
            SlaStatus::Breached { .. } => "breached",
            SlaStatus::Met { .. } => "met",
            SlaStatus::Missed { .. } => "missed",
            SlaStatus::Withdrawn {
                overdue: Some(_), ..
            } => "withdrawn_after_breach",
            SlaStatus::Withdrawn { overdue: None, .. } => "withdrawn",
        }
    }

    /// For a stopped clock: whether it stopped in time (met), and the
    /// counted time from its start to the stop, under a policy of `target`.
    pub fn resolution(&self, target: TimeDelta) -> Option<(bool, TimeDelta)> {
        match self {
            SlaStatus::Met { took, .. } => Some((true, *took)),
            SlaStatus::Missed { late_by, .. } => Some((false, target + *late_by)),
            _ => None,
        }
    }

    /// The SLA was or is broken: breached now, missed, or withdrawn late.
    pub fn is_breach(&self) -> bool {
        match self {
            SlaStatus::Breached { .. } | SlaStatus::Missed { .. } => true,
            SlaStatus::Withdrawn { overdue, .. } => overdue.is_some(),
            SlaStatus::Paused { remaining, .. } => *remaining < TimeDelta::zero(),
            _ => false,
        }
    }
}

impl fmt::Display for SlaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlaStatus::NotMatching => f.write_str("not matching"),
            SlaStatus::Running { remaining, .. } => {
                write!(f, "running, {} left", human(*remaining))
            }
            SlaStatus::Paused { remaining, .. } if *remaining < TimeDelta::zero() => {
                write!(f, "paused, {} overdue", human(-*remaining))
            }
            SlaStatus::Paused { remaining, .. } => write!(f, "paused, {} left", human(*remaining)),
            SlaStatus::Breached { overdue, .. } => {
                write!(f, "breached, {} overdue", human(*overdue))
            }
            SlaStatus::Met { took, .. } => write!(f, "met, took {}", human(*took)),
            SlaStatus::Missed { late_by, .. } => write!(f, "missed by {}", human(*late_by)),
            SlaStatus::Withdrawn {
                overdue: Some(overdue),
                ..
            } => {
                write!(f, "withdrawn after breach, {} overdue", human(*overdue))
            }
            SlaStatus::Withdrawn { overdue: None, .. } => f.write_str("withdrawn"),
        }
    }
}

impl ClockReading {
    pub fn status(&self) -> SlaStatus {
        let overdue = self.active - self.target;
        match self.phase {
            Phase::NotMatching => SlaStatus::NotMatching,
            Phase::Running if overdue < TimeDelta::zero() => SlaStatus::Running {
                // On a calendar, the working time left runs out later than
                // the same wall time would.
                deadline: self.deadline().unwrap_or(self.now - overdue),
                remaining: -overdue,
            },
            Phase::Running => SlaStatus::Breached {
                deadline: self.deadline().unwrap_or(self.now - overdue),
                overdue,
            },
            Phase::Paused(reason) => SlaStatus::Paused {
                reason,
                since: self.phase_since,
                remaining: -overdue,
            },
            Phase::Stopped if overdue <= TimeDelta::zero() => SlaStatus::Met {
                stopped_at: self.phase_since,
                took: self.active,
            },
            Phase::Stopped => SlaStatus::Missed {
                deadline: self.deadline().unwrap_or(self.phase_since),
                stopped_at: self.phase_since,
                late_by: overdue,
            },
            Phase::Withdrawn => SlaStatus::Withdrawn {
                at: self.phase_since,
                overdue: (overdue > TimeDelta::zero()).then_some(overdue),
            },
        }
    }
}
