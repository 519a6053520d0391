//! `labelwarden serve` as an operator runs it: the real binary, its exit
//! codes, its signals and its logs.

use std::process::{Command, Stdio};
use std::time::Duration;

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

#[tokio::test]
async fn sigterm_stops_serving_and_exits_0_and_the_secret_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
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
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let http = labelwarden::http_client::builder().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "serve did not come up");
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
    assert_eq!(code.code(), Some(0));

    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("webhook refused"), "{log}");
    assert!(!log.contains(SECRET), "a secret reached the log:\n{log}");
}
