//! GitLab-native deadlines through `serve` (`gitlab: { set_due_date: true }`):
//! the due date follows the deadline on a fake GitLab, is written once per
//! change, is cleared when a triage label stops the clock, is listed on
//! the issue's ledger note, and a date a person set is left alone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};
use common::{Options, issue_event, sqlite, start_server, wait_until};
use labelwarden::jobs::escalation::Escalation;
use labelwarden::notify::LogNotifier;
use serde_json::{Value, json};

const TRIAGE: &str = r#"
policies:
  - name: triage
    match: { labels_any: ["type::bug"] }
    clock: { target: 24h, stops: { labeled: ["workflow::*"] }, pauses_while_labeled: ["blocked"] }
    escalation:
      - on: start
        gitlab: { set_due_date: true }
"#;

/// `serve` with the escalation notifier on the fake GitLab (nothing for
/// Slack in these policies).
async fn serving(gitlab: &fake_gitlab::Running) -> (tempfile::TempDir, common::Server) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("triage.yml"), TRIAGE).unwrap();
    let policies = Arc::new(labelwarden::policy::load(&policies).expect("policies load"));
    let writer = gitlab.writer();
    let server = start_server(
        policies,
        &sqlite(&dir.path().join("db.sqlite")),
        Escalation::new(LogNotifier, writer),
        Options::default(),
    )
    .await;
    (dir, server)
}

/// Waits until the outbox has nothing pending, then says nothing failed.
async fn settled(server: &common::Server) {
    for _ in 0..100 {
        if server.stats().await.outbox_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.assert_outbox_empty().await;
}

fn date_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// GitLab's issue event: labels `before` -> `after` at `at`, showing `due`.
fn event(
    iid: u64,
    created: DateTime<Utc>,
    at: DateTime<Utc>,
    before: &[&str],
    after: &[&str],
    due: Option<NaiveDate>,
) -> Value {
    let mut payload = issue_event(iid, created, at, before, after, false);
    payload["object_attributes"]["due_date"] = json!(due);
    payload
}

#[tokio::test]
async fn the_due_date_follows_the_deadline_once_per_change_and_is_listed_on_the_ledger() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    let labelled = now - TimeDelta::hours(50);
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 60, labelled).add_label(labelled, "type::bug"));
    let (_dir, server) = serving(&gitlab).await;
    let issue = || gitlab.gitlab.issue("acme/backend", 60);

    server
        .deliver(
            "due-1",
            &event(60, labelled, labelled, &[], &["type::bug"], None),
        )
        .await;
    let first = date_of(labelled + TimeDelta::hours(24));
    assert!(
        wait_until(Duration::from_secs(20), || issue().due_date == Some(first)).await,
        "the deadline's date: {:?}",
        issue().due_date
    );
    // Another change that does not move the deadline writes nothing.
    server
        .deliver(
            "due-2",
            &event(
                60,
                labelled,
                now - TimeDelta::hours(49),
                &["type::bug"],
                &["type::bug", "frontend"],
                Some(first),
            ),
        )
        .await;
    // Blocked for 48 hours: the deadline, and the date, move two days on.
    let blocked_at = now - TimeDelta::hours(49);
    let unblocked_at = now - TimeDelta::hours(1);
    let (tagged, blocked) = (
        ["type::bug", "frontend"],
        ["type::bug", "frontend", "blocked"],
    );
    server
        .deliver(
            "due-3",
            &event(60, labelled, blocked_at, &tagged, &blocked, Some(first)),
        )
        .await;
    server
        .deliver(
            "due-4",
            &event(60, labelled, unblocked_at, &blocked, &tagged, Some(first)),
        )
        .await;
    let moved = date_of(labelled + TimeDelta::hours(24 + 48));
    assert_ne!(moved, first);
    assert!(
        wait_until(Duration::from_secs(20), || issue().due_date == Some(moved)).await,
        "moved by the pause: {:?}",
        issue().due_date
    );
    settled(&server).await;
    assert_eq!(issue().due_date_writes, 2, "set once, moved once");
    server.stop().await;

    // The ledger note says what labelwarden set, in order.
    let ledger: Vec<String> = issue()
        .notes
        .iter()
        .filter(|n| n.3)
        .map(|n| n.2.clone())
        .collect();
    let steps: Vec<String> = labelwarden::gitlab::markers::Marker::find_all(&ledger.concat())
        .into_iter()
        .map(|m| m.firing.step.0)
        .collect();
    assert_eq!(
        steps,
        [
            "start".to_owned(),
            format!("due={first}"),
            format!("due={moved}")
        ],
        "{ledger:#?}"
    );
}

#[tokio::test]
async fn triage_clears_labelwarden_s_date_but_never_a_date_a_person_set() {
    let gitlab = FakeGitLab::start().await;
    let labelled = Utc::now() - TimeDelta::minutes(10);
    for iid in [61, 62] {
        gitlab
            .gitlab
            .add(FakeIssue::new("acme/backend", iid, labelled).add_label(labelled, "type::bug"));
    }
    let (_dir, server) = serving(&gitlab).await;
    let issue = |iid| gitlab.gitlab.issue("acme/backend", iid);
    let due = date_of(labelled + TimeDelta::hours(24));
    for iid in [61, 62] {
        server
            .deliver(
                &format!("label-{iid}"),
                &event(iid, labelled, labelled, &[], &["type::bug"], None),
            )
            .await;
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            issue(61).due_date == Some(due) && issue(62).due_date == Some(due)
        })
        .await
    );

    // On #62 a person sets a date of their own, and the webhook saying so
    // has not come yet when the triage label does (it still shows
    // labelwarden's date): the write is decided, and refused as it is sent.
    let theirs = NaiveDate::from_ymd_opt(2031, 1, 15).unwrap();
    gitlab
        .gitlab
        .update("acme/backend", 62, |i| i.due(Some(theirs)));
    let triaged = Utc::now();
    let ready = ["type::bug", "workflow::ready"];
    for iid in [61, 62] {
        server
            .deliver(
                &format!("triage-{iid}"),
                &event(iid, labelled, triaged, &["type::bug"], &ready, Some(due)),
            )
            .await;
    }
    assert!(
        wait_until(Duration::from_secs(20), || issue(61).due_date.is_none()).await,
        "the clock stopped on an open issue: labelwarden's date is cleared"
    );
    settled(&server).await;
    assert_eq!(
        issue(62).due_date,
        Some(theirs),
        "a person's date is theirs"
    );
    assert_eq!(
        issue(62).due_date_writes,
        1,
        "only labelwarden's first write"
    );
    assert_eq!(issue(61).due_date_writes, 2, "set, then cleared");
    server.stop().await;
}
