use chrono::{DateTime, NaiveDate, Utc};

use super::*;
use crate::clock::{self, ClockReading};
use crate::issue::Issue;
use crate::policy::PolicySet;
use crate::test_support::{issue, policy_set, t};

/// A triage rule that keeps the due date (Berlin time, so a late-evening
/// deadline in UTC is the next day's date), and a resolution rule that
/// does not.
fn rules() -> PolicySet {
    policy_set(concat!(
        "policies:\n",
        "  - name: triage\n    match: { labels_any: [\"type::bug\"] }\n",
        "    clock: { target: 24h, time_zone: Europe/Berlin, stops: { labeled: [\"workflow::*\"] }, pauses_while_labeled: [\"blocked\"] }\n",
        "    escalation:\n      - on: start\n        gitlab: { set_due_date: true }\n",
        "  - name: quiet\n    match: { labels_any: [\"type::bug\"] }\n    clock: { target: 48h }\n",
        "    escalation:\n      - on: breach\n        gitlab: { comment: true }\n",
    ))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Every policy's reading of `issue` at `now`.
fn read_all(set: &PolicySet, issue: &Issue, now: DateTime<Utc>) -> Vec<(Policy, ClockReading)> {
    set.policies
        .iter()
        .map(|p| (p.clone(), clock::read(issue, p, now)))
        .collect()
}

fn plan_at(
    set: &PolicySet,
    issue: &Issue,
    now: DateTime<Utc>,
    fired: &[(PolicyName, Firing)],
    current: Option<NaiveDate>,
) -> Option<DuePlan> {
    let readings = read_all(set, issue, now);
    let clocks: Vec<(&Policy, &ClockReading)> = readings.iter().map(|(p, r)| (p, r)).collect();
    let open = issue.facts().state == crate::issue::IssueState::Opened;
    plan(&clocks, fired, current, open)
}

fn triage_start(cycle: u32) -> (PolicyName, Firing) {
    (
        PolicyName("triage".into()),
        Firing {
            step: StepId("start".into()),
            cycle,
            occurrence: 0,
        },
    )
}

/// The ledger entry of a write.
fn recorded(plan: &DuePlan) -> (PolicyName, Firing) {
    (plan.policy.clone(), plan.firing.clone())
}

/// Labelled at 23:30 UTC on Monday 2 November: due 23:30 UTC on Tuesday,
/// which is 00:30 on Wednesday in Berlin.
fn labelled() -> crate::test_support::IssueBuilder {
    issue(&[]).added(14 * 60 + 30, "type::bug")
}

#[test]
fn the_due_date_is_the_deadline_s_date_in_the_clock_s_time_zone_once_the_step_fired() {
    let set = rules();
    let now = t(14 * 60 + 31);
    let bug = labelled().build();
    assert_eq!(
        plan_at(&set, &bug, now, &[], None),
        None,
        "nothing before the step that sets it has fired"
    );
    let planned = plan_at(&set, &bug, now, &[triage_start(1)], None).unwrap();
    assert_eq!(
        planned.write.to,
        Some(date(2026, 11, 4)),
        "Berlin's date, not UTC's 3 November"
    );
    assert_eq!(planned.policy.0, "triage");
    assert_eq!(planned.firing.step.0, "due=2026-11-04");
    assert_eq!(planned.firing.occurrence, 1);
    assert!(planned.write.ours.is_empty());

    // Written once per change: the next evaluation has nothing to do.
    let ledger = vec![triage_start(1), recorded(&planned)];
    assert_eq!(
        plan_at(
            &set,
            &bug,
            now + chrono::TimeDelta::hours(3),
            &ledger,
            Some(date(2026, 11, 4))
        ),
        None
    );
}

#[test]
fn a_pause_holds_the_date_and_resuming_moves_it_later() {
    let set = rules();
    let first = plan_at(
        &set,
        &labelled().build(),
        t(14 * 60 + 31),
        &[triage_start(1)],
        None,
    )
    .unwrap();
    let ledger = vec![triage_start(1), recorded(&first)];
    let shows = Some(date(2026, 11, 4));
    // Blocked for two days from Tuesday 09:00.
    let blocked = labelled().added(24 * 60, "blocked");
    assert_eq!(
        plan_at(&set, &blocked.clone().build(), t(30 * 60), &ledger, shows),
        None,
        "paused: the deadline is unknown and the date stays"
    );
    let resumed = blocked.removed(72 * 60, "blocked").build();
    let moved = plan_at(&set, &resumed, t(72 * 60 + 1), &ledger, shows).unwrap();
    assert_eq!(moved.write.to, Some(date(2026, 11, 6)), "two days later");
    assert_eq!(moved.firing.occurrence, 2);
    assert_eq!(moved.write.ours, vec![date(2026, 11, 4)]);
    // GitLab may still show the first date (the webhook of the second
    // write has not come yet): that is labelwarden's own, not a person's.
    assert!(moved.write.may_replace(shows));
}

#[test]
fn a_due_date_a_person_set_is_never_overwritten() {
    let set = rules();
    let bug = labelled().build();
    let now = t(14 * 60 + 31);
    let theirs = Some(date(2026, 11, 20));
    assert_eq!(
        plan_at(&set, &bug, now, &[triage_start(1)], theirs),
        None,
        "a date set before labelwarden wrote one"
    );
    let first = plan_at(&set, &bug, now, &[triage_start(1)], None).unwrap();
    let ledger = vec![triage_start(1), recorded(&first)];
    let blocked = labelled()
        .added(24 * 60, "blocked")
        .removed(72 * 60, "blocked")
        .build();
    assert_eq!(
        plan_at(&set, &blocked, t(72 * 60 + 1), &ledger, theirs),
        None,
        "a date set after labelwarden's: the move is not written"
    );
    let write = DueDateWrite {
        to: Some(date(2026, 11, 6)),
        ours: vec![date(2026, 11, 4)],
    };
    assert!(write.may_replace(None) && write.may_replace(Some(date(2026, 11, 4))));
    assert!(!write.may_replace(theirs));
}

#[test]
fn an_open_issue_whose_clock_stopped_loses_labelwarden_s_date_and_a_closed_one_keeps_it() {
    let set = rules();
    let first = plan_at(
        &set,
        &labelled().build(),
        t(14 * 60 + 31),
        &[triage_start(1)],
        None,
    )
    .unwrap();
    let ledger = vec![triage_start(1), recorded(&first)];
    let shows = Some(date(2026, 11, 4));
    let triaged = labelled().added(16 * 60, "workflow::ready").build();
    let cleared = plan_at(&set, &triaged, t(16 * 60 + 1), &ledger, shows).unwrap();
    assert_eq!(cleared.write.to, None);
    assert_eq!(cleared.firing.step.0, "due=none");
    // Cleared once.
    let after = [ledger.clone(), vec![recorded(&cleared)]].concat();
    assert_eq!(plan_at(&set, &triaged, t(17 * 60), &after, None), None);
    // A person's date on a triaged issue stays.
    assert_eq!(
        plan_at(
            &set,
            &triaged,
            t(16 * 60 + 1),
            &ledger,
            Some(date(2026, 12, 1))
        ),
        None
    );

    let closed = labelled().closed(16 * 60).build();
    assert_eq!(
        plan_at(&set, &closed, t(16 * 60 + 1), &ledger, shows),
        None,
        "a closed issue keeps its date as a record"
    );
}

#[test]
fn with_two_rules_keeping_it_the_earlier_deadline_wins_and_one_policy_writes() {
    let set = policy_set(concat!(
        "policies:\n",
        "  - name: slow\n    match: { labels_any: [\"type::bug\"] }\n    clock: { target: 72h }\n",
        "    escalation:\n      - on: start\n        gitlab: { set_due_date: true }\n",
        "  - name: fast\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
        "    escalation:\n      - on: start\n        gitlab: { set_due_date: true }\n",
    ));
    let bug = issue(&[])
        .added(0, "type::bug")
        .added(60, "priority::highest")
        .build();
    let fired = vec![
        (
            PolicyName("slow".into()),
            Firing {
                step: StepId("start".into()),
                cycle: 1,
                occurrence: 0,
            },
        ),
        (
            PolicyName("fast".into()),
            Firing {
                step: StepId("start".into()),
                cycle: 1,
                occurrence: 0,
            },
        ),
    ];
    let planned = plan_at(&set, &bug, t(61), &fired, None).unwrap();
    assert_eq!(
        planned.write.to,
        Some(date(2026, 11, 3)),
        "the 24-hour rule's"
    );
    assert_eq!(
        planned.policy.0, "slow",
        "the first rule that sets due dates writes them all"
    );
}

#[test]
fn steps_read_back_as_the_dates_they_wrote() {
    assert_eq!(
        written(&step(Some(date(2026, 12, 8)))),
        Some(Some(date(2026, 12, 8)))
    );
    assert_eq!(written(&step(None)), Some(None));
    assert_eq!(written(&StepId("breach".into())), None);
    assert_eq!(written(&StepId("due=soon".into())), None);
}
