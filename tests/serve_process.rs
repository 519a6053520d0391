//! `labelwarden serve` as an operator runs it: the real binary, its exit
//! codes, its signals and its logs.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::fake_slack::{self, FakeSlack};
use common::{HIGHEST, fixtures, issue_event};

const SECRET: &str = "s3cret-never-logged";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_refuses_to_start_without_a_webhook_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["serve", "--notifier", "log", "--policies"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .current_dir(dir.path())
        .env_remove("LABELWARDEN_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("set LABELWARDEN_WEBHOOK_SECRET"),
        "{stderr}"
    );
}

#[test]
fn serve_with_slack_says_which_settings_are_missing_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["serve", "--notifier", "slack", "--policies"])
        .arg(fixtures().join("policies-slack"))
        .current_dir(dir.path())
        .env("LABELWARDEN_WEBHOOK_SECRET", SECRET)
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("LABELWARDEN_TEST_STATUS_WEBHOOK")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("set SLACK_BOT_TOKEN") && stderr.contains("alerts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set LABELWARDEN_TEST_STATUS_WEBHOOK"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("labelwarden.db").exists(),
        "nothing was started"
    );
}

#[test]
fn serve_with_slack_needs_a_gitlab_token_when_steps_act_on_gitlab() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["serve", "--notifier", "slack", "--policies"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .current_dir(dir.path())
        .env("LABELWARDEN_WEBHOOK_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-anything")
        .env_remove("GITLAB_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("set GITLAB_TOKEN") && stderr.contains("critical-bug-24h"),
        "{stderr}"
    );
}

/// Waits until `GET /healthz` answers.
async fn wait_until_up(http: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve did not come up");
}

/// A running `serve` whose log is read as it is written: a pipe nobody
/// reads fills up and stalls the process at its next log line.
struct Running {
    child: Child,
    log: std::thread::JoinHandle<String>,
}

fn run(mut command: Command) -> Running {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
        log
    });
    Running { child, log }
}

/// Sends SIGTERM and returns the exit code and the whole log.
async fn terminate(running: Running) -> (Option<i32>, String) {
    let Running { mut child, log } = running;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(code) = child.try_wait().unwrap() {
            exited = Some(code);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let code = exited.expect("serve exits within 5 seconds of SIGTERM");
    (code.code(), log.join().unwrap())
}

#[tokio::test]
async fn serve_posts_to_slack_and_neither_token_nor_webhook_url_reaches_the_log() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelwarden"));
    child
        .args([
            "serve",
            "--notifier",
            "slack",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--policies",
        ])
        .arg(fixtures().join("policies-slack"))
        .current_dir(dir.path())
        .env("LABELWARDEN_WEBHOOK_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("SLACK_API_URL", &fake.api_url)
        .env("LABELWARDEN_TEST_STATUS_WEBHOOK", &fake.webhook_url)
        .env("RUST_LOG", "debug");
    let child = run(child);
    let http = labelwarden::http_client::builder().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&http, &base).await;

    let now = Utc::now();
    let delivered = http
        .post(format!("{base}/webhooks/gitlab"))
        .header("X-Gitlab-Token", SECRET)
        .header("X-Gitlab-Event", "Issue Hook")
        .header("Content-Type", "application/json")
        .body(issue_event(1, now, now, &[], &[HIGHEST, "status::public"], false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 200);
    for _ in 0..100 {
        if fake.slack.messages().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let channels: Vec<String> = fake
        .slack
        .messages()
        .iter()
        .map(|m| m.channel.clone())
        .collect();
    assert!(
        channels.contains(&"C0ALERTS".to_owned()) && channels.contains(&"webhook".to_owned()),
        "posted with the bot token and through the webhook: {channels:?}"
    );

    let (code, log) = terminate(child).await;
    assert_eq!(code, Some(0), "{log}");
    for secret in [fake_slack::TOKEN, "s3cr3tWebhookPart", SECRET] {
        assert!(!log.contains(secret), "`{secret}` reached the log:\n{log}");
    }
}

#[tokio::test]
async fn sigterm_stops_serving_and_exits_0_and_the_secret_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelwarden"));
    child
        .args([
            "serve",
            "--notifier",
            "log",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--policies",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .current_dir(dir.path())
        .env(
            "LABELWARDEN_WEBHOOK_SECRET",
            format!("old-{SECRET},{SECRET}"),
        )
        .env("RUST_LOG", "debug");
    let child = run(child);

    let http = labelwarden::http_client::builder().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&http, &base).await;
    assert!(
        dir.path().join("labelwarden.db").exists(),
        "the embedded default database is created"
    );

    let refused = http
        .post(format!("{base}/webhooks/gitlab"))
        .header("X-Gitlab-Token", format!("{SECRET}-wrong"))
        .header("X-Gitlab-Event", "Issue Hook")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let (code, log) = terminate(child).await;
    assert_eq!(code, Some(0));
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("webhook refused"), "{log}");
    assert!(!log.contains(SECRET), "a secret reached the log:\n{log}");
}
