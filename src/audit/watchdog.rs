//! The watchdog: what makes a webhook service fail silently, reported as
//! failures of their own by `audit --watchdog`.
//!
//! - labelwarden's webhook on the audited project or group is missing,
//!   does not send issue events, or was disabled by GitLab after failed
//!   deliveries;
//! - a live clock whose start step comments on the issue (the shipped
//!   policies do) has been running longer than `--lag-tolerance` with no
//!   labelwarden marker on the issue: the service is down or lagging.
//!
//! Pure: hooks, issues and markers are read by the caller.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::clock;
use crate::gitlab::history::FetchedIssue;
use crate::gitlab::hooks::{Hook, is_labelwardens};
use crate::gitlab::markers::Marker;
use crate::policy::{PolicySet, Trigger};

/// One thing the watchdog found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `webhook` or `lag`.
    pub check: &'static str,
    /// What it is about: the scope, or an issue reference.
    pub subject: String,
    pub message: String,
}

/// What is wrong with the scope's webhooks, if anything.
pub fn webhook_findings(
    hooks: &[Hook],
    scope: &str,
    expected_url: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let finding = |message: String| Finding {
        check: "webhook",
        subject: scope.to_owned(),
        message,
    };
    let ours: Vec<&Hook> = hooks
        .iter()
        .filter(|h| is_labelwardens(h, expected_url))
        .collect();
    if ours.is_empty() {
        return vec![finding(format!(
            "no labelwarden webhook on {scope} ({}): GitLab sends it no events",
            expected_url.map_or_else(
                || "no hook URL ends in /webhooks/gitlab".to_owned(),
                |url| format!("none points to {url}")
            )
        ))];
    }
    let mut found = Vec::new();
    for hook in ours {
        match hook.alert_status.as_deref() {
            Some("disabled") => found.push(finding(format!(
                "webhook {} was disabled by GitLab after repeated failed deliveries: re-enable it under Settings → Webhooks, after fixing what made it fail",
                hook.id
            ))),
            Some("temporarily_disabled") if hook.disabled_until.is_none_or(|until| until > now) => {
                found.push(finding(format!(
                    "webhook {} is temporarily disabled by GitLab after failed deliveries{}",
                    hook.id,
                    hook.disabled_until
                        .map(|until| format!(", until {}", until.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default()
                )))
            }
            _ => {}
        }
        if !hook.issues_events {
            found.push(finding(format!(
                "webhook {} does not send issue events: tick \"Issues events\"",
                hook.id
            )));
        }
        if !hook.confidential_issues_events {
            found.push(finding(format!(
                "webhook {} does not send confidential issue events: tick \"Confidential issues events\"",
                hook.id
            )));
        }
    }
    found
}

/// Live clocks whose start step comments on the issue, started more than
/// `tolerance` ago, with no labelwarden marker for their cycle.
pub fn lag_findings(
    issues: &[(&FetchedIssue, &[Marker])],
    policies: &PolicySet,
    now: DateTime<Utc>,
    tolerance: TimeDelta,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for (fetched, markers) in issues {
        for policy in &policies.policies {
            let comments_at_start = policy.steps.iter().any(|step| {
                step.trigger == Trigger::Start && step.gitlab.as_ref().is_some_and(|g| g.comment)
            });
            if !comments_at_start {
                continue;
            }
            let reading = clock::read(&fetched.issue, policy, now);
            if !reading.is_live() || reading.cycle == 0 {
                continue;
            }
            let started = reading.started_at;
            if now - started <= tolerance {
                continue;
            }
            let marked = markers
                .iter()
                .any(|m| m.policy == policy.name && m.firing.cycle == reading.cycle);
            if !marked {
                found.push(Finding {
                    check: "lag",
                    subject: fetched.issue.reference().to_string(),
                    message: format!(
                        "{}'s clock started {} ({} ago) but labelwarden left no note on the issue: is serve down or lagging?",
                        policy.name,
                        started.format("%Y-%m-%d %H:%M UTC"),
                        crate::policy::duration::human(now - started)
                    ),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fetched, issue, policy_set, start_marker, t};

    fn hook(url: &str, status: &str) -> Hook {
        Hook {
            id: 7,
            url: url.to_owned(),
            issues_events: true,
            confidential_issues_events: true,
            alert_status: Some(status.to_owned()),
            disabled_until: None,
            enable_ssl_verification: Some(true),
        }
    }

    #[test]
    fn a_missing_disabled_or_deaf_webhook_is_a_finding() {
        let now = t(0);
        let ok = hook("https://lw.example.com/webhooks/gitlab", "executable");
        assert!(webhook_findings(std::slice::from_ref(&ok), "project g/p", None, now).is_empty());

        let other = hook("https://ci.example.com/hook", "executable");
        let missing = webhook_findings(&[other], "project g/p", None, now);
        assert!(
            missing[0]
                .message
                .starts_with("no labelwarden webhook on project g/p")
        );

        let disabled = hook("https://lw.example.com/webhooks/gitlab", "disabled");
        assert!(
            webhook_findings(&[disabled], "project g/p", None, now)[0]
                .message
                .contains("disabled by GitLab")
        );

        let mut paused = hook(
            "https://lw.example.com/webhooks/gitlab",
            "temporarily_disabled",
        );
        paused.disabled_until = Some(now + TimeDelta::minutes(10));
        assert!(
            webhook_findings(std::slice::from_ref(&paused), "project g/p", None, now)[0]
                .message
                .contains("until 2026-11-02 09:10 UTC")
        );
        paused.disabled_until = Some(now - TimeDelta::minutes(1));
        assert!(
            webhook_findings(&[paused], "project g/p", None, now).is_empty(),
            "the pause is over"
        );

        let mut deaf = ok.clone();
        deaf.issues_events = false;
        assert!(
            webhook_findings(&[deaf], "project g/p", None, now)[0]
                .message
                .contains("does not send issue events")
        );

        let elsewhere = webhook_findings(
            &[ok],
            "project g/p",
            Some("https://lw2.example.com/webhooks/gitlab"),
            now,
        );
        assert!(
            elsewhere[0]
                .message
                .contains("none points to https://lw2.example.com")
        );
    }

    #[test]
    fn a_clock_without_its_start_note_after_the_tolerance_is_lag() {
        let set = policy_set(concat!(
            "policies:\n",
            "  - name: critical\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
            "    escalation:\n      - on: start\n        gitlab: { comment: true }\n",
        ));
        let fetched = fetched(issue(&[]).added(0, "priority::highest").build());
        let marker = start_marker();
        let tolerance = TimeDelta::minutes(10);
        let unmarked = vec![(&fetched, &[][..])];
        assert!(
            lag_findings(&unmarked, &set, t(5), tolerance).is_empty(),
            "within tolerance"
        );
        let late = lag_findings(&unmarked, &set, t(30), tolerance);
        assert_eq!(late.len(), 1);
        assert!(
            late[0]
                .message
                .contains("started 2026-11-02 09:00 UTC (30m ago)"),
            "{late:?}"
        );
        let markers = [marker];
        let marked = vec![(&fetched, &markers[..])];
        assert!(lag_findings(&marked, &set, t(30), tolerance).is_empty());
    }
}
