//! An instant rule with every kind of action through `audit --notify`:
//! labels, a comment, the on-call person as assignee and a Slack message
//! tagging them, once per occurrence however often the schedule runs.

use super::*;

const POLICIES: &str = r##"
channels:
  alerts: { slack_channel: "#alerts" }
people:
  gitlab_users: { ada: U0ADA00001, bo: U0BO000001 }
  oncall:
    rotation: [ada, bo]
    hand_off: { day: monday, time: "09:00", time_zone: UTC }
    since: 2026-01-05
rules:
  - name: highest-needs-an-owner
    match: { labels_any: ["priority::highest"], assignees: none, state: opened }
    after: 15m
    actions:
      add_labels: ["needs-owner"]
      assign: oncall.primary
      comment: "{issue.ref} has had no owner for 15 minutes."
      slack:
        channel: alerts
        mention: [oncall.primary]
        text: "{issue.ref} has no owner: {issue.title}"
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_labels_comments_and_tells_slack_once_per_occurrence() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    let issue = |iid| FakeIssue::new(PROJECT, iid, now - TimeDelta::hours(3));
    // #1 unowned for an hour, #2 owned, #3 labelled five minutes ago.
    gitlab
        .gitlab
        .add(issue(1).add_label(now - TimeDelta::hours(1), HIGHEST));
    gitlab.gitlab.add(
        issue(2)
            .add_label(now - TimeDelta::hours(1), HIGHEST)
            .assign("bo"),
    );
    gitlab
        .gitlab
        .add(issue(3).add_label(now - TimeDelta::minutes(5), HIGHEST));
    gitlab.gitlab.add_user("ada", "active");
    gitlab.gitlab.add_user("bo", "active");
    let slack = common::fake_slack::FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), POLICIES).unwrap();

    // A dry run says what the rule would do, and does none of it.
    let dry = notify_with(&gitlab, PROJECT, &slack.api_url, dir.path(), &["--dry-run"]);
    let stderr = common::text(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    let said = stderr
        .lines()
        .find(|line| line.starts_with("would do: acme/backend#1 [highest-needs-an-owner] act: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        said.contains("slack alerts, labels +needs-owner, assign @")
            && said.ends_with(" if nobody is, comment"),
        "{said}"
    );
    assert!(writes(&gitlab.gitlab).is_empty() && slack.slack.messages().is_empty());

    let first = notify_with(&gitlab, PROJECT, &slack.api_url, dir.path(), &[]);
    let stderr = common::text(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let posted = slack.slack.messages();
    assert_eq!(posted.len(), 1, "one message, for #1: {posted:#?}");
    let shown = posted[0].shown();
    assert!(
        shown.contains("acme/backend#1 has no owner: Bug 1"),
        "{shown}"
    );
    assert!(
        shown.contains("*Rule*") && !shown.contains("Deadline"),
        "{shown}"
    );
    let one = gitlab.gitlab.issue(PROJECT, 1);
    assert_eq!(one.assignees.len(), 1, "the person on call owns #1 now");
    let slack_id = match one.assignees[0].as_str() {
        "ada" => "<@U0ADA00001>",
        "bo" => "<@U0BO000001>",
        other => panic!("assigned {other}"),
    };
    assert!(
        shown.contains(slack_id),
        "the one assigned is the one tagged: {shown}"
    );
    assert!(
        one.labels.contains(&"needs-owner".to_owned()),
        "{:?}",
        one.labels
    );
    let comments: Vec<&String> = one.notes.iter().filter(|n| !n.3).map(|n| &n.2).collect();
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(comments[0].starts_with("acme/backend#1 has had no owner for 15 minutes."));
    for iid in [2, 3] {
        let other = gitlab.gitlab.issue(PROJECT, iid);
        assert!(other.notes.is_empty() && !other.labels.contains(&"needs-owner".to_owned()));
    }
    assert_eq!(
        gitlab.gitlab.issue(PROJECT, 2).assignees,
        ["bo"],
        "an owner stays"
    );

    // The next run finds the rule's step in the ledger: nothing twice.
    let written = writes(&gitlab.gitlab);
    let second = notify_with(&gitlab, PROJECT, &slack.api_url, dir.path(), &[]);
    let stderr = common::text(&second.stderr);
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(slack.slack.messages().len(), 1);
    assert_eq!(writes(&gitlab.gitlab), written);
}
