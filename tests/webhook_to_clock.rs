//! A GitLab delivery, read at the edge, drives the core: the shipped
//! critical-bug policy starts its 24-hour clock when the label was added.

use std::path::Path;

use chrono::{TimeDelta, TimeZone, Utc};
use labelwarden::clock::{self, SlaStatus};
use labelwarden::engine::{self, Ledger};
use labelwarden::gitlab::webhook::parse_issue_hook;
use labelwarden::issue::Issue;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gitlab")
            .join(name),
    )
    .unwrap()
}

#[test]
fn priority_highest_added_by_webhook_starts_the_24h_clock_then() {
    let policies =
        labelwarden::policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
    let critical = policies
        .policies
        .iter()
        .find(|p| p.name.0 == "critical-bug-24h")
        .unwrap();
    let delivery = parse_issue_hook(&fixture("issue_hook_priority_highest_added.json")).unwrap();
    let issue = Issue::new(delivery.facts, delivery.events);

    let labelled_at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 5, 0).unwrap();
    let reading = clock::read(&issue, critical, labelled_at + TimeDelta::minutes(10));
    assert_eq!(
        reading.status(),
        SlaStatus::Running {
            deadline: labelled_at + TimeDelta::hours(24),
            remaining: TimeDelta::minutes(23 * 60 + 50)
        }
    );
    let decision = engine::decide(critical, &reading, &Ledger::default());
    let steps: Vec<&str> = decision
        .actions
        .iter()
        .map(|a| a.firing.step.0.as_str())
        .collect();
    assert_eq!(steps, vec!["start"]);
    assert_eq!(decision.actions[0].due_at, labelled_at);
    assert_eq!(
        decision.next_wake,
        Some(labelled_at + TimeDelta::minutes(30)),
        "the on-call secondary, if nobody acknowledged by then"
    );
    let later = clock::read(&issue, critical, labelled_at + TimeDelta::hours(1));
    let acknowledged =
        Ledger::new(vec![decision.actions[0].firing.clone()]).with_acknowledged(vec![1]);
    let decision = engine::decide(critical, &later, &acknowledged);
    assert!(
        decision.actions.is_empty(),
        "acknowledged: nobody else is tagged"
    );
    assert_eq!(
        decision.next_wake,
        Some(labelled_at + TimeDelta::hours(18)),
        "the 6h warning"
    );
}

#[test]
fn a_confidential_incident_is_for_the_security_policy_only() {
    let policies =
        labelwarden::policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
    let delivery = parse_issue_hook(&fixture("work_item_hook_incident.json")).unwrap();
    let issue = Issue::new(delivery.facts, delivery.events);
    let now = Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap();
    let matching: Vec<&str> = policies
        .policies
        .iter()
        .filter(|p| clock::read(&issue, p, now).status() != SlaStatus::NotMatching)
        .map(|p| p.name.0.as_str())
        .collect();
    assert_eq!(
        matching,
        vec!["security-incident"],
        "the outage policy excludes `security`"
    );
}
