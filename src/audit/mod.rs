//! The audit: every candidate issue's SLA status under every policy, as
//! of one instant, sorted by urgency, the reports made of it
//! ([`report`]), and `--notify`, which carries out the steps due
//! ([`notify`], the one part that does I/O, through the GitLab writer and
//! the notifier). Pure: the issues are read by [`crate::gitlab::history`]
//! and `now` is a parameter, so `--now` gives the same report every time.

pub mod explain;
pub mod identity;
pub mod notify;
pub mod report;
pub mod watchdog;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::clock::{self, SlaStatus};
use crate::gitlab::actions::IssueLedger;
use crate::gitlab::history::FetchedIssue;
use crate::policy::{Policy, PolicyName, PolicySet, Trigger};

/// How urgent one clock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The SLA is broken: breached now, missed, or withdrawn late.
    Breach,
    /// Running (or paused) inside the policy's warning window.
    Warning,
    Ok,
}

/// When `audit` exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any clock breached or missed.
    Breach,
    /// Any clock breached, missed, or inside its warning window.
    Warning,
    /// Never: report only.
    Never,
}

impl FailOn {
    /// The threshold is crossed by a clock, or by any watchdog finding
    /// (unless `never`): a broken alerting path is a failure of its own.
    pub fn crossed(self, rows: &[Row], findings: &[watchdog::Finding]) -> bool {
        match self {
            FailOn::Breach => !findings.is_empty() || rows.iter().any(|r| r.level == Level::Breach),
            FailOn::Warning => {
                !findings.is_empty() || rows.iter().any(|r| r.level <= Level::Warning)
            }
            FailOn::Never => false,
        }
    }
}

/// One policy's record over the audited issues: how many of its clocks
/// stopped in time, and how long they took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    pub clocks: usize,
    pub met: usize,
    pub missed: usize,
    /// `met / (met + missed)`; `None` before any clock stopped.
    pub met_share: Option<f64>,
    /// Counted time to resolution of the stopped clocks: median, 90th
    /// percentile (nearest rank) and longest.
    pub time_to_resolve: Option<Spread>,
    /// From the clock's start to the first acknowledgement in Slack, over
    /// the clocks whose acknowledgement is known.
    pub time_to_acknowledge: Option<Spread>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    #[serde(serialize_with = "seconds")]
    pub median: TimeDelta,
    #[serde(serialize_with = "seconds")]
    pub p90: TimeDelta,
    #[serde(serialize_with = "seconds")]
    pub max: TimeDelta,
}

fn seconds<S: serde::Serializer>(value: &TimeDelta, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_i64(value.num_seconds())
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(mut values: Vec<TimeDelta>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |share: f64| {
            let index = ((share * values.len() as f64).ceil() as usize).max(1) - 1;
            values[index.min(values.len() - 1)]
        };
        Some(Spread {
            median: rank(0.5),
            p90: rank(0.9),
            max: values[values.len() - 1],
        })
    }
}

/// Each policy's summary, in the order policies are first met in `rows`
/// sorted by name.
pub fn summarise(rows: &[Row]) -> Vec<PolicySummary> {
    let mut policies: Vec<&str> = rows.iter().map(|r| r.policy.as_str()).collect();
    policies.sort_unstable();
    policies.dedup();
    policies
        .into_iter()
        .map(|policy| {
            let of_policy: Vec<&Row> = rows.iter().filter(|r| r.policy == policy).collect();
            let took: Vec<(bool, TimeDelta)> = of_policy
                .iter()
                .filter_map(|row| row.resolution())
                .collect();
            let met = took.iter().filter(|(met, _)| *met).count();
            let stopped = took.len();
            PolicySummary {
                policy: policy.to_owned(),
                clocks: of_policy.len(),
                met,
                missed: stopped - met,
                met_share: (stopped > 0).then(|| met as f64 / stopped as f64),
                time_to_resolve: Spread::of(took.into_iter().map(|(_, took)| took).collect()),
                time_to_acknowledge: Spread::of(
                    of_policy
                        .iter()
                        .filter_map(|row| Some(row.acknowledged.as_ref()?.1 - row.started_at?))
                        .collect(),
                ),
            }
        })
        .collect()
}

/// Fills in each row's acknowledgement from its issue's ledger, given as
/// (issue reference, ledger) pairs.
pub fn attach_acknowledgements(rows: &mut [Row], ledgers: &[(String, &IssueLedger)]) {
    let by_issue: std::collections::HashMap<&str, &IssueLedger> = ledgers
        .iter()
        .map(|(issue, ledger)| (issue.as_str(), *ledger))
        .collect();
    for row in rows {
        let Some(ledger) = by_issue.get(row.issue.as_str()) else {
            continue;
        };
        row.acknowledged = ledger
            .acknowledgements(&PolicyName(row.policy.clone()))
            .into_iter()
            .find(|a| a.cycle == row.cycle)
            .map(|a| (a.by, a.at));
    }
}

/// One issue under one policy that it matches or matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub issue: String,
    pub title: String,
    pub url: String,
    pub confidential: bool,
    pub assignees: Vec<String>,
    pub policy: String,
    pub status: SlaStatus,
    pub level: Level,
    pub target: TimeDelta,
    pub started_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    /// The clock cycle the row is about (1 for the first).
    pub cycle: u32,
    /// Who acknowledged this cycle's alert in Slack (a Slack user id), and
    /// when, as `serve` wrote it on the issue; known when notes were read.
    pub acknowledged: Option<(String, DateTime<Utc>)>,
    /// The business-hours calendar the clock counts working time on, if
    /// any: its durations are working time then.
    pub calendar: Option<String>,
}

impl Row {
    /// For a clock that ended: whether it kept the SLA, and the counted
    /// time it took. A clock withdrawn after its deadline (its labels
    /// removed too late) missed: a downgrade never hides a missed SLA.
    pub fn resolution(&self) -> Option<(bool, TimeDelta)> {
        match self.status {
            SlaStatus::Withdrawn {
                overdue: Some(overdue),
                ..
            } => Some((false, self.target + overdue)),
            ref status => status.resolution(self.target),
        }
    }

    /// When the clock ended (stopped or withdrawn); `None` while it runs.
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            SlaStatus::Met { stopped_at, .. } | SlaStatus::Missed { stopped_at, .. } => {
                Some(stopped_at)
            }
            SlaStatus::Withdrawn { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Time past the deadline, if it has passed.
    pub fn overdue(&self) -> Option<TimeDelta> {
        match &self.status {
            SlaStatus::Breached { overdue, .. } => Some(*overdue),
            SlaStatus::Missed { late_by, .. } => Some(*late_by),
            SlaStatus::Withdrawn { overdue, .. } => *overdue,
            SlaStatus::Paused { remaining, .. } if *remaining < TimeDelta::zero() => {
                Some(-*remaining)
            }
            _ => None,
        }
    }

    /// Counted time left, while the clock runs or is paused before its deadline.
    pub fn remaining(&self) -> Option<TimeDelta> {
        match &self.status {
            SlaStatus::Running { remaining, .. } => Some(*remaining),
            SlaStatus::Paused { remaining, .. } if *remaining >= TimeDelta::zero() => {
                Some(*remaining)
            }
            _ => None,
        }
    }

    /// The clock is still going (running or paused).
    pub fn is_live(&self) -> bool {
        matches!(
            self.status,
            SlaStatus::Running { .. } | SlaStatus::Paused { .. } | SlaStatus::Breached { .. }
        )
    }
}

/// The warning window of a policy: its earliest `before_deadline` step,
/// or the last quarter of the target if it has none.
pub fn warning_window(policy: &Policy) -> TimeDelta {
    policy
        .steps
        .iter()
        .filter_map(|step| match step.trigger {
            Trigger::BeforeDeadline(lead) => Some(lead),
            _ => None,
        })
        .max()
        .unwrap_or(policy.clock.target / 4)
}

/// Every issue under every policy it matches or matched, as of `now`,
/// most urgent first: breaches by how late, then the least time left.
pub fn evaluate(issues: &[FetchedIssue], policies: &PolicySet, now: DateTime<Utc>) -> Vec<Row> {
    let mut rows = Vec::new();
    for fetched in issues {
        let facts = fetched.issue.facts();
        for policy in policies.policies.iter().filter(|p| p.reported) {
            let reading = clock::read(&fetched.issue, policy, now);
            let status = reading.status();
            if status == SlaStatus::NotMatching {
                continue;
            }
            let level = if status.is_breach() {
                Level::Breach
            } else if reading.is_live() && reading.remaining() <= warning_window(policy) {
                Level::Warning
            } else {
                Level::Ok
            };
            rows.push(Row {
                issue: facts.reference.to_string(),
                title: fetched.title.clone(),
                url: fetched.url.clone(),
                confidential: facts.confidential,
                assignees: facts.assignees.clone(),
                policy: policy.name.0.clone(),
                level,
                target: policy.clock.target,
                started_at: (reading.cycle > 0).then_some(reading.started_at),
                deadline: reading.deadline().or(match &status {
                    SlaStatus::Missed { deadline, .. } | SlaStatus::Breached { deadline, .. } => {
                        Some(*deadline)
                    }
                    _ => None,
                }),
                status,
                cycle: reading.cycle,
                acknowledged: None,
                calendar: policy.clock.calendar.as_ref().map(|c| c.name.clone()),
            });
        }
    }
    rows.sort_by(|a, b| {
        let live = |r: &Row| !r.is_live();
        (a.level, live(a))
            .cmp(&(b.level, live(b)))
            .then_with(|| b.overdue().cmp(&a.overdue()))
            .then_with(|| {
                a.remaining()
                    .unwrap_or(TimeDelta::MAX)
                    .cmp(&b.remaining().unwrap_or(TimeDelta::MAX))
            })
            .then_with(|| a.issue.cmp(&b.issue))
            .then_with(|| a.policy.cmp(&b.policy))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fetched, issue, policy_set, t};

    #[test]
    fn rows_come_most_urgent_first_with_their_level() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n      - on: { before_deadline: 6h }\n        gitlab: { comment: true }\n",
        ));
        let now = t(30 * 60);
        let issues = vec![
            // Labelled 20 hours before now: 4 hours left, inside the 6-hour window.
            fetched(
                issue(&[])
                    .iid(1)
                    .added(10 * 60, "priority::highest")
                    .build(),
            ),
            // Labelled 26 hours before now: 2 hours overdue.
            fetched(issue(&[]).iid(2).added(4 * 60, "priority::highest").build()),
            // Labelled 1 hour before now: fine.
            fetched(
                issue(&[])
                    .iid(3)
                    .added(29 * 60, "priority::highest")
                    .build(),
            ),
            // Never matched: no row.
            fetched(issue(&["type::bug"]).iid(4).build()),
        ];
        let rows = evaluate(&issues, &set, now);
        let order: Vec<(&str, Level)> = rows.iter().map(|r| (r.issue.as_str(), r.level)).collect();
        assert_eq!(
            order,
            vec![
                ("acme/app#2", Level::Breach),
                ("acme/app#1", Level::Warning),
                ("acme/app#3", Level::Ok),
            ]
        );
        assert_eq!(rows[0].overdue(), Some(TimeDelta::hours(2)));
        assert!(FailOn::Breach.crossed(&rows, &[]));
        assert!(FailOn::Warning.crossed(&rows[1..], &[]));
        assert!(!FailOn::Breach.crossed(&rows[1..], &[]));
        assert!(!FailOn::Never.crossed(&rows, &[]));
        let finding = watchdog::Finding {
            check: "lag",
            subject: "acme/app#1".into(),
            message: String::new(),
        };
        assert!(FailOn::Breach.crossed(&rows[2..], std::slice::from_ref(&finding)));
        assert!(!FailOn::Never.crossed(&rows[2..], &[finding]));
    }

    #[test]
    fn a_policy_that_is_not_reported_has_no_rows() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"p1\"] }\n    clock: { target: 24h }\n",
            "    escalation: []\n",
            "  - name: notice\n    report: false\n    match: { labels_any: [\"p1\"] }\n    clock: { target: 24h }\n",
            "    escalation: []\n",
        ));
        let issues = vec![fetched(issue(&[]).iid(1).added(0, "p1").build())];
        let rows = evaluate(&issues, &set, t(30 * 60));
        let policies: Vec<&str> = rows.iter().map(|r| r.policy.as_str()).collect();
        assert_eq!(policies, ["critical"], "the breach is reported once");
    }

    #[test]
    fn a_policy_s_record_counts_met_and_missed_and_spreads_the_time_to_resolve() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
        ));
        let now = t(60 * 60);
        let issues = vec![
            // Closed after 2h, 10h and 20h: met. Closed after 30h: missed by 6h.
            fetched(
                issue(&[])
                    .iid(1)
                    .added(0, "priority::highest")
                    .closed(2 * 60)
                    .build(),
            ),
            fetched(
                issue(&[])
                    .iid(2)
                    .added(0, "priority::highest")
                    .closed(10 * 60)
                    .build(),
            ),
            fetched(
                issue(&[])
                    .iid(3)
                    .added(0, "priority::highest")
                    .closed(20 * 60)
                    .build(),
            ),
            fetched(
                issue(&[])
                    .iid(4)
                    .added(0, "priority::highest")
                    .closed(30 * 60)
                    .build(),
            ),
            // Still running: counted as a clock, not as met or missed.
            fetched(
                issue(&[])
                    .iid(5)
                    .added(50 * 60, "priority::highest")
                    .build(),
            ),
        ];
        let summary = summarise(&evaluate(&issues, &set, now));
        assert_eq!(summary.len(), 1);
        let critical = &summary[0];
        assert_eq!((critical.clocks, critical.met, critical.missed), (5, 3, 1));
        assert_eq!(critical.met_share, Some(0.75));
        let spread = critical.time_to_resolve.unwrap();
        assert_eq!(
            (spread.median, spread.p90, spread.max),
            (
                TimeDelta::hours(10),
                TimeDelta::hours(30),
                TimeDelta::hours(30)
            )
        );
        assert_eq!(Spread::of(Vec::new()), None);
    }
}
