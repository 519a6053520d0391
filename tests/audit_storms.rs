//! `audit --notify` over many issues at once groups the way `serve` does:
//! the first scheduled run over an existing backlog, and the run after a
//! bulk change, are a few readable messages at Slack's pace, and every
//! issue's every step is still said and recorded once.

mod common;

use std::process::{Command, Output};

use chrono::{TimeDelta, Utc};
use common::HIGHEST;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use common::fake_slack::{FakeSlack, Message, TOKEN};
use labelwarden::gitlab::markers::Marker;

const PROJECT: &str = "acme/backend";

fn audit_notify(gitlab: &str, slack_api: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["audit", "--project", PROJECT, "--notify"])
        .args(["--fail-on", "never", "--format", "json", "--policies"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .env("GITLAB_URL", gitlab)
        .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
        .env("SLACK_BOT_TOKEN", TOKEN)
        .env("SLACK_API_URL", slack_api)
        .output()
        .unwrap()
}

/// The issues a message names, by iid.
fn named(message: &Message) -> Vec<u64> {
    common::issues_named(&message.shown(), PROJECT)
}

/// The steps an issue's ledger note lists, with the thread each names.
fn ledger(gitlab: &FakeGitLab, iid: u64) -> Vec<(String, Option<String>)> {
    let issue = gitlab.issue(PROJECT, iid);
    let mut steps: Vec<(String, Option<String>)> = issue
        .notes
        .iter()
        .filter(|n| n.3)
        .flat_map(|n| Marker::find_all(&n.2))
        .map(|m| (m.firing.step.0, m.thread.map(|t| t.ts)))
        .collect();
    steps.sort();
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_audit_over_a_backlog_and_a_bulk_close_are_a_few_messages() {
    let gitlab = FakeGitLab::start().await;
    let slack = FakeSlack::start().await;
    slack.slack.pace(1);
    let now = Utc::now();
    // 20 breached 6 hours ago, 20 running with 22 hours left.
    for iid in 1..=40u64 {
        let labelled = now - TimeDelta::hours(if iid <= 20 { 30 } else { 2 });
        gitlab.gitlab.add(
            FakeIssue::new(PROJECT, iid, labelled)
                .add_label(labelled, HIGHEST)
                .assign("jdoe"),
        );
    }

    let first = audit_notify(&gitlab.url, &slack.api_url);
    let stderr = String::from_utf8_lossy(&first.stderr);
    println!("{stderr}");
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let posted = slack.slack.messages();
    // One step at a time, that is 20 × 4 + 20 × 2 = 120 messages (start,
    // the unacknowledged nudge, breach and first reminder; start and
    // nudge). The first five new alerts keep a thread each (at most four
    // steps each); the other 35 issues share one group: its parent, its
    // list, and one message per kind of step (nudge, breach, reminder).
    let parents: Vec<&Message> = posted.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(parents.len(), 6, "5 alerts and one group: {parents:#?}");
    assert!(posted.len() <= 5 * 4 + 2 + 3, "{} messages", posted.len());
    let group = parents
        .iter()
        .find(|m| {
            m.text
                .starts_with("35 new alerts under critical-bug-24h at once")
        })
        .expect("a group parent");
    let in_group: Vec<&Message> = posted
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(group.ts.as_str()))
        .collect();
    let mut members: Vec<u64> = in_group.iter().flat_map(|m| named(m)).collect();
    members.sort_unstable();
    members.dedup();
    assert_eq!(members.len(), 35, "the group's thread lists its members");

    // Every step of every issue is recorded once: those of the 35 with
    // the group's thread, the others with their own.
    for iid in 1..=40u64 {
        let steps = ledger(&gitlab.gitlab, iid);
        let expected = if iid <= 20 { 4 } else { 2 };
        assert_eq!(steps.len(), expected, "#{iid}: {steps:?}");
        let grouped = members.contains(&iid);
        for (step, thread) in &steps {
            let thread = thread.as_deref().expect("every step names its thread");
            assert_eq!(
                thread == group.ts,
                grouped,
                "#{iid} {step}: in the group's thread exactly when grouped"
            );
        }
        assert!(
            posted.iter().any(|m| named(m).contains(&iid)),
            "#{iid} is named in Slack"
        );
    }

    // The next scheduled run finds everything done.
    let second = audit_notify(&gitlab.url, &slack.api_url);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("--notify: 0 steps carried out"), "{stderr}");
    assert_eq!(slack.slack.messages().len(), posted.len());

    // A triage session closes all 40: the group's members are resolved
    // together, in one message in the group's thread.
    let closed = Utc::now();
    for iid in 1..=40u64 {
        gitlab
            .gitlab
            .update(PROJECT, iid, |issue| issue.close(closed));
    }
    let third = audit_notify(&gitlab.url, &slack.api_url);
    let stderr = String::from_utf8_lossy(&third.stderr);
    println!("{stderr}");
    assert_eq!(third.status.code(), Some(0), "{stderr}");
    let after: Vec<Message> = slack.slack.messages()[posted.len()..].to_vec();
    let resolved_in_group: Vec<&Message> = after
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(group.ts.as_str()))
        .collect();
    assert_eq!(resolved_in_group.len(), 1, "{resolved_in_group:#?}");
    assert_eq!(named(resolved_in_group[0]).len(), 35);
    for iid in 1..=40u64 {
        assert!(
            ledger(&gitlab.gitlab, iid)
                .iter()
                .any(|(step, _)| step == "resolved"),
            "#{iid}: its resolution is recorded"
        );
    }
}
