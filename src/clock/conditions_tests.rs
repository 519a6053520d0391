//! The clock under conditions beyond labels (age windows, the state, the
//! facts taken as the issue is now) and under rules (a grace that a later
//! change ends, `unless`, once per occurrence).

use chrono::TimeDelta;

use super::*;
use crate::engine::{Ledger, decide};
use crate::test_support::{issue, policy, t};

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// A triage clock that starts once a bug is two days old without a priority.
fn untriaged() -> Policy {
    policy(
        r#"
  - name: untriaged
    match: { labels_all: ["type::bug"], labels_none: ["priority::*"], created: { older_than: 2d } }
    clock: { target: 1h, stops: { labeled: ["priority::*"] } }
    escalation:
      - on: breach
        gitlab: { add_labels: ["needs-triage"] }
"#,
    )
}

#[test]
fn an_age_condition_starts_the_clock_when_the_issue_becomes_old_enough() {
    let two_days = 2 * 24 * 60;
    let bug = issue(&["type::bug"]).build();
    let young = read(&bug, &untriaged(), t(two_days - 1));
    assert_eq!(young.cycle, 0);
    assert_eq!(
        young.window_edge,
        Some(t(two_days)),
        "the clock knows when to look again"
    );
    let decision = decide(&untriaged(), &young, &Ledger::default());
    assert_eq!(decision.next_wake, Some(t(two_days)), "serve wakes then");

    let old = read(&bug, &untriaged(), t(two_days + 30));
    assert_eq!(old.cycle, 1);
    assert_eq!(old.started_at, t(two_days));
    assert_eq!(old.active, minutes(30));
    let later = read(&bug, &untriaged(), t(two_days + 61));
    let actions = decide(&untriaged(), &later, &Ledger::default()).actions;
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].due_at, t(two_days + 60));
}

#[test]
fn an_issue_triaged_before_it_is_old_enough_never_starts_a_clock() {
    let two_days = 2 * 24 * 60;
    let triaged = issue(&["type::bug"]).added(60, "priority::low").build();
    let reading = read(&triaged, &untriaged(), t(two_days + 60));
    assert_eq!(reading.cycle, 0);
}

#[test]
fn a_newer_than_condition_withdraws_the_cycle_when_the_issue_grows_too_old() {
    let fresh = policy(
        r#"
  - name: fresh
    match: { labels_any: ["priority::highest"], created: { newer_than: 90m } }
    clock: { target: 2h }
"#,
    );
    let labelled = issue(&[]).added(30, "priority::highest").build();
    let running = read(&labelled, &fresh, t(60));
    assert_eq!(running.phase, Phase::Running);
    assert_eq!(running.window_edge, Some(t(90)));
    let aged = read(&labelled, &fresh, t(120));
    assert_eq!(aged.phase, Phase::Withdrawn);
    assert_eq!(aged.phase_since, t(90));
    assert_eq!(aged.active, minutes(60));
}

#[test]
fn a_state_condition_withdraws_a_label_stopped_clock_on_close() {
    let open_triage = policy(
        r#"
  - name: open-triage
    match: { labels_all: ["type::bug"], state: opened }
    clock: { target: 1d, stops: { labeled: ["priority::*"] } }
"#,
    );
    let closed = issue(&["type::bug"]).closed(30).build();
    let reading = read(&closed, &open_triage, t(60));
    assert_eq!(reading.phase, Phase::Withdrawn, "not paused as closed");
    assert_eq!(reading.phase_since, t(30));
    let reopened = issue(&["type::bug"]).closed(30).reopened(40).build();
    let again = read(&reopened, &open_triage, t(60));
    assert_eq!((again.cycle, again.phase), (2, Phase::Running));
}

#[test]
fn assigning_the_issue_ends_a_clock_that_asks_for_nobody_assigned() {
    let unowned = policy(
        r#"
  - name: unowned
    match: { labels_any: ["priority::highest"], assignees: none }
    clock: { target: 15m }
"#,
    );
    let nobody = issue(&["priority::highest"]).assigned(&[]).build();
    assert_eq!(read(&nobody, &unowned, t(10)).phase, Phase::Running);
    let owned = issue(&["priority::highest"]).assigned(&["ada"]).build();
    assert_eq!(read(&owned, &unowned, t(10)).cycle, 0);
}

/// A rule: a critical issue without an assignee after 15 minutes gets a
/// label, unless it is labelled `wontfix`.
fn needs_owner() -> Policy {
    crate::test_support::policy_set(concat!(
        "rules:\n",
        "  - name: needs-owner\n",
        "    match: { labels_any: [\"priority::highest\"], assignees: none }\n",
        "    unless: { labels_any: [wontfix] }\n",
        "    after: 15m\n",
        "    actions: { add_labels: [needs-owner] }\n",
    ))
    .policies
    .remove(0)
}

fn acts(issue: &Issue, now: i64) -> Vec<crate::engine::Firing> {
    let rule = needs_owner();
    let reading = read(issue, &rule, t(now));
    decide(&rule, &reading, &Ledger::default())
        .actions
        .into_iter()
        .map(|a| a.firing)
        .collect()
}

#[test]
fn a_rule_acts_once_its_grace_has_passed_and_once_per_occurrence() {
    let unowned = issue(&[])
        .assigned(&[])
        .added(0, "priority::highest")
        .build();
    assert!(acts(&unowned, 14).is_empty(), "within the grace");
    let fired = acts(&unowned, 15);
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].step.0.as_str(), fired[0].cycle), ("act", 1));
    let rule = needs_owner();
    let ledger = Ledger::new(fired);
    let later = read(&unowned, &rule, t(600));
    assert!(decide(&rule, &later, &ledger).actions.is_empty(), "once");

    // Unlabelled and labelled again: a new occurrence acts again.
    let again = issue(&[])
        .assigned(&[])
        .added(0, "priority::highest")
        .removed(30, "priority::highest")
        .added(60, "priority::highest")
        .build();
    let reading = read(&again, &rule, t(80));
    let fired = decide(&rule, &reading, &ledger).actions;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].firing.cycle, 2);
}

#[test]
fn a_change_within_the_grace_ends_it_and_closing_does_not_hold_it() {
    let waived = issue(&[])
        .assigned(&[])
        .added(0, "priority::highest")
        .added(10, "wontfix")
        .build();
    assert!(acts(&waived, 60).is_empty(), "`unless` ended the grace");
    let reading = read(&waived, &needs_owner(), t(60));
    assert_eq!(reading.phase, Phase::Withdrawn);

    let closed = issue(&[])
        .assigned(&[])
        .added(0, "priority::highest")
        .closed(5)
        .build();
    assert_eq!(
        acts(&closed, 15).len(),
        1,
        "a rule's grace runs while closed"
    );
}
