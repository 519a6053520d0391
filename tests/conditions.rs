//! Conditions beyond labels (assignees, author, milestone, weight, the
//! last update) and instant rules decide the same through `serve`'s
//! webhooks as through `audit --notify`'s API reads: the same issues get
//! the same GitLab actions and Slack messages, once, and the others none.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use common::{Options, gitlab_time, issue_event, sqlite, start_server};
use labelwarden::jobs::escalation::Escalation;
use labelwarden::slack::{SlackNotifier, SlackSettings};
use secrecy::SecretString;
use serde_json::{Value, json};

use common::fake_slack::{self, FakeSlack};

const PROJECT: &str = "acme/backend";

const POLICIES: &str = r##"
channels:
  # Each alert its own thread, so each issue's message can be told apart.
  triage: { slack_channel: "#triage", group_after: 10 }
people:
  gitlab_users: { ada: U0ADA00001, bo: U0BO000001 }
  # bo every week, so the test need not know which week it is.
  oncall:
    rotation: [bo, bo]
    hand_off: { day: monday, time: "09:00", time_zone: UTC }
    since: 2026-01-05
policies:
  - name: unowned
    match:
      labels_any: ["priority::highest"]
      assignees: none
      authors: ["reporter"]
      weight: { at_least: 3 }
    clock: { target: 15m }
    adopt_grace: 7d
    escalation:
      - on: breach
        gitlab: { comment: true }
  - name: stale
    match:
      labels_all: ["type::bug"]
      milestone: none
      updated: { older_than: 2d }
    clock: { target: 1h, stops: { labeled: ["stale"] } }
    adopt_grace: 7d
    escalation:
      - on: breach
        gitlab: { add_labels: ["stale"] }
rules:
  - name: bugs-need-a-priority
    match: { labels_all: ["type::bug"], labels_none: ["priority::*"], created: { older_than: 2d } }
    actions:
      add_labels: ["needs-priority"]
      assign: oncall.primary
      comment: "{issue.ref} has been a bug for two days without a priority: please triage."
      slack: { channel: triage, mention: [oncall.primary] }
"##;

/// The issues: which ones each policy should act on is in the name.
fn issues(now: DateTime<Utc>) -> Vec<FakeIssue> {
    let created = now - TimeDelta::days(4);
    let labelled = now - TimeDelta::hours(1);
    let critical = |iid| {
        FakeIssue::new(PROJECT, iid, created)
            .add_label(labelled, "priority::highest")
            .weighing(5)
    };
    let bug = |iid, touched: DateTime<Utc>| {
        FakeIssue::new(PROJECT, iid, created)
            .add_label(created, "type::bug")
            .touched(touched)
    };
    vec![
        critical(1),
        critical(2).assign("ada"),
        critical(3).weighing(1),
        critical(4).authored_by("someone"),
        bug(5, now - TimeDelta::days(3)),
        bug(6, now - TimeDelta::days(3)).in_milestone("17.4"),
        bug(7, now - TimeDelta::days(1)),
    ]
}

/// What the policies did on a GitLab: the issues commented on (a note
/// people read, not only the ledger), the issues labelled `stale`, those
/// the rule labelled `needs-priority`, and those the on-call person `bo`
/// was assigned.
fn outcome(gitlab: &FakeGitLab) -> (Vec<u64>, Vec<u64>, Vec<u64>, Vec<u64>) {
    let all: Vec<FakeIssue> = (1..=7).map(|iid| gitlab.issue(PROJECT, iid)).collect();
    let commented = all
        .iter()
        .filter(|i| i.notes.iter().any(|note| !note.3))
        .map(|i| i.iid)
        .collect();
    let labelled = |label: &str| {
        all.iter()
            .filter(|i| i.labels.iter().any(|l| l == label))
            .map(|i| i.iid)
            .collect()
    };
    let assigned = all
        .iter()
        .filter(|i| i.assignees == ["bo"])
        .map(|i| i.iid)
        .collect();
    (
        commented,
        labelled("stale"),
        labelled("needs-priority"),
        assigned,
    )
}

/// GitLab's hooks for one issue: `open` by its author at creation (the
/// one hook that names the author), then an update with its labels and
/// everything else as it is now.
fn hooks_of(issue: &FakeIssue) -> [Value; 2] {
    let mut opened = issue_event(
        issue.iid,
        issue.created_at,
        issue.created_at,
        &[],
        &[],
        false,
    );
    opened["object_attributes"]["action"] = json!("open");
    opened["object_attributes"]["author_id"] = json!(1);
    opened["user"] = json!({ "id": 1, "name": issue.author, "username": issue.author });
    let labels: Vec<&str> = issue.labels.iter().map(String::as_str).collect();
    let mut updated = issue_event(
        issue.iid,
        issue.created_at,
        issue.updated_at,
        &[],
        &labels,
        false,
    );
    let attributes = &mut updated["object_attributes"];
    attributes["author_id"] = json!(1);
    attributes["milestone_id"] = json!(issue.milestone.as_ref().map(|_| 40));
    attributes["weight"] = json!(issue.weight);
    attributes["updated_at"] = json!(gitlab_time(issue.updated_at));
    // Whoever labelled it, not the author.
    updated["user"] = json!({ "id": 2, "name": "Triager", "username": "triager" });
    updated["assignees"] = json!(
        issue
            .assignees
            .iter()
            .map(|u| json!({ "id": 3, "name": u, "username": u }))
            .collect::<Vec<_>>()
    );
    for hook in [&mut opened, &mut updated] {
        hook["object_attributes"]["title"] = json!(issue.title);
    }
    [opened, updated]
}

/// The issues the rule's Slack messages are about, tagging bo (on call).
fn told_in_slack(slack: &FakeSlack) -> Vec<u64> {
    let mut told: Vec<u64> = slack
        .messages()
        .iter()
        .filter(|m| m.shown().contains("<@U0BO000001>"))
        .filter_map(|m| {
            let shown = m.shown();
            let at = shown.find("acme/backend#")? + "acme/backend#".len();
            shown[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .collect();
    told.sort_unstable();
    told
}

/// `audit --notify` over the project with these policies, against this
/// GitLab and this Slack.
fn audit_notify(
    policies: &std::path::Path,
    gitlab_url: &str,
    slack_api: &str,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([
            "audit",
            "--project",
            PROJECT,
            "--notify",
            "--fail-on",
            "never",
        ])
        .arg("--policies")
        .arg(policies)
        .env("GITLAB_URL", gitlab_url)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("SLACK_API_URL", slack_api)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_the_api_meet_the_same_conditions_on_the_same_issues() {
    let now = Utc::now();
    let expected = (vec![1, 5, 6, 7], vec![5], vec![5, 6, 7], vec![5, 6, 7]);

    // `audit --notify`, reading the API.
    let audited = FakeGitLab::start().await;
    audited.gitlab.add_user("bo", "active");
    for issue in issues(now) {
        audited.gitlab.add(issue);
    }
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("conditions.yml"), POLICIES).unwrap();
    let audit_slack = FakeSlack::start().await;
    let run = audit_notify(&policies, &audited.url, &audit_slack.api_url);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert_eq!(outcome(&audited.gitlab), expected, "audit: {stderr}");
    assert_eq!(
        told_in_slack(&audit_slack.slack),
        [5, 6, 7],
        "audit's messages"
    );
    let said = audited.gitlab.issue(PROJECT, 6).notes;
    assert!(
        said.iter().any(|note| !note.3
            && note
                .2
                .starts_with("acme/backend#6 has been a bug for two days without a priority")),
        "the rule's own words: {said:#?}"
    );
    // Run again: every rule and step acted once.
    let again = audit_notify(&policies, &audited.url, &audit_slack.api_url);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(
        told_in_slack(&audit_slack.slack),
        [5, 6, 7],
        "nothing twice"
    );

    // `serve`, told by webhooks.
    let served = FakeGitLab::start().await;
    served.gitlab.add_user("bo", "active");
    for issue in issues(now) {
        served.gitlab.add(issue);
    }
    let serve_slack = FakeSlack::start().await;
    let loaded = Arc::new(labelwarden::policy::load(&policies).expect("policies load"));
    let notifier = SlackNotifier::new(
        Arc::clone(&loaded),
        SlackSettings {
            api_url: serve_slack.api_url.clone(),
            token: Some(SecretString::from(fake_slack::TOKEN.to_owned())),
            webhook_urls: std::collections::BTreeMap::new(),
            per_channel_per_second: std::num::NonZeroU32::new(100).unwrap(),
            per_channel_burst: std::num::NonZeroU32::new(10).unwrap(),
        },
    )
    .unwrap();
    let server = start_server(
        loaded,
        &sqlite(&dir.path().join("db.sqlite")),
        Escalation::new(notifier, served.writer()),
        Options::default(),
    )
    .await;
    for issue in issues(now) {
        for (n, hook) in hooks_of(&issue).iter().enumerate() {
            let status = server
                .deliver(&format!("hook-{}-{n}", issue.iid), hook)
                .await;
            assert_eq!(status, 200);
        }
    }
    let done = common::wait_until(Duration::from_secs(10), || {
        outcome(&served.gitlab) == expected && told_in_slack(&serve_slack.slack) == [5, 6, 7]
    })
    .await;
    assert!(
        done,
        "serve: {:?}, Slack {:?}",
        outcome(&served.gitlab),
        told_in_slack(&serve_slack.slack)
    );
    // And nothing more after a while: the others do not match.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outcome(&served.gitlab), expected);
    assert_eq!(told_in_slack(&serve_slack.slack), [5, 6, 7]);
    server.stop().await;
}
