use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::clock::read;
use crate::issue::Issue;
use crate::policy::Policy;
use crate::test_support::histories::{apply, history};
use crate::test_support::{IssueBuilder, issue, policy, t};

/// The issue's example policy, with a 60-minute target so a test reads in minutes.
fn escalating() -> Policy {
    policy(
        r#"
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock: { target: 60m, pauses_while_labeled: ["blocked::upstream"] }
    escalation:
      - on: start
        slack: { channel: alerts, mention: [contacts] }
      - on: { before_deadline: 15m }
        slack: { channel: alerts, mention: [assignees] }
      - on: breach
        slack: { channel: alerts, mention: [contacts, assignees], broadcast: true }
        gitlab: { add_labels: ["missed::SLA"], comment: true }
      - on: { every: 20m, after: breach }
        slack: { channel: alerts }
      - on: resolved
        slack: { channel: alerts, react: white_check_mark }
      - on: withdrawn
        slack: { channel: alerts }
"#,
    )
}

/// Runs the engine at `now`, records what it returns, and gives back the
/// step ids (with occurrence when it is not 0) and the next wake-up.
fn run(
    issue: &Issue,
    policy: &Policy,
    ledger: &mut Ledger,
    now: i64,
) -> (Vec<String>, Option<DateTime<Utc>>) {
    let decision = decide(policy, &read(issue, policy, t(now)), ledger);
    let names = decision
        .actions
        .iter()
        .map(|a| {
            ledger.record(a.firing.clone());
            match a.firing.occurrence {
                0 => a.firing.step.0.clone(),
                n => format!("{}#{n}", a.firing.step.0),
            }
        })
        .collect();
    (names, decision.next_wake)
}

fn labelled_at_0() -> IssueBuilder {
    issue(&[]).added(0, "priority::highest")
}

#[test]
fn start_fires_once_and_schedules_the_warning() {
    let issue = labelled_at_0().build();
    let mut ledger = Ledger::default();
    assert_eq!(
        run(&issue, &escalating(), &mut ledger, 0),
        (vec!["start".into()], Some(t(45)))
    );
    assert_eq!(
        run(&issue, &escalating(), &mut ledger, 0),
        (vec![], Some(t(45)))
    );
    assert_eq!(
        run(&issue, &escalating(), &mut ledger, 10),
        (vec![], Some(t(45)))
    );
}

#[test]
fn each_threshold_fires_once_on_time() {
    let issue = labelled_at_0().build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    assert_eq!(
        run(&issue, &policy, &mut ledger, 45),
        (vec!["before_deadline:15m".into()], Some(t(60)))
    );
    assert_eq!(run(&issue, &policy, &mut ledger, 45), (vec![], Some(t(60))));
    assert_eq!(
        run(&issue, &policy, &mut ledger, 60),
        (vec!["breach".into()], Some(t(80)))
    );
    assert_eq!(run(&issue, &policy, &mut ledger, 60), (vec![], Some(t(80))));
    assert_eq!(
        run(&issue, &policy, &mut ledger, 80),
        (vec!["every:20m:after:breach#1".into()], Some(t(100)))
    );
    assert_eq!(
        run(&issue, &policy, &mut ledger, 100),
        (vec!["every:20m:after:breach#2".into()], Some(t(120)))
    );
}

#[test]
fn a_late_run_fires_missed_steps_once_each_in_order_without_a_stale_warning() {
    let issue = labelled_at_0().build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 1);
    // Down from minute 1 to minute 130: the warning, the breach and three
    // reminders came due meanwhile.
    let decision = decide(&policy, &read(&issue, &policy, t(130)), &ledger);
    let fired: Vec<(&str, u32, DateTime<Utc>)> = decision
        .actions
        .iter()
        .map(|a| (a.firing.step.0.as_str(), a.firing.occurrence, a.due_at))
        .collect();
    assert_eq!(
        fired,
        vec![("breach", 0, t(60)), ("every:20m:after:breach", 3, t(120))],
        "the breach once, then only the latest reminder; no warning after the deadline"
    );
    assert_eq!(
        decision.actions[0].late_by(t(130), TimeDelta::seconds(30)),
        Some(TimeDelta::minutes(70))
    );
    for action in &decision.actions {
        ledger.record(action.firing.clone());
    }
    assert_eq!(
        run(&issue, &policy, &mut ledger, 130),
        (vec![], Some(t(140)))
    );
}

#[test]
fn an_issue_first_seen_after_its_deadline_still_gets_its_start_and_breach() {
    let issue = labelled_at_0().build();
    let (names, _) = run(&issue, &escalating(), &mut Ledger::default(), 70);
    assert_eq!(names, vec!["start", "breach"]);
}

#[test]
fn closing_before_the_deadline_resolves_and_cancels_the_breach() {
    let issue = labelled_at_0().closed(30).build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    assert_eq!(
        run(&issue, &policy, &mut ledger, 30),
        (vec!["resolved#1".into()], None)
    );
    assert_eq!(run(&issue, &policy, &mut ledger, 200), (vec![], None));
}

#[test]
fn reopened_and_closed_again_resolves_again() {
    let issue = labelled_at_0().closed(30).reopened(40).closed(50).build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    run(&issue, &policy, &mut ledger, 30);
    assert_eq!(
        run(&issue, &policy, &mut ledger, 50),
        (vec!["resolved#2".into()], None)
    );
}

#[test]
fn withdrawal_is_said_once_and_cancels_what_was_pending() {
    let issue = labelled_at_0().removed(20, "priority::highest").build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    assert_eq!(
        run(&issue, &policy, &mut ledger, 20),
        (vec!["withdrawn".into()], None)
    );
    assert_eq!(run(&issue, &policy, &mut ledger, 100), (vec![], None));
}

#[test]
fn nothing_is_said_about_a_cycle_that_ended_before_anyone_heard_of_it() {
    let issue = labelled_at_0().closed(90).build();
    assert_eq!(
        run(&issue, &escalating(), &mut Ledger::default(), 100),
        (vec![], None)
    );
    let withdrawn = labelled_at_0().removed(20, "priority::highest").build();
    assert_eq!(
        run(&withdrawn, &escalating(), &mut Ledger::default(), 30),
        (vec![], None)
    );
}

#[test]
fn a_breach_missed_while_down_is_still_recorded_for_an_announced_cycle() {
    let issue = labelled_at_0().closed(90).build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    assert_eq!(
        run(&issue, &policy, &mut ledger, 100),
        (vec!["breach".into(), "resolved#1".into()], None)
    );
}

#[test]
fn a_new_cycle_fires_its_steps_again() {
    let issue = labelled_at_0()
        .removed(20, "priority::highest")
        .added(30, "priority::highest")
        .build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    run(&issue, &policy, &mut ledger, 20);
    assert_eq!(
        run(&issue, &policy, &mut ledger, 30),
        (vec!["start".into()], Some(t(75)))
    );
    assert!(ledger.contains(&Firing {
        step: StepId("start".into()),
        cycle: 2,
        occurrence: 0
    }));
}

#[test]
fn a_paused_clock_schedules_nothing_until_it_resumes() {
    let issue = labelled_at_0().added(10, "blocked::upstream").build();
    let policy = escalating();
    let mut ledger = Ledger::default();
    run(&issue, &policy, &mut ledger, 0);
    assert_eq!(run(&issue, &policy, &mut ledger, 20), (vec![], None));
}

#[test]
fn a_capped_pause_wakes_when_its_allowance_runs_out() {
    let capped = policy(
        r#"
  - name: capped
    match: { labels_any: ["priority::highest"] }
    clock: { target: 60m, pauses_while_labeled: ["blocked::upstream"], max_pause: 30m }
    escalation:
      - on: breach
        slack: { channel: alerts }
"#,
    );
    let issue = labelled_at_0().added(10, "blocked::upstream").build();
    assert_eq!(
        run(&issue, &capped, &mut Ledger::default(), 20),
        (vec![], Some(t(40)))
    );
}

#[test]
fn actions_carry_what_to_send() {
    let issue = labelled_at_0().build();
    let policy = escalating();
    let decision = decide(&policy, &read(&issue, &policy, t(60)), &Ledger::default());
    let breach = decision
        .actions
        .iter()
        .find(|a| a.trigger == Trigger::Breach)
        .unwrap();
    let slack = breach.slack.as_ref().unwrap();
    assert_eq!(slack.channel, "alerts");
    assert!(slack.broadcast);
    assert_eq!(
        breach.gitlab.as_ref().unwrap().add_labels,
        vec!["missed::SLA".to_owned()]
    );
}

// --- Properties --------------------------------------------------------

proptest! {
    /// A scheduler that runs the engine at every event and at every wake-up
    /// it asks for never sees a step late: next_wake misses nothing.
    #[test]
    fn a_prompt_scheduler_fires_every_step_exactly_when_due(history in history()) {
        let issue = apply(&[], &history).builder.build();
        let policy = escalating();
        let mut ledger = Ledger::default();
        let mut instants: Vec<DateTime<Utc>> = history.iter().map(|(m, _)| t(*m)).collect();
        instants.push(t(0));
        let horizon = t(1_500);
        let mut fired = 0;
        while let Some(now) = instants.iter().copied().filter(|i| *i <= horizon).min() {
            instants.retain(|i| *i != now);
            let decision = decide(&policy, &read(&issue, &policy, now), &ledger);
            for action in &decision.actions {
                prop_assert_eq!(action.due_at, now, "{:?} came due without a wake-up", action.firing);
                ledger.record(action.firing.clone());
                fired += 1;
            }
            if let Some(wake) = decision.next_wake {
                prop_assert!(wake > now, "a wake-up must be in the future");
                instants.push(wake);
            }
        }
        prop_assert_eq!(fired, ledger.firings().len(), "no firing was returned twice");
    }

    /// Running the engine again with the updated ledger yields nothing new.
    #[test]
    fn a_second_run_with_the_updated_ledger_sends_nothing(history in history(), now in 0i64..1_500) {
        let issue = apply(&[], &history).builder.build();
        let policy = escalating();
        let reading = read(&issue, &policy, t(now));
        let mut ledger = Ledger::default();
        for action in decide(&policy, &reading, &ledger).actions {
            ledger.record(action.firing);
        }
        prop_assert!(decide(&policy, &reading, &ledger).actions.is_empty());
    }
}

#[test]
fn an_unless_acknowledged_step_fires_only_while_nobody_acknowledged() {
    let policy = policy(concat!(
        "  - name: p\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n",
        "    escalation:\n",
        "      - on: start\n        gitlab: { comment: true }\n",
        "      - on: { after_start: 30m, unless: acknowledged }\n        gitlab: { comment: true }\n",
    ));
    assert_eq!(policy.steps[1].id.0, "after_start:30m:unless:acknowledged");
    let issue = issue(&[]).added(0, "priority::highest").build();
    let start = Firing {
        step: policy.steps[0].id.clone(),
        cycle: 1,
        occurrence: 0,
    };

    let early = read(&issue, &policy, t(10));
    let decision = decide(&policy, &early, &Ledger::new(vec![start.clone()]));
    assert!(decision.actions.is_empty());
    assert_eq!(decision.next_wake, Some(t(30)), "wakes when it comes due");

    let late = read(&issue, &policy, t(40));
    let unanswered = decide(&policy, &late, &Ledger::new(vec![start.clone()]));
    assert_eq!(unanswered.actions.len(), 1);
    assert_eq!(unanswered.actions[0].due_at, t(30));

    let answered = Ledger::new(vec![start]).with_acknowledged(vec![1]);
    let decision = decide(&policy, &late, &answered);
    assert!(
        decision.actions.is_empty(),
        "acknowledged: nothing to escalate"
    );
}

/// A triage rule on office hours (Monday to Friday 09:00-17:00 in Berlin;
/// `t(0)` is Monday 2 November 2026, 10:00 there), with `holidays`.
fn on_office_hours(holidays: &str) -> Policy {
    let yaml = format!(
        r#"
channels:
  alerts: {{ slack_channel: "C0ALERTS01" }}
calendars:
  office:
    time_zone: Europe/Berlin
    hours: {{ mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"] }}
    holidays: [{holidays}]
policies:
  - name: triage
    match: {{ labels_any: ["type::bug"] }}
    clock: {{ target: 2h, calendar: office }}
    escalation:
      - on: start
        slack: {{ channel: alerts }}
      - on: {{ before_deadline: 30m }}
        slack: {{ channel: alerts }}
      - on: breach
        slack: {{ channel: alerts }}
      - on: {{ every: 1h, after: breach }}
        slack: {{ channel: alerts }}
"#
    );
    crate::test_support::policy_set(&yaml).policies.remove(0)
}

/// Friday 6 November 2026, 16:00 in Berlin; Monday 9th 10:00; Tuesday 10th 10:00.
const FRIDAY_4PM: i64 = 4 * 1440 + 360;
const MONDAY_10AM: i64 = 7 * 1440;
const TUESDAY_10AM: i64 = 8 * 1440;
const MONDAY_OFF: &str = r#"{ date: "2026-11-09" }"#;

#[test]
fn on_a_calendar_steps_fire_in_working_time_and_sleep_over_the_weekend() {
    let issue = issue(&[]).added(FRIDAY_4PM, "type::bug").build();
    let policy = on_office_hours("");
    let mut ledger = Ledger::default();
    // The warning is due 90 working minutes in: Monday 09:30.
    assert_eq!(
        run(&issue, &policy, &mut ledger, FRIDAY_4PM),
        (vec!["start".into()], Some(t(MONDAY_10AM - 30)))
    );
    assert_eq!(
        run(&issue, &policy, &mut ledger, FRIDAY_4PM + 1440),
        (vec![], Some(t(MONDAY_10AM - 30)))
    );
    assert_eq!(
        run(&issue, &policy, &mut ledger, MONDAY_10AM - 30),
        (vec!["before_deadline:30m".into()], Some(t(MONDAY_10AM)))
    );
    assert_eq!(
        run(&issue, &policy, &mut ledger, MONDAY_10AM),
        (vec!["breach".into()], Some(t(MONDAY_10AM + 60)))
    );
}

#[test]
fn a_calendar_edit_moves_later_steps_and_never_sends_a_step_again() {
    let issue = issue(&[]).added(FRIDAY_4PM, "type::bug").build();
    let mut ledger = Ledger::default();
    // Friday: the start, under the calendar as it was.
    run(&issue, &on_office_hours(""), &mut ledger, FRIDAY_4PM);
    // Over the weekend Monday becomes a holiday: the warning and the
    // breach move to Tuesday.
    let edited = on_office_hours(MONDAY_OFF);
    assert_eq!(
        run(&issue, &edited, &mut ledger, MONDAY_10AM - 30),
        (vec![], Some(t(TUESDAY_10AM - 30)))
    );
    assert_eq!(
        run(&issue, &edited, &mut ledger, TUESDAY_10AM - 30),
        (vec!["before_deadline:30m".into()], Some(t(TUESDAY_10AM)))
    );
    assert_eq!(
        run(&issue, &edited, &mut ledger, TUESDAY_10AM),
        (vec!["breach".into()], Some(t(TUESDAY_10AM + 60)))
    );
}

#[test]
fn a_breach_announced_before_a_calendar_edit_is_not_announced_again() {
    let issue = issue(&[]).added(FRIDAY_4PM, "type::bug").build();
    let mut ledger = Ledger::default();
    let policy = on_office_hours("");
    for at in [FRIDAY_4PM, MONDAY_10AM - 30, MONDAY_10AM] {
        run(&issue, &policy, &mut ledger, at);
    }
    assert!(ledger.firings().iter().any(|f| f.step.0 == "breach"));
    // Monday is made a holiday after the breach was said: the clock is
    // running again, due Tuesday 10:00, and nothing is sent twice; the
    // reminders after the breach go on from the new deadline.
    let edited = on_office_hours(MONDAY_OFF);
    let reading = read(&issue, &edited, t(MONDAY_10AM + 30));
    assert_eq!(reading.deadline(), Some(t(TUESDAY_10AM)));
    assert_eq!(
        run(&issue, &edited, &mut ledger, MONDAY_10AM + 30),
        (vec![], Some(t(TUESDAY_10AM + 60)))
    );
    assert_eq!(
        run(&issue, &edited, &mut ledger, TUESDAY_10AM),
        (vec![], Some(t(TUESDAY_10AM + 60)))
    );
    assert_eq!(
        run(&issue, &edited, &mut ledger, TUESDAY_10AM + 60),
        (
            vec!["every:1h:after:breach#1".into()],
            Some(t(TUESDAY_10AM + 120))
        )
    );
}

#[test]
fn a_step_with_quiet_hours_waits_for_the_next_working_minute() {
    // A wall-clock clock of 10 h labelled Monday 10:00 in Berlin: the
    // reminder after 8 h falls due at 18:00, after office hours; the
    // breach at 20:00 is not gated.
    let policy = crate::test_support::policy_set(
        r#"
channels:
  alerts: { slack_channel: "C0ALERTS01" }
calendars:
  office:
    time_zone: Europe/Berlin
    hours: { mon: ["09:00-17:00"], tue: ["09:00-17:00"] }
policies:
  - name: p
    match: { labels_any: ["type::bug"] }
    clock: { target: 10h }
    escalation:
      - on: { after_start: 8h }
        during: office
        slack: { channel: alerts }
      - on: { after_start: 2h }
        during: office
        slack: { channel: alerts }
      - on: breach
        slack: { channel: alerts }
"#,
    )
    .policies
    .remove(0);
    let issue = issue(&[]).added(0, "type::bug").build();
    let mut ledger = Ledger::default();
    // In hours: due at 12:00, sent then.
    let decision = decide(&policy, &read(&issue, &policy, t(120)), &ledger);
    assert_eq!(decision.actions.len(), 1);
    assert!(!decision.actions[0].held_for_quiet_hours);
    ledger.record(decision.actions[0].firing.clone());
    // Due at 18:00, after hours: held; the engine wakes for the breach at
    // 20:00 first, then at Tuesday 09:00.
    assert_eq!(
        run(&issue, &policy, &mut ledger, 8 * 60),
        (vec![], Some(t(10 * 60)))
    );
    assert_eq!(
        run(&issue, &policy, &mut ledger, 10 * 60),
        (vec!["breach".into()], Some(t(23 * 60)))
    );
    let held = decide(&policy, &read(&issue, &policy, t(23 * 60)), &ledger);
    assert_eq!(held.actions.len(), 1);
    let action = &held.actions[0];
    assert_eq!(action.firing.step.0, "after_start:8h");
    assert!(action.held_for_quiet_hours);
    assert_eq!(action.due_at, t(8 * 60), "it says when it fell due");
}
