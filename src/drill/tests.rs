use chrono::TimeDelta;

use super::*;
use crate::test_support::{policy_set, t};

/// The handbook's critical-bug policy with an on-call escalation, a step
/// for users, GitLab parts, and a rule.
const POLICIES: &str = r##"
channels:
  alerts: { slack_channel: "C0ALERTS01" }
  status: { slack_channel: "#status", audience: users }
people:
  contacts: ["<@U0CONTACT1>"]
  gitlab_users: { ada: U0ADA0001, grace: U0GRACE01 }
  oncall:
    rotation: [ada, grace]
    hand_off: { day: monday, time: "09:00", time_zone: UTC }
    since: 2026-01-05
calendars:
  office:
    time_zone: UTC
    hours: { mon: ["09:00-17:00"], tue: ["09:00-17:00"] }
policies:
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock:
      target: 24h
      calendar: office
      pauses_while_labeled: ["blocked"]
    escalation:
      - on: start
        slack: { channel: alerts, mention: [contacts] }
        gitlab: { comment: true }
      - id: users
        on: start
        slack: { channel: status }
      - on: { after_start: 30m, unless: acknowledged }
        slack: { channel: alerts, mention: [oncall.secondary] }
      - on: { before_deadline: 6h }
        slack: { channel: alerts }
      - on: breach
        slack: { channel: alerts }
        gitlab: { add_labels: ["missed::SLA"], comment: true }
      - on: resolved
        slack: { channel: alerts, react: white_check_mark }
  - name: users-only
    match: { labels_any: ["urgency::highest"] }
    clock: { target: 24h }
    escalation:
      - on: start
        slack: { channel: status }
rules:
  - name: triage
    match: { labels_any: ["needs-triage"] }
    actions: { comment: "Please add a type label." }
"##;

fn drill(at_speed: u32) -> (Drill, PolicySet) {
    let set = policy_set(POLICIES);
    let policy = find(&set, "critical").unwrap();
    (Drill::new(policy, &set, at_speed, 7, t(0)).unwrap(), set)
}

fn seconds(n: i64) -> chrono::DateTime<Utc> {
    t(0) + TimeDelta::seconds(n)
}

fn steps(notices: &[Notice]) -> Vec<&str> {
    notices.iter().map(|n| n.firing.step.0.as_str()).collect()
}

#[test]
fn the_drill_s_policy_divides_every_duration_by_the_speed_and_only_posts_to_the_team() {
    let (drill, _) = drill(600);
    let policy = &drill.policy;
    assert_eq!(policy.clock.target, TimeDelta::seconds(144), "24h at 600×");
    assert!(
        policy.clock.calendar.is_none(),
        "wall-clock time, no calendar"
    );
    assert!(policy.clock.pauses_while_labeled.is_empty());
    let triggers: Vec<Trigger> = policy.steps.iter().map(|s| s.trigger).collect();
    assert_eq!(
        triggers,
        vec![
            Trigger::Start,
            Trigger::AfterStart(TimeDelta::seconds(3)),
            Trigger::BeforeDeadline(TimeDelta::seconds(36)),
            Trigger::Breach,
            Trigger::Resolved,
        ],
        "the users' channel's step is left out"
    );
    assert!(
        policy.steps.iter().all(|s| s.gitlab.is_none()),
        "nothing for GitLab"
    );
    assert_eq!(
        drill.gitlab_skipped,
        vec![
            (StepId("start".into()), "comment".to_owned()),
            (
                StepId("breach".into()),
                "add missed::SLA; comment".to_owned()
            ),
        ]
    );
    assert!(drill.title().starts_with("DRILL, nothing is broken"));
    let seen = drill.policy_set(&policy_set(POLICIES));
    assert_eq!(
        seen.channels.keys().collect::<Vec<_>>(),
        ["alerts"],
        "the notifier knows the drill's channels only"
    );
    assert_eq!(seen.policies.len(), 1);
    assert_eq!(seen.policies[0].clock.target, TimeDelta::seconds(144));
    assert_eq!(drill.reference().to_string(), "drill/critical#7");
}

#[test]
fn a_drill_refuses_rules_unknown_policies_users_only_policies_and_a_target_too_short() {
    let set = policy_set(POLICIES);
    assert_eq!(
        find(&set, "nope").unwrap_err(),
        DrillError::UnknownPolicy {
            name: "nope".into(),
            known: "`critical`, `users-only`".into()
        }
    );
    assert_eq!(
        find(&set, "triage").unwrap_err(),
        DrillError::Rule("triage".into())
    );
    let users_only = find(&set, "users-only").unwrap();
    assert_eq!(
        compress(users_only, &set, 60).unwrap_err(),
        DrillError::NothingToPost("users-only".into())
    );
    let critical = find(&set, "critical").unwrap();
    assert!(matches!(
        compress(critical, &set, 10_000),
        Err(DrillError::TooFast { .. })
    ));
    assert_eq!(compress(critical, &set, 0).unwrap_err(), DrillError::Speed);
}

#[test]
fn unacknowledged_the_secondary_is_tagged_acknowledged_it_is_not() {
    let (mut quiet, set) = drill(600);
    let start = quiet.due(seconds(0));
    assert_eq!(steps(&start), ["start"]);
    quiet.record(&start[0], seconds(0));
    assert!(quiet.due(seconds(2)).is_empty());
    assert_eq!(quiet.next_wake(seconds(2)), Some(seconds(3)));
    let escalation = quiet.due(seconds(3));
    assert_eq!(steps(&escalation), ["after_start:30m:unless:acknowledged"]);
    quiet.record(&escalation[0], seconds(3));
    let summary = Summary::of(&quiet, &set.people, Outcome::Stopped, vec![], seconds(10));
    match &summary.secondary {
        summary::Secondary::Tagged {
            after,
            rotation,
            person,
            slack_id,
            ..
        } => {
            assert_eq!(*after, TimeDelta::seconds(3));
            assert_eq!(rotation, "oncall");
            let expected = set.people.rotations["oncall"].on_call(Role::Secondary, seconds(3));
            assert_eq!(person, expected);
            assert_eq!(
                slack_id.as_deref(),
                set.people.gitlab_users.get(expected).map(String::as_str)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        summary
            .text()
            .contains("On-call secondary reached: step `after_start:30m:unless:acknowledged`")
    );

    let (mut acknowledged, set) = drill(600);
    let start = acknowledged.due(seconds(0));
    acknowledged.record(&start[0], seconds(0));
    acknowledged.acknowledge("U0RESPONDR", seconds(2));
    acknowledged.acknowledge("U0LATECOMR", seconds(2));
    assert!(
        acknowledged.due(seconds(5)).is_empty(),
        "no escalation once acknowledged"
    );
    let summary = Summary::of(
        &acknowledged,
        &set.people,
        Outcome::Stopped,
        vec![],
        seconds(6),
    );
    assert!(
        summary
            .text()
            .contains("Acknowledged by U0RESPONDR after 2s (20m on the policy's clock)."),
        "{}",
        summary.text()
    );
    assert!(summary.text().contains(
        "the alert was acknowledged before step `after_start:30m:unless:acknowledged` fell due"
    ));
}

#[test]
fn a_tick_resolves_the_incident_and_the_drill_ends_once_its_resolution_is_said() {
    let (mut drill, set) = drill(600);
    for notice in drill.due(seconds(0)) {
        drill.record(&notice, seconds(0));
    }
    drill.acknowledge("U0RESPONDR", seconds(1));
    assert_eq!(drill.outcome(seconds(2)), None, "still running");
    drill.resolve("U0RESPONDR", seconds(20));
    let resolved = drill.due(seconds(21));
    assert_eq!(steps(&resolved), ["resolved"]);
    assert_eq!(
        drill.outcome(seconds(21)),
        None,
        "its resolution is still to say"
    );
    drill.record(&resolved[0], seconds(21));
    assert_eq!(drill.outcome(seconds(21)), Some(Outcome::Resolved));
    let summary = Summary::of(
        &drill,
        &set.people,
        Outcome::Resolved,
        vec!["U0RESPONDR".into()],
        seconds(22),
    );
    let text = summary.text();
    assert!(
        text.starts_with("Drill of `critical` at 600× speed (1d became 2m 24s): resolved by U0RESPONDR after 20s (3h 20m on the policy's clock), within the SLA."),
        "{text}"
    );
    assert!(
        text.contains("Replied in the thread: U0RESPONDR."),
        "{text}"
    );
    assert!(
        text.contains("Steps said: `start` +0s, `resolved` +21s."),
        "{text}"
    );
    assert!(
        summary
            .mrkdwn()
            .iter()
            .any(|line| line.contains("<@U0RESPONDR>")),
        "Slack shows the person"
    );
    assert!(summary.acknowledged());
}

#[test]
fn unresolved_the_drill_ends_once_its_breach_is_said() {
    let (mut drill, set) = drill(600);
    for at in [0, 3, 108] {
        for notice in drill.due(seconds(at)) {
            drill.record(&notice, seconds(at));
        }
    }
    assert_eq!(drill.outcome(seconds(143)), None);
    let breach = drill.due(seconds(144));
    assert_eq!(steps(&breach), ["breach"]);
    assert_eq!(drill.outcome(seconds(144)), None);
    drill.record(&breach[0], seconds(144));
    assert_eq!(drill.outcome(seconds(144)), Some(Outcome::Breached));
    let summary = Summary::of(&drill, &set.people, Outcome::Breached, vec![], seconds(145));
    assert!(!summary.acknowledged());
    assert!(
        summary
            .text()
            .contains("the deadline passed and the breach was said")
    );
    assert!(summary.text().contains("Nobody acknowledged the alert."));
}

#[test]
fn a_summary_with_hundreds_of_repliers_names_twenty_and_stays_within_slack_s_limits() {
    let (mut drill, set) = drill(600);
    for notice in drill.due(seconds(0)) {
        drill.record(&notice, seconds(0));
    }
    let repliers: Vec<String> = (0..500).map(|n| format!("U0PERSON{n:03}")).collect();
    let summary = Summary::of(&drill, &set.people, Outcome::Stopped, repliers, seconds(9));
    assert!(
        summary.text().contains("U0PERSON019, and 480 more."),
        "{}",
        summary.text()
    );
    let sections = summary.mrkdwn();
    assert!(sections.len() <= 50, "Slack takes 50 blocks at most");
    for section in &sections {
        assert!(section.chars().count() <= 3_000, "{section}");
    }
}
