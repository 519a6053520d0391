//! No alert stuck for good, with two `serve` replicas on one PostgreSQL
//! database: what an archived channel refuses goes to its fallback at once,
//! and `labelwarden outbox resend` delivers each original once, in its
//! issue's order, after the channel is unarchived. Needs
//! `LABELWARDEN_TEST_POSTGRES_URL` (`.ci/run` sets it); skipped otherwise.
//! The same story on SQLite, one process: `tests/slack.rs`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use common::fake_slack::{self, FakeSlack, step_of};
use common::process::{Running, deliver_hook, free_port, serve_replica, terminate, wait_until_up};
use common::{HIGHEST, issue_event};

const ISSUES: u64 = 3;

fn replica(database: &str, slack_api: &str, port: u16) -> Running {
    serve_replica(database, slack_api, port, "policies-resend")
}

fn outbox(database: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .arg("outbox")
        .args(args)
        .args(["--database", database])
        .output()
        .expect("the binary runs")
}

/// (issue, step) of each message in `channel`, in the order posted.
fn said_in(slack: &FakeSlack, channel: &str) -> Vec<(u64, &'static str, String)> {
    slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == channel)
        .filter_map(|m| {
            let shown = m.shown();
            let iid = (1..=ISSUES).find(|iid| shown.contains(&format!("acme/backend#{iid} ")))?;
            Some((iid, step_of(&shown), shown))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archived_channel_s_alerts_go_to_the_fallback_and_are_resent_once_in_order() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    slack.slack.refuse("C0ALERTS1", "is_archived");
    let ports = [free_port(), free_port()];
    let replicas: Vec<Running> = ports
        .iter()
        .map(|port| replica(&database.url, &slack.api_url, *port))
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in ports {
        wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }
    for iid in 1..=ISSUES {
        let at = Utc::now();
        let payload = issue_event(iid, at, at, &[], &[HIGHEST], false);
        let port = ports[(iid % 2) as usize];
        let status = deliver_hook(&http, port, &format!("resend-{iid}"), &payload).await;
        assert_eq!(status, 200);
    }

    // Start, warning and breach of each issue: refused by #alerts, each
    // said at once in #backup, saying why.
    let expected = ISSUES as usize * 3;
    let backup = fake_slack::channel_id("C0BACKUP1");
    for _ in 0..100 {
        if said_in(&slack.slack, &backup).len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fallen_back = said_in(&slack.slack, &backup);
    assert_eq!(fallen_back.len(), expected, "each once: {fallen_back:#?}");
    assert!(
        fallen_back.iter().all(
            |(_, _, shown)| shown.contains("should have gone to `alerts`")
                && shown.contains("is_archived")
        ),
        "{fallen_back:#?}"
    );

    let listed = outbox(&database.url, &["list", "--failed", "--format", "json"]);
    assert!(listed.status.success(), "{}", common::text(&listed.stderr));
    let failed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(failed.len(), expected, "{failed:#?}");
    let mut ids: Vec<i64> = failed.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), expected, "a number each, shared by the replicas");

    // Unarchived, and resent from a third process: every original once,
    // in #alerts, each issue's in the order they fell due, one thread each.
    slack.slack.stop_refusing("C0ALERTS1");
    let resent = outbox(&database.url, &["resend", "--channel", "alerts"]);
    assert!(resent.status.success(), "{}", common::text(&resent.stderr));
    assert!(common::text(&resent.stdout).contains(&format!("queued {expected}")));
    let alerts = fake_slack::channel_id("C0ALERTS1");
    for _ in 0..100 {
        if said_in(&slack.slack, &alerts).len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let delivered = said_in(&slack.slack, &alerts);
    assert_eq!(delivered.len(), expected, "each once: {delivered:#?}");
    let mut by_issue: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (iid, step, shown) in &delivered {
        assert!(
            shown.contains("`alerts` refused it when it was due"),
            "{shown}"
        );
        by_issue.entry(*iid).or_default().push(step);
    }
    for (iid, steps) in &by_issue {
        assert_eq!(steps, &["start", "warning", "breach"], "issue {iid}");
    }
    let parents = slack
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == alerts && m.thread_ts.is_none())
        .count();
    assert_eq!(parents, ISSUES as usize, "one thread per issue");
    let again = outbox(&database.url, &["list", "--failed"]);
    assert!(
        common::text(&again.stdout).contains("no notices waiting or failed"),
        "{}",
        common::text(&again.stdout)
    );

    for replica in replicas {
        let (code, log) = terminate(replica).await;
        assert_eq!(code, Some(0), "{log}");
    }
    database.drop().await;
}
