//! Two `serve` processes on one PostgreSQL database behind one fake Slack,
//! webhooks spread over both: every step reaches Slack exactly once, on
//! time. Needs `LABELWARDEN_TEST_POSTGRES_URL` (`.ci/run` sets it);
//! skipped otherwise.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::fake_slack::{self, FakeSlack};
use common::process::{Running, free_port, kill, run, terminate, wait_until_up};
use common::{HIGHEST, SECRET, fixtures, issue_event};
use futures_util::StreamExt;

const ISSUES: u64 = 500;

fn replica(database: &str, slack_api: &str, port: u16) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labelwarden"));
    command
        .args([
            "serve",
            "--notifier",
            "slack",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--database",
            database,
            "--lease",
            "2s",
            "--reconcile-every",
            "0s",
        ])
        .arg("--policies")
        .arg(fixtures().join("policies-replicas"))
        .env("LABELWARDEN_WEBHOOK_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("SLACK_API_URL", slack_api)
        // The fake takes any rate; Slack's own one-per-second would make
        // 1 500 messages in one channel take 25 minutes.
        .env("LABELWARDEN_SLACK_PER_CHANNEL_PER_SECOND", "10000")
        .env("RUST_LOG", "warn");
    run(command)
}

/// The step a message tells of, from its default wording.
fn step_of(text: &str) -> &'static str {
    if text.contains("SLA clock started") {
        "start"
    } else if text.contains(":hourglass_flowing_sand:") {
        "warning"
    } else if text.contains("SLA breached") {
        "breach"
    } else {
        "other"
    }
}

/// Runs the 500-issue story on two replicas; with `kill_after`, the
/// enforcing replica is killed (SIGKILL) that long after the last webhook.
async fn story(kill_after: Option<Duration>) {
    // Four busy processes at once on two cores would measure the machine,
    // not the replicas: one story at a time.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    let ports = [free_port(), free_port()];
    let mut replicas: Vec<Running> = ports
        .iter()
        .map(|port| replica(&database.url, &slack.api_url, *port))
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in ports {
        wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }

    // 500 issues labelled, half through each replica, 32 deliveries at a time.
    let labelled: BTreeMap<u64, DateTime<Utc>> = futures_util::stream::iter(1..=ISSUES)
        .map(|iid| {
            let http = http.clone();
            let port = ports[(iid % 2) as usize];
            async move {
                let at = Utc::now();
                let payload = issue_event(iid, at, at, &[], &[HIGHEST], false);
                let status = http
                    .post(format!("http://127.0.0.1:{port}/webhooks/gitlab"))
                    .header("X-Gitlab-Token", SECRET)
                    .header("X-Gitlab-Event", "Issue Hook")
                    .header("X-Gitlab-Event-UUID", format!("replica-{iid}"))
                    .header("Content-Type", "application/json")
                    .body(payload.to_string())
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 200);
                (iid, at)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    if let Some(after) = kill_after {
        tokio::time::sleep(after).await;
        // Kill the replica that is the enforcer: the other must take over.
        let mut active = None;
        for (n, port) in ports.iter().enumerate() {
            let metrics = http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if metrics.contains("labelwarden_enforcer_active 1") {
                active = Some(n);
            }
        }
        let active = active.expect("one replica is the enforcer");
        let log = kill(replicas.remove(active));
        assert!(!log.contains("panicked"), "{log}");
    }

    let expected = ISSUES as usize * 3;
    for _ in 0..400 {
        if slack.slack.messages().len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut seen: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    let mut worst = TimeDelta::zero();
    let mut late_unsaid = Vec::new();
    for message in slack.slack.messages() {
        let iid: u64 = message
            .text
            .split("acme/backend#")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no issue in {}", message.text));
        let step = step_of(&message.text);
        *seen.entry((iid, step)).or_default() += 1;
        let due = labelled[&iid]
            + match step {
                "warning" => TimeDelta::seconds(2),
                "breach" => TimeDelta::seconds(3),
                _ => TimeDelta::zero(),
            };
        let lateness = message.posted_at - due;
        worst = worst.max(lateness);
        if lateness > TimeDelta::seconds(1) && !message.shown().contains("late") {
            late_unsaid.push((iid, step, lateness.num_milliseconds()));
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let missing: Vec<(u64, &str)> = (1..=ISSUES)
        .flat_map(|iid| ["start", "warning", "breach"].map(|step| (iid, step)))
        .filter(|key| !seen.contains_key(key))
        .collect();
    assert!(
        missing.is_empty(),
        "{} never sent, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        late_unsaid.is_empty(),
        "late without saying so: {:?}",
        &late_unsaid[..late_unsaid.len().min(5)]
    );
    if kill_after.is_none() {
        assert!(
            worst <= TimeDelta::seconds(2),
            "the latest step came {} ms after it was due",
            worst.num_milliseconds()
        );
    }
    println!(
        "{expected} steps exactly once; the latest {} ms after due",
        worst.num_milliseconds()
    );

    for replica in replicas {
        let (code, log) = terminate(replica).await;
        assert_eq!(code, Some(0), "{log}");
    }
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_send_every_step_once_and_on_time() {
    story(None).await;
}

/// The replica that is the enforcer dies (SIGKILL) 2.5 s after the last
/// webhook, between the warnings and the last breaches: the survivor takes
/// over its lease and its unfinished claims after 1 s and delivers
/// everything, once, saying what is late.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_s_work_is_taken_over_once() {
    story(Some(Duration::from_millis(2_500))).await;
}
