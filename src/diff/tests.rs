use super::*;
use crate::test_support::{fetched, issue, policy_set, t};

fn policies(name: &str, target: &str) -> PolicySet {
    policy_set(&format!(
        r#"
channels:
  alerts: {{ slack_channel: "C0ALERTS01" }}
policies:
  - name: {name}
    match: {{ labels_any: ["p1"] }}
    clock: {{ target: {target} }}
    escalation:
      - on: start
        slack: {{ channel: alerts }}
      - on: {{ before_deadline: 2h }}
        slack: {{ channel: alerts }}
      - on: breach
        slack: {{ channel: alerts }}
        gitlab: {{ add_labels: ["missed::SLA"] }}
      - on: {{ every: 4h, after: breach }}
        slack: {{ channel: alerts }}
"#
    ))
}

/// Now is 30 hours after the tests' origin.
fn now() -> DateTime<Utc> {
    t(30 * 60)
}

/// #1 labelled 18 hours before now, #2 2 hours before, #3 30 hours before
/// (breached under either target), #4 never labelled.
fn issues() -> Vec<FetchedIssue> {
    vec![
        fetched(issue(&[]).iid(1).added(12 * 60, "p1").build()),
        fetched(issue(&[]).iid(2).added(28 * 60, "p1").build()),
        fetched(issue(&[]).iid(3).added(0, "p1").build()),
        fetched(issue(&["type::bug"]).iid(4).build()),
    ]
}

#[test]
fn identical_policies_change_nothing_and_send_nothing() {
    let set = policies("critical", "24h");
    let diff = compare(&issues(), &set, &set, now());
    assert!(diff.is_empty(), "{diff:#?}");
    assert_eq!(diff.messages(), 0);
}

#[test]
fn a_shorter_target_breaches_at_once_and_moves_deadlines() {
    let diff = compare(
        &issues(),
        &policies("critical", "24h"),
        &policies("critical", "12h"),
        now(),
    );
    assert_eq!(
        diff.policies,
        [PolicyChange::Changed {
            name: "critical".into(),
            parts: vec!["clock"],
            rule: false,
        }]
    );
    let clocks: Vec<(&str, ClockChangeKind, Option<i64>)> = diff
        .clocks
        .iter()
        .map(|c| {
            (
                c.issue.as_str(),
                c.change,
                c.deadline_moves_by.map(|d| d.num_hours()),
            )
        })
        .collect();
    assert_eq!(
        clocks,
        [
            ("acme/app#1", ClockChangeKind::BreachAppears, Some(-12)),
            ("acme/app#2", ClockChangeKind::DeadlineMoves, Some(-12)),
            ("acme/app#3", ClockChangeKind::DeadlineMoves, Some(-12)),
        ]
    );
    assert_eq!(diff.breaches_appearing(), 1);
    // #1: its breach, 6 hours ago under the new target, and its first
    // reminder (its 2-hour warning is skipped: the breach says more).
    // #3: under the new target its breach came 12 hours earlier, so a
    // later reminder is due than the old target reached.
    let steps: Vec<(&str, &str)> = diff
        .at_once
        .steps
        .iter()
        .map(|s| (s.report.issue.as_str(), s.report.step.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("acme/app#1", "breach"),
            ("acme/app#1", "every:4h:after:breach"),
            ("acme/app#3", "every:4h:after:breach"),
        ]
    );
    assert_eq!(diff.messages(), 3);
    assert_eq!(diff.at_once.messages["alerts"], 3);
}

#[test]
fn a_renamed_policy_is_reported_as_such_and_its_history_carries_over() {
    let diff = compare(
        &issues(),
        &policies("critical", "24h"),
        &policies("critical-bugs", "24h"),
        now(),
    );
    assert_eq!(
        diff.policies,
        [PolicyChange::Renamed {
            from: "critical".into(),
            name: "critical-bugs".into(),
            parts: vec![],
            rule: false,
        }]
    );
    assert!(diff.clocks.is_empty(), "{:#?}", diff.clocks);
    assert!(diff.at_once.steps.is_empty(), "nothing fires again");
}

#[test]
fn a_new_policy_starts_clocks_and_fires_what_is_due() {
    let before = policy_set("channels:\n  alerts: { slack_channel: \"C0ALERTS01\" }\n");
    let diff = compare(&issues(), &before, &policies("critical", "24h"), now());
    assert_eq!(
        diff.policies,
        [PolicyChange::Added {
            name: "critical".into(),
            rule: false,
        }]
    );
    assert!(
        diff.clocks
            .iter()
            .all(|c| c.change == ClockChangeKind::Starts),
        "{:#?}",
        diff.clocks
    );
    assert_eq!(diff.clocks.len(), 3);
    // A late run: each clock's start, #3's breach and latest reminder.
    assert_eq!(diff.at_once.steps.len(), 3 + 2);
}

#[test]
fn fired_by_replays_every_step_once() {
    let set = policies("critical", "24h");
    let breached = issue(&[]).added(0, "p1").build();
    let fired: Vec<String> = fired_by(&breached, &set.policies[0], now())
        .into_iter()
        .map(|f| format!("{}#{}", f.step, f.occurrence))
        .collect();
    assert_eq!(
        fired,
        [
            "start#0",
            "before_deadline:2h#0",
            "breach#0",
            "every:4h:after:breach#1"
        ]
    );
}

#[test]
fn maintenance_windows_added_removed_and_changed_are_listed_and_rendered() {
    let with_windows = |windows: &str| {
        let mut set = policies("critical", "24h");
        set.maintenance = policy_set(&format!(
            "channels:\n  alerts: {{ slack_channel: \"C0ALERTS01\" }}\nmaintenance:\n{windows}"
        ))
        .maintenance;
        set
    };
    let deploys = |until: &str| {
        format!(
            "  - name: deploys\n    reason: weekly deploy\n    channel: alerts\n    \
             weekly: {{ days: [sat], from: \"02:00\", until: \"{until}\" }}\n"
        )
    };
    let drill = "  - name: drill\n    reason: failover drill\n    channel: alerts\n    \
                 once: { from: \"2026-12-05T22:00:00Z\", until: \"2026-12-06T02:00:00Z\" }\n";
    let before = with_windows(&format!("{}{drill}", deploys("04:00")));
    let after = with_windows(&format!(
        "{}  - name: backups\n    reason: nightly backup\n    channel: alerts\n    \
         weekly: {{ from: \"23:30\", until: \"00:30\" }}\n",
        deploys("05:00")
    ));
    let diff = compare(&issues(), &before, &after, now());
    assert_eq!(
        diff.maintenance,
        [
            WindowChange::Added {
                name: "backups".into(),
                window: "silences channel `alerts`, every day 23:30–00:30 UTC (nightly backup)"
                    .into()
            },
            WindowChange::Removed {
                name: "drill".into(),
                window: "silences channel `alerts`, 2026-12-05 22:00 UTC – 2026-12-06 02:00 UTC (failover drill)".into()
            },
            WindowChange::Changed {
                name: "deploys".into(),
                before: "silences channel `alerts`, sat 02:00–04:00 UTC (weekly deploy)".into(),
                after: "silences channel `alerts`, sat 02:00–05:00 UTC (weekly deploy)".into(),
            },
        ]
    );
    assert!(!diff.is_empty(), "a window change is a change");
    let table = super::render::render(super::render::DiffFormat::Table, &diff, "acme");
    assert!(
        table.contains("MAINTENANCE WINDOWS\n  added: backups: silences channel `alerts`"),
        "{table}"
    );
    let markdown = super::render::render(super::render::DiffFormat::Markdown, &diff, "acme");
    assert!(
        markdown.contains("### Maintenance windows\n\n- added: backups"),
        "{markdown}"
    );
    let json = super::render::render(super::render::DiffFormat::Json, &diff, "acme");
    assert!(json.contains("\"change\": \"removed\""), "{json}");
    assert!(
        compare(&issues(), &before, &before, now())
            .maintenance
            .is_empty(),
        "no change, nothing listed"
    );
}

#[test]
fn rules_are_named_as_rules_with_their_own_parts() {
    let rule = |after: &str, label: &str| {
        policy_set(&format!(
            "rules:\n  - name: owner\n    match: {{ labels_any: [\"priority::highest\"] }}\n    after: {after}\n    actions: {{ add_labels: [{label}] }}\n"
        ))
    };
    let changed = compare(&issues(), &rule("15m", "a"), &rule("30m", "b"), now());
    assert_eq!(
        changed.policies,
        [PolicyChange::Changed {
            name: "owner".into(),
            parts: vec!["after", "actions"],
            rule: true,
        }]
    );
    let text = super::render::render(
        super::render::DiffFormat::Table,
        &changed,
        "project acme/app",
    );
    assert!(
        text.contains("changed: rule owner (after, actions changed)"),
        "{text}"
    );
    let added = compare(
        &issues(),
        &policies("critical", "24h"),
        &{
            let mut both = policies("critical", "24h");
            both.policies.extend(rule("15m", "a").policies);
            both
        },
        now(),
    );
    assert_eq!(
        added.policies,
        [PolicyChange::Added {
            name: "owner".into(),
            rule: true,
        }]
    );
    let json = serde_json::to_value(&added.policies).unwrap();
    assert_eq!(json[0]["rule"], true, "{json}");
    let policy = PolicyChange::Added {
        name: "critical".into(),
        rule: false,
    };
    let json = serde_json::to_value(&policy).unwrap();
    assert!(
        json.get("rule").is_none(),
        "a policy's change reads as before: {json}"
    );
}
