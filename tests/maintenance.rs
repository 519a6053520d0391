//! A maintenance window written in the policy files, over a breach: the
//! window's mute opens once as it begins (however many replicas see it),
//! nothing is sent while it lasts, one summary says what was held when it
//! ends, and the clocks breached on time. On SQLite with one `serve`, and
//! on PostgreSQL with two replicas when `LABELWARDEN_TEST_POSTGRES_URL` is
//! set (`.ci/run` sets it).

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::fake_slack::{self, FakeSlack};
use common::process::{Running, deliver_hook, free_port, serve_replica, terminate, wait_until_up};
use common::{HIGHEST, issue_event};
use serde_json::Value;

/// The replica tests' policy (3 s target, warned 1 s before, all in
/// `alerts`) with a window over `alerts` from a minute ago until `until`.
fn policies_with_window(until: DateTime<Utc>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixtures().join("policies-replicas");
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let from = Utc::now() - TimeDelta::minutes(1);
    std::fs::write(
        dir.path().join("maintenance.yml"),
        format!(
            "maintenance:\n  - name: failover-drill\n    reason: database failover drill\n    \
             channel: alerts\n    once: {{ from: \"{}\", until: \"{}\" }}\n",
            from.to_rfc3339(),
            until.to_rfc3339()
        ),
    )
    .unwrap();
    dir
}

async fn ready(http: &reqwest::Client, port: u16) -> Value {
    http.get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn labelwarden(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(args)
        .output()
        .expect("the binary runs")
}

async fn story(database: &str, replicas: usize) {
    // Long enough for the replicas to start and both issues to breach
    // inside it (breach 3 s after labelling).
    let until = Utc::now() + TimeDelta::seconds(10);
    let policies = policies_with_window(until);
    let policies_path = policies.path().to_str().unwrap();
    let slack = FakeSlack::start().await;
    let ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
    let running: Vec<Running> = ports
        .iter()
        .map(|port| serve_replica(database, &slack.api_url, *port, policies_path))
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in &ports {
        wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }
    // Each replica sees the window begin; it is one mute in the store.
    for port in &ports {
        let mut mutes = Value::Null;
        for _ in 0..40 {
            mutes = ready(&http, *port).await["mutes"].clone();
            if mutes.as_array().is_some_and(|m| !m.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mutes = mutes.as_array().expect("readyz lists mutes");
        assert_eq!(mutes.len(), 1, "one mute for the window: {mutes:#?}");
        assert_eq!(mutes[0]["muted"], "channel `alerts`");
        assert_eq!(mutes[0]["scheduled"], true);
        assert!(
            mutes[0]["reason"]
                .as_str()
                .unwrap()
                .contains("maintenance window failover-drill: database failover drill"),
            "{mutes:#?}"
        );
    }
    let listed = labelwarden(&["mutes", "--database", database, "--policies", policies_path]);
    let listed = common::text(&listed.stdout);
    assert!(listed.contains("channel `alerts`"), "{listed}");
    assert!(
        listed.contains("failover-drill") && listed.contains("going on until"),
        "{listed}"
    );

    for iid in [1, 2] {
        let at = Utc::now();
        let payload = issue_event(iid, at, at, &[], &[HIGHEST], false);
        let port = ports[iid as usize % ports.len()];
        let status = deliver_hook(&http, port, &format!("window-{iid}"), &payload).await;
        assert_eq!(status, 200);
    }
    let alerts = fake_slack::channel_id("C0ALERTS1");
    let in_alerts = || -> Vec<String> {
        slack
            .slack
            .messages()
            .into_iter()
            .filter(|m| m.channel == alerts)
            .map(|m| m.shown())
            .collect()
    };
    let ends_in = (until - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(ends_in.saturating_sub(Duration::from_millis(300))).await;
    assert_eq!(
        in_alerts(),
        Vec::<String>::new(),
        "nothing sent while muted"
    );

    assert!(
        common::wait_until(Duration::from_secs(6), || !in_alerts().is_empty()).await,
        "the summary comes when the window ends"
    );
    // Every replica has had time to claim a summary too.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let said = in_alerts();
    assert_eq!(said.len(), 1, "one summary, nothing else: {said:#?}");
    for part in [
        "The mute of channel `alerts` has ended",
        "maintenance window failover-drill: database failover drill",
        "6 notices were held here",
        "acme/backend#1",
        "acme/backend#2",
        "breach (replicated)",
        "Still breached now:",
    ] {
        assert!(said[0].contains(part), "missing {part:?} in {}", said[0]);
    }

    // The window silenced; it did not pause: both clocks breached on time.
    let clocks = labelwarden(&[
        "clocks",
        "--database",
        database,
        "--policies",
        policies_path,
        "--format",
        "json",
    ]);
    assert!(clocks.status.success(), "{}", common::text(&clocks.stderr));
    let clocks: Vec<Value> = serde_json::from_slice(&clocks.stdout).unwrap();
    assert_eq!(clocks.len(), 2, "{clocks:#?}");
    assert!(
        clocks.iter().all(|c| c["status"] == "breached"),
        "{clocks:#?}"
    );

    // Each issue's story says its three notices were held by the window.
    let told = labelwarden(&[
        "clock",
        "acme/backend#1",
        "--database",
        database,
        "--policies",
        policies_path,
    ]);
    let told = common::text(&told.stdout);
    let held: Vec<&str> = told.lines().filter(|l| l.contains(" muted ")).collect();
    assert_eq!(held.len(), 3, "{told}");
    assert!(
        held.iter().all(|l| l.contains("to `alerts`: held by mute")),
        "{told}"
    );

    for replica in running {
        let (code, log) = terminate(replica).await;
        assert_eq!(code, Some(0), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_maintenance_window_over_a_breach_holds_its_notices_and_says_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = common::sqlite(&dir.path().join("db.sqlite"));
    story(&database, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_open_a_window_s_mute_once_and_say_its_summary_once() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    story(&database.url, 2).await;
    database.drop().await;
}
