//! `serve`'s reconcile reads GitLab at the cost of what changed: after the
//! first (full) pass, a pass lists only the issues updated since the
//! previous one and reads histories only of those whose `updated_at`
//! changed. A change stamped a little before the previous pass (a write in
//! flight) is still seen, and a label removed from a live clock is
//! repaired, though the issue no longer matches any policy's labels.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::{HIGHEST, Options, Sent, fixture_policies, sqlite, start_server};
use labelwarden::gitlab::history::Scope;

const PROJECT: &str = "acme/backend";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_pass_only_what_changed_is_read() {
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    for iid in 1..=20 {
        gitlab.gitlab.add(
            FakeIssue::new(PROJECT, iid, now - TimeDelta::hours(1))
                .add_label(now - TimeDelta::minutes(30), HIGHEST),
        );
    }
    let mut reconcile = gitlab.reconcile(
        Duration::from_millis(200),
        vec![Scope::Project(PROJECT.into())],
    );
    reconcile.full_every = Duration::from_secs(3600);
    let sent = Sent::default();
    let dir = tempfile::tempdir().unwrap();
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
    let incremental = "labelwarden_reconcile_requests_total{mode=\"incremental\"} ";
    let full = "labelwarden_reconcile_requests_total{mode=\"full\"} ";
    // The first pass is full and reads every history once.
    assert!(
        common::wait_until(Duration::from_secs(20), || (1..=20)
            .all(|iid| !sent.of(&format!("{PROJECT}#{iid}")).is_empty()))
        .await,
        "every clock started from the first pass"
    );
    assert_eq!(
        common::histories_read(&gitlab.gitlab.requests()),
        (1..=20).collect::<Vec<_>>()
    );
    let full_requests = server.metric(full).await.expect("a full pass ran");
    assert!(
        full_requests >= 41.0,
        "listings and 2 × 20 histories: {full_requests}"
    );

    // Incremental passes with nothing changed list, and read nothing.
    let mark = gitlab.gitlab.requests().len();
    let mut passes = 0.0;
    for _ in 0..100 {
        passes = server.metric(incremental).await.unwrap_or(0.0);
        if passes >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(passes >= 2.0, "incremental passes ran");
    let since_mark = gitlab.gitlab.requests()[mark..].to_vec();
    assert_eq!(
        common::histories_read(&since_mark),
        Vec::<u64>::new(),
        "{since_mark:#?}"
    );
    assert!(
        since_mark
            .iter()
            .all(|r| r.contains("/issues?") && r.contains("updated_after=")),
        "only listings of what changed: {since_mark:#?}"
    );
    assert_eq!(
        server.metric(full).await,
        Some(full_requests),
        "no second full pass within the hour"
    );

    // #5 closed a minute ago (a write GitLab stamped before the previous
    // pass listed), #7's label removed now, the webhooks lost: the next
    // passes read those two alone and repair both.
    let mark = gitlab.gitlab.requests().len();
    gitlab.gitlab.update(PROJECT, 5, |issue| {
        issue.close(Utc::now() - TimeDelta::minutes(1))
    });
    gitlab
        .gitlab
        .update(PROJECT, 7, |issue| issue.remove_label(Utc::now(), HIGHEST));
    let state = "labelwarden_reconcile_repairs_total{kind=\"state\"} ";
    let labels = "labelwarden_reconcile_repairs_total{kind=\"labels\"} ";
    let mut repaired = (None, None);
    for _ in 0..250 {
        repaired = (server.metric(state).await, server.metric(labels).await);
        if repaired == (Some(1.0), Some(1.0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        repaired,
        (Some(1.0), Some(1.0)),
        "the close and the removed label are repaired, each once: {:#?}",
        &gitlab.gitlab.requests()[mark..]
    );
    assert!(
        common::wait_until(Duration::from_secs(20), || sent
            .of(&format!("{PROJECT}#5"))
            .iter()
            .any(|s| s == "resolved"))
        .await,
        "#5's resolution goes out: {:?}",
        sent.of(&format!("{PROJECT}#5"))
    );
    let since_mark = gitlab.gitlab.requests()[mark..].to_vec();
    let mut read = common::histories_read(&since_mark);
    read.dedup();
    assert_eq!(read, [5, 7], "{since_mark:#?}");
}
