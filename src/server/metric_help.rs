//! Every metric labelwarden exports, with the HELP text `/metrics` shows
//! for it: what it counts and what to do when it moves. Described once,
//! when the recorder is installed, so `promtool check metrics` finds no
//! metric without HELP. A test reads the sources and fails when a metric
//! is recorded that this list does not describe.

/// How Prometheus reads a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, by name.
pub const METRICS: &[Metric] = &[
    metric(
        "labelwarden_acknowledgements_total",
        Counter,
        "Alerts acknowledged in Slack (the eyes reaction), by policy.",
    ),
    metric(
        "labelwarden_actions_failed_total",
        Counter,
        "Escalation steps that failed to go out and will be retried, by kind of failure.",
    ),
    metric(
        "labelwarden_actions_sent_total",
        Counter,
        "Escalation steps carried out (Slack and GitLab parts), by policy.",
    ),
    metric(
        "labelwarden_breaches_total",
        Counter,
        "SLA clocks that passed their deadline while running, by policy.",
    ),
    metric(
        "labelwarden_clocks",
        Gauge,
        "Clocks the store holds, by policy and status (running, paused, breached, met, missed, withdrawn, ...).",
    ),
    metric(
        "labelwarden_deliveries_pending",
        Gauge,
        "GitLab webhook deliveries taken but not yet applied to the store; growing means the intake is behind.",
    ),
    metric(
        "labelwarden_deliveries_rejected_total",
        Counter,
        "GitLab webhook deliveries the enforcer could not apply and set aside.",
    ),
    metric(
        "labelwarden_destination_failing",
        Gauge,
        "1 while a Slack destination keeps refusing notices (they wait in the outbox), by channel.",
    ),
    metric(
        "labelwarden_drill_acknowledged",
        Gauge,
        "A drill's alert was acknowledged (1) or not (0), by policy; written by `labelwarden drill --metrics-file`, with drill=\"true\".",
    ),
    metric(
        "labelwarden_drill_outcome",
        Gauge,
        "How a drill ended (resolved, breached or stopped), by policy; written by `labelwarden drill --metrics-file`.",
    ),
    metric(
        "labelwarden_drill_secondary_reached",
        Gauge,
        "A drill's escalation tagged the on-call secondary (1) or not (0), by policy.",
    ),
    metric(
        "labelwarden_drill_steps_total",
        Counter,
        "Steps a drill said in Slack, by policy and step.",
    ),
    metric(
        "labelwarden_enforcer_active",
        Gauge,
        "1 on the replica that holds the enforcer lease and sends, 0 on the others.",
    ),
    metric(
        "labelwarden_enforcer_passes_rolled_back_total",
        Counter,
        "Enforcer passes undone because the lease was lost mid-pass (another replica took over).",
    ),
    metric(
        "labelwarden_fallback_notices_total",
        Counter,
        "Notices sent to a channel's fallback destination because the first one failed, by channel.",
    ),
    metric(
        "labelwarden_gitlab_actions_failed_total",
        Counter,
        "GitLab parts of steps (labels, comments, assignees) that failed, by policy.",
    ),
    metric(
        "labelwarden_gitlab_concurrency",
        Gauge,
        "The adaptive limit on GitLab API requests in flight.",
    ),
    metric(
        "labelwarden_gitlab_requests_total",
        Counter,
        "GitLab API requests, by outcome.",
    ),
    metric(
        "labelwarden_issues_moved_total",
        Counter,
        "Issues followed to the project they were moved to.",
    ),
    metric(
        "labelwarden_ledger_write_failures_total",
        Counter,
        "Failed writes of the ledger note on an issue (what was sent, for audit); retried.",
    ),
    metric(
        "labelwarden_muted_notices_total",
        Counter,
        "Notices held by a mute or a maintenance window, by policy.",
    ),
    metric("labelwarden_mutes_active", Gauge, "Mutes in force now."),
    metric(
        "labelwarden_notice_delay_seconds",
        Histogram,
        "Time from a step being due to its notice going out, in seconds.",
    ),
    metric(
        "labelwarden_outbox_claims_lost_total",
        Counter,
        "Outbox entries whose claim expired before they were sent (a frozen or slow replica); another replica sends them.",
    ),
    metric(
        "labelwarden_outbox_failed",
        Gauge,
        "Outbox entries that failed for good and wait for `labelwarden outbox resend`.",
    ),
    metric(
        "labelwarden_outbox_pending",
        Gauge,
        "Outbox entries waiting to be sent; growing means a destination is down or slow.",
    ),
    metric(
        "labelwarden_policy_calendar_info",
        Gauge,
        "1 for each policy counting working time on a calendar, with the calendar's name.",
    ),
    metric(
        "labelwarden_projects_followed_total",
        Counter,
        "Renamed or transferred projects followed to their new path.",
    ),
    metric(
        "labelwarden_reconcile_last_pass_requests",
        Gauge,
        "GitLab requests the last reconcile pass made, by mode (full or incremental).",
    ),
    metric(
        "labelwarden_reconcile_last_success_timestamp_seconds",
        Gauge,
        "Unix time of the last reconcile pass that completed; old means reconcile is failing.",
    ),
    metric(
        "labelwarden_reconcile_repairs_total",
        Counter,
        "Issues reconcile found out of step with GitLab and repaired, by kind.",
    ),
    metric(
        "labelwarden_reconcile_requests_total",
        Counter,
        "GitLab requests made by reconcile passes, by mode (full or incremental).",
    ),
    metric(
        "labelwarden_reconcile_runs_total",
        Counter,
        "Reconcile passes, by outcome.",
    ),
    metric(
        "labelwarden_scheduler_lag_seconds",
        Gauge,
        "How late the next due wake-up is, in seconds; above a few seconds steps go out late.",
    ),
    metric(
        "labelwarden_sla_met_ratio",
        Gauge,
        "Share of the policy's stopped clocks that met their deadline, by policy.",
    ),
    metric(
        "labelwarden_sla_outcomes_total",
        Counter,
        "Clocks that stopped, by policy and outcome (met or missed).",
    ),
    metric(
        "labelwarden_slack_events_total",
        Counter,
        "Slack events received, by result.",
    ),
    metric(
        "labelwarden_slack_messages_total",
        Counter,
        "Slack messages posted, by channel.",
    ),
    metric(
        "labelwarden_slack_permanent_errors_total",
        Counter,
        "Notices Slack refused for good (bad channel or token), by channel and error.",
    ),
    metric(
        "labelwarden_raised_in_slack_total",
        Counter,
        "People's Slack messages made GitLab issues by the raise reaction, by outcome (created, adopted).",
    ),
    metric(
        "labelwarden_slack_requests_total",
        Counter,
        "Slack Web API requests, by method and outcome.",
    ),
    metric(
        "labelwarden_slack_resolutions_total",
        Counter,
        "Issues resolved or marked false positive from Slack reactions, by policy and what was said.",
    ),
    metric(
        "labelwarden_slack_to_gitlab_failed_total",
        Counter,
        "Slack reactions that could not be written to GitLab.",
    ),
    metric(
        "labelwarden_steps_adopted_total",
        Counter,
        "Steps recorded as done without sending, when a clock was adopted (a backlog, a new policy), by policy.",
    ),
    metric(
        "labelwarden_steps_fired_total",
        Counter,
        "Steps that became due and were queued, by policy and step kind.",
    ),
    metric(
        "labelwarden_store_bytes",
        Gauge,
        "Size of the store on disk (SQLite) or of its tables (PostgreSQL), in bytes.",
    ),
    metric(
        "labelwarden_store_deliveries_pruned_total",
        Counter,
        "Old webhook deliveries removed by retention.",
    ),
    metric(
        "labelwarden_store_issues_forgotten_total",
        Counter,
        "Ended issues forgotten by retention.",
    ),
    metric(
        "labelwarden_store_rows",
        Gauge,
        "Rows in the store, by table.",
    ),
    metric(
        "labelwarden_store_up",
        Gauge,
        "1 while the store answers, 0 when it does not.",
    ),
    metric(
        "labelwarden_time_to_acknowledge_seconds",
        Histogram,
        "From a clock's start to its first acknowledgement in Slack, in seconds, by policy.",
    ),
    metric(
        "labelwarden_time_to_resolve_seconds",
        Histogram,
        "Counted time from a clock's start to its resolution, in seconds, by policy.",
    ),
    metric(
        "labelwarden_webhook_deliveries_total",
        Counter,
        "GitLab webhook deliveries received, by event and result.",
    ),
    metric(
        "labelwarden_webhook_intake_seconds",
        Histogram,
        "Time to answer a GitLab webhook delivery (check, parse, store), in seconds, by result.",
    ),
];

/// Describes every metric to the installed recorder.
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            Counter => metrics::describe_counter!(metric.name, metric.help),
            Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// `(name, kind)` of every `metrics::counter!`, `gauge!` and
    /// `histogram!` in the sources under `dir`.
    fn recorded(dir: &Path, found: &mut BTreeSet<(String, Kind)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                recorded(&path, found);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (macro_name, kind) in [
                ("counter!(", Counter),
                ("gauge!(", Gauge),
                ("histogram!(", Histogram),
            ] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = text[at + macro_name.len()..].trim_start();
                    if let Some(name) = rest
                        .strip_prefix('"')
                        .and_then(|r| r.split_once('"'))
                        .map(|(name, _)| name)
                        .filter(|name| name.starts_with("labelwarden_"))
                    {
                        found.insert((name.to_owned(), kind));
                    }
                }
            }
        }
    }

    #[test]
    fn every_recorded_metric_is_described_once_with_its_kind() {
        let mut found = BTreeSet::new();
        recorded(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 40, "the sources were read: {found:?}");
        for (name, kind) in &found {
            let described: Vec<&Metric> = METRICS.iter().filter(|m| m.name == name).collect();
            assert_eq!(
                described.len(),
                1,
                "{name} is described once: add it to METRICS"
            );
            assert_eq!(described[0].kind, *kind, "{name}");
        }
        for metric in METRICS {
            assert!(
                found.iter().any(|(name, _)| name == metric.name),
                "{} is described but never recorded",
                metric.name
            );
            assert!(metric.help.ends_with('.'), "{}", metric.name);
        }
    }
}
