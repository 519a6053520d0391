//! The real `labelwarden` binary as a child process: started with its log
//! read as it is written, stopped with SIGTERM or killed with SIGKILL. A
//! test that fails before stopping it still does not leave it running: a
//! forgotten replica would hold database connections and poll for work
//! while later tests run.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of a GET of `url` (a page of a running `serve`: `/metrics`).
pub async fn text_at(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// Waits until `GET /healthz` answers.
pub async fn wait_until_up(http: &reqwest::Client, base: &str) {
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
pub struct Running {
    child: KilledOnDrop,
    log: std::thread::JoinHandle<String>,
}

/// A child process killed when dropped, unless it exited already.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn run(mut command: Command) -> Running {
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
    Running {
        child: KilledOnDrop(child),
        log,
    }
}

/// Sends SIGTERM and returns the exit code and the whole log.
pub async fn terminate(mut running: Running) -> (Option<i32>, String) {
    let Running {
        child: KilledOnDrop(ref mut child),
        log,
    } = running;
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

impl Running {
    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Freezes the process (SIGSTOP), as a long GC pause, a stopped VM or
    /// a stalled host would: it holds its connections and does nothing.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    /// Lets a frozen process go on (SIGCONT) from where it stopped.
    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Kills the process at once, as a crash would, and returns its log.
pub fn kill(mut running: Running) -> String {
    let Running {
        child: KilledOnDrop(ref mut child),
        log,
    } = running;
    let _ = child.kill();
    let _ = child.wait();
    log.join().unwrap()
}

/// A `serve --notifier slack` replica on `database`, posting to the fake
/// Slack at `slack_api` at any rate, with a 2-second lease and no
/// reconcile, reading the policy fixture `policies`.
pub fn serve_replica(database: &str, slack_api: &str, port: u16, policies: &str) -> Running {
    serve_replica_with_lease(database, slack_api, port, policies, "2s")
}

/// [`serve_replica`] with a lease of `lease` (`3s`).
pub fn serve_replica_with_lease(
    database: &str,
    slack_api: &str,
    port: u16,
    policies: &str,
    lease: &str,
) -> Running {
    run(replica_command(database, slack_api, port, policies, lease))
}

/// [`serve_replica`] that also writes to the GitLab at `gitlab_url`
/// (labels, comments: what steps and rules do there).
pub fn serve_replica_writing_to(
    database: &str,
    slack_api: &str,
    gitlab_url: &str,
    port: u16,
    policies: &str,
) -> Running {
    let mut command = replica_command(database, slack_api, port, policies, "2s");
    command
        .env("GITLAB_URL", gitlab_url)
        .env("GITLAB_TOKEN", super::fake_gitlab::TOKEN);
    run(command)
}

fn replica_command(
    database: &str,
    slack_api: &str,
    port: u16,
    policies: &str,
    lease: &str,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labelwarden"));
    command
        .args(["serve", "--notifier", "slack"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--database",
            database,
            "--lease",
            lease,
            "--reconcile-every",
            "0s",
        ])
        .arg("--policies")
        .arg(super::fixtures().join(policies))
        .env("LABELWARDEN_WEBHOOK_SECRET", super::SECRET)
        .env("SLACK_BOT_TOKEN", super::fake_slack::TOKEN)
        .env("SLACK_API_URL", slack_api)
        // The fake takes any rate; Slack's own one-per-second would make
        // 1 500 messages in one channel take 25 minutes.
        .env("LABELWARDEN_SLACK_PER_CHANNEL_PER_SECOND", "10000")
        .env("RUST_LOG", "warn");
    command
}

/// Posts an issue hook to the process listening on `port`, as GitLab
/// would, with delivery id `uuid`; returns the HTTP status.
pub async fn deliver_hook(
    http: &reqwest::Client,
    port: u16,
    uuid: &str,
    payload: &serde_json::Value,
) -> u16 {
    http.post(format!("http://127.0.0.1:{port}/webhooks/gitlab"))
        .header("X-Gitlab-Token", super::SECRET)
        .header("X-Gitlab-Event", "Issue Hook")
        .header("X-Gitlab-Event-UUID", uuid)
        .header("Content-Type", "application/json")
        .body(payload.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Labels issues 1 to `issues` of acme/backend `priority::highest` as
/// GitLab would, issue `n` through the replica on `ports[n % ports.len()]`,
/// `at_once` deliveries at a time, each with the delivery id
/// `{prefix}-{n}`; when each was labelled.
pub async fn label_spread(
    http: &reqwest::Client,
    ports: &[u16],
    issues: u64,
    prefix: &str,
    at_once: usize,
) -> std::collections::BTreeMap<u64, chrono::DateTime<chrono::Utc>> {
    use futures_util::StreamExt;
    futures_util::stream::iter(1..=issues)
        .map(|iid| {
            let http = http.clone();
            let port = ports[iid as usize % ports.len()];
            async move {
                let at = chrono::Utc::now();
                let payload = super::issue_event(iid, at, at, &[], &[super::HIGHEST], false);
                let status = deliver_hook(&http, port, &format!("{prefix}-{iid}"), &payload).await;
                assert_eq!(status, 200);
                (iid, at)
            }
        })
        .buffer_unordered(at_once)
        .collect()
        .await
}
