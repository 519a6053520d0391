//! `audit --notify`: each step carried out once across runs, and after a rename its ledger found again.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_run_twice_carries_out_each_step_once() {
    let gitlab = FakeGitLab::start().await;
    seed(&gitlab.gitlab, Utc::now());
    let slack = common::fake_slack::FakeSlack::start().await;

    let dry = notify(&gitlab, &slack.api_url, &["--dry-run"]);
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("would do: acme/backend#3 [critical-bug-24h]"),
        "{stderr}"
    );
    assert!(
        writes(&gitlab.gitlab).is_empty(),
        "a dry run writes nothing"
    );
    assert!(slack.slack.messages().is_empty());

    let first = notify(&gitlab, &slack.api_url, &[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    // `-- --nocapture` shows what was done, step by step.
    println!("{stderr}");
    assert_eq!(first.status.code(), Some(0), "{stderr}");

    // Exactly the steps due on the seeded issues, each once: every live
    // clock's start and (nobody acknowledged within 30 minutes) its
    // on-call nudge; #2's 6-hour warning; #3's breach and its first
    // reminder; and for #3 (urgency::highest: users feel it) the notice
    // to users. Nothing for the closed #7 or the low-priority #9.
    const NUDGE: &str = "after_start:30m:unless:acknowledged";
    let mut expected: Vec<(u64, &str)> = Vec::new();
    for iid in 1..=6 {
        expected.extend([(iid, "start"), (iid, NUDGE)]);
    }
    expected.extend([
        (2, "before_deadline:6h"),
        (3, "breach"),
        (3, "every:4h:after:breach"),
        (3, "notify-users"),
    ]);
    expected.sort();
    let posted = slack.slack.messages();
    let mut in_slack: Vec<(u64, String)> = posted
        .iter()
        .map(|m| {
            // labelwarden's key: issue|policy|step|cycle|occurrence.
            let key = m.metadata["event_payload"]["key"]
                .as_str()
                .unwrap_or_default();
            let parts: Vec<&str> = key.split('|').collect();
            let iid: u64 = parts[0]
                .strip_prefix("acme/backend#")
                .unwrap()
                .parse()
                .unwrap();
            // #4 was unlabelled and labelled again: its second cycle.
            let cycle = if iid == 4 { "2" } else { "1" };
            let policy = if parts[2] == "notify-users" {
                "critical-bug-user-notice"
            } else {
                "critical-bug-24h"
            };
            assert_eq!((parts[1], parts[3]), (policy, cycle), "{key}");
            (iid, parts[2].to_owned())
        })
        .collect();
    in_slack.sort();
    let as_owned = |steps: &[(u64, &str)]| -> Vec<(u64, String)> {
        steps.iter().map(|(i, s)| (*i, (*s).to_owned())).collect()
    };
    assert_eq!(in_slack, as_owned(&expected), "one Slack message per step");

    // On GitLab: a comment for each start and for the breach, the breach
    // label on #3 alone, and one ledger note per issue naming every step
    // it carried out, created with the first step and edited with each
    // later one.
    use labelwarden::gitlab::markers::Marker;
    let written = writes(&gitlab.gitlab);
    for iid in 1..=6u64 {
        let issue = gitlab.gitlab.issue(PROJECT, iid);
        let steps_of = |internal: bool| -> Vec<String> {
            let mut steps: Vec<String> = issue
                .notes
                .iter()
                .filter(|n| n.3 == internal)
                .flat_map(|n| Marker::find_all(&n.2))
                .map(|m| m.firing.step.0)
                .collect();
            steps.sort();
            steps
        };
        let mut own: Vec<String> = expected
            .iter()
            .filter(|(i, _)| *i == iid)
            .map(|(_, s)| (*s).to_owned())
            .collect();
        // The shipped rule `highest-needs-an-owner` comments once on each
        // open highest issue nobody owns.
        let unowned = [2, 4, 5, 6].contains(&iid);
        if unowned {
            own.push("act".to_owned());
        }
        own.sort();
        let ledgers = issue.notes.iter().filter(|n| n.3).count();
        assert_eq!(ledgers, 1, "#{iid}: one internal ledger note");
        assert_eq!(
            steps_of(true),
            own,
            "#{iid}: the ledger lists every step once"
        );
        assert_eq!(
            issue.note_edits as usize,
            own.len() - 1,
            "#{iid}: the ledger note is edited once per later step"
        );
        let mut commented = vec!["start".to_owned()];
        if iid == 3 {
            commented.insert(0, "breach".to_owned());
        }
        if unowned {
            commented.insert(0, "act".to_owned());
        }
        assert_eq!(steps_of(false), commented, "#{iid}: comments");
        assert_eq!(
            issue.labels.contains(&"missed::SLA".to_owned()),
            iid == 3,
            "#{iid}: {:?}",
            issue.labels
        );
    }
    for iid in [7, 9] {
        assert!(
            written
                .iter()
                .all(|w| !w.contains(&format!("/issues/{iid}"))),
            "#{iid} is left alone: {written:#?}"
        );
    }
    let paths: Vec<&str> = written
        .iter()
        .map(|w| w.split('?').next().unwrap_or_default())
        .collect();
    let (notes_created, notes_edited, issues_edited) = (
        paths
            .iter()
            .filter(|w| w.starts_with("POST") && w.ends_with("/notes"))
            .count(),
        paths
            .iter()
            .filter(|w| w.starts_with("PUT") && w.contains("/notes/"))
            .count(),
        paths
            .iter()
            .filter(|w| w.starts_with("PUT") && !w.contains("/notes"))
            .count(),
    );
    // The rule's four comments each add a step to a ledger note.
    let steps = expected.len() + 4;
    assert_eq!(
        (notes_created, notes_edited, issues_edited, written.len()),
        (11 + 6, steps - 6, 1, 11 + 6 + steps - 6 + 1),
        "11 comments (7 steps', 4 the rule's) and 6 ledger notes, 13 ledger edits, 1 label edit: {written:#?}"
    );

    // A second run finds every step in the notes and does nothing.
    let second = notify(&gitlab, &slack.api_url, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(
        slack.slack.messages().len(),
        posted.len(),
        "no Slack message twice"
    );
    assert_eq!(writes(&gitlab.gitlab), written, "no GitLab write twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rename_notify_finds_its_ledger_and_repeats_nothing() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    gitlab.gitlab.add(
        FakeIssue::new(PROJECT, 3, now - TimeDelta::hours(31))
            .add_label(now - TimeDelta::hours(30), "urgency::highest"),
    );
    let slack = common::fake_slack::FakeSlack::start().await;
    let first = notify(&gitlab, &slack.api_url, &[]);
    assert_eq!(first.status.code(), Some(0));
    let posted = slack.slack.messages().len();
    assert!(posted > 0);
    let written = writes(&gitlab.gitlab);

    gitlab.gitlab.rename_project(PROJECT, "acme/checkout");
    let second = notify_project(&gitlab, "acme/checkout", &slack.api_url, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(
        slack.slack.messages().len(),
        posted,
        "no Slack message twice"
    );
    assert_eq!(writes(&gitlab.gitlab), written, "no GitLab write twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_keeps_the_due_date_once_and_leaves_a_person_s_date_alone() {
    let gitlab = FakeGitLab::start().await;
    let labelled = Utc::now() - TimeDelta::hours(2);
    gitlab
        .gitlab
        .add(FakeIssue::new(PROJECT, 11, labelled).add_label(labelled, "type::bug"));
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("triage.yml"),
        concat!(
            "policies:\n",
            "  - name: triage\n    match: { labels_any: [\"type::bug\"] }\n",
            "    clock: { target: 24h, stops: { labeled: [\"workflow::*\"] } }\n",
            "    escalation:\n      - on: start\n        gitlab: { set_due_date: true }\n",
        ),
    )
    .unwrap();
    let slack = common::fake_slack::FakeSlack::start().await;
    let run = || notify_with(&gitlab, PROJECT, &slack.api_url, policies.path(), &[]);
    let issue = || gitlab.gitlab.issue(PROJECT, 11);

    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let due = (labelled + TimeDelta::hours(24)).date_naive();
    assert_eq!(issue().due_date, Some(due), "{stderr}");
    let ledger: Vec<String> = issue()
        .notes
        .iter()
        .filter(|n| n.3)
        .flat_map(|n| labelwarden::gitlab::markers::Marker::find_all(&n.2))
        .map(|m| m.firing.step.0)
        .collect();
    assert_eq!(ledger, ["start".to_owned(), format!("due={due}")]);

    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(issue().due_date_writes, 1, "written once");

    // A person moves the date, then the issue is triaged: the clock stops
    // on an open issue, but the date is theirs.
    let theirs = chrono::NaiveDate::from_ymd_opt(2031, 1, 15).unwrap();
    gitlab.gitlab.update(PROJECT, 11, |i| {
        i.due(Some(theirs)).add_label(Utc::now(), "workflow::ready")
    });
    let third = run();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(issue().due_date, Some(theirs));
}
