//! An instant rule under two `serve` replicas on one PostgreSQL database,
//! webhooks spread over both: each issue gets the rule's label and comment
//! once. Needs `LABELWARDEN_TEST_POSTGRES_URL` (`.ci/run` sets it);
//! skipped otherwise.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::fake_gitlab::{FakeGitLab, FakeIssue};
use common::fake_slack::FakeSlack;
use common::process::{
    free_port, label_spread, serve_replica_writing_to, terminate, wait_until_up,
};

const ISSUES: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_acts_once_per_issue_under_two_replicas() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    for iid in 1..=ISSUES {
        gitlab.gitlab.add(FakeIssue::new("acme/backend", iid, now));
    }
    let slack = FakeSlack::start().await;
    let ports = [free_port(), free_port()];
    let replicas: Vec<_> = ports
        .iter()
        .map(|port| {
            serve_replica_writing_to(
                &database.url,
                &slack.api_url,
                &gitlab.url,
                *port,
                "policies-rules",
            )
        })
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in ports {
        wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }
    label_spread(&http, &ports, ISSUES, "rule", 16).await;

    let comments = |iid| {
        gitlab
            .gitlab
            .issue("acme/backend", iid)
            .notes
            .iter()
            .filter(|note| !note.3 && note.2.contains("is critical: the incident channel has it"))
            .count()
    };
    let all_done = common::wait_until(Duration::from_secs(30), || {
        (1..=ISSUES).all(|iid| comments(iid) >= 1)
    })
    .await;
    // Time for a second comment to arrive, if anything would send one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for replica in replicas {
        let (_, log) = terminate(replica).await;
        assert!(!log.contains("panicked"), "{log}");
    }
    assert!(all_done, "every issue heard of the rule");
    for iid in 1..=ISSUES {
        let issue = gitlab.gitlab.issue("acme/backend", iid);
        assert_eq!(comments(iid), 1, "issue {iid}: {:#?}", issue.notes);
        assert!(issue.labels.contains(&"seen::critical".to_owned()), "{iid}");
    }
    assert!(
        slack.slack.messages().is_empty(),
        "a rule without Slack says nothing there"
    );
}
