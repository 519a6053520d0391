//! `labelwarden serve` as an operator runs it: the real binary, its exit
//! codes, its signals and its logs.

mod common;

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use common::fake_slack::{self, FakeSlack};
use common::process::{free_port, run, terminate, text_at, wait_until_up};
use common::{HIGHEST, fixtures, issue_event};

const SECRET: &str = "s3cret-never-logged";

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
fn the_status_page_needs_a_token_or_an_explicit_public_switch() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["serve", "--notifier", "log", "--status-page", "--policies"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .current_dir(dir.path())
        .env("LABELWARDEN_WEBHOOK_SECRET", SECRET)
        .env_remove("LABELWARDEN_STATUS_TOKEN")
        .env_remove("LABELWARDEN_STATUS_PUBLIC")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--status-page needs LABELWARDEN_STATUS_TOKEN")
            && stderr.contains("--status-public"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("labelwarden.db").exists(),
        "nothing started"
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
        .env(
            "LABELWARDEN_TEST_STAFF_WEBHOOK",
            fake.slack
                .incoming_webhook("#status-staff", "staffWebhookPart"),
        )
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
        channels.contains(&"C0ALERTS".to_owned()) && channels.contains(&"C0STATUS".to_owned()),
        "posted with the bot token and through the webhook: {channels:?}"
    );

    let (code, log) = terminate(child).await;
    assert_eq!(code, Some(0), "{log}");
    for secret in [
        fake_slack::TOKEN,
        "s3cr3tWebhookPart",
        "staffWebhookPart",
        SECRET,
    ] {
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

    // The shipped rule on office hours says, on /metrics, that its
    // durations are working time.
    let metrics = text_at(&http, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains("labelwarden_policy_calendar_info{policy=\"high-bug-pickup-1bd\",calendar=\"office-hours\",time_zone=\"Europe/Berlin\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("labelwarden_policy_calendar_info{policy=\"critical-bug-24h\""),
        "a wall-clock policy has no calendar: {metrics}"
    );
    metrics_pass_promtool(&metrics);

    let (code, log) = terminate(child).await;
    assert_eq!(code, Some(0));
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("webhook refused"), "{log}");
    assert!(!log.contains(SECRET), "a secret reached the log:\n{log}");
}

/// `labelwarden probe`, as the image's HEALTHCHECK runs it.
fn probe(listen: &str, path: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["probe", path])
        .env("LABELWARDEN_LISTEN", listen)
        .output()
        .unwrap()
}

#[tokio::test]
async fn probe_says_alive_and_ready_and_fails_when_nothing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Listening on every address, as in the image: probed on loopback.
    let listen = format!("0.0.0.0:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelwarden"));
    child
        .args(["serve", "--notifier", "log", "--policies"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .current_dir(dir.path())
        .env("LABELWARDEN_LISTEN", &listen)
        .env("LABELWARDEN_WEBHOOK_SECRET", SECRET);
    let child = run(child);
    let http = labelwarden::http_client::builder().build().unwrap();
    wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;

    for path in ["/healthz", "/readyz"] {
        let answer = probe(&listen, path);
        let said = String::from_utf8_lossy(&answer.stdout);
        assert_eq!(answer.status.code(), Some(0), "{path}: {said}");
        assert!(
            said.contains(&format!("http://127.0.0.1:{port}{path}: 200")),
            "{said}"
        );
    }
    let refused = probe(&listen, "/metrics");
    assert_eq!(refused.status.code(), Some(2), "only the probe paths");

    let (code, _) = terminate(child).await;
    assert_eq!(code, Some(0));
    let gone = probe(&listen, "/healthz");
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stdout).contains("no answer"),
        "{}",
        String::from_utf8_lossy(&gone.stdout)
    );
}

/// Every metric on `/metrics` has HELP text, and Prometheus's own linter
/// (`promtool check metrics`, Debian's `prometheus` package) finds nothing
/// to say. `.ci/run` installs promtool and sets
/// `LABELWARDEN_REQUIRE_PROMTOOL`, so there the check cannot be skipped.
fn metrics_pass_promtool(metrics: &str) {
    let typed: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(typed.len() > 5, "{metrics}");
    for name in &typed {
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name} has no HELP:\n{metrics}"
        );
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("LABELWARDEN_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here: {e}"
            );
            eprintln!("promtool not found ({e}): `promtool check metrics` skipped");
            return;
        }
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
