//! `serve` reconciles as soon as it starts: what webhooks missed while it
//! was down is repaired at once, not an interval later, and a clean stop
//! lets the next start do the same. (A binary of its own: reconcile's
//! counters are process-wide, and `tests/reconcile.rs` reads them.)

mod common;

use std::time::Duration;

use chrono::Utc;
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::{HIGHEST, Options, Sent, fixture_policies, sqlite, start_server};

#[tokio::test]
async fn a_start_reconciles_at_once_and_a_clean_restart_does_again() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    // Labelled while labelwarden was down; the next interval is an hour away.
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 70, now).add_label(now, HIGHEST));
    let dir = tempfile::tempdir().unwrap();
    let database = sqlite(&dir.path().join("db.sqlite"));
    let start = |sent: Sent| {
        let scope = labelwarden::gitlab::history::Scope::Project("acme/backend".into());
        let reconcile = gitlab.reconcile(Duration::from_secs(3600), vec![scope]);
        start_server(
            fixture_policies("policies-fast"),
            &database,
            sent,
            Options {
                reconcile: Some(reconcile),
                ..Options::default()
            },
        )
    };
    let sent = Sent::default();
    let server = start(sent.clone()).await;
    assert!(
        common::wait_until(Duration::from_secs(20), || !sent
            .of("acme/backend#70")
            .is_empty())
        .await,
        "the first pass ran at start"
    );
    server.stop().await;

    // Closed while labelwarden was down; a clean restart repairs it at once.
    gitlab
        .gitlab
        .update("acme/backend", 70, |issue| issue.close(Utc::now()));
    let sent = Sent::default();
    let server = start(sent.clone()).await;
    assert!(
        common::wait_until(Duration::from_secs(20), || sent
            .of("acme/backend#70")
            .contains(&"resolved".to_owned()))
        .await,
        "{:?}",
        sent.of("acme/backend#70")
    );
    server.stop().await;
}
