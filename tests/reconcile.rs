//! `serve` repairs what lost webhooks missed, from the GitLab API (a fake
//! GitLab): an issue labelled while no webhook reached it starts its
//! clock from its label history; a close nobody told it about resolves.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::{HIGHEST, Options, Sent, fixture_policies, issue_event, sqlite, start_server};

#[tokio::test]
async fn reconcile_starts_missed_clocks_and_resolves_missed_closes() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    // Labelled 3 seconds ago while no webhook reached labelwarden.
    gitlab.gitlab.add(
        FakeIssue::new("acme/backend", 60, now - TimeDelta::seconds(10))
            .add_label(now - TimeDelta::seconds(3), HIGHEST),
    );
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 61, now).add_label(now, HIGHEST));

    let sent = Sent::default();
    let dir = tempfile::tempdir().unwrap();
    // Every project the store knows: #61's webhook makes it known.
    let reconcile = gitlab.reconcile(Duration::from_millis(300), vec![]);
    let server = start_server(
        fixture_policies("policies-fast"),
        &sqlite(&dir.path().join("db.sqlite")),
        sent.clone(),
        Options {
            reconcile: Some(reconcile),
            ..Options::default()
        },
    )
    .await;
    server
        .deliver(
            "reconcile-61",
            &issue_event(61, now, now, &[], &[HIGHEST], false),
        )
        .await;
    assert!(
        common::wait_until(Duration::from_secs(20), || !sent
            .of("acme/backend#61")
            .is_empty())
        .await,
        "#61's start went out"
    );
    // Closed in GitLab; the webhook is lost.
    gitlab
        .gitlab
        .update("acme/backend", 61, |issue| issue.close(Utc::now()));

    let settled = common::wait_until(Duration::from_secs(20), || {
        sent.of("acme/backend#61").len() >= 2 && sent.of("acme/backend#60").len() >= 2
    })
    .await;
    assert!(
        settled,
        "reconcile did not repair both in time: #60: {:?}, #61: {:?}",
        sent.of("acme/backend#60"),
        sent.of("acme/backend#61")
    );
    // One more reconcile pass, and its effects sent, before saying that
    // nothing more came: a repair applied twice would show by then.
    let ok_runs = "labelwarden_reconcile_runs_total{outcome=\"ok\"} ";
    let runs = server.metric(ok_runs).await.unwrap_or(0.0);
    let mut later = runs;
    for _ in 0..100 {
        later = server.metric(ok_runs).await.unwrap_or(0.0);
        if later > runs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(later > runs, "another reconcile pass ran");
    server.assert_outbox_empty().await;
    assert_eq!(sent.of("acme/backend#61"), vec!["start", "resolved"]);
    assert_eq!(
        sent.of("acme/backend#60"),
        vec!["start", "breach"],
        "the clock started 3 s ago from the label history, so it is breached; the stale warning is skipped and nothing is sent twice"
    );
    let (_, metrics) = server.get("/metrics").await;
    for line in [
        "labelwarden_reconcile_repairs_total{kind=\"unknown_issue\"} 1",
        "labelwarden_reconcile_repairs_total{kind=\"state\"} 1",
        "labelwarden_reconcile_runs_total{outcome=\"ok\"}",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    server.stop().await;
}
